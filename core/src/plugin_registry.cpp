#include "sluice/core/plugin_registry.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <utility>

#include "sluice/core/config_file.hpp"
#include "sluice/core/yaml_documents.hpp"

namespace sluice {

namespace fs = std::filesystem;

namespace {

std::string rebuild_hint() {
    return "rebuild the plugin against Sluice SDK " + std::to_string(SLUICE_ABI_MAJOR) + "." +
           std::to_string(SLUICE_ABI_MINOR) + " (find_package(SluiceSDK " +
           std::to_string(SLUICE_ABI_MAJOR) + "))";
}

std::string abi_string(uint32_t major, uint32_t minor) {
    return std::to_string(major) + "." + std::to_string(minor);
}

// Callbacks a plugin of each kind must provide, checked within its struct_size.
std::string missing_callback(const sluice_plugin_descriptor& d) {
    if (d.create == nullptr) return "create";
    if (d.start == nullptr) return "start";
    if (d.stop == nullptr) return "stop";
    if (d.destroy == nullptr) return "destroy";
    if (d.kind != SLUICE_KIND_SOURCE && d.process == nullptr) return "process";
    return "";
}

// Libraries loaded so far, shared by every registry of the process (see the header). Never
// destroyed: the last PluginLibrary may go during exit.
// Libraries are held here for good: they are never unloaded anyway, and a library that no
// route uses any more must not be copied and opened again at every reload.
struct LibraryCache {
    using Key = std::pair<fs::path, std::string>;  // path, identity
    std::mutex mu;
    std::map<Key, std::shared_ptr<PluginLibrary>> loaded;
    std::map<Key, std::string> refused;            // why a file could not be used
    std::map<fs::path, std::string> first_opened;  // identity first loaded under each path
};

LibraryCache& library_cache() {
    static auto* const cache = new LibraryCache();
    return *cache;
}

std::string file_identity(const fs::path& path, std::string& error) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        error = std::strerror(errno);
        return "";
    }
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
           std::to_string(st.st_size) + ":" +
           std::to_string(static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000LL +
                          st.st_mtim.tv_nsec);
}

// A copy of `path` in an anonymous memory file; -1 with `error` when it cannot be made.
int copy_to_memfd(const fs::path& path, std::string& error) {
    const int fd = ::memfd_create(("sluice:" + path.filename().string()).c_str(), MFD_CLOEXEC);
    if (fd < 0) {
        error = std::string("memfd_create: ") + std::strerror(errno);
        return -1;
    }
    std::ifstream in(path, std::ios::binary);
    char buf[1 << 16];
    while (in) {
        in.read(buf, sizeof buf);
        const char* p = buf;
        std::streamsize left = in.gcount();
        while (left > 0) {
            const ssize_t n = ::write(fd, p, static_cast<std::size_t>(left));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                error = std::string("cannot copy the library: ") + std::strerror(errno);
                ::close(fd);
                return -1;
            }
            p += n;
            left -= n;
        }
    }
    if (in.bad() || !in.eof()) {
        error = "cannot read the library";
        ::close(fd);
        return -1;
    }
    return fd;
}

std::shared_ptr<PluginLibrary> load_library(const fs::path& path, const std::string& id,
                                            const std::string& identity, LibraryCache& cache,
                                            std::string& error, bool& opened);

// Why `path` may not be trusted to hold plugin code, or "" when it may: like sshd's
// StrictModes, anything another user could write to (group- or world-writable, or owned by a
// user other than root or this one) could make this process run their code.
std::string untrusted_because(const fs::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return "";  // opening it reports what is wrong
    std::string why;
    if ((st.st_mode & S_IWOTH) != 0) {
        why = "is writable by every user";
    } else if ((st.st_mode & S_IWGRP) != 0) {
        why = "is writable by its group";
    } else if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
        why = "is owned by user " + std::to_string(st.st_uid) + ", neither root nor this user (" +
              std::to_string(::geteuid()) + ")";
    } else {
        return "";
    }
    return path.string() + ": " + why +
           ", so plugins from it are not loaded: fix with 'chmod go-w " + path.string() +
           "' (and chown to root or the user sluice runs as)";
}

