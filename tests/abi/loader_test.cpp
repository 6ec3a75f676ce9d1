// The plugin loader against fixture libraries: each rejection names the file, the versions
// and the remedy; acceptable libraries load and run.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "sluice/core/plugin_instance.hpp"
#include "sluice/core/plugin_registry.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = SLUICE_TEST_FIXTURE_DIR;

std::vector<std::string> load(sluice::PluginRegistry& r, std::initializer_list<const char*> dirs) {
    std::vector<fs::path> paths;
    for (const char* d : dirs) paths.push_back(kFixtures / d);
    return r.load_directories(paths);
}

std::string single_error(std::initializer_list<const char*> dirs) {
    sluice::PluginRegistry r;
    const auto errors = load(r, dirs);
    REQUIRE(errors.size() == 1);
    return errors[0];
}

}  // namespace

TEST_CASE("a well-formed C plugin loads", "[abi]") {
    sluice::PluginRegistry r;
    REQUIRE(load(r, {"good"}).empty());
    const auto* p = r.find("fx-good");
    REQUIRE(p != nullptr);
    CHECK(p->kind == SLUICE_KIND_SINK);
    CHECK(p->version == "1.0.0");
    CHECK(p->fields.size() == 1);
}

TEST_CASE("ABI major mismatch is rejected with both versions and the remedy", "[abi]") {
    const auto e = single_error({"wrong-major"});
    CHECK_THAT(e, Catch::Contains("wrong-major/sluice-fx-wrong-major.so"));
    const std::string host =
        std::to_string(SLUICE_ABI_MAJOR) + "." + std::to_string(SLUICE_ABI_MINOR);
    CHECK_THAT(e, Catch::Contains("built for ABI 99." + std::to_string(SLUICE_ABI_MINOR)));
    CHECK_THAT(e, Catch::Contains("this host has ABI " + host));
    CHECK_THAT(e, Catch::Contains("rebuild the plugin against Sluice SDK " + host));
}

TEST_CASE("a plugin needing a newer minor is rejected", "[abi]") {
    const auto e = single_error({"newer-minor"});
    CHECK_THAT(e, Catch::Contains("sluice-fx-newer-minor.so"));
    CHECK_THAT(e,
               Catch::Contains("needs ABI 1." + std::to_string(SLUICE_ABI_MINOR + 1) +
                               ", newer than this host's 1." + std::to_string(SLUICE_ABI_MINOR)));
    CHECK_THAT(e, Catch::Contains("upgrade sluice"));
}

TEST_CASE("a library without the entry symbol is rejected", "[abi]") {
    const auto e = single_error({"no-entry"});
    CHECK_THAT(e, Catch::Contains("sluice-fx-no-entry.so: not a Sluice plugin: entry symbol "
                                  "'sluice_module_entry_v1' is missing"));
}

TEST_CASE("a file that is not a library is rejected, not loaded", "[abi]") {
    const auto e = single_error({"not-a-library"});
    CHECK_THAT(e, Catch::Contains("sluice-fx-text.so: cannot open plugin library for 'fx-text'"));
}

TEST_CASE("a duplicate plugin id names both places", "[abi]") {
    const auto e = single_error({"duplicate-a", "duplicate-b"});
    CHECK_THAT(e, Catch::Contains("duplicate-b/plugin.yaml: duplicate plugin id 'fx-dup': already "
                                  "loaded from "));
    CHECK_THAT(e, Catch::Contains("duplicate-a/plugin.yaml"));
}

TEST_CASE("plugin.yaml that disagrees with the descriptor is rejected", "[abi]") {
    CHECK_THAT(single_error({"kind-mismatch"}),
               Catch::Contains("plugin.yaml says kind 'source' but the library's 'fx-kind' is a "
                               "sink: fix plugin.yaml"));
    CHECK_THAT(single_error({"version-mismatch"}),
               Catch::Contains("plugin.yaml says version 2.0.0 but the library's 'fx-version' is "
                               "version 1.0.0"));
    CHECK_THAT(single_error({"id-mismatch"}),
               Catch::Contains("plugin.yaml says id 'fx-other' but "));
}

