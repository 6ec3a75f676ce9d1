#include "../src/topic_name.hpp"

#include <catch2/catch.hpp>

#include "../src/cluster_settings.hpp"

using namespace sluice::plugins::kafka;

TEST_CASE("topic names: illegal characters are replaced and counted", "[kafka-sink]") {
    std::string name = "sensors/room 1/temp";
    CHECK(sanitize_topic(name, '_') == 3);
    CHECK(name == "sensors_room_1_temp");
    std::string legal = "occupancy.Room-1_a";
    CHECK(sanitize_topic(legal, '_') == 0);
    CHECK(legal == "occupancy.Room-1_a");
    std::string utf8 = "caf\xc3\xa9";
    CHECK(sanitize_topic(utf8, '-') == 2);
    CHECK(utf8 == "caf--");
}

TEST_CASE("topic names: what Kafka refuses even with legal characters", "[kafka-sink]") {
    CHECK(topic_name_problem("ok.topic").empty());
    CHECK_FALSE(topic_name_problem("").empty());
    CHECK_FALSE(topic_name_problem(".").empty());
    CHECK_FALSE(topic_name_problem("..").empty());
    CHECK(topic_name_problem("...").empty());
    CHECK(topic_name_problem(std::string(kMaxTopicLength, 'a')).empty());
    CHECK_FALSE(topic_name_problem(std::string(kMaxTopicLength + 1, 'a')).empty());
    CHECK_FALSE(topic_name_problem("a/b").empty());
}

TEST_CASE("cluster settings: canonical key ignores property order, describe hides secrets",
          "[kafka-sink]") {
    ClusterSettings a;
    a.brokers = "b:9092";
    a.properties = {{"client.id", "x"}, {"sasl.password", "hunter2"}};
    ClusterSettings b = a;
    b.properties = {{"sasl.password", "hunter2"}, {"client.id", "x"}};
    CHECK(a.canonical_key() == b.canonical_key());
    b.linger_ms = 6;
    CHECK(a.canonical_key() != b.canonical_key());
    // Values cannot shift into neighbouring fields.
    ClusterSettings c = a;
    c.properties = {{"client.id", "x4:sasl"}};
    CHECK(a.canonical_key() != c.canonical_key());

    const std::string text = a.describe();
    CHECK(text.find("hunter2") == std::string::npos);
    CHECK(text.find("sasl.password=***") != std::string::npos);
    CHECK(text.find("client.id=x") != std::string::npos);
    CHECK(is_secret_property("ssl.key.password"));
    CHECK(is_secret_property("sasl.oauthbearer.client.SECRET"));
    CHECK_FALSE(is_secret_property("sasl.username"));
    // By pattern (issue 13): private keys inline or by path, and SASL settings that are not
    // known to be public.
    for (const char* name : {"ssl.key.pem", "SSL.KEY.PEM", "ssl_key", "ssl.key.location",
                             "ssl.keystore.location", "client.key.pem", "sasl.oauthbearer.config",
                             "sasl.kerberos.keytab", "sasl.oauthbearer.extensions"}) {
        INFO(name);
        CHECK(is_secret_property(name));
    }
    for (const char* name : {"sasl.mechanism", "sasl.mechanisms", "ssl.ca.location",
                             "ssl.certificate.pem", "security.protocol", "client.id"}) {
        INFO(name);
        CHECK_FALSE(is_secret_property(name));
    }
}
