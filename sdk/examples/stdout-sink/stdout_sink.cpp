// This example demonstrates: a sink plugin. It writes one line per message (a prefix
// rendered from a template, then the payload) to standard output or a file, confirms a batch
// only once it is flushed, turns write failures into RETRY, and rejects single messages.
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <sluice/sdk.hpp>
#include <string>

namespace sdk = sluice::sdk;

class StdoutSink : public sdk::Sink {
public:
    static sdk::Spec spec() {
        sdk::Spec s("stdout-sink", "1.0.0");  // must match plugin.yaml
        s.summary("Prints each message as one line: prefix, then payload.");
        s.field(sdk::Field::templated("prefix").default_value("").description(
            "Text before each payload, e.g. `\"{{topic}}: \"`."));
        s.field(sdk::Field::string("path").default_value("-").advanced().description(
            "File to append the lines to; `-` is standard output."));
        return s;
    }

    StdoutSink(const sdk::Config& c, sdk::Host& host)
        : prefix_(c.templ("prefix")), path_(c.string("path")), route_(c.route()), host_(host) {
        if (path_ == "-") return;  // the host's own standard output, shared, never closed
        file_ = std::fopen(path_.c_str(), "a");
        // Fatal: retrying create with the same configuration cannot succeed.
        if (file_ == nullptr) throw sdk::Fatal("cannot open '" + path_ + "': " + why());
    }
    ~StdoutSink() override {
        if (file_ != stdout) std::fclose(file_);
    }

    // The route's thread, one batch at a time; Status::ok means "every message not rejected
    // is delivered", so flush before saying so.
    sdk::Status write(const sdk::BatchView& in, sdk::Emitter& results) override {
        for (std::size_t i = 0; i < in.size(); ++i) {
            const sdk::MessageView m = in[i];
            if (m.payload().find('\n') != std::string_view::npos) {
                results.reject(i, "payload spans several lines");
                continue;
            }
            line_.clear();
            prefix_.render(m, sdk::RenderContext{route_}, line_);
            line_.append(m.payload()).push_back('\n');
            std::fwrite(line_.data(), 1, line_.size(), file_);
        }
        // Retry: the host keeps the batch and calls write() again with it after a back-off.
        if (std::fflush(file_) != 0) throw sdk::Retry("cannot write '" + path_ + "': " + why());
        return sdk::Status::ok;
    }

    void stop(std::chrono::milliseconds /*deadline*/) override {
        std::fflush(file_);
        host_.debug("stopped");
    }

private:
    static std::string why() { return std::strerror(errno); }

    sdk::Template prefix_;
    std::string path_;
    std::string route_;
    sdk::Host& host_;
    std::FILE* file_ = stdout;
    std::string line_;
};

SLUICE_MODULE("stdout-sink", StdoutSink)
