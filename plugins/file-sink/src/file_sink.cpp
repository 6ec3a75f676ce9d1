#include "file_sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
            "to the operating system (and flushed to disk with `fsync: true`). Every file stays "
            "under one directory: what the `path` names before its first `{{` (or the "
            "operator's `root`). What template variables put into the path is cleaned "
            "(`replacement`), directories below that one are never reached through a symbolic "
            "link, and only regular files are written: a message whose path cannot be used "
            "(a directory, a FIFO, a link, a name too long) goes to the route's `on_error` "
            "policy. A disk that cannot be written (full, read-only, no permission) fails the "
            "route, which retries with back-off; the messages stay queued.");
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
    s.field(Field::boolean("fsync").default_value("false").description(
        "fsync each file after every batch before confirming it."));
    s.field(Field::boolean("mkdirs").default_value("true").description(
        "Create missing parent directories."));
    s.field(Field::string("replacement")
                .default_value("_")
                .advanced()
                .description("What replaces a '/', a NUL or a control character that a template "
                             "variable (a topic level, a JSON field, a header) would put into "
                             "the path, and each character of a variable that renders as '.' "
                             "or '..': what a message carries stays one file name."));
    s.field(Field::string("root").default_value("").host_only().description(
        "The directory every file of every file-sink route stays under; "
        "a relative `path` is taken from it, an absolute one must lie "
        "inside it. Empty: each route's files stay under the directory "
        "its `path` names before the first `{{`."));
    s.field(Field::integer("max_open_files")
                .default_value("64")
                .range(1, 100000)
                .advanced()
                .description("Files kept open at once; the least recently used is closed."));
    return s;
}

