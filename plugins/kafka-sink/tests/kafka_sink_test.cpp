// kafka-sink against librdkafka's in-process mock cluster, driven through the SDK's C ABI
// adapter exactly as the host drives it.
#include "../src/kafka_sink.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <sluice/sdk/testing.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../src/cluster_settings.hpp"
#include "../src/producer_pool.hpp"
#include "mock_kafka.hpp"

using sluice::plugins::KafkaSink;
using sluice::sdk::OwnedMessage;
using sluice::sdk::testing::ConfigBuilder;
using sluice::sdk::testing::Harness;
using sluice::sdk::testing::message;
using sluice::sdk::testing::Reported;
using sluice::sdk::testing::Value;
using sluice::test::KafkaRecord;
using sluice::test::MockKafka;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

using Options = std::map<std::string, Value>;

OwnedMessage keyed(std::string topic, std::string payload, std::string key) {
    OwnedMessage m = message(std::move(topic), std::move(payload));
    m.key = std::move(key);
    return m;
}

std::vector<Reported> validate(Options values) {
    return Harness<KafkaSink>::validate(std::move(values));
}

bool has_report(const std::vector<Reported>& reports, const std::string& key,
                const std::string& text) {
    for (const auto& [k, m] : reports) {
        if (k == key && m.find(text) != std::string::npos) return true;
    }
    return false;
}

std::vector<sluice_status> states(const Harness<KafkaSink>& h) {
    std::vector<sluice_status> out;
    for (const auto& [s, reason] : h.host().states()) out.push_back(s);
    return out;
}

std::size_t count_logs(const Harness<KafkaSink>& h, int level, const std::string& text) {
    std::size_t n = 0;
    for (const auto& [l, m] : h.host().logs()) {
        if (l == level && m.find(text) != std::string::npos) ++n;
    }
    return n;
}

std::vector<OwnedMessage> numbered(const std::string& prefix, int count) {
    std::vector<OwnedMessage> batch;
    for (int i = 0; i < count; ++i) {
        batch.push_back(keyed("sensors/x", prefix + std::to_string(i), "k" + std::to_string(i)));
    }
    return batch;
}

std::multiset<std::string> values_of(const std::vector<KafkaRecord>& records) {
    std::multiset<std::string> out;
    for (const auto& r : records) out.insert(r.value);
    return out;
}

}  // namespace

TEST_CASE("kafka-sink delivers value, key, headers and timestamp", "[kafka-sink]") {
    MockKafka kafka;
    kafka.create_topic("basic", 2);
    Harness<KafkaSink> h(
        Options{{"brokers", kafka.bootstrap()}, {"topic", "basic"}, {"key", "{{topic.1}}"}});
    OwnedMessage m = message("sensors/s1/temp", R"({"t":21.5})");
    m.headers = {{"mqtt.topic", "sensors/s1/temp"}, {"unit", "C"}};
    OwnedMessage plain = message("sensors/s2/temp", "22");

    REQUIRE(h.process({m, plain}) == SLUICE_OK);
    CHECK(h.rejections().empty());

    const auto records = kafka.read_all("basic");
    REQUIRE(records.size() == 2);
    std::map<std::string, KafkaRecord> by_key;
    for (const auto& r : records) by_key[r.key.value_or("<none>")] = r;
    REQUIRE(by_key.count("s1") == 1);
    REQUIRE(by_key.count("s2") == 1);
    CHECK(by_key["s1"].value == R"({"t":21.5})");
    CHECK(by_key["s1"].timestamp_ms == 1700000000000);
    CHECK(by_key["s1"].headers == std::vector<std::pair<std::string, std::string>>{
                                      {"mqtt.topic", "sensors/s1/temp"}, {"unit", "C"}});
    CHECK(by_key["s2"].value == "22");
    CHECK(by_key["s2"].headers.empty());
}

TEST_CASE("kafka-sink without a key template keeps the message's own key", "[kafka-sink]") {
    MockKafka kafka;
    kafka.create_topic("own-key", 1);
    Harness<KafkaSink> h(Options{{"brokers", kafka.bootstrap()}, {"topic", "own-key"}});
    REQUIRE(h.process({keyed("a/b", "1", "from-transform"), message("a/b", "2")}) == SLUICE_OK);
    CHECK(h.rejections().empty());
    const auto records = kafka.read_all("own-key");
    REQUIRE(records.size() == 2);
    CHECK(records[0].key == std::optional<std::string>("from-transform"));
    CHECK_FALSE(records[1].key.has_value());
}