// The library at `path`, loaded once per file identity; nullptr with `error` when it cannot
// be loaded or is not a plugin library this host can use.
std::shared_ptr<PluginLibrary> open_library(const fs::path& path, const std::string& id,
                                            std::string& error) {
    std::string why;
    const std::string identity = file_identity(path, why);
    if (identity.empty()) {
        error = path.string() + ": cannot open plugin library for '" + id + "': " + why;
        return nullptr;
    }
    auto& cache = library_cache();
    std::lock_guard lock(cache.mu);
    const LibraryCache::Key key{path, identity};
    if (const auto it = cache.loaded.find(key); it != cache.loaded.end()) return it->second;
    if (const auto it = cache.refused.find(key); it != cache.refused.end()) {
        error = it->second;
        return nullptr;
    }
    bool opened = false;
    auto lib = load_library(path, id, identity, cache, error, opened);
    if (lib) {
        cache.loaded.emplace(key, lib);
    } else if (opened) {
        // Loaded and found unusable: opening it again would only run its initializers again.
        // (One that could not be opened is tried again: a missing dependency may be installed.)
        cache.refused.emplace(key, error);
    }
    return lib;
}

// open_library() without the cache lookup; with cache.mu held.
std::shared_ptr<PluginLibrary> load_library(const fs::path& path, const std::string& id,
                                            const std::string& identity, LibraryCache& cache,
                                            std::string& error, bool& opened) {
    std::string why;
    auto lib = std::make_shared<PluginLibrary>();
    lib->path = path;
    lib->identity = identity;
    std::string open_path = path.string();
    const auto first = cache.first_opened.find(path);
    if (first != cache.first_opened.end() && first->second != identity) {
        lib->copy_fd = copy_to_memfd(path, why);
        if (lib->copy_fd < 0) {
            error = path.string() + ": cannot load the new version of '" + id + "': " + why;
            return nullptr;
        }
        open_path = "/proc/self/fd/" + std::to_string(lib->copy_fd);
    }
    try {
        // RTLD_LOCAL: plugins' own symbols never collide; RTLD_NOW: an unresolved symbol
        // is reported now, naming the library, rather than crashing at the first call.
        lib->handle = std::make_unique<boost::dll::shared_library>(
            open_path, boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now);
    } catch (const std::exception& e) {
        error = path.string() + ": cannot open plugin library for '" + id + "': " + e.what() +
                " (check that it was built for this system and that its dependencies are " +
                "installed)";
        return nullptr;
    }
    // Loaded under this name from now on, whatever the checks below say.
    opened = true;
    if (first == cache.first_opened.end()) cache.first_opened.emplace(path, identity);
    if (!lib->handle->has(SLUICE_MODULE_ENTRY_SYMBOL)) {
        error = path.string() + ": not a Sluice plugin: entry symbol '" +
                SLUICE_MODULE_ENTRY_SYMBOL + "' is missing (declare the module with " +
                "SLUICE_MODULE(...) from <sluice/sdk.hpp>)";
        return nullptr;
    }
    auto entry = lib->handle->get<const sluice_module*()>(SLUICE_MODULE_ENTRY_SYMBOL);
    lib->module = entry();
    const sluice_module* m = lib->module;
    if (m == nullptr || m->struct_size < offsetof(sluice_module, plugins) + sizeof(void*)) {
        error = path.string() + ": entry symbol returned an invalid module";
        return nullptr;
    }
    if (m->abi_major != SLUICE_ABI_MAJOR) {
        error = path.string() + ": plugin '" + id + "' was built for ABI " +
                abi_string(m->abi_major, m->abi_minor) + ", this host has ABI " +
                abi_string(SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR) +
                " (major versions must match): " + rebuild_hint();
        return nullptr;
    }
    if (m->abi_minor > SLUICE_ABI_MINOR) {
        error = path.string() + ": plugin '" + id + "' needs ABI " +
                abi_string(m->abi_major, m->abi_minor) + ", newer than this host's " +
                abi_string(SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR) +
                ": upgrade sluice, or rebuild the plugin against SDK " +
                abi_string(SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
        return nullptr;
    }
    return lib;
}

}  // namespace

