// Watches route manifests and the host config with inotify, for hot reload. Watches are on
// directories, never on the files themselves: editors and deploy tools replace a file by
// writing another one and renaming it over, which a watch on the old inode would miss. Seen:
// files written in place (close after write), renamed in or out, created, deleted, and route
// directories that are created, replaced or removed. Debouncing is the caller's (one reload
// for an editor's burst of events).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace sluice {

class ManifestWatcher {
public:
    /// Throws std::runtime_error when inotify cannot be used (the reason in the message).
    ManifestWatcher();
    ~ManifestWatcher();
    ManifestWatcher(const ManifestWatcher&) = delete;
    ManifestWatcher& operator=(const ManifestWatcher&) = delete;

    /// Watches these files and directories from now on, instead of the earlier ones. A path
    /// that does not exist yet is watched for at its nearest existing parent.
    void watch(const std::vector<std::filesystem::path>& paths);
    /// Readable (poll) when events are waiting.
    int fd() const { return fd_; }
    /// Reads the waiting events without blocking; true when one concerns a watched path.
    bool read_events();

private:
    struct Interest {
        bool whole_dir = false;          // any manifest (*.yaml, *.yml) in it
        std::vector<std::string> names;  // these entries of it (files, directories)
    };
    int fd_ = -1;
    std::map<int, Interest> watches_;
    std::vector<std::filesystem::path> paths_;
    bool stale_ = false;  // a watched directory moved: watch() renews even for the same paths
};

}  // namespace sluice
