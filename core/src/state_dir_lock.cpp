#include "sluice/core/state_dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace sluice {
namespace {

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what, int err) {
    throw std::runtime_error("state_dir " + path.string() + ": " + what + ": " +
                             std::system_category().message(err));
}

void make_dirs(const std::filesystem::path& dir) {
    std::filesystem::path partial;
    for (const auto& part : dir) {
        partial /= part;
        if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
            fail(dir, "cannot create " + partial.string(), errno);
        }
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) fail(dir, "cannot create it", errno);
    if (!S_ISDIR(st.st_mode)) fail(dir, "cannot use it", ENOTDIR);
}

// The pid the holder wrote, or empty. It writes it just after locking: a reader may catch the
// moment in between.
std::string read_pid(int fd) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string pid;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid += buf[i];
    return pid;
}

}  // namespace

StateDirLock StateDirLock::acquire(const std::filesystem::path& dir) {
    make_dirs(dir);
    const std::filesystem::path file = dir / "sluice.lock";
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) fail(dir, "cannot open " + file.string(), errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        if (err != EWOULDBLOCK) {
            ::close(fd);
            fail(dir, "cannot lock " + file.string(), err);
        }
        const std::string pid = read_pid(fd);
        ::close(fd);
        const std::string who =
            pid == std::to_string(::getpid()) ? "this process" : "another sluice process";
        throw std::runtime_error("state_dir " + dir.string() + " is in use by " + who + " (pid " +
                                 (pid.empty() ? std::string("unknown") : pid) +
                                 "): give each process its own state_dir");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 ||
        ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        const int err = errno;
        ::close(fd);
        fail(dir, "cannot write " + file.string(), err);
    }
    return StateDirLock(fd, dir);
}

StateDirLock::StateDirLock(StateDirLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), dir_(std::move(other.dir_)) {}

StateDirLock& StateDirLock::operator=(StateDirLock&& other) noexcept {
    if (this != &other) {
        release();
        fd_ = std::exchange(other.fd_, -1);
        dir_ = std::move(other.dir_);
    }
    return *this;
}

StateDirLock::~StateDirLock() { release(); }

void StateDirLock::release() noexcept {
    if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
    fd_ = -1;
}

}  // namespace sluice
