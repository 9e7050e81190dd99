/* bench_producer.c: libdatasync's emit rates against a raw rabbitmq-c confirm loop on the same broker, in the same run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqp_util.h"
#include "bench_util.h"
#include "datasync.h"
#include "error.h"
#include "ids.h"
#include "spool.h"

#define EXCHANGE "ds_bench"
#define QUEUE "ds_bench.q"
#define WINDOW 1024 /* the library's confirm window */

static const char *url;
static int n_async = 20000, n_sync = 2000, rounds = 3;
/* DS_BENCH_QUEUE_TYPE: the bench queue's x-queue-type (bench/run.sh sets
 * quorum on the cluster); NULL: the broker's default, classic. */
static const char *queue_type;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_producer: %s: %s\n", what, why);
    exit(1);
}

static void connect_or_die(ds_amqp *a)
{
    char err[DS_ERRMSG_SIZE];
    memset(a, 0, sizeof *a);
    if (ds__amqp_connect(a, url, 0, 10000, err, sizeof err) < 0)
        die("connect", err);
}

static void check(ds_amqp *a, const char *what)
{
    char err[DS_ERRMSG_SIZE];
    if (ds__amqp_reply_error(amqp_get_rpc_reply(a->conn), what, err,
                             sizeof err) < 0)
        die(what, err);
}

static void reset_queue(void)
{
    ds_amqp a;
    connect_or_die(&a);
    amqp_exchange_declare(a.conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(EXCHANGE),
                          amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                          amqp_empty_table);
    check(&a, "exchange.declare");
    amqp_table_entry_t arg = {amqp_cstring_bytes("x-queue-type"),
                              {AMQP_FIELD_KIND_UTF8, {0}}};
    amqp_table_t args = {0, &arg};
    if (queue_type) {
        arg.value.value.bytes = amqp_cstring_bytes(queue_type);
        args.num_entries = 1;
    }
    amqp_queue_declare(a.conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(QUEUE), 0, 1,
                       0, 0, args);
    check(&a, "queue.declare");
    amqp_queue_bind(a.conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(QUEUE),
                    amqp_cstring_bytes(EXCHANGE),
                    amqp_cstring_bytes("data.sync"), amqp_empty_table);
    check(&a, "queue.bind");
    amqp_queue_purge(a.conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(QUEUE));
    check(&a, "queue.purge");
    ds__amqp_close(&a);
}

/* One event body as the library would make it: the raw loop sends exactly
 * these bytes with the same properties. */
static char *make_body(int i, size_t *len)
{
    char id[37], ts[32], *body = malloc(512);
    ds__uuid7(id);
    ds__rfc3339_ms(ds__now_ms(), ts);
    int n =
        snprintf(body, 512,
                 "{\"v\":1,\"id\":\"%s\",\"origin\":\"bench\",\"hlc\":%llu,"
                 "\"ts\":\"%s\",\"op\":\"update\",\"table\":\"users\","
                 "\"key\":{\"id\":%d},\"data\":{\"id\":%d,\"name\":\"user "
                 "%d\",\"email\":\"u%d@example.com\",\"balance\":\"12.50\"}}",
                 id, (unsigned long long)ds__now_ms() << 16, ts, i % 10000,
                 i % 10000, i, i);
    *len = (size_t)n;
    return body;
}

/* Baseline: rabbitmq-c alone, persistent + mandatory, a window of WINDOW
 * unconfirmed messages, confirms read as they stream back. */
