#include "atomic_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sluice::tools {

std::string write_file_atomically(const std::string& path, const std::string& content) {
    // The temporary sits in the same directory so that rename() cannot cross file systems.
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    std::FILE* file = std::fopen(tmp.c_str(), "w");
    if (file == nullptr) {
        return "cannot create '" + tmp + "': " + std::strerror(errno);
    }
    const bool written = std::fwrite(content.data(), 1, content.size(), file) == content.size();
    const int write_errno = errno;
    if (std::fclose(file) != 0 || !written) {
        const int err = written ? errno : write_errno;
        std::remove(tmp.c_str());
        return "cannot write '" + tmp + "': " + std::strerror(err);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        std::remove(tmp.c_str());
        return "cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(err);
    }
    return {};
}

}  // namespace sluice::tools