TEST_CASE("kafka-sink keeps per-key order within a partition", "[kafka-sink]") {
    MockKafka kafka(3);
    kafka.create_topic("ordered", 3);
    Harness<KafkaSink> h(Options{{"brokers", kafka.bootstrap()}, {"topic", "ordered"}});
    constexpr int kKeys = 6;
    constexpr int kPerKey = 50;
    int seq = 0;
    for (int batch = 0; batch < 5; ++batch) {
        std::vector<OwnedMessage> messages;
        for (int i = 0; i < kKeys * kPerKey / 5; ++i, ++seq) {
            messages.push_back(
                keyed("t", std::to_string(seq), "key" + std::to_string(seq % kKeys)));
        }
        REQUIRE(h.process(messages) == SLUICE_OK);
        REQUIRE(h.rejections().empty());
    }
    const auto records = kafka.read_all("ordered");
    REQUIRE(records.size() == static_cast<std::size_t>(kKeys * kPerKey));
    std::map<std::string, std::pair<std::int32_t, int>> last;  // key -> partition, sequence
    std::set<std::int32_t> partitions;
    for (const auto& r : records) {
        REQUIRE(r.key);
        const int value = std::stoi(r.value);
        partitions.insert(r.partition);
        auto it = last.find(*r.key);
        if (it != last.end()) {
            CHECK(it->second.first == r.partition);
            CHECK(it->second.second < value);
        }
        last[*r.key] = {r.partition, value};
    }
    CHECK(last.size() == static_cast<std::size_t>(kKeys));
    CHECK(partitions.size() > 1);
}

TEST_CASE("kafka-sink topic template: illegal characters replaced, empty topic rejected",
          "[kafka-sink]") {
    MockKafka kafka;
    const auto before = KafkaSink::topic_chars_replaced_total();
    Harness<KafkaSink> h(Options{{"brokers", kafka.bootstrap()}, {"topic", "{{topic}}"}});
    const std::vector<OwnedMessage> batch{message("sensors/room 1/temp", "a"),
                                          message("sensors/room 1/temp", "b"), message("", "c")};
    REQUIRE(h.process(batch) == SLUICE_OK);

    const auto rejections = h.rejections();
    REQUIRE(rejections.size() == 1);
    CHECK(rejections[0].index == 2);
    CHECK(rejections[0].status == SLUICE_ERROR);
    CHECK(rejections[0].reason.find("{{topic}}") != std::string::npos);
    CHECK(KafkaSink::topic_chars_replaced_total() - before == 6);
    CHECK(count_logs(h, SLUICE_LOG_WARN, "'sensors_room_1_temp'") == 1);
    CHECK(count_logs(h, SLUICE_LOG_DEBUG, "'sensors_room_1_temp'") == 1);
    CHECK(values_of(kafka.read_all("sensors_room_1_temp")) == std::multiset<std::string>{"a", "b"});
}

TEST_CASE("kafka-sink topic_replacement chooses the replacing character", "[kafka-sink]") {
    MockKafka kafka;
    Harness<KafkaSink> h(Options{{"brokers", kafka.bootstrap()},
                                 {"topic", "occupancy.{{topic.1}}"},
                                 {"topic_replacement", "-"}});
    REQUIRE(h.process({message("s/room a:1", "x")}) == SLUICE_OK);
    CHECK(h.rejections().empty());
    CHECK(values_of(kafka.read_all("occupancy.room-a-1")) == std::multiset<std::string>{"x"});
}

TEST_CASE("kafka-sink headers option selects what is forwarded", "[kafka-sink]") {
    MockKafka kafka;
    kafka.create_topic("hdr", 1);
    OwnedMessage m = message("a", "v");
    m.headers = {{"mqtt.topic", "a"}, {"mqtt.qos", "1"}, {"sensor", "s1"}};

    SECTION("empty list forwards none") {
        Harness<KafkaSink> h(Options{{"brokers", kafka.bootstrap()},
                                     {"topic", "hdr"},
                                     {"headers", Value(std::initializer_list<std::string>{})}});
        REQUIRE(h.process({m}) == SLUICE_OK);
        const auto records = kafka.read_all("hdr");
        REQUIRE(records.size() == 1);
        CHECK(records[0].headers.empty());
    }
    SECTION("named headers only, in message order") {
        Harness<KafkaSink> h(Options{{"brokers", kafka.bootstrap()},
                                     {"topic", "hdr"},
                                     {"headers", {"sensor", "mqtt.topic"}}});
        REQUIRE(h.process({m}) == SLUICE_OK);
        const auto records = kafka.read_all("hdr");
        REQUIRE(records.size() == 1);
        CHECK(records[0].headers == std::vector<std::pair<std::string, std::string>>{
                                        {"mqtt.topic", "a"}, {"sensor", "s1"}});
    }
    SECTION("star forwards all") {
        Harness<KafkaSink> h(
            Options{{"brokers", kafka.bootstrap()}, {"topic", "hdr"}, {"headers", {"*"}}});
        REQUIRE(h.process({m}) == SLUICE_OK);
        const auto records = kafka.read_all("hdr");
        REQUIRE(records.size() == 1);
        CHECK(records[0].headers.size() == 3);
    }
}

