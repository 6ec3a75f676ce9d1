#include "../src/file_sink.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sluice/sdk/testing.hpp>

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
        Harness<FileSink> h(
            {{"path", (dir / "{{topic.1}}" / "{{route}}.txt").string()}, {"format", "raw"}});
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
    Harness<FileSink> no_dirs(
        {{"path", (dir / "missing" / "out.jsonl").string()}, {"mkdirs", "false"}});
    CHECK(no_dirs.process({message("t", "1")}) == SLUICE_FATAL);
    CHECK_THAT(no_dirs.last_error(), Catch::Contains("No such file or directory"));
}

namespace {

bool nothing_outside(const fs::path& outside) {
    return !fs::exists(outside) || fs::is_empty(outside);
}

}  // namespace

TEST_CASE("file-sink keeps what a message puts into the path to one file name",
          "[plugin][file-sink][security]") {
    const auto dir = scratch();
    const auto base = dir / "base";
    {
        Harness<FileSink> h(
            {{"path", (base / "{{json.f}}-{{topic}}.txt").string()}, {"format", "raw"}});
        auto nul = message("t", std::string(R"({"f":"../../x\u0000y"})"));
        REQUIRE(h.process({nul, message("a/../../b", R"({"f":".."})"),
                           message("t", "{\"f\":\"\\u001b[31m\"}")}) == SLUICE_OK);
        CHECK(h.rejections().empty());
    }
    CHECK(fs::exists(base / ".._.._x_y-t.txt"));
    CHECK(fs::exists(base / "__-a_.._.._b.txt"));
    CHECK(fs::exists(base / "_[31m-t.txt"));
    // Three files directly in base, and nothing anywhere else.
    std::size_t entries = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        ++entries;
        CHECK((e.path() == base || e.path().parent_path() == base));
    }
    CHECK(entries == 4);
}

TEST_CASE("file-sink never follows a link out of its directory and writes only regular files",
          "[plugin][file-sink][security]") {
    const auto dir = scratch();
    const auto base = dir / "base";
    const auto outside = dir / "outside";
    fs::create_directories(base / "adir");
    fs::create_directories(outside);
    fs::create_directory_symlink(outside, base / "dirlink");
    fs::create_symlink(outside / "victim.txt", base / "filelink");
    REQUIRE(::mkfifo((base / "fifo").c_str(), 0600) == 0);
    Harness<FileSink> h({{"path", (base / "{{topic.0}}" / "{{topic.1}}").string()},
                         {"format", "raw"},
                         {"mkdirs", "false"}});
    fs::create_directories(base / "ok");
    Harness<FileSink> flat({{"path", (base / "{{topic}}").string()}, {"format", "raw"}});
    REQUIRE(h.process({message("dirlink/x", "1"), message("ok/good", "2")}) == SLUICE_OK);
    REQUIRE(flat.process({message("filelink", "3"), message("fifo", "4"), message("adir", "5"),
                          message(std::string(300, 'n'), "6"), message("fine", "7")}) == SLUICE_OK);
    // Each bad path goes to the route's error policy; the rest is written.
    const auto r1 = h.rejections();
    REQUIRE(r1.size() == 1);
    CHECK(r1[0].index == 0);
    CHECK_THAT(r1[0].reason, Catch::Contains("dirlink") && Catch::Contains("symbolic link"));
    const auto r2 = flat.rejections();
    REQUIRE(r2.size() == 4);
    CHECK_THAT(r2[0].reason, Catch::Contains("filelink") && Catch::Contains("symbolic link"));
    CHECK_THAT(r2[1].reason, Catch::Contains("fifo"));
    CHECK_THAT(r2[2].reason, Catch::Contains("adir"));
    CHECK_THAT(r2[3].reason, Catch::Contains("File name too long"));
    CHECK(read(base / "ok" / "good") == "2\n");
    CHECK(read(base / "fine") == "7\n");
    CHECK(nothing_outside(outside));
}

TEST_CASE("file-sink paths stay under the operator's root", "[plugin][file-sink][security]") {
    const auto dir = scratch();
    fs::create_directories(dir / "root");
    const auto outside = Harness<FileSink>::validate(
        {{"path", (dir / "elsewhere" / "x.txt").string()}, {"root", (dir / "root").string()}});
    REQUIRE(outside.size() == 1);
    CHECK(outside[0].key == "path");
    CHECK_THAT(outside[0].message, Catch::Contains("is outside the file root"));
    const auto dots = Harness<FileSink>::validate({{"path", "out/{{topic}}/../../x"}});
    REQUIRE(dots.size() == 1);
    CHECK_THAT(dots[0].message, Catch::Contains("'..' after the path's directory"));
    {
        Harness<FileSink> h(
            {{"path", "sub/{{topic}}.txt"}, {"root", (dir / "root").string()}, {"format", "raw"}});
        REQUIRE(h.process({message("a", "1")}) == SLUICE_OK);
    }
    CHECK(read(dir / "root" / "sub" / "a.txt") == "1\n");
}

TEST_CASE("a rotation that fails leaves the file open and loses nothing",
          "[plugin][file-sink][security]") {
    const auto dir = scratch();
    fs::create_directories(dir);
    Harness<FileSink> h({{"path", (dir / "r.txt").string()},
                         {"format", "raw"},
                         {"rotate_bytes", "10"},
                         {"rotate_keep", "1"}});
    REQUIRE(h.process({message("t", "line0")}) == SLUICE_OK);
    // r.txt.1 is a directory that is not empty: renaming r.txt over it fails.
    fs::create_directories(dir / "r.txt.1" / "x");
    CHECK(h.process({message("t", "line1")}) == SLUICE_FATAL);
    CHECK_THAT(h.last_error(), Catch::Contains("cannot rotate"));
    fs::remove_all(dir / "r.txt.1");
    // The same instance goes on (the host retries the batch): the file it had open is intact.
    REQUIRE(h.process({message("t", "line1")}) == SLUICE_OK);
    REQUIRE(h.process({message("t", "line2")}) == SLUICE_OK);
    CHECK(read(dir / "r.txt.1") == "line1\n");
    CHECK(read(dir / "r.txt") == "line2\n");
}
