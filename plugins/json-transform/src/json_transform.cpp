#include "json_transform.hpp"

#include <algorithm>

namespace sluice::plugins {

namespace json = sdk::json;

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' ||
                          s.front() == '\n')) {
        s.remove_prefix(1);
    }
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace

sdk::Spec JsonTransform::spec() {
    using sdk::Field;
    sdk::Spec s("json-transform", "1.0.0");
    s.summary("Parses payloads into JSON objects, reshapes them and sets the message key.")
        .description(
            "Each message's payload is parsed (`parse`), then fields are renamed (`rename`), set "
            "(`set`), dropped (`drop`) and kept (`keep`), in that order, and the key is set "
            "(`key`). The output is compact JSON: the input's fields in their order, then new "
            "fields in the order of `set`. A payload that does not parse is rejected and goes "
            "to the route's `on_error` policy (default: dropped, counted, logged).\n\n"
            "Templates in `set` see the message's topic, key and the fields parsed so far as "
            "`{{json.<field>}}`; `key` sees the final output.");
    s.field(Field::enumeration("parse", {"json", "number", "string", "csv"})
                .default_value("json")
                .description("How to read the payload: `json` (an object; any other JSON value "
                             "goes into `field`), `number` (a bare number into `field`), "
                             "`string` (the payload as text into `field`), `csv` (one line of "
                             "values named by `columns`)."));
    s.field(Field::string("field")
                .default_value("value")
                .description("Name of the field that receives a bare value (parse: number, "
                             "string, or a JSON payload that is not an object)."));
    s.field(Field::list("columns")
                .description("Field names for the values of a CSV line, in order; required "
                             "with `parse: csv`. Numeric values stay numbers.")
                .example("[temperature, light, co2]"));
    s.field(Field::string("separator")
                .default_value(",")
                .advanced()
                .description("The CSV separator, one character."));
    s.field(Field::template_map("set")
                .description("Fields to add or replace, with templated string values.")
                .example("{ node: \"{{topic.2}}\", sensor: \"{{topic.1}}\" }"));
    s.field(Field::map("rename")
                .description("Fields to rename, old name to new name.")
                .example("{ temp: temperature }"));
    s.field(Field::list("drop").description("Fields to remove.").example("[debug, raw]"));
    s.field(Field::list("keep").description(
        "If set, only these fields remain (applied after `drop`)."));
    s.field(Field::templated("key")
                .description("The message key, rendered from the output message; absent: the "
                             "key is left as it was.")
                .example("\"{{json.node}}\""));
    return s;
}

void JsonTransform::validate(const sdk::Config& config, sdk::Diagnostics& diag) {
    const std::string mode = config.string("parse");
    const bool has_columns = !config.list("columns").empty();
    if (mode == "csv" && !has_columns) {
        diag.report("columns", "parse: csv needs `columns`, the names of the values");
    }
    if (mode != "csv" && has_columns) {
        diag.report("columns", "`columns` is only used with parse: csv (parse is " + mode + ")");
    }
    if (config.string("separator").size() != 1) {
        diag.report("separator", "must be exactly one character");
    }
    for (const auto& [name, value] : config.map("rename")) {
        if (value.empty()) diag.report("rename." + name, "new name is empty");
    }
}

JsonTransform::Name JsonTransform::name_of(std::string_view plain) {
    Name n{std::string(plain), {}};
    json::append_quoted(n.quoted, plain);
    return n;
}

bool JsonTransform::key_is(std::string_view raw_key, const Name& name) {
    // Fast path: the input's key is spelled exactly as we would quote it.
    return raw_key == name.quoted || json::key_equals(raw_key, name.plain);
}

JsonTransform::JsonTransform(const sdk::Config& config, sdk::Host& /*host*/)
    : route_(config.route()) {
    const std::string mode = config.string("parse");
    parse_mode_ = mode == "number" ? Parse::number
                  : mode == "string" ? Parse::string
                  : mode == "csv"    ? Parse::csv
                                     : Parse::json;
    field_ = name_of(config.string("field"));
    for (const auto& c : config.list("columns")) columns_.push_back(name_of(c));
    separator_ = config.string("separator").at(0);
    for (const auto& [from, to] : config.map("rename")) {
        rename_.emplace_back(name_of(from), name_of(to));
    }
    for (auto& [name, t] : config.template_map("set")) {
        set_uses_payload_ = set_uses_payload_ || t.uses_payload();
        set_.emplace_back(name_of(name), std::move(t));
    }
    for (const auto& d : config.list("drop")) drop_.push_back(name_of(d));
    for (const auto& k : config.list("keep")) keep_.push_back(name_of(k));
    if (config.has("key")) key_template_ = config.templ("key");
    rendered_.resize(set_.size());
    cells_.resize(columns_.size());
}