TEST_CASE("kafka-sink routes with identical cluster settings share one producer", "[kafka-sink]") {
    MockKafka kafka;
    const std::size_t base = KafkaSink::producer_count();
    {
        auto a = std::make_unique<Harness<KafkaSink>>(
            Options{{"brokers", kafka.bootstrap()}, {"topic", "shared.a"}});
        Harness<KafkaSink> b(Options{{"brokers", kafka.bootstrap()},
                                     {"topic", "shared.b"},
                                     {"key", "{{topic}}"},
                                     {"headers", Value(std::initializer_list<std::string>{})}});
        CHECK(KafkaSink::producer_count() == base + 1);
        {
            Harness<KafkaSink> c(
                Options{{"brokers", kafka.bootstrap()}, {"topic", "shared.c"}, {"linger_ms", "6"}});
            CHECK(KafkaSink::producer_count() == base + 2);
            REQUIRE(c.process({message("t", "c1")}) == SLUICE_OK);
        }
        CHECK(KafkaSink::producer_count() == base + 1);

        REQUIRE(a->process({message("t", "a1")}) == SLUICE_OK);
        REQUIRE(b.process({message("t", "b1")}) == SLUICE_OK);
        // The first user leaving does not take the producer from the second.
        a.reset();
        CHECK(KafkaSink::producer_count() == base + 1);
        REQUIRE(b.process({message("t", "b2")}) == SLUICE_OK);
        CHECK(b.rejections().empty());
        CHECK(values_of(kafka.read_all("shared.a")) == std::multiset<std::string>{"a1"});
        CHECK(values_of(kafka.read_all("shared.b")) == std::multiset<std::string>{"b1", "b2"});
    }
    CHECK(KafkaSink::producer_count() == base);
}

TEST_CASE("kafka-sink validate reports what librdkafka refuses", "[kafka-sink]") {
    const std::string brokers = "127.0.0.1:9092";
    SECTION("a valid configuration reports nothing") {
        CHECK(validate({{"brokers", brokers},
                        {"topic", "t.{{topic.1}}"},
                        {"properties",
                         Value::of_map({{"client.id", "sluice"}, {"batch.size", "100000"}})}})
                  .empty());
    }
    SECTION("bad value and unknown property, each under its own key") {
        const auto reports = validate(
            {{"brokers", brokers},
             {"topic", "t"},
             {"properties", Value::of_map({{"batch.size", "banana"}, {"no.such.property", "1"}})}});
        CHECK(reports.size() == 2);
        CHECK(has_report(reports, "properties.batch.size", "Invalid value"));
        CHECK(has_report(reports, "properties.no.such.property", "No such configuration property"));
    }
    SECTION("a property one of the options sets is refused with the option's name") {
        const auto reports = validate({{"brokers", brokers},
                                       {"topic", "t"},
                                       {"properties", Value::of_map({{"linger.ms", "banana"}})}});
        REQUIRE(reports.size() == 1);
        CHECK(has_report(reports, "properties.linger.ms", "linger_ms"));
    }
    SECTION("idempotence requires acks all") {
        const auto reports = validate(
            {{"brokers", brokers}, {"topic", "t"}, {"acks", "1"}, {"idempotence", "true"}});
        REQUIRE(reports.size() == 1);
        CHECK(has_report(reports, "acks", "idempotence"));
        CHECK(validate(
                  {{"brokers", brokers}, {"topic", "t"}, {"acks", "1"}, {"idempotence", "false"}})
                  .empty());
    }
    SECTION("topic_replacement must be one legal character; constant topics must be valid") {
        CHECK(
            has_report(validate({{"brokers", brokers}, {"topic", "t"}, {"topic_replacement", "/"}}),
                       "topic_replacement", "one of the characters"));
        CHECK(has_report(validate({{"brokers", brokers}, {"topic", ".."}}), "topic", "'..'"));
        CHECK(has_report(validate({{"brokers", brokers}, {"topic", std::string(250, 'x')}}),
                         "topic", "249"));
    }
}

TEST_CASE("kafka-sink: brokers down gives RETRY rejects, brokers up delivers them",
          "[kafka-sink]") {
    MockKafka kafka;
    kafka.create_topic("outage", 2);
    Harness<KafkaSink> h(
        Options{{"brokers", kafka.bootstrap()},
                {"topic", "outage"},
                {"delivery_timeout_ms", "1000"},
                {"properties", Value::of_map({{"reconnect.backoff.max.ms", "200"}})}});
    REQUIRE(h.process(numbered("before-", 5)) == SLUICE_OK);
    REQUIRE(h.rejections().empty());

    kafka.set_down();
    auto pending = numbered("during-", 20);
    const auto t0 = Clock::now();
    REQUIRE(h.process(pending) == SLUICE_OK);
    const auto took = Clock::now() - t0;
    CHECK(took < milliseconds(1000 + 2000 + 1000));
    const auto rejections = h.rejections();
    REQUIRE(rejections.size() == pending.size());
    for (const auto& r : rejections) CHECK(r.status == SLUICE_RETRY);
    const auto degraded = states(h);
    REQUIRE_FALSE(degraded.empty());
    CHECK(degraded.back() == SLUICE_RETRY);

    kafka.set_up();
    // What the host does: retry the rejected messages until they are confirmed.
    for (int attempt = 0; attempt < 10 && !pending.empty(); ++attempt) {
        h.output().clear();
        REQUIRE(h.process(pending) == SLUICE_OK);
        std::vector<OwnedMessage> again;
        for (const auto& r : h.rejections()) {
            CHECK(r.status == SLUICE_RETRY);
            again.push_back(pending[r.index]);
        }
        pending = std::move(again);
    }
    CHECK(pending.empty());
    CHECK(states(h).back() == SLUICE_OK);

    const auto values = values_of(kafka.read_all("outage"));
    for (int i = 0; i < 5; ++i) CHECK(values.count("before-" + std::to_string(i)) == 1);
    for (int i = 0; i < 20; ++i) CHECK(values.count("during-" + std::to_string(i)) >= 1);
}

