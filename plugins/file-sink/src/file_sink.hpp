// file-sink: appends messages to files, as JSON lines (topic, key, headers, timestamp, payload)
// or one raw payload per line. The path is a template, so one route can fan out to a file per
// topic level. Optional size rotation. A batch counts as delivered once written to the OS
// (and fsynced, with `fsync: true`).
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>

#include <sluice/sdk.hpp>

namespace sluice::plugins {

class FileSink : public sdk::Sink {
public:
    static sdk::Spec spec();

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
    OpenFile& open(const std::string& path);
    void flush(const std::string& path, OpenFile& f);
    void rotate(const std::string& path, OpenFile& f);
    void close_all();
    void format(sdk::MessageView m);

    sdk::Template path_;
    bool json_lines_ = true;
    std::uint64_t rotate_bytes_ = 0;
    int rotate_keep_ = 5;
    bool fsync_ = false;
    bool mkdirs_ = true;
    std::size_t max_open_ = 64;
    std::string route_;
    sdk::Host& host_;

    std::unordered_map<std::string, OpenFile> files_;
    std::list<std::string> lru_;  // most recently used first
    std::string path_buf_;
    std::string line_;
};

}  // namespace sluice::plugins
