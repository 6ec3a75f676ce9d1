#include "sluice/core/state_dir_lock.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "scratch.hpp"

namespace fs = std::filesystem;
using sluice::StateDirLock;

namespace {

struct TempDir : sluice::test::TempDir {
    TempDir() : sluice::test::TempDir("sluice-lock-test") {}
};

using sluice::test::in_child;

}  // namespace

TEST_CASE("a state_dir is used by one process at a time", "[state_dir]") {
    TempDir tmp;
    const fs::path dir = tmp.path / "state" / "nested";
    const std::string pid = std::to_string(::getpid());

    auto lock = StateDirLock::acquire(dir);
    CHECK(fs::is_directory(dir));
    CHECK((fs::status(dir).permissions() & fs::perms::all) == fs::perms::owner_all);
    std::string content;
    std::getline(std::ifstream(dir / "sluice.lock"), content);
    CHECK(content == pid);

    SECTION("a second acquire in this process fails, naming the pid") {
        CHECK_THROWS_WITH(StateDirLock::acquire(dir), Catch::Contains(dir.string()) &&
                                                          Catch::Contains("in use") &&
                                                          Catch::Contains("pid " + pid));
    }
    SECTION("another process is refused with the holder's pid and the remedy") {
        const int rc = in_child([&] {
            try {
                StateDirLock::acquire(dir);
            } catch (const std::runtime_error& e) {
                const std::string what = e.what();
                const bool ok =
                    what.find("in use by another sluice process (pid " + pid + ")") !=
                        std::string::npos &&
                    what.find("give each process its own state_dir") != std::string::npos;
                return ok ? 0 : 2;
            }
            return 1;
        });
        CHECK(rc == 0);
    }
    SECTION("released on destruction, and moves keep it") {
        StateDirLock moved = std::move(lock);
        CHECK_THROWS(StateDirLock::acquire(dir));
        { StateDirLock gone = std::move(moved); }
        auto again = StateDirLock::acquire(dir);
        CHECK(again.dir() == dir);
    }
    SECTION("a process that dies leaves no lock behind") {
        lock.release();
        const int rc = in_child([&] {
            auto held = StateDirLock::acquire(dir);
            ::_exit(0);  // no destructor runs: the kernel drops the lock with the process
            return 1;
        });
        CHECK(rc == 0);
        CHECK_NOTHROW(StateDirLock::acquire(dir));
    }
    SECTION("a path that is a file") {
        std::ofstream(tmp.path / "file") << "x";
        CHECK_THROWS_WITH(
            StateDirLock::acquire(tmp.path / "file"),
            Catch::Contains((tmp.path / "file").string()) && Catch::Contains("ot a directory"));
    }
}
