// What the fuzz targets share: a scratch file for readers that take a path, and the checks
// (beyond "no crash, no leak, no undefined behaviour") that a target asserts on every input.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "sluice/core/diagnostics.hpp"
#include "sluice/core/log_hygiene.hpp"

namespace sluice::fuzz {

/// A failed property: libFuzzer saves the input that got here as a crash.
[[noreturn]] inline void fail(std::string_view what, std::string_view detail = {}) {
    std::fprintf(stderr, "fuzz property failed: %.*s\n%.*s\n", static_cast<int>(what.size()),
                 what.data(), static_cast<int>(detail.size()), detail.data());
    std::abort();
}

/// A file the target rewrites with each input, in a directory of its own (one per process, so
/// that `-jobs=N` runs do not share it).
class ScratchFile {
public:
    explicit ScratchFile(const std::string& name) {
        const auto base =
            std::filesystem::temp_directory_path() / ("sluice-fuzz-" + std::to_string(::getpid()));
        std::filesystem::create_directories(base);
        path_ = base / name;
    }
    ScratchFile(const ScratchFile&) = delete;
    ScratchFile& operator=(const ScratchFile&) = delete;
    ~ScratchFile() {
        std::error_code ec;
        std::filesystem::remove_all(path_.parent_path(), ec);
    }

    void write(const std::uint8_t* data, std::size_t size) const {
        std::ofstream out(path_, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
        if (!out) fail("cannot write the scratch file", path_.string());
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

/// Text that is safe on a terminal: valid UTF-8 without C0, DEL, C1 or bidirectional controls.
inline void require_printable(std::string_view line) {
    if (log::invalid_utf8_at(line) != std::string_view::npos) fail("invalid UTF-8 in", line);
    for (std::size_t i = 0; i < line.size(); ++i) {
        const auto u = static_cast<unsigned char>(line[i]);
        const auto next = [&](std::size_t k) {
            return i + k < line.size() ? static_cast<unsigned char>(line[i + k]) : 0;
        };
        const bool c1 = u == 0xC2 && next(1) >= 0x80 && next(1) <= 0x9F;
        const bool bidi = u == 0xE2 && ((next(1) == 0x80 && next(2) >= 0xAA && next(2) <= 0xAE) ||
                                        (next(1) == 0x81 && next(2) >= 0xA6 && next(2) <= 0xA9));
        if (u < 0x20 || u == 0x7f || c1 || bidi) fail("a control character in", line);
    }
}

/// What `sluice check` would print for `diag` reaches a terminal unescaped.
inline void require_printable(const Diagnostics& diag) {
    for (const auto& d : diag.items()) require_printable(d.to_string());
}

}  // namespace sluice::fuzz