PluginLibrary::~PluginLibrary() {
    // Never unloaded before the process exits (see docs/abi-policy.md): a library may have
    // left threads, atexit handlers or thread-local state behind, and leak reports need its
    // symbols. The handles stay reachable from static storage until then.
    static auto* const kept = new std::vector<std::unique_ptr<boost::dll::shared_library>>();
    static std::mutex kept_mu;  // the last reference may go on any route's thread
    std::lock_guard lock(kept_mu);
    if (handle) kept->push_back(std::move(handle));
}

const sluice_field_spec* PluginInfo::field(std::string_view name) const {
    for (const auto& f : fields) {
        if (name == f.name) return &f;
    }
    return nullptr;
}

const char* kind_name(sluice_kind kind) {
    switch (kind) {
        case SLUICE_KIND_SOURCE:
            return "source";
        case SLUICE_KIND_TRANSFORM:
            return "transform";
        case SLUICE_KIND_SINK:
            return "sink";
    }
    return "unknown";
}

std::vector<std::string> PluginRegistry::load_directories(const std::vector<fs::path>& dirs) {
    std::vector<std::string> errors;
    for (const auto& dir : dirs) {
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) {
            errors.push_back(dir.string() + ": plugin directory does not exist");
            continue;
        }
        if (auto why = untrusted_because(dir); !why.empty()) {
            errors.push_back(std::move(why));
            continue;
        }
        std::vector<fs::path> found;
        if (fs::exists(dir / "plugin.yaml")) found.push_back(dir / "plugin.yaml");
        for (auto it = fs::recursive_directory_iterator(dir, ec);
             it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (ec) {
                errors.push_back(dir.string() + ": cannot search for plugins: " + ec.message());
                break;
            }
            if (it.depth() > 1) {
                it.disable_recursion_pending();
                continue;
            }
            // Not only regular files: reading a plugin.yaml that is a FIFO reports it.
            if (it->path().filename() == "plugin.yaml" && !it->is_directory(ec) &&
                it->path().parent_path() != dir) {
                found.push_back(it->path());
            }
        }
        std::sort(found.begin(), found.end());  // deterministic duplicate reporting
        for (const auto& p : found) {
            if (auto err = load_manifest(p, dir); !err.empty()) errors.push_back(err);
        }
    }
    return errors;
}

std::string PluginRegistry::load_manifest(const fs::path& plugin_yaml, const fs::path& root) {
    // One broken plugin directory must not take the others down with it.
    try {
        return load_manifest_checked(plugin_yaml, root);
    } catch (const std::exception& e) {
        return plugin_yaml.string() + ": cannot load plugin: " + e.what();
    }
}