TEST_CASE("kafka-sink: brokers going down while a batch is in flight", "[kafka-sink]") {
    MockKafka kafka;
    kafka.create_topic("midway", 1);
    Harness<KafkaSink> h(
        Options{{"brokers", kafka.bootstrap()},
                {"topic", "midway"},
                {"delivery_timeout_ms", "1000"},
                {"linger_ms", "300"},
                {"properties", Value::of_map({{"reconnect.backoff.max.ms", "200"}})}});
    REQUIRE(h.process({message("t", "warm-up")}) == SLUICE_OK);
    // linger_ms holds the batch in librdkafka while the brokers go away.
    std::thread outage([&] {
        std::this_thread::sleep_for(milliseconds(100));
        kafka.set_down();
    });
    const auto batch = numbered("m", 10);
    const auto status = h.process(batch);
    outage.join();
    REQUIRE(status == SLUICE_OK);
    for (const auto& r : h.rejections()) CHECK(r.status == SLUICE_RETRY);
    CHECK_FALSE(h.rejections().empty());
    kafka.set_up();
}

TEST_CASE("kafka-sink: an unreachable cluster is RETRY, not a crash", "[kafka-sink]") {
    Harness<KafkaSink> h(
        Options{{"brokers", "127.0.0.1:1"}, {"topic", "nowhere"}, {"delivery_timeout_ms", "1000"}});
    REQUIRE(h.process(numbered("x", 3)) == SLUICE_OK);
    const auto rejections = h.rejections();
    REQUIRE(rejections.size() == 3);
    for (const auto& r : rejections) CHECK(r.status == SLUICE_RETRY);
    const auto s = states(h);
    REQUIRE_FALSE(s.empty());
    CHECK(s.back() == SLUICE_RETRY);
}

TEST_CASE("kafka-sink: interrupt ends a write waiting on an unreachable cluster", "[kafka-sink]") {
    Harness<KafkaSink> h(Options{
        {"brokers", "127.0.0.1:1"}, {"topic", "nowhere"}, {"delivery_timeout_ms", "30000"}});
    std::thread stopper([&] {
        std::this_thread::sleep_for(milliseconds(300));
        CHECK(h.interrupt());
    });
    const auto t0 = Clock::now();
    REQUIRE(h.process(numbered("x", 3)) == SLUICE_OK);
    const auto took = Clock::now() - t0;
    stopper.join();
    CHECK(took < milliseconds(5000));  // not the 30 s delivery timeout
    const auto rejections = h.rejections();
    REQUIRE(rejections.size() == 3);
    for (const auto& r : rejections) {
        CHECK(r.status == SLUICE_RETRY);
        CHECK_THAT(r.reason, Catch::Contains("before the route had to stop"));
    }
}

TEST_CASE("kafka-sink stop returns within its deadline", "[kafka-sink]") {
    const auto& d = Harness<KafkaSink>::descriptor();
    sluice::sdk::testing::FakeHost host;
    sluice::sdk::testing::CaptureEmitter out;
    const std::size_t base = KafkaSink::producer_count();
    ConfigBuilder config(
        d, {{"brokers", "127.0.0.1:1"}, {"topic", "{{topic.0}}"}, {"delivery_timeout_ms", "1000"}});
    void* instance = nullptr;
    sluice_error err{};
    REQUIRE(d.create(host.api(), config.get(), &instance, &err) == SLUICE_OK);
    REQUIRE(d.start(instance, nullptr, &err) == SLUICE_OK);
    std::vector<sluice::sdk::OwnedMessage> batch{message("a", "1"), message("b", "2")};
    std::vector<std::vector<sluice_header>> headers(batch.size());
    std::vector<sluice_message> views;
    for (std::size_t i = 0; i < batch.size(); ++i) views.push_back(batch[i].view(headers[i]));
    const sluice_batch b{sizeof(sluice_batch), sizeof(sluice_message), views.size(), views.data()};
    REQUIRE(d.process(instance, &b, out.get(), &err) == SLUICE_OK);
    CHECK(out.rejections().size() == 2);

    const auto t0 = Clock::now();
    d.stop(instance, 300, &err);
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
    CHECK(took.count() < 300);
    CHECK(KafkaSink::producer_count() == base);  // no thread of the plugin left
    d.destroy(instance);
}

