#include "sluice/core/config_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "sluice/core/log_hygiene.hpp"

namespace sluice {

std::string file_type_name(unsigned mode) {
    switch (mode & S_IFMT) {
        case S_IFREG:
            return "a regular file";
        case S_IFDIR:
            return "a directory";
        case S_IFIFO:
            return "a FIFO";
        case S_IFCHR:
            return "a character device";
        case S_IFBLK:
            return "a block device";
        case S_IFSOCK:
            return "a socket";
        case S_IFLNK:
            return "a symbolic link";
        default:
            return "not a regular file";
    }
}

std::optional<std::string> read_config_file(const std::filesystem::path& file, Diagnostic& error) {
    error = Diagnostic{{file.string(), 0, 0}, "", ""};
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        error.message = std::string("cannot open: ") + std::strerror(errno);
        return std::nullopt;
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        error.message = std::string("cannot stat: ") + std::strerror(errno);
        return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
        error.message = "is " + file_type_name(st.st_mode) + ", not a regular file: not read";
        return std::nullopt;
    }
    if (static_cast<std::uint64_t>(st.st_size) > kMaxConfigFileBytes) {
        error.message = "is " + std::to_string(st.st_size) + " bytes, more than the " +
                        std::to_string(kMaxConfigFileBytes >> 20) +
                        " MiB a configuration file may have: not read";
        return std::nullopt;
    }
    std::string text;
    text.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            error.message = std::string("cannot read: ") + std::strerror(errno);
            return std::nullopt;
        }
        if (n == 0) break;  // shrank while being read
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    if (text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);
    if (const std::size_t bad = log::invalid_utf8_at(text); bad != std::string_view::npos) {
        int line = 1;
        int column = 1;
        for (std::size_t i = 0; i < bad; ++i) {
            if (text[i] == '\n') {
                ++line;
                column = 1;
            } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
                ++column;  // columns count characters, not bytes
            }
        }
        error.where.line = line;
        error.where.column = column;
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(text[bad]));
        error.message =
            std::string("is not valid UTF-8 (byte ") + hex + "): save the file as UTF-8";
        return std::nullopt;
    }
    return text;
}

}  // namespace sluice
