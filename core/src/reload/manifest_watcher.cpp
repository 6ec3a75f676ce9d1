#include "sluice/core/reload/manifest_watcher.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sluice/core/log.hpp"

namespace sluice {

namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t kDirEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                     IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB |
                                     IN_ONLYDIR;

bool is_manifest_name(const std::string& name) {
    // "..data": the symlink a Kubernetes ConfigMap volume swaps to update every file at once.
    if (name == "..data") return true;
    const auto ext = fs::path(name).extension();
    return !name.starts_with(".") && (ext == ".yaml" || ext == ".yml");
}

}  // namespace

ManifestWatcher::ManifestWatcher() : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {
    if (fd_ < 0) {
        throw std::runtime_error(std::string("inotify: ") + std::strerror(errno) +
                                 " (raise fs.inotify.max_user_instances, or reload with "
                                 "SIGHUP or `sluice reload`)");
    }
}

ManifestWatcher::~ManifestWatcher() {
    if (fd_ >= 0) ::close(fd_);
}

void ManifestWatcher::watch(const std::vector<fs::path>& paths) {
    // Watches are renewed only when something may have moved: renewing drops the events
    // queued on the old ones.
    if (paths == paths_ && !stale_) return;
    paths_ = paths;
    stale_ = false;
    for (const auto& entry : watches_) ::inotify_rm_watch(fd_, entry.first);
    watches_.clear();
    const auto add = [&](const fs::path& dir) -> Interest* {
        const int wd = ::inotify_add_watch(fd_, dir.c_str(), kDirEvents);
        if (wd < 0) {
            log::warn("", "cannot watch " + dir.string() +
                              " for manifest changes: " + std::strerror(errno) +
                              (errno == ENOSPC ? " (raise fs.inotify.max_user_watches)" : "") +
                              "; reload with SIGHUP or `sluice reload`");
            return nullptr;
        }
        return &watches_[wd];  // the same directory twice is one watch
    };
    for (const auto& given : paths) {
        std::error_code ec;
        const fs::path path = fs::absolute(given, ec).lexically_normal();
        if (fs::is_directory(path, ec)) {
            if (auto* i = add(path)) i->whole_dir = true;
        }
        // The entry itself, at its parent (or the nearest parent that exists): a file
        // replaced by rename, a directory created or removed.
        fs::path child = path;
        fs::path parent = path.parent_path();
        while (!parent.empty() && !fs::is_directory(parent, ec) && parent != parent.parent_path()) {
            child = parent;
            parent = parent.parent_path();
        }
        if (parent.empty()) continue;
        if (auto* i = add(parent)) i->names.push_back(child.filename().string());
    }
}

bool ManifestWatcher::read_events() {
    bool relevant = false;
    alignas(inotify_event) char buf[16 * 1024];
    while (true) {
        const ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n <= 0) break;  // EAGAIN: nothing more
        for (ssize_t off = 0; off < n;) {
            const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
            off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
            if ((e->mask & IN_Q_OVERFLOW) != 0) {
                relevant = true;  // events were lost: look at everything again
                continue;
            }
            const auto it = watches_.find(e->wd);
            if (it == watches_.end()) continue;
            const std::string name = e->len > 0 ? std::string(e->name) : std::string();
            const auto& interest = it->second;
            if ((e->mask & IN_ISDIR) != 0 && std::find(interest.names.begin(), interest.names.end(),
                                                       name) != interest.names.end()) {
                stale_ = true;  // a watched directory was created, replaced or removed
            }
            if ((e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) != 0) {
                relevant = true;  // a watched directory went: the next watch() looks again
                stale_ = true;
            } else if ((e->mask & IN_CREATE) != 0 && (e->mask & IN_ISDIR) == 0 &&
                       name != "..data") {
                // A file just created is being written: its IN_CLOSE_WRITE says when it is done.
                continue;
            } else if (interest.whole_dir && is_manifest_name(name)) {
                relevant = true;
            } else if (std::find(interest.names.begin(), interest.names.end(), name) !=
                       interest.names.end()) {
                relevant = true;
            }
        }
    }
    return relevant;
}

}  // namespace sluice
