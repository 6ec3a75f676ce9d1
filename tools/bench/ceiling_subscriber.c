/*
 * sluice-bench-subscriber: the ceiling of the end-to-end benchmark.
 *
 * A plain C MQTT subscriber on paho.mqtt.c's MQTTAsync that does the least possible work per
 * message (it counts), so the rate at which it drains a backlog is what mosquitto can deliver
 * on this machine. tools/bench/e2e_bench.py compares Sluice against it.
 *
 *   sluice-bench-subscriber --setup-session [--url U] [--client-id ID] [--topic F] [--qos Q]
 *       connect with clean session false, subscribe, disconnect: mosquitto then keeps the
 *       persistent session and queues what is published while the subscriber is away.
 *   sluice-bench-subscriber --count N [--url U] [--client-id ID] [--topic F] [--qos Q]
 *                           [--timeout S]
 *   --mqtt-version 3.1.1|5 (default 5, as Sluice's mqtt-source); with 5 the session expiry
 *   interval is one day, so the session outlives the disconnect.
 *       connect to that session, count messages until N arrived, print one JSON line:
 *       {"received":N,"elapsed_s":...,"msgs_per_s":...,"cpu_s":...,"cpu_us_per_msg":...}
 *       elapsed_s runs from the connect call to the N-th message; cpu_s is this process's
 *       user+system CPU time over the same span (all threads). Exit 1 on timeout or error.
 */
#define _POSIX_C_SOURCE 200809L

#include <MQTTAsync.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct options {
    const char *url;
    const char *client_id;
    const char *topic;
    int qos;
    long count;
    double timeout_s;
    int setup_session;
    int v5;
};

/* What the callbacks report to the main thread. */
enum phase { PHASE_CONNECTING, PHASE_CONNECTED, PHASE_SUBSCRIBED, PHASE_DONE, PHASE_FAILED };

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static enum phase g_phase = PHASE_CONNECTING;
static char g_error[256];

static atomic_long g_received;
static long g_expected = -1;
static struct timespec g_done_at;

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double ts_s(const struct timespec *ts)
{
    return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void set_phase(enum phase p, const char *error)
{
    pthread_mutex_lock(&g_lock);
    if (g_phase != PHASE_FAILED && g_phase != PHASE_DONE) {
        g_phase = p;
        if (error != NULL) {
            snprintf(g_error, sizeof g_error, "%s", error);
        }
    }
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_lock);
}