std::string PluginRegistry::load_manifest_checked(const fs::path& plugin_yaml,
                                                  const fs::path& root) {
    const std::string where = plugin_yaml.string();
    for (const auto& p : {plugin_yaml.parent_path(), plugin_yaml}) {
        if (auto why = untrusted_because(p); !why.empty()) return why;
    }
    Diagnostic unreadable;
    const auto contents = read_config_file(plugin_yaml, unreadable);
    if (!contents) return unreadable.to_string();
    YAML::Node doc;
    Diagnostic malformed;
    const auto docs = parse_yaml_documents(*contents, where, malformed);
    if (!docs) return malformed.to_string();
    if (!docs->empty()) doc = docs->front();
    if (!doc.IsMap()) {
        return where + ": plugin.yaml must be a map with id, kind, version and library";
    }
    auto text = [&](const char* key) -> std::string {
        const auto n = doc[key];
        return n && n.IsScalar() ? n.as<std::string>() : std::string();
    };
    const std::string id = text("id");
    const std::string kind = text("kind");
    const std::string version = text("version");
    if (id.empty() || kind.empty()) {
        return where + ": plugin.yaml needs 'id' and 'kind' (source, transform or sink)";
    }
    std::string library_name = text("library");
    if (library_name.empty()) library_name = "sluice-" + id + ".so";
    // A plugin.yaml that names a library elsewhere could make sluice load any library on the
    // machine (checked on the names, before any symbolic link is followed).
    const auto normal = [](const fs::path& p) {
        fs::path n = fs::absolute(p).lexically_normal();
        return n.has_filename() ? n : n.parent_path();  // "dir/" is "dir"
    };
    const fs::path folder = normal(plugin_yaml.parent_path());
    const fs::path inside = root.empty() ? folder : normal(root);
    const fs::path library_path = (folder / library_name).lexically_normal();
    const fs::path rel = library_path.lexically_relative(inside);
    if (fs::path(library_name).is_absolute() || rel.empty() || *rel.begin() == "..") {
        return where + ": library '" + library_name + "' is outside the plugin directory " +
               inside.string() + ": install the library there";
    }
    if (auto why = untrusted_because(library_path); !why.empty()) return why;
    if (const auto* existing = find(id)) {
        return where + ": duplicate plugin id '" + id + "': already loaded from " +
               existing->manifest.string() + " (remove one of the two directories)";
    }

    std::string error;
    const auto lib = open_library(library_path, id, error);
    if (!lib) return error;

    const sluice_module* m = lib->module;
    const sluice_plugin_descriptor* found = nullptr;
    std::string ids_in_library;
    for (std::size_t i = 0; i < m->n_plugins; ++i) {
        const auto* d = m->plugins[i];
        if (d == nullptr || d->id == nullptr) continue;
        ids_in_library += (ids_in_library.empty() ? "" : ", ") + std::string(d->id);
        if (id == d->id) found = d;
    }
    if (found == nullptr) {
        return where + ": plugin.yaml says id '" + id + "' but " + library_path.string() +
               " provides [" + ids_in_library + "]: fix the id in plugin.yaml";
    }
    if (found->struct_size > sizeof(sluice_plugin_descriptor)) {
        return library_path.string() + ": descriptor of '" + id + "' is larger than this " +
               "host knows (" + std::to_string(found->struct_size) + " > " +
               std::to_string(sizeof(sluice_plugin_descriptor)) + " bytes): upgrade sluice";
    }

    auto info = std::make_shared<PluginInfo>();
    std::memcpy(&info->descriptor, found, found->struct_size);  // rest stays zero
    const auto& d = info->descriptor;
    info->id = id;
    info->kind = static_cast<sluice_kind>(d.kind);
    info->version = d.version != nullptr ? d.version : "";
    info->manifest = plugin_yaml;
    info->library = lib;
    if (kind != kind_name(info->kind)) {
        return where + ": plugin.yaml says kind '" + kind + "' but the library's '" + id +
               "' is a " + kind_name(info->kind) + ": fix plugin.yaml";
    }
    if (!version.empty() && version != info->version) {
        return where + ": plugin.yaml says version " + version + " but the library's '" + id +
               "' is version " + info->version + ": reinstall the plugin (stale plugin.yaml?)";
    }
    if (info->version.empty()) {
        return library_path.string() + ": plugin '" + id + "' declares no version";
    }
    if (auto missing = missing_callback(d); !missing.empty()) {
        return library_path.string() + ": plugin '" + id + "' lacks the '" + missing +
               "' callback: " + rebuild_hint();
    }
    for (std::size_t i = 0; i < d.n_fields; ++i) {
        const sluice_field_spec* f = d.fields[i];
        if (f == nullptr) {
            return library_path.string() + ": option " + std::to_string(i) + " of '" + id +
                   "' is NULL";
        }
        sluice_field_spec copy{};
        std::memcpy(&copy, f, std::min<std::size_t>(f->struct_size, sizeof copy));
        if (copy.name == nullptr || copy.description == nullptr) {
            return library_path.string() + ": option " + std::to_string(i) + " of '" + id +
                   "' lacks a name or description";
        }
        info->fields.push_back(copy);
    }
    plugins_.emplace(id, std::move(info));
    return "";
}

const PluginInfo* PluginRegistry::find(std::string_view id) const { return share(id).get(); }

std::shared_ptr<const PluginInfo> PluginRegistry::share(std::string_view id) const {
    auto it = plugins_.find(id);
    return it == plugins_.end() ? nullptr : it->second;
}

std::vector<const PluginInfo*> PluginRegistry::all() const {
    std::vector<const PluginInfo*> out;
    for (const auto& [id, p] : plugins_) out.push_back(p.get());
    return out;
}

std::string PluginRegistry::known_ids() const {
    std::string out;
    for (const auto& [id, p] : plugins_) out += (out.empty() ? "" : ", ") + id;
    return out.empty() ? "none loaded: check the plugin directories" : out;
}

}  // namespace sluice
