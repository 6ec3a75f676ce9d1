// Command line of sluice-devkafka.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sluice::devkafka {

struct TopicSpec {
    std::string name;
    int partitions = 0;
};

struct Options {
    int brokers = 1;
    // Matches the partition count the mock cluster gives topics that clients auto-create
    // (fixed inside librdkafka 2.0.2, no API changes it), so both kinds of topic behave alike.
    int default_partitions = 4;
    std::string bootstrap_file;
    std::vector<TopicSpec> topics;
    bool nagle = false;  // keep the mock's Nagle behaviour (see tcp_nodelay.c)
    bool help = false;
};

// Parses argv; on a usage error returns nullopt and sets `error`.
std::optional<Options> parse_options(int argc, char** argv, std::string& error);

std::string usage_text(const char* program);

}  // namespace sluice::devkafka
