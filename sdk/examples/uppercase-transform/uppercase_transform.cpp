// This example demonstrates: a transform plugin. It reads each message of a batch, emits a
// changed copy (payload in upper case, optionally a new key rendered from a template),
// rejects the messages it cannot handle one by one, and reuses its buffers across batches.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <sluice/sdk.hpp>
#include <string>

namespace sdk = sluice::sdk;

class UppercaseTransform : public sdk::Transform {
public:
    static sdk::Spec spec() {
        sdk::Spec s("uppercase-transform", "1.0.0");  // must match plugin.yaml
        s.summary("Upper-cases payloads; can set the key from a template.");
        s.field(sdk::Field::integer("max_bytes")
                    .default_value("1024")
                    .range(1, 1048576)
                    .description("Longer payloads are rejected (the route's `on_error` decides)."));
        s.field(sdk::Field::templated("key")
                    .description("New message key, e.g. `\"{{topic.1}}\"`; unset keeps the key.")
                    .example("\"{{topic.1}}\""));
        return s;
    }

    UppercaseTransform(const sdk::Config& c, sdk::Host& /*host*/)
        : max_bytes_(static_cast<std::size_t>(c.integer("max_bytes"))), route_(c.route()) {
        if (c.has("key")) key_ = c.templ("key");  // compiled once, rendered per message
    }

    // The route's thread, one batch at a time. Input messages are valid during this call
    // only, and emit() copies its argument, so one reused buffer serves every message.
    void process(const sdk::BatchView& in, sdk::Emitter& out) override {
        for (std::size_t i = 0; i < in.size(); ++i) {
            const sdk::MessageView m = in[i];
            if (m.payload().size() > max_bytes_) {
                out.reject(i, "payload of " + std::to_string(m.payload().size()) +
                                  " bytes exceeds max_bytes");
                continue;
            }
            payload_.assign(m.payload());
            for (char& ch : payload_) {
                ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            }
            sluice_message copy = m.raw();  // topic, headers, timestamp: unchanged
            copy.payload = payload_.data();
            copy.payload_len = payload_.size();
            if (key_) {
                key_buf_.clear();
                key_->render(m, sdk::RenderContext{route_}, key_buf_);
                copy.key = key_buf_.data();
                copy.key_len = key_buf_.size();
            }
            out.emit(copy);
        }
    }

private:
    std::size_t max_bytes_;
    std::string route_;
    std::optional<sdk::Template> key_;
    std::string payload_;
    std::string key_buf_;
};

SLUICE_MODULE("uppercase-transform", UppercaseTransform)
