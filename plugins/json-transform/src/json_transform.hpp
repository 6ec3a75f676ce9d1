// json-transform: parses a payload (JSON, a number, a string or a CSV line) into a JSON object,
// reshapes it (rename, set, drop, keep), sets the message key, and emits compact JSON with a
// stable field order. Members are moved as raw JSON slices, never as a DOM.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sluice/sdk.hpp>

namespace sluice::plugins {

class JsonTransform : public sdk::Transform {
public:
    static sdk::Spec spec();
    static void validate(const sdk::Config& config, sdk::Diagnostics& diag);

    JsonTransform(const sdk::Config& config, sdk::Host& host);
    void process(const sdk::BatchView& in, sdk::Emitter& out) override;

    /// Transforms one payload into `out_`; returns "" or the reason it cannot be parsed.
    /// Public for unit tests and the benchmark.
    std::string transform(sdk::MessageView message);
    const std::string& output() const { return out_; }
    const std::string& key() const { return key_; }
    bool has_key() const { return has_key_; }

private:
    enum class Parse { json, number, string, csv };
    struct Member {
        std::string_view key;    // quoted JSON string
        std::string_view value;  // raw JSON value
    };
    struct Name {
        std::string plain;
        std::string quoted;
    };

    static Name name_of(std::string_view plain);
    static bool key_is(std::string_view raw_key, const Name& name);
    std::string parse(std::string_view payload);
    void remove_if_named(const std::vector<Name>& names, bool keep);

    Parse parse_mode_ = Parse::json;
    Name field_;
    std::vector<Name> columns_;
    char separator_ = ',';
    std::vector<std::pair<Name, Name>> rename_;
    std::vector<std::pair<Name, sdk::Template>> set_;
    bool set_uses_payload_ = false;
    std::vector<Name> drop_;
    std::vector<Name> keep_;
    std::optional<sdk::Template> key_template_;
    std::string route_;

    // Reused per message: after warm-up the transform does not allocate.
    std::vector<Member> members_;
    std::vector<std::string> rendered_;  // set_ values, by index
    std::vector<std::string> cells_;     // quoted CSV cells, by column
    std::string string_value_;           // parse: string
    std::string value_buf_;
    std::string out_;
    std::string key_;
    bool has_key_ = false;
};

}  // namespace sluice::plugins
