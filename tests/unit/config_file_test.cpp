// The files an operator names are read only when they are regular files of valid UTF-8, and
// what sluice check prints of them cannot drive the terminal.
#include "sluice/core/config_file.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "scratch.hpp"
#include "sluice/core/manifest.hpp"
#include "test_plugins.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<std::string> load_manifests(const std::vector<fs::path>& paths) {
    sluice::Diagnostics diag;
    const auto files = sluice::manifest_files(paths, diag);
    const auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    sluice::load_routes(files, sluice::test::shipped_plugins(), diag, env);
    std::vector<std::string> out;
    for (const auto& d : diag.items()) out.push_back(d.to_string());
    return out;
}

const char* const kRoute = R"(route: ok
source:
  test-source:
    topic: t
    messages: ["1"]
sink:
  file-sink:
    path: /tmp/sluice-config-file-test/out.jsonl
)";

}  // namespace

TEST_CASE("a FIFO, a device or a directory is reported, never read", "[core][config_file]") {
    sluice::test::TempDir dir;
    const fs::path fifo = dir.path / "sluice.yaml";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    sluice::Diagnostic error;
    // Without O_NONBLOCK and the type check this open would wait for a writer for ever.
    CHECK_FALSE(sluice::read_config_file(fifo, error));
    CHECK(error.to_string() == fifo.string() + ": is a FIFO, not a regular file: not read");

    CHECK_FALSE(sluice::read_config_file("/dev/zero", error));
    CHECK(error.message == "is a character device, not a regular file: not read");

    CHECK_FALSE(sluice::read_config_file(dir.path, error));
    CHECK(error.message == "is a directory, not a regular file: not read");

    CHECK_FALSE(sluice::read_config_file(dir.path / "missing.yaml", error));
    CHECK(error.message == "cannot open: No such file or directory");
}

TEST_CASE("invalid UTF-8 is refused at its line and column; a BOM is dropped",
          "[core][config_file]") {
    sluice::test::TempDir dir;
    const fs::path file = dir.path / "m.yaml";
    // Line 3, after five characters, one of them two bytes long ("é").
    std::ofstream(file) << "\xEF\xBB\xBFroute: a\nsource: x\nn\xC3\xA9 : \xFF\xFE\n";
    sluice::Diagnostic error;
    CHECK_FALSE(sluice::read_config_file(file, error));
    CHECK(error.to_string() ==
          file.string() + ":3:6: is not valid UTF-8 (byte 0xff): save the file as UTF-8");

    std::ofstream(file, std::ios::trunc) << "\xEF\xBB\xBFroute: caf\xC3\xA9\n";
    const auto text = sluice::read_config_file(file, error);
    REQUIRE(text);
    CHECK(*text == "route: caf\xC3\xA9\n");
}

TEST_CASE("route manifests: a FIFO named like one is reported, other files still load",
          "[core][config_file]") {
    sluice::test::TempDir dir;
    std::ofstream(dir.path / "a.yaml") << kRoute;
    REQUIRE(::mkfifo((dir.path / "b.yaml").c_str(), 0600) == 0);
    fs::create_directory(dir.path / "c.yaml");  // a directory is not a manifest: ignored
    const auto errors = load_manifests({dir.path});
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == (dir.path / "b.yaml").string() +
                           ": route manifest is a FIFO, not a regular file: not read");

    std::ofstream(dir.path / "d.yaml") << "route: bad\xC0\xAF\n";
    const auto both = load_manifests({dir.path / "d.yaml"});
    REQUIRE(both.size() == 1);
    CHECK(both[0] == (dir.path / "d.yaml").string() +
                         ":1:11: route manifest is not valid UTF-8 (byte 0xc0): save the file as "
                         "UTF-8");
}

TEST_CASE("host config: /dev/zero is refused at once", "[core][config_file]") {
    sluice::Diagnostics diag;
    const auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    sluice::load_host_config("/dev/zero", diag, env);
    REQUIRE(diag.size() == 1);
    CHECK(diag.items()[0].to_string() ==
          "/dev/zero: host config is a character device, not a regular file: not read");
}

TEST_CASE("diagnostics escape what a manifest put in them", "[core][config_file]") {
    const sluice::Diagnostic d{
        {"m\x1b[2J.yaml", 2, 3}, "route \x1b]0;pwned\x07", "bad\nvalue \xFF"};
    CHECK(d.to_string() == "m\\x1b[2J.yaml:2:3: route \\x1b]0;pwned\\x07: bad\\nvalue \\xff");
}
