// The testing kit's Harness runs the plugin through the same C ABI calls as `sluice`; the
// test points the sink at a file to read back what it wrote.
#include "stdout_sink.cpp"  // the plugin is one file; the test compiles it in

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sluice/sdk/testing.hpp>
#include <string>
#include <unistd.h>

using sluice::sdk::testing::Harness;
using sluice::sdk::testing::message;

namespace {

// A file of this test process's own, so that concurrent runs do not share it.
std::filesystem::path scratch(const std::string& name) {
    return std::filesystem::temp_directory_path() /
           (name + "-" + std::to_string(::getpid()) + ".txt");
}

std::string read(const std::filesystem::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("stdout-sink writes prefix and payload, one line per message") {
    const auto path = scratch("stdout-sink-test");
    std::filesystem::remove(path);
    Harness<StdoutSink> h({{"prefix", "{{topic.1}}: "}, {"path", path.string()}});
    REQUIRE(h.process({message("rooms/lab", "21.5"), message("rooms/hall", "19")}) == SLUICE_OK);
    CHECK(read(path) == "lab: 21.5\nhall: 19\n");
}

TEST_CASE("stdout-sink rejects a multi-line payload and writes the others") {
    const auto path = scratch("stdout-sink-test-2");
    std::filesystem::remove(path);
    Harness<StdoutSink> h({{"path", path.string()}});
    REQUIRE(h.process({message("t", "a\nb"), message("t", "c")}) == SLUICE_OK);
    CHECK(read(path) == "c\n");
    REQUIRE(h.rejections().size() == 1);
    CHECK(h.rejections()[0].index == 0);
}

TEST_CASE("stdout-sink fails create with FATAL when the path cannot be opened") {
    CHECK_THROWS_WITH(Harness<StdoutSink>({{"path", "/nonexistent-dir/out.txt"}}),
                      Catch::Contains("cannot open '/nonexistent-dir/out.txt'"));
}
