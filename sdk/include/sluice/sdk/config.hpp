// A plugin declares its options once with Spec/Field; the host validates manifests against
// that table and prints it as documentation. At create time the plugin reads the validated
// values through Config's typed getters.
#ifndef SLUICE_SDK_CONFIG_HPP
#define SLUICE_SDK_CONFIG_HPP

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/abi.h"
#include "sluice/sdk/template.hpp"

namespace sluice::sdk {

/// A configuration value the plugin cannot use; `key()` names the option.
class ConfigError : public std::runtime_error {
public:
    ConfigError(std::string key, const std::string& message)
        : std::runtime_error(key + ": " + message), key_(std::move(key)) {}
    const std::string& key() const { return key_; }

private:
    std::string key_;
};

/// One option of a plugin's config spec. Without default_value() and without required(),
/// the option is optional and absent unless set.
class Field {
public:
    static Field string(std::string name) { return {std::move(name), SLUICE_FIELD_STRING}; }
    static Field integer(std::string name) { return {std::move(name), SLUICE_FIELD_INT}; }
    static Field number(std::string name) { return {std::move(name), SLUICE_FIELD_FLOAT}; }
    static Field boolean(std::string name) { return {std::move(name), SLUICE_FIELD_BOOL}; }
    static Field list(std::string name) { return {std::move(name), SLUICE_FIELD_LIST}; }
    static Field map(std::string name) { return {std::move(name), SLUICE_FIELD_MAP}; }
    static Field templated(std::string name) { return {std::move(name), SLUICE_FIELD_TEMPLATE}; }
    static Field template_map(std::string name) {
        return {std::move(name), SLUICE_FIELD_TEMPLATE_MAP};
    }
    static Field enumeration(std::string name, std::initializer_list<std::string> values) {
        Field f{std::move(name), SLUICE_FIELD_ENUM};
        f.enum_values_.assign(values.begin(), values.end());
        return f;
    }

    Field& description(std::string text) {
        description_ = std::move(text);
        return *this;
    }
    /// The default: literal text for scalars ("1", "true", ","), YAML for lists and maps ("[a,
    /// b]").
    Field& default_value(std::string yaml) {
        default_ = std::move(yaml);
        has_default_ = true;
        return *this;
    }
    Field& example(std::string yaml) {
        example_ = std::move(yaml);
        return *this;
    }
    Field& required() {
        flags_ |= SLUICE_FIELD_REQUIRED;
        return *this;
    }
    Field& secret() {
        flags_ |= SLUICE_FIELD_SECRET;
        return *this;
    }
    Field& advanced() {
        flags_ |= SLUICE_FIELD_ADVANCED;
        return *this;
    }
    /// Set by the operator in the host config's `plugin_settings`, never by a route manifest
    /// (SLUICE_FIELD_HOST).
    Field& host_only() {
        flags_ |= SLUICE_FIELD_HOST;
        return *this;
    }
    Field& range(double min, double max) {
        flags_ |= SLUICE_FIELD_RANGE;
        min_ = min;
        max_ = max;
        return *this;
    }

private:
    Field(std::string name, std::uint32_t type) : name_(std::move(name)), type_(type) {}
    friend class Spec;

    std::string name_;
    std::uint32_t type_;
    std::uint32_t flags_ = 0;
    std::string default_;
    bool has_default_ = false;
    std::string example_;
    std::string description_;
    std::vector<std::string> enum_values_;
    std::vector<const char*> enum_ptrs_;  // NULL-terminated C view of enum_values_
    double min_ = 0;
    double max_ = 0;
};

/// A plugin's identity and options. Lowered once to the C tables of abi.h, which point into
/// this object: it lives in static storage for the library's lifetime.
class Spec {
public:
    Spec(std::string id, std::string version) : id_(std::move(id)), version_(std::move(version)) {}
    Spec(const Spec&) = delete;
    Spec& operator=(const Spec&) = delete;
    Spec(Spec&&) = default;
    Spec& operator=(Spec&&) = default;

    Spec& summary(std::string text) {
        summary_ = std::move(text);
        return *this;
    }
    Spec& description(std::string text) {
        description_ = std::move(text);
        return *this;
    }
    Spec& field(Field f) {
        fields_.push_back(std::move(f));
        return *this;
    }

