// One process per state_dir: two sluice processes sharing one would write into each other's
// spools.
#pragma once

#include <filesystem>

namespace sluice {

/// Exclusive use of a state_dir by one process: flock on <dir>/sluice.lock (O_CLOEXEC, so a
/// child process does not inherit it), which holds the owner's pid for the error message.
/// The kernel releases a flock when its process dies, so a crash never leaves a stale lock;
/// the file itself stays.
class StateDirLock {
public:
    /// Creates the directory (0700) if missing. Throws std::runtime_error such as "state_dir
    /// /x is in use by another sluice process (pid 1234): give each process its own
    /// state_dir", or naming the path and the errno text for other failures. A second
    /// acquire in the same process fails too (flock belongs to the open file description).
    static StateDirLock acquire(const std::filesystem::path& dir);

    StateDirLock(StateDirLock&& other) noexcept;
    StateDirLock& operator=(StateDirLock&& other) noexcept;
    StateDirLock(const StateDirLock&) = delete;
    StateDirLock& operator=(const StateDirLock&) = delete;
    ~StateDirLock();

    const std::filesystem::path& dir() const { return dir_; }
    /// Releases the lock now (as destruction does).
    void release() noexcept;

private:
    StateDirLock(int fd, std::filesystem::path dir) : fd_(fd), dir_(std::move(dir)) {}
    int fd_ = -1;
    std::filesystem::path dir_;
};

}  // namespace sluice
