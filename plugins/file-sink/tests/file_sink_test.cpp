#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sluice/sdk/testing.hpp>

#include "../src/file_sink.hpp"

namespace fs = std::filesystem;
using sluice::plugins::FileSink;
using sluice::sdk::testing::Harness;
using sluice::sdk::testing::message;

namespace {

fs::path scratch() {
    static int n = 0;
    auto dir = fs::temp_directory_path() /
               ("sluice-file-sink-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(dir);
    return dir;
}

std::string read(const fs::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("file-sink writes JSON lines with metadata", "[plugin][file-sink]") {
    const auto dir = scratch();
    {
        Harness<FileSink> h({{"path", (dir / "out.jsonl").string()}});
        auto a = message("sensors/t/1", R"({"v": 1})");
        a.key = "k1";
        a.headers = {{"mqtt.qos", "1"}, {"q\"uote", "x"}};
        auto b = message("sensors/t/2", "not json\n");
        REQUIRE(h.process({a, b}) == SLUICE_OK);
    }
    CHECK(read(dir / "out.jsonl") ==
          R"({"topic":"sensors/t/1","key":"k1","headers":{"mqtt.qos":"1","q\"uote":"x"},)"
          R"("timestamp_ms":1700000000000,"qos":1,"payload":{"v":1}})"
          "\n"
          R"({"topic":"sensors/t/2","key":null,"headers":{},"timestamp_ms":1700000000000,)"
          R"("qos":1,"payload":"not json\n"})"
          "\n");
}

TEST_CASE("file-sink fans out by templated path and appends raw payloads", "[plugin][file-sink]") {
    const auto dir = scratch();
    {
        Harness<FileSink> h({{"path", (dir / "{{topic.1}}" / "{{route}}.txt").string()},
                             {"format", "raw"}});
        REQUIRE(h.process({message("s/a/1", "a1"), message("s/b/1", "b1"),
                           message("s/a/2", "a2")}) == SLUICE_OK);
        REQUIRE(h.process({message("s/a/3", "a3")}) == SLUICE_OK);
    }
    CHECK(read(dir / "a" / "test-route.txt") == "a1\na2\na3\n");
    CHECK(read(dir / "b" / "test-route.txt") == "b1\n");
}

TEST_CASE("file-sink rotates by size and keeps rotate_keep files", "[plugin][file-sink]") {
    const auto dir = scratch();
    {
        Harness<FileSink> h({{"path", (dir / "r.txt").string()},
                             {"format", "raw"},
                             {"rotate_bytes", "10"},
                             {"rotate_keep", "2"},
                             {"fsync", "true"}});
        for (int i = 0; i < 6; ++i) {
            REQUIRE(h.process({message("t", "line" + std::to_string(i))}) == SLUICE_OK);
        }
    }
    // 6 bytes per line, 10 bytes per file: one line each; the oldest rotated away.
    CHECK(read(dir / "r.txt") == "line5\n");
    CHECK(read(dir / "r.txt.1") == "line4\n");
    CHECK(read(dir / "r.txt.2") == "line3\n");
    CHECK_FALSE(fs::exists(dir / "r.txt.3"));
}

TEST_CASE("file-sink fails with FATAL and a clear message on an unwritable path",
          "[plugin][file-sink]") {
    const auto dir = scratch();
    fs::create_directories(dir);
    std::ofstream(dir / "file") << "x";
    Harness<FileSink> h({{"path", (dir / "file" / "sub" / "out.jsonl").string()}});
    CHECK(h.process({message("t", "1")}) == SLUICE_FATAL);
    CHECK_THAT(h.last_error(), Catch::Contains("cannot create directory '" +
                                               (dir / "file" / "sub").string() + "'"));
    Harness<FileSink> no_dirs({{"path", (dir / "missing" / "out.jsonl").string()},
                               {"mkdirs", "false"}});
    CHECK(no_dirs.process({message("t", "1")}) == SLUICE_FATAL);
    CHECK_THAT(no_dirs.last_error(), Catch::Contains("No such file or directory"));
}