TEST_CASE("kafka-sink: a fatal producer error fails the write with FATAL", "[kafka-sink]") {
    MockKafka kafka;
    kafka.create_topic("fatal", 1);
    const Options options{{"brokers", kafka.bootstrap()}, {"topic", "fatal"}};
    Harness<KafkaSink> h(options);
    REQUIRE(h.process({message("t", "ok")}) == SLUICE_OK);

    // Reach the shared producer the way a second route would, and break it.
    struct NullListener : sluice::plugins::kafka::ProducerListener {
        sluice::sdk::Host host{nullptr};
        const sluice::sdk::Host& log_host() const override { return host; }
        void on_brokers_down(const std::string&) override {}
        void on_fatal(const std::string&) override {}
    } listener;
    Harness<KafkaSink> probe(options);  // only to build the same settings
    ConfigBuilder config(Harness<KafkaSink>::descriptor(),
                         {{"brokers", kafka.bootstrap()}, {"topic", "fatal"}});
    const auto settings =
        sluice::plugins::kafka::ClusterSettings::from_config(sluice::sdk::Config(*config.get()));
    auto producer =
        sluice::plugins::kafka::ProducerPool::acquire(settings, listener, listener.host);
    rd_kafka_test_fatal_error(producer->handle(), RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                              "injected by the test");
    const auto deadline = Clock::now() + milliseconds(2000);
    while (!producer->is_fatal() && Clock::now() < deadline) {
        std::this_thread::sleep_for(milliseconds(10));
    }
    REQUIRE(producer->is_fatal());
    CHECK(h.process({message("t", "after")}) == SLUICE_FATAL);
    CHECK(h.last_error().find("injected by the test") != std::string::npos);
    CHECK(states(h).back() == SLUICE_FATAL);

    // A route restarted by the supervisor gets a fresh producer.
    Harness<KafkaSink> restarted(options);
    REQUIRE(restarted.process({message("t", "fresh")}) == SLUICE_OK);
    CHECK(restarted.rejections().empty());
    sluice::plugins::kafka::ProducerPool::release(std::move(producer), listener, milliseconds(0));
}