namespace {

struct Layout {
    std::string base;   // directory every file stays under
    std::size_t skip;   // characters of the rendered path that name it
    std::string error;  // the configuration cannot be used
};

// Where a route's files go: the directory part of the path's text before its first variable
// (all of it, for a constant path), below `root` when the operator set one.
Layout layout_of(const sdk::Template& path, const std::string& root) {
    Layout l;
    const std::string source = path.source();
    const std::string_view prefix = path.constant_prefix();
    const std::size_t slash = prefix.rfind('/');
    l.skip = slash == std::string_view::npos ? 0 : slash + 1;
    std::string dir = slash == std::string_view::npos ? std::string()
                      : slash == 0                    ? std::string("/")
                                                      : std::string(prefix.substr(0, slash));
    for (std::size_t pos = l.skip; pos <= source.size();) {
        const std::size_t end = std::min(source.find('/', pos), source.size());
        if (source.compare(pos, end - pos, "..") == 0) {
            l.error = "'..' after the path's directory ('" + dir +
                      "') would leave it; name the directory before the first '{{'";
            return l;
        }
        pos = end + 1;
    }
    if (root.empty()) {
        l.base = dir.empty() ? "." : dir;
        return l;
    }
    const fs::path r = fs::path(root).lexically_normal();
    if (!r.is_absolute()) {
        l.error = "the file root '" + root + "' (plugin_settings: file-sink: root) is not absolute";
        return l;
    }
    const fs::path base =
        (fs::path(dir).is_absolute() ? fs::path(dir) : r / dir).lexically_normal();
    const fs::path inside = base.lexically_relative(r);
    if (inside.empty() || *inside.begin() == "..") {
        l.error = "'" + base.string() + "' is outside the file root '" + r.string() +
                  "' (plugin_settings: file-sink: root)";
        return l;
    }
    l.base = base.string();
    if (l.base.size() > 1 && l.base.back() == '/') l.base.pop_back();
    return l;
}

char replacement_of(const sdk::Config& config) {
    const std::string r = config.string("replacement");
    const auto c = r.empty() ? '\0' : static_cast<unsigned char>(r[0]);
    if (r.size() != 1 || c == '/' || c == '.' || c < 0x20 || c == 0x7f) {
        throw sdk::ConfigError("replacement",
                               "must be one character other than '/', '.' and control "
                               "characters, got '" +
                                   r + "'");
    }
    return r[0];
}

// errno values that are the message's doing (its path), not the disk's: the message goes to
// the error policy and the route goes on.
bool path_problem(int err) {
    return err == ELOOP || err == ENOTDIR || err == EISDIR || err == ENAMETOOLONG || err == ENXIO ||
           err == EINVAL || err == ETXTBSY || err == EEXIST;
}

// Never through a symbolic link, never anything that blocks on open (a FIFO).
int open_for_append(int dir, const std::string& name) {
    return ::openat(dir, name.c_str(),
                    O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
}

}  // namespace

void FileSink::validate(const sdk::Config& config, sdk::Diagnostics& diag) {
    try {
        replacement_of(config);
    } catch (const sdk::ConfigError& e) {
        diag.report(e.key(), e.what());
    }
    const auto l = layout_of(config.templ("path"), config.string("root"));
    if (!l.error.empty()) diag.report("path", l.error);
}

FileSink::FileSink(const sdk::Config& config, sdk::Host& host)
    : path_(config.templ("path")),
      replacement_(replacement_of(config)),
      json_lines_(config.string("format") == "jsonl"),
      rotate_bytes_(static_cast<std::uint64_t>(config.integer("rotate_bytes"))),
      rotate_keep_(static_cast<int>(config.integer("rotate_keep"))),
      fsync_(config.boolean("fsync")),
      mkdirs_(config.boolean("mkdirs")),
      max_open_(static_cast<std::size_t>(config.integer("max_open_files"))),
      route_(config.route()),
      host_(host) {
    auto l = layout_of(path_, config.string("root"));
    if (!l.error.empty()) throw sdk::ConfigError("path", l.error);
    base_ = std::move(l.base);
    skip_ = l.skip;
}

FileSink::~FileSink() {
    try {
        close_all();
    } catch (...) {
        // Nothing left to report to: stop() already flushed and reported failures.
    }
    if (base_fd_ >= 0) ::close(base_fd_);
}

std::string FileSink::shown(const std::string& rel) const {
    return base_ == "/" ? "/" + rel : base_ + "/" + rel;
}

int FileSink::base_fd() {
    if (base_fd_ >= 0) return base_fd_;
    if (mkdirs_) {
        std::error_code ec;
        fs::create_directories(base_, ec);
        if (ec) throw sdk::Fatal("cannot create directory '" + base_ + "': " + ec.message());
    }
    base_fd_ = ::open(base_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (base_fd_ < 0) {
        throw sdk::Fatal("cannot open directory '" + base_ + "': " + errno_text(errno));
    }
    return base_fd_;
}

int FileSink::open_dir(const std::string& rel_dir, std::string& problem) {
    int dir = base_fd();
    std::size_t pos = 0;
    std::string walked;
    while (pos < rel_dir.size()) {
        const std::size_t end = std::min(rel_dir.find('/', pos), rel_dir.size());
        const std::string name = rel_dir.substr(pos, end - pos);
        pos = end + 1;
        if (name.empty() || name == ".") continue;
        walked += (walked.empty() ? "" : "/") + name;
        const auto fail = [&](int err, const std::string& why) {
            if (dir != base_fd_) ::close(dir);
            if (path_problem(err)) {
                problem = "cannot use directory '" + shown(walked) + "': " + why;
                return -1;
            }
            throw sdk::Fatal("cannot open directory '" + shown(walked) + "': " + why);
        };
        if (name == "..") return fail(EINVAL, "'..' would leave '" + base_ + "'");
        if (mkdirs_ && ::mkdirat(dir, name.c_str(), 0755) != 0 && errno != EEXIST) {
            return fail(errno, errno_text(errno));
        }
        // Not following links: a link in a directory below the base cannot lead out of it.
        const int next = ::openat(dir, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            const int err = errno;
            return fail(err,
                        err == ENOTDIR ? "not a directory (or a symbolic link)" : errno_text(err));
        }
        if (dir != base_fd_) ::close(dir);
        dir = next;
    }
    return dir == base_fd_ ? ::fcntl(dir, F_DUPFD_CLOEXEC, 0) : dir;
}

FileSink::OpenFile* FileSink::open(const std::string& rel, std::string& problem) {
    if (auto it = files_.find(rel); it != files_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        return &it->second;
    }
    const std::size_t slash = rel.rfind('/');
    const std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    if (name.empty() || name == "." || name == "..") {
        problem = "the path '" + shown(rel) + "' names no file";
        return nullptr;
    }
    if (files_.size() >= max_open_) close_file(lru_.back());
    const int dir = open_dir(slash == std::string::npos ? "" : rel.substr(0, slash), problem);
    if (dir < 0) return nullptr;
    const int fd = open_for_append(dir, name);
    const int err = errno;
    ::close(dir);
    if (fd < 0) {
        if (path_problem(err)) {
            problem = "cannot open '" + shown(rel) + "': " +
                      (err == ELOOP ? std::string("it is a symbolic link") : errno_text(err));
            return nullptr;
        }
        throw sdk::Fatal("cannot open '" + shown(rel) + "' for appending: " + errno_text(err));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        problem = "cannot open '" + shown(rel) + "': not a regular file";
        return nullptr;
    }
    lru_.push_front(rel);
    OpenFile& f = files_[rel];
    f.fd = fd;
    f.size = static_cast<std::uint64_t>(st.st_size);
    f.lru = lru_.begin();
    return &f;
}

void FileSink::flush(const std::string& rel, OpenFile& f) {
    std::size_t done = 0;
    while (done < f.buffer.size()) {
        const ssize_t n = ::write(f.fd, f.buffer.data() + done, f.buffer.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            f.buffer.erase(0, done);
            // ENOSPC and EIO are the disk's problem, not the data's: fail so the route keeps
            // the batch and retries after back-off instead of dropping it.
            throw sdk::Fatal("cannot write '" + shown(rel) + "': " + errno_text(err));
        }
        done += static_cast<std::size_t>(n);
    }
    f.buffer.clear();
}

void FileSink::rotate(const std::string& rel, OpenFile& f) {
    flush(rel, f);
    const std::size_t slash = rel.rfind('/');
    const std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    std::string problem;
    const int dir = open_dir(slash == std::string::npos ? "" : rel.substr(0, slash), problem);
    if (dir < 0) throw sdk::Fatal("cannot rotate '" + shown(rel) + "': " + problem);
    const auto numbered = [&](int i) { return name + "." + std::to_string(i); };
    // The open file stays open until its successor is: a failure leaves no closed descriptor
    // behind, and what is written goes on to the file that was there.
    ::unlinkat(dir, numbered(rotate_keep_).c_str(), 0);
    for (int i = rotate_keep_ - 1; i >= 1; --i) {
        ::renameat(dir, numbered(i).c_str(), dir, numbered(i + 1).c_str());
    }
    if (::renameat(dir, name.c_str(), dir, numbered(1).c_str()) != 0) {
        const int err = errno;
        ::close(dir);
        throw sdk::Fatal("cannot rotate '" + shown(rel) + "': " + errno_text(err));
    }
    const int fd = open_for_append(dir, name);
    const int err = errno;
    ::close(dir);
    if (fd < 0) {
        close_file(rel);
        throw sdk::Fatal("cannot reopen '" + shown(rel) +
                         "' after rotating it: " + errno_text(err));
    }
    ::close(f.fd);
    f.fd = fd;
    f.size = 0;
}

void FileSink::close_file(const std::string& rel) {
    const auto it = files_.find(rel);
    if (it == files_.end()) return;
    const std::string key = rel;  // `rel` may be the map's own key
    OpenFile& f = it->second;
    struct Close {
        FileSink* self;
        std::unordered_map<std::string, OpenFile>::iterator it;
        ~Close() {
            ::close(it->second.fd);
            self->lru_.erase(it->second.lru);
            self->files_.erase(it);
        }
    } close{this, it};
    flush(key, f);
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

sdk::Status FileSink::write(const sdk::BatchView& in, sdk::Emitter& results) {
    const sdk::RenderContext ctx{route_};
    // What a message puts into the path stays one file name: no separator, NUL or control
    // character, and no '.' or '..' of its own.
    const auto clean = [this](std::string& out, std::size_t from) {
        bool dots = from < out.size();
        for (std::size_t i = from; i < out.size(); ++i) {
            const auto c = static_cast<unsigned char>(out[i]);
            if (c == '/' || c < 0x20 || c == 0x7f) out[i] = replacement_;
            dots = dots && out[i] == '.';
        }
        if (dots)
            std::fill(out.begin() + static_cast<std::ptrdiff_t>(from), out.end(), replacement_);
    };
    std::string problem;
    for (std::size_t i = 0; i < in.size(); ++i) {
        const auto m = in[i];
        path_buf_.clear();
        path_.render(m, ctx, path_buf_, clean);
        problem.clear();
        OpenFile* f = path_buf_.size() > skip_ ? open(path_buf_.substr(skip_), problem) : nullptr;
        if (f == nullptr) {
            results.reject(
                i, sdk::Status::error,
                problem.empty() ? "the path '" + path_buf_ + "' names no file" : problem);
            continue;
        }
        format(m);
        if (rotate_bytes_ > 0 && f->size > 0 && f->size + line_.size() > rotate_bytes_) {
            rotate(path_buf_.substr(skip_), *f);
        }
        f->buffer.append(line_);
        f->size += line_.size();
        if (f->buffer.size() >= kFlushThreshold) flush(path_buf_.substr(skip_), *f);
    }
    for (auto& [rel, f] : files_) {
        flush(rel, f);
        if (fsync_ && ::fsync(f.fd) != 0) {
            throw sdk::Fatal("cannot fsync '" + shown(rel) + "': " + errno_text(errno));
        }
    }
    return sdk::Status::ok;
}

void FileSink::close_all() {
    while (!files_.empty()) close_file(files_.begin()->first);
    lru_.clear();
}

void FileSink::stop(std::chrono::milliseconds /*deadline*/) {
    close_all();
    host_.debug("closed all files");
}

}  // namespace sluice::plugins

SLUICE_MODULE("sluice-file-sink", sluice::plugins::FileSink)