/* Wait until the phase is at least `want` (or failed); false on timeout or failure. */
static int wait_phase(enum phase want, double deadline)
{
    int ok;
    struct timespec ts;
    ts.tv_sec = (time_t)deadline;
    ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&g_lock);
    while (g_phase < want && g_phase != PHASE_FAILED) {
        if (pthread_cond_timedwait(&g_cond, &g_lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    ok = g_phase >= want && g_phase != PHASE_FAILED;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *message)
{
    long n;
    (void)context;
    (void)topic_len;
    MQTTAsync_freeMessage(&message);
    MQTTAsync_free(topic);
    n = atomic_fetch_add_explicit(&g_received, 1, memory_order_relaxed) + 1;
    if (n == g_expected) {
        clock_gettime(CLOCK_MONOTONIC, &g_done_at);
        set_phase(PHASE_DONE, NULL);
    }
    return 1;
}

static void on_connection_lost(void *context, char *cause)
{
    char text[200];
    (void)context;
    snprintf(text, sizeof text, "connection lost: %s", cause != NULL ? cause : "(no cause)");
    set_phase(PHASE_FAILED, text);
}

static void on_connect(void *context, MQTTAsync_successData *response)
{
    (void)context;
    (void)response;
    set_phase(PHASE_CONNECTED, NULL);
}

static void on_connect_failure(void *context, MQTTAsync_failureData *response)
{
    char text[200];
    (void)context;
    snprintf(text, sizeof text, "connect failed: rc %d %s", response != NULL ? response->code : 0,
             response != NULL && response->message != NULL ? response->message : "");
    set_phase(PHASE_FAILED, text);
}

static void on_subscribe(void *context, MQTTAsync_successData *response)
{
    (void)context;
    if (response != NULL && response->alt.qos == 0x80) {
        set_phase(PHASE_FAILED, "subscription refused by the broker");
        return;
    }
    set_phase(PHASE_SUBSCRIBED, NULL);
}

static void on_subscribe_failure(void *context, MQTTAsync_failureData *response)
{
    char text[200];
    (void)context;
    snprintf(text, sizeof text, "subscribe failed: rc %d", response != NULL ? response->code : 0);
    set_phase(PHASE_FAILED, text);
}

static void on_connect5(void *context, MQTTAsync_successData5 *response)
{
    (void)context;
    (void)response;
    set_phase(PHASE_CONNECTED, NULL);
}

static void on_failure5(void *context, MQTTAsync_failureData5 *response)
{
    char text[200];
    (void)context;
    snprintf(text, sizeof text, "%s failed: rc %d reason %d %s",
             context != NULL ? (const char *)context : "request",
             response != NULL ? response->code : 0,
             response != NULL ? (int)response->reasonCode : 0,
             response != NULL && response->message != NULL ? response->message : "");
    set_phase(PHASE_FAILED, text);
}

static void on_subscribe5(void *context, MQTTAsync_successData5 *response)
{
    (void)context;
    if (response != NULL && (int)response->reasonCode >= 0x80) {
        set_phase(PHASE_FAILED, "subscription refused by the broker");
        return;
    }
    set_phase(PHASE_SUBSCRIBED, NULL);
}

static void usage(FILE *out)
{
    fputs("usage: sluice-bench-subscriber [--url tcp://127.0.0.1:1883] [--client-id ID]\n"
          "           [--topic sensors/#] [--qos 1] [--mqtt-version 3.1.1|5]\n"
          "           (--count N [--timeout 300] | --setup-session)\n"
          "  --setup-session  connect with clean session false, subscribe, disconnect\n"
          "  --count N        connect to the session and time until N messages arrived;\n"
          "                   prints one JSON line with elapsed and CPU time\n",
          out);
}

static int parse_args(int argc, char **argv, struct options *o)
{
    int i;
    o->url = "tcp://127.0.0.1:1883";
    o->client_id = "sluice-bench-subscriber";
    o->topic = "sensors/#";
    o->qos = 1;
    o->count = -1;
    o->timeout_s = 300.0;
    o->setup_session = 0;
    o->v5 = 1;
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--setup-session") == 0) {
            o->setup_session = 1;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "sluice-bench-subscriber: %s needs a value\n", a);
            return 0;
        }
        ++i;
        if (strcmp(a, "--url") == 0) {
            o->url = v;
        } else if (strcmp(a, "--client-id") == 0) {
            o->client_id = v;
        } else if (strcmp(a, "--topic") == 0) {
            o->topic = v;
        } else if (strcmp(a, "--qos") == 0) {
            o->qos = atoi(v);
        } else if (strcmp(a, "--count") == 0) {
            o->count = atol(v);
        } else if (strcmp(a, "--mqtt-version") == 0) {
            if (strcmp(v, "5") == 0) {
                o->v5 = 1;
            } else if (strcmp(v, "3.1.1") == 0) {
                o->v5 = 0;
            } else {
                fprintf(stderr, "sluice-bench-subscriber: --mqtt-version is 3.1.1 or 5\n");
                return 0;
            }
        } else if (strcmp(a, "--timeout") == 0) {
            o->timeout_s = atof(v);
        } else {
            fprintf(stderr, "sluice-bench-subscriber: unknown option %s\n", a);
            return 0;
        }
    }
    if (o->qos < 0 || o->qos > 2 || o->timeout_s <= 0.0 ||
        (!o->setup_session && o->count <= 0)) {
        fputs("sluice-bench-subscriber: need --setup-session or --count N > 0, qos 0..2, "
              "timeout > 0\n",
              stderr);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    struct options o;
    MQTTAsync client;
    MQTTAsync_createOptions create_opts = MQTTAsync_createOptions_initializer;
    MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer;
    MQTTAsync_connectOptions conn5 = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_responseOptions sub = MQTTAsync_responseOptions_initializer;
    MQTTAsync_disconnectOptions disc = MQTTAsync_disconnectOptions_initializer;
    MQTTProperties connect_props = MQTTProperties_initializer;
    MQTTProperty expiry;
    double start_wall, start_cpu, deadline;
    int rc, status = 0;

    if (!parse_args(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    g_expected = o.setup_session ? -1 : o.count;

    if (o.v5) {
        create_opts.MQTTVersion = MQTTVERSION_5;
    }
    rc = MQTTAsync_createWithOptions(&client, o.url, o.client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                     NULL, &create_opts);
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "sluice-bench-subscriber: create failed (rc %d) for %s\n", rc, o.url);
        return 1;
    }
    MQTTAsync_setCallbacks(client, NULL, on_connection_lost, on_message, NULL);

    if (o.v5) {
        conn = conn5;
        conn.cleanstart = 0;
        expiry.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
        expiry.value.integer4 = 86400;
        MQTTProperties_add(&connect_props, &expiry);
        conn.connectProperties = &connect_props;
        conn.onSuccess5 = on_connect5;
        conn.onFailure5 = on_failure5;
        conn.context = (void *)"connect";
        sub.onSuccess5 = on_subscribe5;
        sub.onFailure5 = on_failure5;
        sub.context = (void *)"subscribe";
    } else {
        conn.cleansession = 0;
        conn.onSuccess = on_connect;
        conn.onFailure = on_connect_failure;
        sub.onSuccess = on_subscribe;
        sub.onFailure = on_subscribe_failure;
    }
    conn.keepAliveInterval = 60;

    start_cpu = cpu_s();
    start_wall = now_s(CLOCK_MONOTONIC);
    deadline = now_s(CLOCK_REALTIME) + o.timeout_s;

    rc = MQTTAsync_connect(client, &conn);
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "sluice-bench-subscriber: connect to %s failed (rc %d)\n", o.url, rc);
        MQTTAsync_destroy(&client);
        return 1;
    }
    if (!wait_phase(PHASE_CONNECTED, deadline)) {
        status = 1;
    } else if (o.setup_session) {
        /* Only a fresh session needs the subscription; a resumed one already has it. */
        rc = MQTTAsync_subscribe(client, o.topic, o.qos, &sub);
        if (rc != MQTTASYNC_SUCCESS || !wait_phase(PHASE_SUBSCRIBED, deadline)) {
            status = 1;
        }
    } else if (!wait_phase(PHASE_DONE, deadline)) {
        status = 1;
    }

    if (status == 0 && !o.setup_session) {
        double elapsed = ts_s(&g_done_at) - start_wall;
        double cpu = cpu_s() - start_cpu; /* a few us after the last message: negligible */
        long n = atomic_load(&g_received);
        printf("{\"received\":%ld,\"elapsed_s\":%.6f,\"msgs_per_s\":%.1f,\"cpu_s\":%.6f,"
               "\"cpu_us_per_msg\":%.3f}\n",
               n, elapsed, (double)n / elapsed, cpu, cpu * 1e6 / (double)n);
        fflush(stdout);
    } else if (status != 0) {
        pthread_mutex_lock(&g_lock);
        fprintf(stderr, "sluice-bench-subscriber: %s (received %ld of %ld)\n",
                g_error[0] != '\0' ? g_error : "timed out", atomic_load(&g_received),
                g_expected);
        pthread_mutex_unlock(&g_lock);
    }

    disc.timeout = 1000;
    MQTTAsync_disconnect(client, &disc);
    {
        /* Bounded wait for the disconnect to go out before the client is destroyed. */
        double until = now_s(CLOCK_MONOTONIC) + 1.0;
        while (MQTTAsync_isConnected(client) && now_s(CLOCK_MONOTONIC) < until) {
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    MQTTAsync_destroy(&client);
    MQTTProperties_free(&connect_props);
    return status;
}
