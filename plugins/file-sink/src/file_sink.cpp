#include "file_sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace sluice::plugins {

namespace fs = std::filesystem;
namespace json = sdk::json;

namespace {

constexpr std::size_t kFlushThreshold = 64 * 1024;

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

sdk::Spec FileSink::spec() {
    using sdk::Field;
    sdk::Spec s("file-sink", "1.0.0");
    s.summary("Appends messages to files, as JSON lines or raw payloads.")
        .description(
            "Each message becomes one line. With `format: jsonl` the line is an object "
            "`{\"topic\",\"key\",\"headers\",\"timestamp_ms\",\"qos\",\"payload\"}`; a payload "
            "that is valid JSON is embedded as JSON, any other payload as a string. With "
            "`format: raw` the line is the payload as it is. A batch is confirmed once written "
            "to the operating system (and flushed to disk with `fsync: true`). A path that "
            "cannot be opened or written fails the route, which retries with back-off; the "
            "messages stay queued.");
    s.field(Field::templated("path")
                .required()
                .description("File to append to; a template, e.g. one file per topic level.")
                .example("\"out/{{route}}/{{topic.1}}.jsonl\""));
    s.field(Field::enumeration("format", {"jsonl", "raw"})
                .default_value("jsonl")
                .description("`jsonl`: one JSON object per message with its metadata; `raw`: "
                             "the payload and a newline."));
    s.field(Field::integer("rotate_bytes")
                .default_value("0")
                .range(0, 1e15)
                .description("Rotate a file when it would grow past this size: `f` becomes "
                             "`f.1`, `f.1` becomes `f.2`, ...; 0 turns rotation off."));
    s.field(Field::integer("rotate_keep")
                .default_value("5")
                .range(1, 1000)
                .description("How many rotated files to keep."));
    s.field(Field::boolean("fsync")
                .default_value("false")
                .description("fsync each file after every batch before confirming it."));
    s.field(Field::boolean("mkdirs")
                .default_value("true")
                .description("Create missing parent directories."));
    s.field(Field::integer("max_open_files")
                .default_value("64")
                .range(1, 100000)
                .advanced()
                .description("Files kept open at once; the least recently used is closed."));
    return s;
}

FileSink::FileSink(const sdk::Config& config, sdk::Host& host)
    : path_(config.templ("path")),
      json_lines_(config.string("format") == "jsonl"),
      rotate_bytes_(static_cast<std::uint64_t>(config.integer("rotate_bytes"))),
      rotate_keep_(static_cast<int>(config.integer("rotate_keep"))),
      fsync_(config.boolean("fsync")),
      mkdirs_(config.boolean("mkdirs")),
      max_open_(static_cast<std::size_t>(config.integer("max_open_files"))),
      route_(config.route()),
      host_(host) {}

FileSink::~FileSink() {
    try {
        close_all();
    } catch (...) {
        // Nothing left to report to: stop() already flushed and reported failures.
    }
}

FileSink::OpenFile& FileSink::open(const std::string& path) {
    if (auto it = files_.find(path); it != files_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        return it->second;
    }
    if (files_.size() >= max_open_) {
        const std::string victim = lru_.back();
        auto& f = files_.at(victim);
        flush(victim, f);
        ::close(f.fd);
        files_.erase(victim);
        lru_.pop_back();
    }
    if (mkdirs_) {
        const auto parent = fs::path(path).parent_path();
        std::error_code ec;
        if (!parent.empty()) fs::create_directories(parent, ec);
        if (ec) {
            throw sdk::Fatal("cannot create directory '" + parent.string() + "': " + ec.message());
        }
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw sdk::Fatal("cannot open '" + path + "' for appending: " + errno_text(errno));
    struct stat st {};
    ::fstat(fd, &st);
    lru_.push_front(path);
    OpenFile& f = files_[path];
    f.fd = fd;
    f.size = static_cast<std::uint64_t>(st.st_size);
    f.lru = lru_.begin();
    return f;
}

void FileSink::flush(const std::string& path, OpenFile& f) {
    std::size_t done = 0;
    while (done < f.buffer.size()) {
        const ssize_t n = ::write(f.fd, f.buffer.data() + done, f.buffer.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            f.buffer.erase(0, done);
            // ENOSPC and EIO are the disk's problem, not the data's: fail so the route keeps
            // the batch and retries after back-off instead of dropping it.
            throw sdk::Fatal("cannot write '" + path + "': " + errno_text(err));
        }
        done += static_cast<std::size_t>(n);
    }
    f.buffer.clear();
}

void FileSink::rotate(const std::string& path, OpenFile& f) {
    flush(path, f);
    ::close(f.fd);
    std::error_code ec;
    fs::remove(path + "." + std::to_string(rotate_keep_), ec);
    for (int i = rotate_keep_ - 1; i >= 1; --i) {
        fs::rename(path + "." + std::to_string(i), path + "." + std::to_string(i + 1), ec);
    }
    fs::rename(path, path + ".1", ec);
    if (ec) throw sdk::Fatal("cannot rotate '" + path + "': " + ec.message());
    f.fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f.fd < 0) throw sdk::Fatal("cannot reopen '" + path + "': " + errno_text(errno));
    f.size = 0;
}

void FileSink::format(sdk::MessageView m) {
    line_.clear();
    if (!json_lines_) {
        line_.append(m.payload());
        line_.push_back('\n');
        return;
    }
    line_.append("{\"topic\":");
    json::append_quoted(line_, m.topic());
    line_.append(",\"key\":");
    if (m.has_key()) {
        json::append_quoted(line_, m.key());
    } else {
        line_.append("null");
    }
    line_.append(",\"headers\":{");
    for (std::size_t i = 0; i < m.header_count(); ++i) {
        if (i > 0) line_.push_back(',');
        json::append_quoted(line_, m.header_key(i));
        line_.push_back(':');
        json::append_quoted(line_, m.header_value(i));
    }
    line_.append("},\"timestamp_ms\":");
    line_.append(std::to_string(m.timestamp_ms()));
    line_.append(",\"qos\":");
    line_.append(std::to_string(m.qos()));
    line_.append(",\"payload\":");
    if (json::is_valid(m.payload())) {
        json::append_minified(line_, m.payload());
    } else {
        json::append_quoted(line_, m.payload());
    }
    line_.append("}\n");
}

sdk::Status FileSink::write(const sdk::BatchView& in, sdk::Emitter& /*results*/) {
    const sdk::RenderContext ctx{route_};
    for (const auto m : in) {
        path_buf_.clear();
        path_.render(m, ctx, path_buf_);
        OpenFile& f = open(path_buf_);
        format(m);
        if (rotate_bytes_ > 0 && f.size > 0 && f.size + line_.size() > rotate_bytes_) {
            rotate(path_buf_, f);
        }
        f.buffer.append(line_);
        f.size += line_.size();
        if (f.buffer.size() >= kFlushThreshold) flush(path_buf_, f);
    }
    for (auto& [path, f] : files_) {
        flush(path, f);
        if (fsync_ && ::fsync(f.fd) != 0) {
            throw sdk::Fatal("cannot fsync '" + path + "': " + errno_text(errno));
        }
    }
    return sdk::Status::ok;
}

void FileSink::close_all() {
    for (auto& [path, f] : files_) {
        flush(path, f);
        ::close(f.fd);
    }
    files_.clear();
    lru_.clear();
}

void FileSink::stop(std::chrono::milliseconds /*deadline*/) {
    close_all();
    host_.debug("closed all files");
}

}  // namespace sluice::plugins

SLUICE_MODULE("sluice-file-sink", sluice::plugins::FileSink)