static double raw_loop(char **bodies, size_t *lens, int n)
{
    ds_amqp a;
    uint64_t t0, acked = 0, sent = 0;
    char header_val[] = "bench";

    connect_or_die(&a);
    amqp_confirm_select(a.conn, DS_AMQP_CHANNEL);
    check(&a, "confirm.select");
    t0 = ds__now_ms();
    while (acked < (uint64_t)n) {
        while (sent < (uint64_t)n && sent - acked < WINDOW) {
            amqp_basic_properties_t props;
            amqp_table_entry_t h;
            char id[37];
            memcpy(id, bodies[sent] + 15, 36); /* the id inside the body */
            id[36] = '\0';
            h.key = amqp_cstring_bytes("x-origin");
            h.value.kind = AMQP_FIELD_KIND_UTF8;
            h.value.value.bytes = amqp_cstring_bytes(header_val);
            memset(&props, 0, sizeof props);
            props._flags =
                AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
            props.content_type = amqp_cstring_bytes("application/json");
            props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
            props.message_id = amqp_cstring_bytes(id);
            props.timestamp = ds__now_ms() / 1000;
            props.app_id = amqp_cstring_bytes("datasync");
            props.headers.num_entries = 1;
            props.headers.entries = &h;
            amqp_bytes_t body = {lens[sent], bodies[sent]};
            if (amqp_basic_publish(a.conn, DS_AMQP_CHANNEL,
                                   amqp_cstring_bytes(EXCHANGE),
                                   amqp_cstring_bytes("data.sync"), 1, 0,
                                   &props, body) != AMQP_STATUS_OK)
                die("raw publish", "failed");
            sent++;
        }
        amqp_frame_t f;
        struct timeval tv = {5, 0};
        if (amqp_simple_wait_frame_noblock(a.conn, &f, &tv) != AMQP_STATUS_OK)
            die("raw confirm", "no frame within 5 s");
        if (f.frame_type == AMQP_FRAME_METHOD &&
            f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *ack = f.payload.method.decoded;
            acked = ack->multiple ? ack->delivery_tag : acked + 1;
        }
    }
    double secs = (double)(ds__now_ms() - t0) / 1000.0;
    ds__amqp_close(&a);
    return n / secs;
}

static ds_producer *new_producer(const char *mode, const char *spool)
{
    ds_options *o = ds_options_new();
    ds_producer *p;
    char err[DS_ERRBUF_SIZE];
    if (ds_options_set(o, "amqp.url", url) ||
        ds_options_set(o, "amqp.exchange", EXCHANGE) ||
        ds_options_set(o, "node.id", "bench") ||
        ds_options_set(o, "producer.mode", mode) ||
        ds_options_set(o, "producer.spool_dir", spool))
        die("options", ds_options_errmsg(o));
    if (ds_producer_new(&p, o, err, sizeof err))
        die("producer", err);
    ds_options_free(o);
    /* Let the I/O thread connect before the clock starts. */
    if (ds_emit(p, DS_OP_CREATE, "users", "{\"id\":0}", "{\"id\":0}") ||
        ds_flush(p, 10000))
        die("producer warm-up", ds_producer_errmsg(p));
    return p;
}

static const char *key_of(int i, char *buf)
{
    sprintf(buf, "{\"id\":%d}", i % 10000);
    return buf;
}

static const char *data_of(int i, char *buf)
{
    sprintf(buf,
            "{\"id\":%d,\"name\":\"user %d\",\"email\":\"u%d@example.com\","
            "\"balance\":\"12.50\"}",
            i % 10000, i, i);
    return buf;
}

static double async_emit(const char *spool, int n)
{
    ds_producer *p = new_producer("async", spool);
    char key[64], data[256];
    uint64_t t0 = ds__now_ms();
    for (int i = 0; i < n; i++)
        if (ds_emit(p, DS_OP_UPDATE, "users", key_of(i, key), data_of(i, data)))
            die("async emit", ds_producer_errmsg(p));
    if (ds_flush(p, 60000))
        die("async flush", ds_producer_errmsg(p));
    double secs = (double)(ds__now_ms() - t0) / 1000.0;
    ds_producer_free(p);
    return n / secs;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static double sync_emit(const char *spool, int n, double *p50, double *p99)
{
    ds_producer *p = new_producer("sync", spool);
    uint64_t *lat = malloc(sizeof *lat * (size_t)n), t0 = now_us();
    char key[64], data[256];
    for (int i = 0; i < n; i++) {
        uint64_t s = now_us();
        if (ds_emit(p, DS_OP_UPDATE, "users", key_of(i, key), data_of(i, data)))
            die("sync emit", ds_producer_errmsg(p));
        lat[i] = now_us() - s;
    }
    double secs = (double)(now_us() - t0) / 1e6;
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    *p50 = (double)lat[n / 2] / 1000.0;
    *p99 = (double)lat[n * 99 / 100] / 1000.0;
    free(lat);
    ds_producer_free(p);
    return n / secs;
}

/* Spool appends as sync mode makes them while the broker is down: one
 * fsynced record each; and as async mode makes them: batches of 256. */
static double spool_rate(const char *dir, int n, size_t batch)
{
    ds_spool *s;
    char err[DS_ERRMSG_SIZE];
    size_t len;
    char *body = make_body(1, &len);
    const char **bodies = malloc(batch * sizeof *bodies);
    size_t *lens = malloc(batch * sizeof *lens);
    for (size_t i = 0; i < batch; i++) {
        bodies[i] = body;
        lens[i] = len;
    }
    if (ds__spool_open(&s, dir, err, sizeof err))
        die("spool", err);
    uint64_t t0 = now_us();
    for (int i = 0; i < n; i += (int)batch)
        if (ds__spool_append(s, bodies, lens, batch, err, sizeof err))
            die("spool append", err);
    double secs = (double)(now_us() - t0) / 1e6;
    ds__spool_close(s);
    free(body);
    free(bodies);
    free(lens);
    return n / secs;
}

static const char *remove_at_exit;

static void remove_spool(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", remove_at_exit);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", remove_at_exit);
}