std::string JsonTransform::parse(std::string_view payload) {
    members_.clear();
    switch (parse_mode_) {
        case Parse::json: {
            const std::size_t start = json::skip_ws(payload, 0);
            if (start < payload.size() && payload[start] == '{') {
                const bool ok = json::for_each_member(payload, [&](auto k, auto v) {
                    members_.push_back({k, v});
                    return true;
                });
                if (!ok) return "payload is not valid JSON: '" + sdk::text::excerpt(payload) + "'";
            } else if (json::is_valid(payload)) {
                members_.push_back({field_.quoted, trim(payload)});
            } else {
                return "payload is not valid JSON: '" + sdk::text::excerpt(payload) + "'";
            }
            return {};
        }
        case Parse::number: {
            const auto text = trim(payload);
            if (!json::is_number(text)) {
                return "payload '" + sdk::text::excerpt(payload) + "' is not a number";
            }
            members_.push_back({field_.quoted, text});
            return {};
        }
        case Parse::string: {
            std::string& buf = string_value_;
            buf.clear();
            json::append_quoted(buf, payload);
            members_.push_back({field_.quoted, buf});
            return {};
        }
        case Parse::csv: {
            std::string_view rest = trim(payload);
            std::size_t i = 0;
            while (true) {
                const std::size_t sep = rest.find(separator_);
                const std::string_view cell = trim(rest.substr(0, sep));
                if (i >= columns_.size()) {
                    return "CSV line has more than the " + std::to_string(columns_.size()) +
                           " values named in `columns`: '" + sdk::text::excerpt(payload) + "'";
                }
                if (json::is_number(cell)) {
                    members_.push_back({columns_[i].quoted, cell});
                } else {
                    std::string& buf = cells_[i];
                    buf.clear();
                    json::append_quoted(buf, cell);
                    members_.push_back({columns_[i].quoted, buf});
                }
                ++i;
                if (sep == std::string_view::npos) break;
                rest.remove_prefix(sep + 1);
            }
            if (i != columns_.size()) {
                return "CSV line has " + std::to_string(i) + " values, `columns` names " +
                       std::to_string(columns_.size()) + ": '" + sdk::text::excerpt(payload) + "'";
            }
            return {};
        }
    }
    return {};
}

void JsonTransform::remove_if_named(const std::vector<Name>& names, bool keep) {
    std::erase_if(members_, [&](const Member& m) {
        const bool named = std::any_of(names.begin(), names.end(),
                                       [&](const Name& n) { return key_is(m.key, n); });
        return named != keep;
    });
}

std::string JsonTransform::transform(sdk::MessageView message) {
    if (auto error = parse(message.payload()); !error.empty()) return error;

    for (auto& m : members_) {
        for (const auto& [from, to] : rename_) {
            if (key_is(m.key, from)) m.key = to.quoted;
        }
    }

    auto serialize = [this] {
        out_.clear();
        out_.push_back('{');
        for (std::size_t i = 0; i < members_.size(); ++i) {
            if (i > 0) out_.push_back(',');
            out_.append(members_[i].key);
            out_.push_back(':');
            json::append_minified(out_, members_[i].value);
        }
        out_.push_back('}');
    };

    if (!set_.empty()) {
        // Templates may read the fields parsed so far: give them the intermediate object.
        sluice_message view = message.raw();
        if (set_uses_payload_) {
            serialize();
            view.payload = out_.data();
            view.payload_len = out_.size();
        }
        const sdk::RenderContext ctx{route_};
        for (std::size_t i = 0; i < set_.size(); ++i) {
            value_buf_.clear();
            set_[i].second.render(sdk::MessageView(view), ctx, value_buf_);
            rendered_[i].clear();
            json::append_quoted(rendered_[i], value_buf_);
        }
        // Only now: rendering may have read out_, and members may point into rendered_.
        for (std::size_t i = 0; i < set_.size(); ++i) {
            const Name& name = set_[i].first;
            auto it = std::find_if(members_.begin(), members_.end(),
                                   [&](const Member& m) { return key_is(m.key, name); });
            if (it != members_.end()) {
                it->value = rendered_[i];
            } else {
                members_.push_back({name.quoted, rendered_[i]});
            }
        }
    }
    if (!drop_.empty()) remove_if_named(drop_, false);
    if (!keep_.empty()) remove_if_named(keep_, true);
    serialize();

    has_key_ = message.has_key();
    if (key_template_) {
        sluice_message view = message.raw();
        view.payload = out_.data();
        view.payload_len = out_.size();
        key_.clear();
        key_template_->render(sdk::MessageView(view), sdk::RenderContext{route_}, key_);
        has_key_ = true;
    } else if (has_key_) {
        key_.assign(message.key());
    }
    return {};
}

void JsonTransform::process(const sdk::BatchView& in, sdk::Emitter& out) {
    for (std::size_t i = 0; i < in.size(); ++i) {
        const auto message = in[i];
        if (auto error = transform(message); !error.empty()) {
            out.reject(i, error);
            continue;
        }
        sluice_message m = message.raw();
        m.payload = out_.data();
        m.payload_len = out_.size();
        m.key = has_key_ ? key_.data() : nullptr;
        m.key_len = has_key_ ? key_.size() : 0;
        out.emit(m);
    }
}

}  // namespace sluice::plugins

SLUICE_MODULE("sluice-json-transform", sluice::plugins::JsonTransform)