TEST_CASE("a descriptor from an older SDK (smaller struct) loads and runs", "[abi]") {
    sluice::PluginRegistry r;
    REQUIRE(load(r, {"old-descriptor"}).empty());
    const auto* p = r.find("fx-old");
    REQUIRE(p != nullptr);
    CHECK(p->descriptor.validate == nullptr);  // beyond its struct_size: zero
    const sluice::StageConfig config("r", "sink", {});
    sluice_host_api host{};
    host.struct_size = sizeof host;
    sluice::PluginInstance instance(*p, config, &host);
    std::string error;
    CHECK(instance.start(nullptr, error) == SLUICE_OK);
    const sluice_batch empty{sizeof(sluice_batch), sizeof(sluice_message), 0, nullptr};
    CHECK(instance.process(empty, nullptr, error) == SLUICE_OK);
    CHECK(instance.stop(100, error) == SLUICE_OK);
}

TEST_CASE("an exception in create becomes an error with its message", "[abi]") {
    sluice::PluginRegistry r;
    REQUIRE(load(r, {"sdk-fixtures"}).empty());
    const auto* p = r.find("throwing-create");
    REQUIRE(p != nullptr);
    REQUIRE(r.find("flaky-sink") != nullptr);  // second plugin.yaml of the same library
    const sluice::StageConfig config("r", "sink", {});
    sluice_host_api host{};
    host.struct_size = sizeof host;
    try {
        sluice::PluginInstance instance(*p, config, &host);
        FAIL("create did not fail");
    } catch (const sluice::StageFailure& f) {
        CHECK(f.status == SLUICE_FATAL);
        CHECK(f.message == "create failed: fixture refuses to be created");
    }
}

TEST_CASE("plugins outlive nothing: instances keep their library", "[abi]") {
    std::unique_ptr<sluice::PluginInstance> instance;
    std::weak_ptr<sluice::PluginLibrary> library;
    const sluice::StageConfig config("r", "sink", {});
    sluice_host_api host{};
    host.struct_size = sizeof host;
    {
        sluice::PluginRegistry r;
        REQUIRE(load(r, {"good"}).empty());
        library = r.find("fx-good")->library;
        instance = std::make_unique<sluice::PluginInstance>(*r.find("fx-good"), config, &host);
        // The registry copy of PluginInfo dies here; the instance must not need it.
    }
    REQUIRE_FALSE(library.expired());
    // The instance holds its library itself (the process-wide cache holds it too).
    const auto held = library.use_count();
    instance.reset();
    CHECK(library.use_count() == held - 1);
}

TEST_CASE("a malformed plugin.yaml is reported and the other plugins still load", "[abi]") {
    sluice::PluginRegistry r;
    const auto errors = load(r, {"malformed", "good"});
    REQUIRE(errors.size() == 1);
    CHECK_THAT(errors[0], Catch::Contains("malformed/broken/plugin.yaml: plugin.yaml must be a "
                                          "map with id, kind, version and library"));
    CHECK(r.find("fx-good") != nullptr);
}

TEST_CASE("registries share an unchanged library; a replaced one loads beside the old", "[abi]") {
    // A plugin directory of our own, in which version 1 is replaced by version 2 the way an
    // operator would: the new file written beside, then renamed over the old one.
    const fs::path dir = fs::temp_directory_path() /
                         ("sluice-loader-test-" + std::to_string(::getpid())) / "version-tag";
    fs::remove_all(dir.parent_path());
    fs::create_directories(dir);
    const auto install = [&](const char* version_dir) {
        for (const char* f : {"sluice-version-tag.so", "plugin.yaml"}) {
            fs::copy_file(kFixtures / version_dir / f, dir / (std::string(f) + ".new"),
                          fs::copy_options::overwrite_existing);
            fs::rename(dir / (std::string(f) + ".new"), dir / f);
        }
    };
    install("version-tag-1");
    sluice::PluginRegistry first;
    REQUIRE(first.load_directories({dir}).empty());
    const auto v1 = first.share("version-tag");
    REQUIRE(v1 != nullptr);
    CHECK(v1->version == "1.0.0");

    sluice::PluginRegistry again;
    REQUIRE(again.load_directories({dir}).empty());
    CHECK(again.share("version-tag")->library == v1->library);

    install("version-tag-2");
    sluice::PluginRegistry second;
    REQUIRE(second.load_directories({dir}).empty());
    const auto v2 = second.share("version-tag");
    REQUIRE(v2 != nullptr);
    CHECK(v2->version == "2.0.0");
    CHECK(v2->library != v1->library);
    CHECK(v2->library->module != v1->library->module);
    CHECK(v2->library->copy_fd >= 0);
    // The old descriptor is still the old library's.
    CHECK(std::string(v1->descriptor.version) == "1.0.0");
    CHECK(std::string(v2->descriptor.version) == "2.0.0");
    fs::remove_all(dir.parent_path());
}