int main(int argc, char **argv)
{
    char spool[] = "/tmp/ds-bench-spool-XXXXXX";
    double raw[16], lib[16], syn[16], p50[16], p99[16];
    char **bodies;
    size_t *lens;

    url = getenv("DS_TEST_AMQP_URL");
    if (!url)
        die("environment",
            "DS_TEST_AMQP_URL is not set (run through bench/run.sh)");
    if (argc > 1)
        n_async = atoi(argv[1]);
    if (getenv("DS_BENCH_ROUNDS"))
        rounds = atoi(getenv("DS_BENCH_ROUNDS"));
    if (rounds < 1 || rounds > 16)
        rounds = 3;
    queue_type = getenv("DS_BENCH_QUEUE_TYPE");
    if (queue_type && !*queue_type)
        queue_type = NULL;
    if (!mkdtemp(spool))
        die("mkdtemp", "failed");
    remove_at_exit = spool;
    atexit(remove_spool);

    /* DS_BENCH_ONLY=async: only the library's async rate, one line for
     * bench/run.sh's cluster comparison, which alternates the brokers. */
    const char *only = getenv("DS_BENCH_ONLY");
    if (only && strcmp(only, "async") == 0) {
        for (int r = 0; r < rounds; r++) {
            reset_queue();
            lib[r] = async_emit(spool, n_async);
        }
        reset_queue();
        printf("BENCH_ASYNC_EV_S=%.0f\n", bench_median(lib, rounds));
        return 0;
    }

    bodies = malloc(sizeof *bodies * (size_t)n_async);
    lens = malloc(sizeof *lens * (size_t)n_async);
    for (int i = 0; i < n_async; i++)
        bodies[i] = make_body(i, &lens[i]);

    /* Alternate baseline and library in every round, so drift on a shared
     * machine hits both alike; report medians and the ratio of medians. */
    for (int r = 0; r < rounds; r++) {
        reset_queue();
        raw[r] = raw_loop(bodies, lens, n_async);
        reset_queue();
        lib[r] = async_emit(spool, n_async);
        reset_queue();
        syn[r] = sync_emit(spool, n_sync, &p50[r], &p99[r]);
        fprintf(stderr, "round %d: raw %.0f/s, async %.0f/s, sync %.0f/s\n",
                r + 1, raw[r], lib[r], syn[r]);
    }
    reset_queue();
    char dir1[300], dir2[300];
    snprintf(dir1, sizeof dir1, "%s/one", spool);
    snprintf(dir2, sizeof dir2, "%s/batch", spool);
    double spool1 = spool_rate(dir1, 500, 1);
    double spool256 = spool_rate(dir2, 256 * 200, 256);

    double m_raw = bench_median(raw, rounds), m_lib = bench_median(lib, rounds);
    printf(
        "\nproducer benchmark (%d events async, %d sync, %d rounds, medians)\n",
        n_async, n_sync, rounds);
    printf("| measure                                | value          |\n");
    printf("|----------------------------------------|----------------|\n");
    printf("| raw rabbitmq-c confirm loop (baseline) | %8.0f ev/s  |\n", m_raw);
    printf("| ds_emit async + ds_flush               | %8.0f ev/s  |\n", m_lib);
    printf("| async / raw (target >= 0.90)           | %8.2f x     |\n",
           m_lib / m_raw);
    printf("| ds_emit sync                           | %8.0f ev/s  |\n",
           bench_median(syn, rounds));
    printf("| ds_emit sync latency p50               | %8.3f ms    |\n",
           bench_median(p50, rounds));
    printf("| ds_emit sync latency p99               | %8.3f ms    |\n",
           bench_median(p99, rounds));
    printf("| spool append, 1 record + fsync         | %8.0f rec/s |\n",
           spool1);
    printf("| spool append, 256 records + fsync      | %8.0f rec/s |\n",
           spool256);

    for (int i = 0; i < n_async; i++)
        free(bodies[i]);
    free(bodies);
    free(lens);
    return 0;
}
