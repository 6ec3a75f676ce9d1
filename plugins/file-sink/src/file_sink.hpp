// file-sink: appends messages to files, as JSON lines (topic, key, headers, timestamp, payload)
// or one raw payload per line. The path is a template, so one route can fan out to a file per
// topic level. Optional size rotation. A batch counts as delivered once written to the OS
// (and fsynced, with `fsync: true`).
//
// Confinement: the path's constant directory (or the operator's `root`) is the base every file
// stays under. What a message puts into the path through a template is cleaned of separators,
// NUL and control characters; every directory below the base is opened without following
// symbolic links, and only regular files are written. A message whose path cannot be used goes
// to the route's error policy; only problems of the disk itself fail the route.
#pragma once

#include <cstdint>
#include <list>
#include <sluice/sdk.hpp>
#include <string>
#include <unordered_map>

namespace sluice::plugins {

class FileSink : public sdk::Sink {
public:
    static sdk::Spec spec();
    static void validate(const sdk::Config& config, sdk::Diagnostics& diag);

    FileSink(const sdk::Config& config, sdk::Host& host);
    ~FileSink() override;
    sdk::Status write(const sdk::BatchView& in, sdk::Emitter& results) override;
    void stop(std::chrono::milliseconds deadline) override;

private:
    struct OpenFile {
        int fd = -1;
        std::uint64_t size = 0;
        std::string buffer;  // lines not yet written
        std::list<std::string>::iterator lru;
    };
    /// The open file for `rel` (below the base); nullptr with `problem` set when the path
    /// cannot be used for this message. Throws sdk::Fatal for the disk's problems.
    OpenFile* open(const std::string& rel, std::string& problem);
    /// A directory below the base, opened without following links (created with mkdirs);
    /// -1 with `problem` set when the path cannot be used.
    int open_dir(const std::string& rel_dir, std::string& problem);
    int base_fd();
    void flush(const std::string& rel, OpenFile& f);
    void rotate(const std::string& rel, OpenFile& f);
    void close_file(const std::string& rel);
    void close_all();
    void format(sdk::MessageView m);
    std::string shown(const std::string& rel) const;

    sdk::Template path_;
    std::string base_;        // the directory every file stays under
    std::size_t skip_ = 0;    // characters of the rendered path that name the base
    char replacement_ = '_';  // for what a template variable may not put into a path
    int base_fd_ = -1;
    bool json_lines_ = true;
    std::uint64_t rotate_bytes_ = 0;
    int rotate_keep_ = 5;
    bool fsync_ = false;
    bool mkdirs_ = true;
    std::size_t max_open_ = 64;
    std::string route_;
    sdk::Host& host_;

    std::unordered_map<std::string, OpenFile> files_;  // by path below the base
    std::list<std::string> lru_;                       // most recently used first
    std::string path_buf_;
    std::string line_;
};

}  // namespace sluice::plugins