namespace {

// A copy of the "good" fixture in a fresh directory, to change modes and plugin.yaml on.
struct GoodCopy {
    GoodCopy() {
        std::string t = (fs::temp_directory_path() / "sluice-loader-test-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        root = t;
        ::chmod(root.c_str(), 0755);
        folder = root / "good";
        fs::copy(kFixtures / "good", folder, fs::copy_options::recursive);
    }
    ~GoodCopy() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    GoodCopy(const GoodCopy&) = delete;
    GoodCopy& operator=(const GoodCopy&) = delete;
    std::vector<std::string> load() const {
        sluice::PluginRegistry r;
        return r.load_directories({root});
    }
    fs::path root;
    fs::path folder;
};

}  // namespace

TEST_CASE("plugin files other users can write are not loaded", "[abi][security]") {
    GoodCopy copy;
    REQUIRE(copy.load().empty());  // the copy as made is fine

    SECTION("a world-writable library") {
        const auto lib = copy.folder / "sluice-fx-good.so";
        ::chmod(lib.c_str(), 0777);
        const auto errors = copy.load();
        REQUIRE(errors.size() == 1);
        CHECK(errors[0] == lib.string() +
                               ": is writable by every user, so plugins from it are not loaded: "
                               "fix with 'chmod go-w " +
                               lib.string() + "' (and chown to root or the user sluice runs as)");
    }
    SECTION("a group-writable plugin.yaml") {
        ::chmod((copy.folder / "plugin.yaml").c_str(), 0664);
        const auto errors = copy.load();
        REQUIRE(errors.size() == 1);
        CHECK_THAT(errors[0], Catch::StartsWith((copy.folder / "plugin.yaml").string() +
                                                ": is writable by its group"));
    }
    SECTION("a group-writable plugin folder") {
        ::chmod(copy.folder.c_str(), 0775);
        const auto errors = copy.load();
        REQUIRE(errors.size() == 1);
        CHECK_THAT(errors[0], Catch::StartsWith(copy.folder.string() + ": is writable"));
    }
    SECTION("a world-writable plugin directory (like /tmp)") {
        ::chmod(copy.root.c_str(), 01777);
        const auto errors = copy.load();
        REQUIRE(errors.size() == 1);
        CHECK_THAT(errors[0],
                   Catch::StartsWith(copy.root.string() + ": is writable by every user"));
    }
}

TEST_CASE("plugin.yaml cannot name a library outside the plugin directory", "[abi][security]") {
    GoodCopy copy;
    const auto plugin_yaml = [&](const std::string& library) {
        std::ofstream(copy.folder / "plugin.yaml", std::ios::trunc)
            << "id: fx-good\nkind: sink\nversion: 1.0.0\nlibrary: " << library << "\n";
    };
    for (const std::string& library :
         {std::string("../../elsewhere/sluice-fx-good.so"), std::string("/usr/lib/libc.so.6"),
          std::string("sub/../../../good/sluice-fx-good.so")}) {
        plugin_yaml(library);
        const auto errors = copy.load();
        REQUIRE(errors.size() == 1);
        CHECK(errors[0] == (copy.folder / "plugin.yaml").string() + ": library '" + library +
                               "' is outside the plugin directory " + copy.root.string() +
                               ": install the library there");
    }
    // One library may serve the plugins of several folders of the same plugin directory.
    fs::rename(copy.folder / "sluice-fx-good.so", copy.root / "sluice-fx-good.so");
    plugin_yaml("../sluice-fx-good.so");
    CHECK(copy.load().empty());
}

TEST_CASE("a plugin.yaml that is a FIFO is reported, not waited on", "[abi][security]") {
    GoodCopy copy;
    fs::remove(copy.folder / "plugin.yaml");
    REQUIRE(::mkfifo((copy.folder / "plugin.yaml").c_str(), 0644) == 0);
    const auto errors = copy.load();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] ==
          (copy.folder / "plugin.yaml").string() + ": is a FIFO, not a regular file: not read");
}