TEST_CASE("kafka-sink output reads back with kcat, an independent client", "[kafka-sink]") {
#ifndef SLUICE_KCAT
    FAIL("kcat was not found when the tests were configured (apt install kcat)");
#else
    MockKafka kafka;
    kafka.create_topic("kcat", 1);
    {
        Harness<KafkaSink> h(
            Options{{"brokers", kafka.bootstrap()}, {"topic", "kcat"}, {"key", "{{topic.1}}"}});
        REQUIRE(h.process({message("s/a", "one"), message("s/b", "two"),
                           message("s/c", "three")}) == SLUICE_OK);
        REQUIRE(h.rejections().empty());
    }
    const std::string command = std::string(SLUICE_KCAT) + " -q -b " + kafka.bootstrap() +
                                " -C -t kcat -e -f '%k=%s\\n' 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string output;
    char buf[256];
    while (std::fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
    CHECK(pclose(pipe) == 0);
    CHECK(output == "a=one\nb=two\nc=three\n");
#endif
}

// ---------------------------------------------------------------------------------------------
// Pipelined delivery: submit() (ABI 1.2).
// ---------------------------------------------------------------------------------------------

namespace {

using sluice::sdk::testing::Completed;

// What a go-back-N host resends of a completed batch: everything from the first message that
// was not confirmed (the whole batch for a batch-level retry).
std::vector<OwnedMessage> unconfirmed_tail(const std::vector<OwnedMessage>& batch,
                                           const Completed& done) {
    if (done.status == SLUICE_RETRY) return batch;
    std::size_t first = batch.size();
    for (const auto& r : done.rejects) {
        if (r.status == SLUICE_RETRY) first = std::min(first, r.index);
    }
    return {batch.begin() + static_cast<std::ptrdiff_t>(first), batch.end()};
}

std::vector<std::string> values_in_order(const std::vector<KafkaRecord>& records) {
    std::vector<std::string> out;
    for (const auto& r : records) out.push_back(r.value);
    return out;
}

}  // namespace

TEST_CASE("kafka-sink submit: several batches in flight, all confirmed in order",
          "[kafka-sink][submit]") {
    MockKafka kafka;
    kafka.create_topic("pipelined", 1);
    REQUIRE(Harness<KafkaSink>::can_submit());
    // linger_ms keeps each batch in librdkafka for a while: the batches overlap.
    Harness<KafkaSink> h(
        Options{{"brokers", kafka.bootstrap()}, {"topic", "pipelined"}, {"linger_ms", "100"}});
    constexpr int kBatches = 5;
    constexpr int kPerBatch = 20;
    std::vector<std::uint64_t> tokens;
    std::vector<std::string> expected;
    const auto t0 = Clock::now();
    for (int b = 0; b < kBatches; ++b) {
        std::vector<OwnedMessage> batch;
        for (int i = 0; i < kPerBatch; ++i) {
            const std::string value = "b" + std::to_string(b) + "-" + std::to_string(i);
            batch.push_back(keyed("t", value, "k" + std::to_string(i % 3)));
            expected.push_back(value);
        }
        const auto s = h.submit(batch);
        REQUIRE(s.status == SLUICE_OK);
        tokens.push_back(s.token);
    }
    CHECK(Clock::now() - t0 < milliseconds(100));  // none of them waited for Kafka
    CHECK(h.completions().pending() > 1);
    for (const auto token : tokens) {
        const auto done = h.wait_completion(token);
        REQUIRE(done);
        CHECK(done->status == SLUICE_OK);
        CHECK(done->rejects.empty());
        CHECK(done->thread != std::this_thread::get_id());  // the producer's poll thread
    }
    CHECK(h.completions().duplicates() == 0);
    CHECK(values_in_order(kafka.read_all("pipelined")) == expected);
    CHECK(states(h).empty());  // healthy all along: nothing to report
}

TEST_CASE("kafka-sink submit: an outage gives RETRY completions, nothing lost after resending",
          "[kafka-sink][submit]") {
    MockKafka kafka;
    kafka.create_topic("submit-outage", 1);
    Harness<KafkaSink> h(
        Options{{"brokers", kafka.bootstrap()},
                {"topic", "submit-outage"},
                {"delivery_timeout_ms", "1000"},
                {"properties", Value::of_map({{"reconnect.backoff.max.ms", "200"}})}});
    const auto warm = h.submit(numbered("before-", 5));
    REQUIRE(warm.status == SLUICE_OK);
    REQUIRE(h.wait_completion(warm.token)->rejects.empty());

    kafka.set_down();
    std::vector<std::vector<OwnedMessage>> batches{numbered("a-", 10), numbered("b-", 10)};
    std::vector<std::uint64_t> tokens;
    for (const auto& b : batches) {
        const auto s = h.submit(b);
        REQUIRE(s.status == SLUICE_OK);
        tokens.push_back(s.token);
    }
    std::vector<OwnedMessage> resend;
    for (std::size_t b = 0; b < batches.size(); ++b) {
        const auto done = h.wait_completion(tokens[b]);
        REQUIRE(done);
        CHECK(done->status == SLUICE_OK);
        CHECK(done->rejects.size() == batches[b].size());
        for (const auto& r : done->rejects) CHECK(r.status == SLUICE_RETRY);
        const auto tail = unconfirmed_tail(batches[b], *done);
        resend.insert(resend.end(), tail.begin(), tail.end());
    }
    CHECK(states(h).back() == SLUICE_RETRY);

    kafka.set_up();
    for (int attempt = 0; attempt < 10 && !resend.empty(); ++attempt) {
        const auto s = h.submit(resend);
        REQUIRE(s.status == SLUICE_OK);
        const auto done = h.wait_completion(s.token);
        REQUIRE(done);
        resend = unconfirmed_tail(resend, *done);
    }
    CHECK(resend.empty());
    CHECK(states(h).back() == SLUICE_OK);
    const auto values = values_of(kafka.read_all("submit-outage"));
    for (int i = 0; i < 10; ++i) {
        CHECK(values.count("a-" + std::to_string(i)) >= 1);
        CHECK(values.count("b-" + std::to_string(i)) >= 1);
    }
}

TEST_CASE("kafka-sink: the producer queue is bounded by the process's memory budget",
          "[kafka-sink][submit][memory]") {
    // 4 MiB left beyond the routes' buffers: a quarter, 1 MiB, for the producer's queue. Two
    // messages of 600 KB do not fit; with no budget known (64 MiB) they do. Nothing drains the
    // queue: the cluster is unreachable.
    const std::uint64_t budget = GENERATE(0ull, 4ull << 20);
    INFO("memory budget " << budget);
    Harness<KafkaSink>::RouteLimits limits;
    limits.memory_budget_bytes = budget;
    Harness<KafkaSink> h(std::map<std::string, Value>{{"brokers", "127.0.0.1:1"},
                                                      {"topic", "nowhere"},
                                                      {"idempotence", "false"},
                                                      {"acks", "1"},
                                                      {"delivery_timeout_ms", "30000"}},
                         limits);
    std::vector<OwnedMessage> batch;
    for (int i = 0; i < 3; ++i) {
        batch.push_back(keyed("sensors/x", std::string(600 * 1000, 'a'), "k" + std::to_string(i)));
    }
    const auto sent = h.submit(batch);
    REQUIRE(sent.status == SLUICE_OK);
    CHECK(h.interrupt());
    const auto done = h.wait_completion(sent.token, milliseconds(2000));
    REQUIRE(done);
    std::size_t queue_full = 0;
    for (const auto& r : done->rejects) {
        queue_full += r.reason.find("queue is full") != std::string::npos ? 1 : 0;
    }
    if (budget == 0) {
        CHECK(queue_full == 0);
    } else {
        CHECK(queue_full == 2);
    }
    CHECK(sluice::plugins::kafka::queue_kbytes_for(0) == 65536);
    CHECK(sluice::plugins::kafka::queue_kbytes_for(4ull << 20) == 1024);
    CHECK(sluice::plugins::kafka::queue_kbytes_for(16ull << 20) == 4096);
    CHECK(sluice::plugins::kafka::queue_kbytes_for(1ull << 20) == 1024);   // at least 1 MiB
    CHECK(sluice::plugins::kafka::queue_kbytes_for(2ull << 30) == 65536);  // at most 64 MiB
}

TEST_CASE("kafka-sink submit: a full local queue never blocks the caller", "[kafka-sink][submit]") {
    // Nothing drains the queue: the cluster is unreachable and the timeout long.
    Harness<KafkaSink> h(
        Options{{"brokers", "127.0.0.1:1"},
                {"topic", "nowhere"},
                {"delivery_timeout_ms", "30000"},
                {"properties", Value::of_map({{"queue.buffering.max.messages", "10"}})}});
    auto t0 = Clock::now();
    const auto partly = h.submit(numbered("x", 25));
    CHECK(Clock::now() - t0 < milliseconds(200));
    REQUIRE(partly.status == SLUICE_OK);  // 10 produced, the rest rejected as retry

    t0 = Clock::now();
    const auto none = h.submit(numbered("y", 5));
    CHECK(Clock::now() - t0 < milliseconds(200));
    CHECK(none.status == SLUICE_RETRY);  // nothing of it fits: not taken

    CHECK_FALSE(h.wait_completion(partly.token, milliseconds(0)));
    CHECK(h.interrupt());
    const auto done = h.wait_completion(partly.token, milliseconds(1000));
    REQUIRE(done);
    CHECK(done->status == SLUICE_OK);
    REQUIRE(done->rejects.size() == 25);
    std::set<std::size_t> indexes;
    for (const auto& r : done->rejects) {
        CHECK(r.status == SLUICE_RETRY);
        indexes.insert(r.index);
        if (r.index >= 10) CHECK_THAT(r.reason, Catch::Contains("queue is full"));
    }
    CHECK(indexes.size() == 25);
    CHECK(h.completions().unexpected() == 0);
}

TEST_CASE("kafka-sink submit: interrupt settles every batch in flight at once",
          "[kafka-sink][submit]") {
    Harness<KafkaSink> h(Options{
        {"brokers", "127.0.0.1:1"}, {"topic", "nowhere"}, {"delivery_timeout_ms", "30000"}});
    std::vector<std::uint64_t> tokens;
    for (int b = 0; b < 3; ++b) {
        const auto s = h.submit(numbered("x", 4));
        REQUIRE(s.status == SLUICE_OK);
        tokens.push_back(s.token);
    }
    std::this_thread::sleep_for(milliseconds(100));
    CHECK(h.completions().pending() == 3);
    const auto t0 = Clock::now();
    CHECK(h.interrupt());
    for (const auto token : tokens) {
        const auto done = h.wait_completion(token, milliseconds(1000));
        REQUIRE(done);
        REQUIRE(done->rejects.size() == 4);
        for (const auto& r : done->rejects) {
            CHECK(r.status == SLUICE_RETRY);
            CHECK_THAT(r.reason, Catch::Contains("before the route had to stop"));
        }
    }
    CHECK(Clock::now() - t0 < milliseconds(500));
    CHECK(h.completions().duplicates() == 0);
}

TEST_CASE("kafka-sink submit: stop settles everything, nothing completes after it",
          "[kafka-sink][submit]") {
    MockKafka kafka;
    kafka.create_topic("late", 1);
    const Options options{{"brokers", kafka.bootstrap()},
                          {"topic", "late"},
                          {"delivery_timeout_ms", "5000"},
                          {"properties", Value::of_map({{"reconnect.backoff.max.ms", "100"}})}};
    // A second route on the same producer keeps it alive after the first one stops, so that
    // the stopped route's messages are delivered (and reported) later.
    Harness<KafkaSink> other(options);
    {
        Harness<KafkaSink> h(options);
        const auto warm = h.submit({message("t", "warm")});
        REQUIRE(h.wait_completion(warm.token)->rejects.empty());
        kafka.set_down();
        std::vector<std::uint64_t> tokens;
        for (int b = 0; b < 3; ++b) {
            const auto s = h.submit(numbered("s" + std::to_string(b) + "-", 5));
            REQUIRE(s.status == SLUICE_OK);
            tokens.push_back(s.token);
        }
        const auto t0 = Clock::now();
        h.stop(milliseconds(300));
        CHECK(Clock::now() - t0 < milliseconds(600));
        CHECK(h.completions().pending() == 0);
        for (const auto token : tokens) {
            const auto done = h.wait_completion(token, milliseconds(0));
            REQUIRE(done);
            CHECK(done->rejects.size() == 5);
        }
        kafka.set_up();
        // The reports for the stopped route's messages come now, into trackers the producer
        // keeps; none of them may reach the stopped instance.
        const auto s = other.submit({message("t", "after")});
        REQUIRE(s.status == SLUICE_OK);
        REQUIRE(other.wait_completion(s.token));
        std::this_thread::sleep_for(milliseconds(200));
        CHECK(h.completions().late() == 0);
        CHECK(h.completions().duplicates() == 0);
    }
    const auto values = values_of(kafka.read_all("late"));
    CHECK(values.count("after") == 1);
}

TEST_CASE("kafka-sink submit: a fatal producer error completes batches in flight with FATAL",
          "[kafka-sink][submit]") {
    MockKafka kafka;
    kafka.create_topic("fatal-submit", 1);
    const Options options{
        {"brokers", kafka.bootstrap()}, {"topic", "fatal-submit"}, {"linger_ms", "2000"}};
    Harness<KafkaSink> h(options);
    const auto s = h.submit(numbered("f", 3));  // lingers in librdkafka
    REQUIRE(s.status == SLUICE_OK);

    struct NullListener : sluice::plugins::kafka::ProducerListener {
        sluice::sdk::Host host{nullptr};
        const sluice::sdk::Host& log_host() const override { return host; }
        void on_brokers_down(const std::string&) override {}
        void on_fatal(const std::string&) override {}
    } listener;
    ConfigBuilder config(Harness<KafkaSink>::descriptor(), Options(options));
    const auto settings =
        sluice::plugins::kafka::ClusterSettings::from_config(sluice::sdk::Config(*config.get()));
    auto producer =
        sluice::plugins::kafka::ProducerPool::acquire(settings, listener, listener.host);
    rd_kafka_test_fatal_error(producer->handle(), RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                              "injected by the test");
    const auto done = h.wait_completion(s.token, milliseconds(2000));
    REQUIRE(done);
    CHECK(done->status == SLUICE_FATAL);
    CHECK_THAT(done->reason, Catch::Contains("injected by the test"));
    const auto after = h.submit({message("t", "after")});
    CHECK(after.status == SLUICE_FATAL);
    CHECK_THAT(after.error, Catch::Contains("injected by the test"));
    CHECK(h.completions().unexpected() == 0);
    sluice::plugins::kafka::ProducerPool::release(std::move(producer), listener, milliseconds(0));
}

TEST_CASE("kafka-sink start does not wait for an unreachable cluster's metadata", "[kafka-sink]") {
    const auto t0 = Clock::now();
    Harness<KafkaSink> h(Options{{"brokers", "127.0.0.1:1"}, {"topic", "constant"}});
    CHECK(Clock::now() - t0 < milliseconds(500));  // it used to wait up to 2 s here
    const auto t1 = Clock::now();
    h.stop(milliseconds(1000));
    CHECK(Clock::now() - t1 < milliseconds(1000));
}

TEST_CASE("kafka-sink: a new route's first message on a shared producer is not held",
          "[kafka-sink]") {
    // DESIGN.md: without metadata for a new topic librdkafka 2.0.2 may hold its first messages
    // about a second; the producer's metadata thread warms a constant topic up at start. (On
    // the mock cluster librdkafka also fetches it by itself, so this guards the latency and
    // runs the warm-up path; it cannot tell the two apart.)
    MockKafka kafka;
    const Options base{{"brokers", kafka.bootstrap()}, {"linger_ms", "0"}};
    const auto with_topic = [&](const std::string& topic) {
        Options o = base;
        o.emplace("topic", topic);
        return o;
    };
    Harness<KafkaSink> first(with_topic("warm.first"));
    const auto f = first.submit({message("t", "first")});
    REQUIRE(first.wait_completion(f.token));

    Harness<KafkaSink> h(with_topic("warm.second"));
    std::this_thread::sleep_for(milliseconds(300));
    const auto t0 = Clock::now();
    const auto s = h.submit({message("t", "second")});
    REQUIRE(s.status == SLUICE_OK);
    const auto done = h.wait_completion(s.token);
    REQUIRE(done);
    CHECK(done->rejects.empty());
    CHECK(Clock::now() - t0 < milliseconds(700));
    CHECK(count_logs(first, SLUICE_LOG_WARN, "no metadata") == 0);
}

TEST_CASE("kafka-sink metrics: delivery errors by error, in-flight messages, producer queue",
          "[kafka-sink][metrics]") {
    MockKafka kafka;
    kafka.create_topic("metered", 1);
    Harness<KafkaSink> h(Options{{"brokers", kafka.bootstrap()}, {"topic", "metered"}});
    REQUIRE(h.process(numbered("ok-", 3)) == SLUICE_OK);
    CHECK(h.metric("kafka_in_flight_messages") == 0.0);
    CHECK(h.metric("kafka_producer_queue_messages").has_value());
    CHECK_FALSE(h.metric("kafka_delivery_errors_total").has_value());

    // A permanent error for the next produce requests: the messages come back as errors and
    // are counted under librdkafka's name for the error.
    constexpr int kTopicAuthorizationFailed = 29;
    kafka.fail_produce(5, kTopicAuthorizationFailed);
    REQUIRE(h.process(numbered("refused-", 2)) == SLUICE_OK);
    REQUIRE(h.rejections().size() == 2);
    CHECK(h.rejections().front().status == SLUICE_ERROR);
    const auto errors = h.metric("kafka_delivery_errors_total", "TOPIC_AUTHORIZATION_FAILED");
    REQUIRE(errors.has_value());
    CHECK(*errors == 2.0);

    // After stop the shared producer may be gone: no queue figure is read from it.
    h.stop(milliseconds(2000));
    CHECK_FALSE(h.metric("kafka_producer_queue_messages").has_value());
}
