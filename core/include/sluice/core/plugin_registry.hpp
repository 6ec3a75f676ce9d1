// Finds plugin.yaml files under the plugin directories, loads each library with Boost.DLL,
// checks it against its plugin.yaml and the host's ABI, and keeps it loaded for the life of
// the process (libraries are never unloaded while anything from them may live).
//
// A registry is rebuilt at every reload; libraries are shared between registries by the file
// they were loaded from (path and identity: device, inode, size, modification time), so an
// unchanged library is the same PluginLibrary in both, and a library replaced on disk is
// loaded beside the one that running instances still use. Each file is loaded once per
// process, and a file found unusable is not loaded again.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sluice/abi.h"

namespace boost::dll {
class shared_library;
}

namespace sluice {

/// A loaded library. Instances hold a shared_ptr to it, so it outlives them (and the library
/// cache holds one too: libraries are never unloaded).
struct PluginLibrary {
    std::filesystem::path path;
    /// "dev:inode:size:mtime_ns" of the file when it was loaded: a new file at the same path
    /// is a new library.
    std::string identity;
    /// When a file at `path` had been loaded before, the new one is loaded from a copy in
    /// memory (memfd) that stays open for the life of the process: the dynamic loader would
    /// otherwise hand back the library already loaded under that name.
    int copy_fd = -1;
    std::unique_ptr<boost::dll::shared_library> handle;
    const sluice_module* module = nullptr;
    ~PluginLibrary();
};

/// One plugin of a loaded library, with the host's own copy of its descriptor (zero-filled
/// beyond what an older plugin's struct_size covers).
struct PluginInfo {
    std::string id;
    sluice_kind kind{};
    std::string version;
    std::filesystem::path manifest;  // its plugin.yaml
    std::shared_ptr<PluginLibrary> library;
    sluice_plugin_descriptor descriptor{};
    std::vector<sluice_field_spec> fields;  // host copies, same reasoning

    const sluice_field_spec* field(std::string_view name) const;
};

const char* kind_name(sluice_kind kind);

class PluginRegistry {
public:
    /// Loads every plugin found under `dirs` (each dir is searched two levels deep for
    /// plugin.yaml). Returns one message per rejected plugin; the others stay usable.
    std::vector<std::string> load_directories(const std::vector<std::filesystem::path>& dirs);

    /// Loads the plugin described by one plugin.yaml; returns an error message or "". Its
    /// `library:` must lie inside `root` (the plugin directory it was found in; one library
    /// may serve the plugins of several folders), or inside its own folder when `root` is empty.
    std::string load_manifest(const std::filesystem::path& plugin_yaml,
                              const std::filesystem::path& root = {});

    const PluginInfo* find(std::string_view id) const;
    /// The same, by shared ownership: what routes hold, so that they outlive this registry.
    std::shared_ptr<const PluginInfo> share(std::string_view id) const;
    std::vector<const PluginInfo*> all() const;
    std::string known_ids() const;

private:
    std::string load_manifest_checked(const std::filesystem::path& plugin_yaml,
                                      const std::filesystem::path& root);
    std::map<std::string, std::shared_ptr<const PluginInfo>, std::less<>> plugins_;
};

}  // namespace sluice