    /// Fills the C view; call once, after the last change.
    void lower(sluice_plugin_descriptor& d) {
        for (auto& f : fields_) {
            f.enum_ptrs_.clear();
            for (auto& v : f.enum_values_) f.enum_ptrs_.push_back(v.c_str());
            f.enum_ptrs_.push_back(nullptr);
        }
        c_fields_.clear();
        for (auto& f : fields_) {
            sluice_field_spec s{};
            s.struct_size = sizeof(sluice_field_spec);
            s.name = f.name_.c_str();
            s.type = f.type_;
            s.flags = f.flags_;
            s.default_value = f.has_default_ ? f.default_.c_str() : nullptr;
            s.enum_values = f.enum_values_.empty() ? nullptr : f.enum_ptrs_.data();
            s.description = f.description_.c_str();
            s.example = f.example_.empty() ? nullptr : f.example_.c_str();
            s.min_value = f.min_;
            s.max_value = f.max_;
            c_fields_.push_back(s);
        }
        c_field_ptrs_.clear();
        for (auto& s : c_fields_) c_field_ptrs_.push_back(&s);
        d.id = id_.c_str();
        d.version = version_.c_str();
        d.summary = summary_.c_str();
        d.description = description_.c_str();
        d.fields = c_field_ptrs_.data();
        d.n_fields = c_field_ptrs_.size();
    }

    const std::string& id() const { return id_; }

private:
    std::string id_;
    std::string version_;
    std::string summary_;
    std::string description_;
    std::vector<Field> fields_;
    std::vector<sluice_field_spec> c_fields_;
    std::vector<const sluice_field_spec*> c_field_ptrs_;
};

/// The validated options of one stage. Getters throw ConfigError naming the key.
class Config {
public:
    explicit Config(const sluice_config& c) : c_(&c) {}

    std::string_view route() const { return c_->route ? c_->route : ""; }
    std::string_view stage() const { return c_->stage ? c_->stage : ""; }

    bool has(std::string_view key) const { return find(key) != nullptr; }

    std::string string(std::string_view key) const { return scalar(key); }
    std::string string_or(std::string_view key, std::string_view fallback) const {
        return has(key) ? scalar(key) : std::string(fallback);
    }
    std::int64_t integer(std::string_view key) const {
        const std::string text = scalar(key);
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc{} || end != text.data() + text.size()) {
            throw ConfigError(std::string(key), "'" + text + "' is not an integer");
        }
        return v;
    }
    double number(std::string_view key) const {
        const std::string text = scalar(key);
        try {
            std::size_t used = 0;
            const double v = std::stod(text, &used);
            if (used == text.size()) return v;
        } catch (const std::exception&) {
        }
        throw ConfigError(std::string(key), "'" + text + "' is not a number");
    }
    bool boolean(std::string_view key) const {
        const std::string text = scalar(key);
        if (text == "true") return true;
        if (text == "false") return false;
        throw ConfigError(std::string(key), "'" + text + "' is not true or false");
    }
    std::vector<std::string> list(std::string_view key) const {
        std::vector<std::string> out;
        if (const auto* e = find(key)) {
            for (std::size_t i = 0; i < e->n_items; ++i) out.emplace_back(e->items[i]);
        }
        return out;
    }
    std::vector<std::pair<std::string, std::string>> map(std::string_view key) const {
        std::vector<std::pair<std::string, std::string>> out;
        if (const auto* e = find(key)) {
            for (std::size_t i = 0; i < e->n_items; ++i) {
                out.emplace_back(e->items[i], e->item_values ? e->item_values[i] : "");
            }
        }
        return out;
    }
    Template templ(std::string_view key) const {
        try {
            return Template::compile(scalar(key));
        } catch (const TemplateError& e) {
            throw ConfigError(std::string(key), e.what());
        }
    }
    std::vector<std::pair<std::string, Template>> template_map(std::string_view key) const {
        std::vector<std::pair<std::string, Template>> out;
        for (auto& [k, v] : map(key)) {
            try {
                out.emplace_back(k, Template::compile(v));
            } catch (const TemplateError& e) {
                throw ConfigError(std::string(key) + "." + k, e.what());
            }
        }
        return out;
    }

    const sluice_config& raw() const { return *c_; }

private:
    const sluice_config_entry* find(std::string_view key) const {
        for (std::size_t i = 0; i < c_->n_entries; ++i) {
            if (key == c_->entries[i].key) return &c_->entries[i];
        }
        return nullptr;
    }
    std::string scalar(std::string_view key) const {
        const auto* e = find(key);
        if (e == nullptr || e->value == nullptr) {
            throw ConfigError(std::string(key), "not set");
        }
        return e->value;
    }

    const sluice_config* c_;
};

}  // namespace sluice::sdk

#endif  // SLUICE_SDK_CONFIG_HPP
