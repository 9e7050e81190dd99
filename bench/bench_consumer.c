/* bench_consumer.c: datasync-consumer's apply rate from a pre-filled queue against a no-op, a naive C and the seed's PHP per-message consumer, in the same run. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <mysql.h>

#include "amqp_util.h"
#include "bench_util.h"
#include "support.h"
#include "config.h"
#include "error.h"
#include "ids.h"
#include "mysql_util.h"
#include "topology.h"

/*
 * Three consumers drain the same durable queue, filled with the same
 * persistent messages before each measurement (the fill is not timed):
 *   (a) the built datasync-consumer, as a process with a configuration,
 *       from its start until the queue is empty and the last change is
 *       committed;
 *   (b) a no-op rabbitmq-c consumer: same prefetch, one basic.ack(multiple)
 *       every batch_max messages (as the real one acks a full batch), no
 *       decoding, no database;
 *   (c) a naive consumer: per message json-c parse, one prepared upsert
 *       (INSERT ... ON DUPLICATE KEY UPDATE) or DELETE by primary key,
 *       commit, basic.ack of that message alone; it keeps no versions, so
 *       it does less work per change than (a). It runs on a prefix of the
 *       events (DS_BENCH_NAIVE) to keep the run bounded: one commit each;
 *   (d) the seed's consumer, bench/seed_consumer.php: php-amqp and mysqli,
 *       prefetch 100, per message json_decode, one REPLACE or DELETE in
 *       autocommit, one ack; what users run without datasync. Same prefix
 *       of events as (c); skipped, and said so, when php, php-amqp or
 *       php-mysql is missing (scripts/install-deps.sh --bench).
 * Rounds alternate (a), (b), (c), (d), so drift on a shared machine hits
 * all alike; the table shows medians and ratios of medians. Every
 * measurement checks its result: the queue empty after the consumer is gone
 * (nothing left unacked), no dead letters, and the rows (count, sum of a
 * column) and versions exactly as the events say. The output names the
 * MariaDB settings the rates depend on (durability, buffer pool, binlog).
 *
 * Environment, besides bench/run.sh's DS_TEST_*: DS_BENCH_EVENTS (100000),
 * DS_BENCH_KEYS (10000), DS_BENCH_NAIVE (10000, the prefix (c) consumes),
 * DS_BENCH_ROUNDS (3), DS_BENCH_PREFETCH (1000), DS_BENCH_BATCH (200,
 * apply.batch_max and (b)'s ack interval), DS_BENCH_NO_DEFAULT (set: skip
 * the extra run of (a) at the default prefetch), DS_BENCH_BASELINE_BIN
 * (another datasync-consumer, e.g. built from the commit before a change:
 * measured in every round right after (a), as (a0); its batch_max is
 * DS_BENCH_BASELINE_BATCH, DS_BENCH_BATCH unless set), DS_BENCH_METRICS_ONLY
 * (set: (a) with and without [metrics] only), DS_BENCH_AB (set:
 * only (a) and (a0), for a quick before/after), DS_BENCH_QUEUE_TYPE
 * (amqp.queue_type, classic), DS_BENCH_ONLY=consumer (only (a), one line
 * BENCH_CONSUMER_EV_S=: bench/run.sh's cluster comparison).
 */

#define NODE "bench-a"
#define EXCHANGE "ds_bench_consumer"
#define DB_REAL "ds_bench_real"
#define DB_NAIVE "ds_bench_naive"
#define DB_SEED "ds_bench_seed"
#define WINDOW 1024     /* unconfirmed publishes in flight while filling */
#define POLL_MS 20      /* completion polling of (a) */
#define RUN_LIMIT_S 300 /* one measurement longer than this is a failure */
#define NEW_ROUND_S 330 /* no new round starts after this much of the run */
#define NDATA 6         /* data columns besides the key */
#define DASHES "------------------------------------------------"

static const char *const data_cols[NDATA] = {"name", "email",   "price",
                                             "qty",  "updated", "note"};

static const char *url, *build_dir, *db_host;
static int db_port;
static int n_events = 100000, n_keys = 10000, n_naive = 10000, rounds = 3;
static int prefetch = 1000, batch_max = 200;
static const char *queue_type = "classic";
static char rundir[512];
static pid_t child; /* the consumer under test, killed if we die */

typedef struct bench_event {
    char *body;
    size_t len;
    char id[37];
} bench_event;

/* What the tables hold after a prefix of the events has applied. */
typedef struct expect {
    long rows, keys;
    long long qty_sum;
    int last_key; /* key of the prefix's last event: it carries the max hlc */
    unsigned long long last_hlc;
} expect;

static bench_event *events;
static expect exp_all, exp_naive;

/* bench_die's cleanup: the consumer under test goes with us. */
static void kill_child(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* The events                                                                 */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd(void)
{
    /* xorshift64*: deterministic, so every run publishes the same mix. */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * UINT64_C(2685821657736338717)) >> 32);
}

/*
 * n events over nkeys keys of table items: 70% update, 20% create, 10%
 * delete, keys uniform at random, origins bench-x and bench-y (both remote
 * to NODE), hlc strictly increasing, so every change is newer than the
 * stored version and applies: the consumer's most expensive case.
 */
static void make_events(void)
{
    bool *present = calloc((size_t)n_keys + 1, sizeof *present);
    bool *touched = calloc((size_t)n_keys + 1, sizeof *touched);
    int *qty = calloc((size_t)n_keys + 1, sizeof *qty);
    uint64_t base = ds__now_ms() << 16;
    char ts[32], data[600];
    long rows = 0, keys = 0;
    long long qty_sum = 0;

    events = calloc((size_t)n_events, sizeof *events);
    if (!present || !touched || !qty || !events)
        bench_die("events", "out of memory");
    ds__rfc3339_ms(ds__now_ms(), ts);
    for (int i = 0; i < n_events; i++) {
        bench_event *e = &events[i];
        uint32_t r = rnd() % 100;
        int k = (int)(rnd() % (uint32_t)n_keys) + 1;
        const char *op = r < 70 ? "update" : r < 90 ? "create" : "delete";
        const char *origin = rnd() & 1 ? "bench-x" : "bench-y";
        unsigned long long hlc = (unsigned long long)(base + (uint64_t)i);
        int q = (int)(rnd() % 1000);

        if (ds__uuid7(e->id))
            bench_die("events", "no randomness for event ids");
        if (r < 90) {
            char note[128] = "null";
            if (rnd() % 4)
                snprintf(note, sizeof note,
                         "\"revision %d of item %d, changed on the other "
                         "server\"",
                         i, k);
            snprintf(data, sizeof data,
                     ",\"data\":{\"id\":%d,\"name\":\"item %d rev %d\","
                     "\"email\":\"owner%d@example.com\",\"price\":\"%u.%02u\","
                     "\"qty\":%d,\"updated\":\"2026-01-%02u %02u:%02u:%02u."
                     "%03u\",\"note\":%s}",
                     k, k, i, k, rnd() % 100000, rnd() % 100, q, 1 + rnd() % 28,
                     rnd() % 24, rnd() % 60, rnd() % 60, rnd() % 1000, note);
            if (!present[k])
                rows++;
            else
                qty_sum -= qty[k];
            present[k] = true;
            qty[k] = q;
            qty_sum += q;
        } else {
            data[0] = '\0';
            if (present[k]) {
                rows--;
                qty_sum -= qty[k];
            }
            present[k] = false;
        }
        if (!touched[k]) {
            touched[k] = true;
            keys++;
        }
        e->body = malloc(strlen(data) + 300);
        if (!e->body)
            bench_die("events", "out of memory");
        e->len = (size_t)sprintf(
            e->body,
            "{\"v\":1,\"id\":\"%s\",\"origin\":\"%s\",\"hlc\":%llu,\"ts\":"
            "\"%s\",\"op\":\"%s\",\"table\":\"items\",\"key\":{\"id\":%d}%s}",
            e->id, origin, hlc, ts, op, k, data);
        expect now = {rows, keys, qty_sum, k, hlc};
        if (i + 1 == n_naive)
            exp_naive = now;
        if (i + 1 == n_events)
            exp_all = now;
    }
    free(present);
    free(touched);
    free(qty);
}

/* ------------------------------------------------------------------------ */
/* Broker and database helpers                                                */

static void config_for(ds_config *cfg, const char *database)
{
    char err[DS_ERRMSG_SIZE], port[16];
    snprintf(port, sizeof port, "%d", db_port);
    ds__config_defaults(cfg);
    if (ds__config_set(cfg, "node.id", NODE, err, sizeof err) ||
        ds__config_set(cfg, "amqp.url", url, err, sizeof err) ||
        ds__config_set(cfg, "amqp.exchange", EXCHANGE, err, sizeof err) ||
        ds__config_set(cfg, "amqp.queue_type", queue_type, err, sizeof err) ||
        ds__config_set(cfg, "mysql.host", db_host, err, sizeof err) ||
        ds__config_set(cfg, "mysql.port", port, err, sizeof err) ||
        ds__config_set(cfg, "mysql.user", "root", err, sizeof err) ||
        ds__config_set(cfg, "mysql.database", database, err, sizeof err))
        bench_die("config", err);
}

static void amqp_open(ds_amqp *a)
{
    char err[DS_ERRMSG_SIZE];
    memset(a, 0, sizeof *a);
    if (ds__amqp_connect(a, url, 0, 30000, err, sizeof err) < 0)
        bench_die("connect", err);
}

static void check(ds_amqp *a, const char *what)
{
    char err[DS_ERRMSG_SIZE];
    if (ds__amqp_reply_error(amqp_get_rpc_reply(a->conn), what, err,
                             sizeof err) < 0)
        bench_die(what, err);
}

static long queue_depth(ds_amqp *a, const char *queue)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(a->conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(queue),
                           1, 0, 0, 0, amqp_empty_table);
    if (!ok)
        check(a, "queue.declare (passive)");
    return ok ? (long)ok->message_count : -1;
}

static const char *node_queue(void)
{
    static char q[128];
    ds__topology_node_queue(NODE, q, sizeof q);
    return q;
}

static const char *dead_queue(void)
{
    static char q[128];
    ds__topology_dead_queue(NODE, q, sizeof q);
    return q;
}

/*
 * Empties the node's queues and publishes the first n events through the
 * exchange, persistent and mandatory, with the producer's properties,
 * WINDOW unconfirmed at most, until the broker confirmed every one. The
 * topology is declared by the consumer's own code, so its start-up declare
 * meets identical arguments.
 */
static double fill_queue(int n)
{
    ds_amqp a;
    ds_config cfg;
    char err[DS_ERRMSG_SIZE];
    uint64_t acked = 0, sent = 0, t0 = bench_now_us();

    config_for(&cfg, DB_REAL);
    amqp_open(&a);
    if (ds__topology_declare_exchanges(&a, &cfg, err, sizeof err) ||
        ds__topology_declare_node(&a, &cfg, NODE, NULL, err, sizeof err))
        bench_die("topology", err);
    amqp_queue_purge(a.conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(node_queue()));
    check(&a, "queue.purge");
    amqp_queue_purge(a.conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(dead_queue()));
    check(&a, "queue.purge");
    amqp_confirm_select(a.conn, DS_AMQP_CHANNEL);
    check(&a, "confirm.select");
    while (acked < (uint64_t)n) {
        while (sent < (uint64_t)n && sent - acked < WINDOW) {
            const bench_event *e = &events[sent];
            amqp_basic_properties_t props;
            memset(&props, 0, sizeof props);
            props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                           AMQP_BASIC_DELIVERY_MODE_FLAG |
                           AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_APP_ID_FLAG;
            props.content_type = amqp_cstring_bytes("application/json");
            props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
            props.message_id = amqp_cstring_bytes(e->id);
            props.app_id = amqp_cstring_bytes("datasync");
            amqp_bytes_t body = {e->len, e->body};
            if (amqp_basic_publish(a.conn, DS_AMQP_CHANNEL,
                                   amqp_cstring_bytes(EXCHANGE),
                                   amqp_cstring_bytes("data.sync"), 1, 0,
                                   &props, body) != AMQP_STATUS_OK)
                bench_die("fill", "publish failed");
            sent++;
        }
        amqp_frame_t f;
        struct timeval tv = {30, 0};
        if (amqp_simple_wait_frame_noblock(a.conn, &f, &tv) != AMQP_STATUS_OK)
            bench_die("fill", "no confirm within 30 s");
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *ack = f.payload.method.decoded;
            acked = ack->multiple ? ack->delivery_tag : acked + 1;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD ||
                   f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            bench_die("fill", "the broker refused or returned a message");
        }
        amqp_maybe_release_buffers(a.conn);
    }
    double secs = (double)(bench_now_us() - t0) / 1e6;
    long depth = queue_depth(&a, node_queue());
    if (depth != n) {
        snprintf(err, sizeof err, "queue holds %ld messages, expected %d",
                 depth, n);
        bench_die("fill", err);
    }
    ds__amqp_close(&a);
    return n / secs;
}

/* A fresh database with the application table: seven columns, integer
 * key, text, exact decimal, date-time, a secondary index to maintain. */
static void reset_database(MYSQL *db, const char *name)
{
    char q[512];
    snprintf(q, sizeof q, "DROP DATABASE IF EXISTS %s", name);
    bench_sql(db, q);
    snprintf(q, sizeof q, "CREATE DATABASE %s CHARACTER SET utf8mb4", name);
    bench_sql(db, q);
    snprintf(q, sizeof q,
             "CREATE TABLE %s.items (id INT PRIMARY KEY, name VARCHAR(64) "
             "NOT NULL, email VARCHAR(128), price DECIMAL(12,2) NOT NULL, qty "
             "INT NOT NULL, updated DATETIME(3) NOT NULL, note VARCHAR(255), "
             "KEY items_updated (updated)) ENGINE=InnoDB",
             name);
    bench_sql(db, q);
}

/* The rows must be what the events say, or the rate means nothing. */
static void verify_rows(MYSQL *db, const char *name, const expect *x,
                        const char *who)
{
    char q[256], why[256];
    snprintf(q, sizeof q, "SELECT COUNT(*) FROM %s.items", name);
    long long rows = bench_scalar(db, q);
    snprintf(q, sizeof q, "SELECT COALESCE(SUM(qty), 0) FROM %s.items", name);
    long long sum = bench_scalar(db, q);
    if (rows != x->rows || sum != x->qty_sum) {
        snprintf(why, sizeof why,
                 "%s.items has %lld rows, qty sum %lld; expected %ld, %lld",
                 name, rows, sum, x->rows, x->qty_sum);
        bench_die(who, why);
    }
}

/* ------------------------------------------------------------------------ */
/* (a) datasync-consumer                                                      */

static long vm_hwm_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Statements the server executed: prepared executes plus COMMITs, which
 * is every round trip of the daemon's apply loop (the polling here uses
 * plain queries, counted in neither). */
static long long server_round_trips(MYSQL *db)
{
    return bench_scalar(db,
                        "SELECT SUM(VARIABLE_VALUE) FROM "
                        "information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME "
                        "IN ('COM_STMT_EXECUTE', 'COM_COMMIT')");
}

/* CPU seconds of MariaDB and RabbitMQ so far: what a run cost the servers,
 * steadier than its rate on a shared machine. */
static void servers_cpu(double *db, double *broker)
{
    *db = bench_proc_cpu_s(bench_pidfile(rundir, "maria/mariadbd.pid"));
    *broker = bench_proc_cpu_s(bench_pidfile(rundir, "rabbit/rabbit.pid"));
}

/* Whether the endpoint answered a scrape with the applied counter. */
static bool scrape(int port)
{
    const char *r = bench_scrape_metrics(port);
    return r && bench_metric(r, "datasync_consumer_changes_applied_total") >= 0;
}

typedef struct real_result {
    double rate;
    long hwm_kib;                  /* peak RSS, read just before SIGTERM */
    double cpu_s;                  /* the daemon's user + system time */
    double trips_per_ev;           /* database round trips per event */
    double db_cpu_s, broker_cpu_s; /* the servers' CPU during the run */
    int scrapes;                   /* answered scrapes of /metrics, when on */
} real_result;

/* Runs the built daemon (or bin_path) on a pre-filled queue; with metrics,
 * its endpoint on, scraped every second while it runs. */
static real_result run_real(MYSQL *admin, int pf, const char *bin_path,
                            int batch, bool metrics)
{
    char conf[600], logf[600], bin[600], q[256], why[700];
    int status;
    real_result res;
    struct rusage ru;

    reset_database(admin, DB_REAL);
    fill_queue(n_events);

    snprintf(conf, sizeof conf, "%s/bench-consumer-%d.conf", rundir, pf);
    snprintf(logf, sizeof logf, "%s/bench-consumer.log", rundir);
    if (bin_path)
        snprintf(bin, sizeof bin, "%s", bin_path);
    else
        snprintf(bin, sizeof bin, "%s/datasync-consumer", build_dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        bench_die(conf, strerror(errno));
    fprintf(f,
            "[node]\nid = %s\n"
            "[amqp]\nurl = %s\nexchange = %s\nqueue_type = %s\nprefetch = %d\n"
            "[mysql]\nhost = %s\nport = %d\nuser = root\ndatabase = %s\n"
            "[apply]\ntables = items\nbatch_max = %d\n"
            "[log]\nlevel = info\n",
            NODE, url, EXCHANGE, queue_type, pf, db_host, db_port, DB_REAL,
            batch);
    int port = metrics ? ts_loopback_port() : 0;
    if (port < 0)
        bench_die("free port", strerror(errno));
    if (metrics)
        fprintf(f, "[metrics]\nlisten = 127.0.0.1:%d\n", port);
    fclose(f);
    res.scrapes = 0;

    ds_amqp a;
    amqp_open(&a);
    snprintf(q, sizeof q,
             "SELECT hlc FROM %s.datasync_versions WHERE tbl = 'items' AND "
             "pk = '[%d]'",
             DB_REAL, exp_all.last_key);

    long long trips0 = server_round_trips(admin);
    double db0, broker0, db1, broker1;
    servers_cpu(&db0, &broker0);
    uint64_t t0 = bench_now_us(), next_scrape = t0;
    child = bench_spawn(logf, (const char *[]){bin, "-c", conf, NULL});
    /* Done once nothing is ready in the queue and the last event, which
     * carries the highest version, is committed: the consumer applies in
     * order, so everything before it is committed too. */
    for (;;) {
        if (waitpid(child, &status, WNOHANG) == child) {
            child = 0;
            snprintf(why, sizeof why, "exited early (status 0x%x); see %s",
                     status, logf);
            bench_die("datasync-consumer", why);
        }
        if (metrics && bench_now_us() >= next_scrape) {
            res.scrapes += scrape(port);
            next_scrape += 1000000u;
        }
        if (queue_depth(&a, node_queue()) == 0 &&
            (unsigned long long)bench_scalar(admin, q) == exp_all.last_hlc)
            break;
        if (bench_now_us() - t0 > (uint64_t)RUN_LIMIT_S * 1000000u) {
            snprintf(why, sizeof why, "not done after %d s; see %s",
                     RUN_LIMIT_S, logf);
            bench_die("datasync-consumer", why);
        }
        ts_sleep_ms(POLL_MS);
    }
    double secs = (double)(bench_now_us() - t0) / 1e6;
    res.rate = n_events / secs;
    res.hwm_kib = vm_hwm_kib(child);
    res.trips_per_ev = (double)(server_round_trips(admin) - trips0) / n_events;
    servers_cpu(&db1, &broker1);
    res.db_cpu_s = db1 - db0;
    res.broker_cpu_s = broker1 - broker0;

    kill(child, SIGTERM);
    uint64_t end = bench_now_us() + 10 * 1000000u;
    while (wait4(child, &status, WNOHANG, &ru) != child) {
        if (bench_now_us() > end)
            bench_die("datasync-consumer", "no exit within 10 s of SIGTERM");
        ts_sleep_ms(10);
    }
    child = 0;
    res.cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(why, sizeof why, "stopped with status 0x%x; see %s", status,
                 logf);
        bench_die("datasync-consumer", why);
    }
    /* Its connection is closed: anything unacked would be ready again. */
    if (queue_depth(&a, node_queue()) != 0 ||
        queue_depth(&a, dead_queue()) != 0)
        bench_die("datasync-consumer",
                  "messages left unacked or dead-lettered");
    ds__amqp_close(&a);
    verify_rows(admin, DB_REAL, &exp_all, "datasync-consumer");
    snprintf(q, sizeof q, "SELECT COUNT(*) FROM %s.datasync_versions", DB_REAL);
    if (bench_scalar(admin, q) != exp_all.keys)
        bench_die("datasync-consumer",
                  "versions table does not hold every key");
    return res;
}

/* ------------------------------------------------------------------------ */
/* (b) and (c): rabbitmq-c consumers inside the bench                         */

static void start_consuming(ds_amqp *a)
{
    amqp_basic_qos(a->conn, DS_AMQP_CHANNEL, 0, (uint16_t)prefetch, 0);
    check(a, "basic.qos");
    amqp_basic_consume(a->conn, DS_AMQP_CHANNEL,
                       amqp_cstring_bytes(node_queue()), amqp_empty_bytes, 0, 0,
                       0, amqp_empty_table);
    check(a, "basic.consume");
}

static void next_message(ds_amqp *a, amqp_envelope_t *env)
{
    struct timeval tv = {30, 0};
    amqp_maybe_release_buffers(a->conn);
    amqp_rpc_reply_t r = amqp_consume_message(a->conn, env, &tv, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        check(a, "consume");
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        bench_die("consume", "no message within 30 s");
}

/* Consumes and acks, nothing else: what the broker and rabbitmq-c cost.
 * *broker_cpu_s: RabbitMQ's CPU meanwhile, beside (a)'s. */
static double run_noop(double *broker_cpu_s)
{
    ds_amqp a, probe;
    int got = 0;
    uint64_t last_tag = 0;
    double db0, broker0, db1, broker1;

    fill_queue(n_events);
    servers_cpu(&db0, &broker0);
    uint64_t t0 = bench_now_us();
    amqp_open(&a);
    start_consuming(&a);
    while (got < n_events) {
        amqp_envelope_t env;
        next_message(&a, &env);
        last_tag = env.delivery_tag;
        amqp_destroy_envelope(&env);
        if (++got % batch_max == 0 || got == n_events)
            if (amqp_basic_ack(a.conn, DS_AMQP_CHANNEL, last_tag, 1) !=
                AMQP_STATUS_OK)
                bench_die("no-op", "basic.ack failed");
    }
    double secs = (double)(bench_now_us() - t0) / 1e6;
    servers_cpu(&db1, &broker1);
    *broker_cpu_s = broker1 - broker0;
    ds__amqp_close(&a);
    amqp_open(&probe);
    if (queue_depth(&probe, node_queue()) != 0)
        bench_die("no-op", "messages left unacked");
    ds__amqp_close(&probe);
    return n_events / secs;
}

typedef struct naive_params {
    MYSQL_BIND b[1 + NDATA];
    long long ints[1 + NDATA];
    unsigned long lens[1 + NDATA];
} naive_params;

static void bind_value(naive_params *p, int i, json_object *v)
{
    MYSQL_BIND *b = &p->b[i];
    memset(b, 0, sizeof *b);
    switch (json_object_get_type(v)) {
    case json_type_int:
        p->ints[i] = json_object_get_int64(v);
        b->buffer_type = MYSQL_TYPE_LONGLONG;
        b->buffer = &p->ints[i];
        break;
    case json_type_string:
        p->lens[i] = (unsigned long)json_object_get_string_len(v);
        b->buffer_type = MYSQL_TYPE_STRING;
        b->buffer = (void *)json_object_get_string(v);
        b->buffer_length = p->lens[i];
        b->length = &p->lens[i];
        break;
    default:
        b->buffer_type = MYSQL_TYPE_NULL;
        break;
    }
}

static MYSQL_STMT *prepare(MYSQL *db, const char *text)
{
    MYSQL_STMT *st = mysql_stmt_init(db);
    if (!st || mysql_stmt_prepare(st, text, (unsigned long)strlen(text)))
        bench_die(text, st ? mysql_stmt_error(st) : "out of memory");
    return st;
}

/* One change per transaction, acked alone once committed: what a first
 * implementation would do. Same connection settings as the daemon's. */
static double run_naive(MYSQL *admin)
{
    ds_config cfg;
    MYSQL *db;
    ds_amqp a, probe;
    char err[DS_ERRMSG_SIZE];
    json_tokener *tok = json_tokener_new();
    naive_params p;

    reset_database(admin, DB_NAIVE);
    fill_queue(n_naive);
    config_for(&cfg, DB_NAIVE);
    uint64_t t0 = bench_now_us();
    if (ds__mysql_connect(&db, &cfg, err, sizeof err))
        bench_die("naive: mysql", err);
    MYSQL_STMT *upsert = prepare(
        db, "INSERT INTO items (id, name, email, price, qty, updated, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE name = "
            "VALUES(name), email = VALUES(email), price = VALUES(price), qty "
            "= VALUES(qty), updated = VALUES(updated), note = VALUES(note)");
    MYSQL_STMT *del = prepare(db, "DELETE FROM items WHERE id = ?");
    amqp_open(&a);
    start_consuming(&a);
    for (int got = 0; got < n_naive; got++) {
        amqp_envelope_t env;
        json_object *ev, *op, *key, *id, *data, *v;
        next_message(&a, &env);
        json_tokener_reset(tok);
        ev = json_tokener_parse_ex(tok, env.message.body.bytes,
                                   (int)env.message.body.len);
        if (!ev || !json_object_object_get_ex(ev, "op", &op) ||
            !json_object_object_get_ex(ev, "key", &key) ||
            !json_object_object_get_ex(key, "id", &id))
            bench_die("naive", "bad event");
        bool is_delete = strcmp(json_object_get_string(op), "delete") == 0;
        MYSQL_STMT *st = is_delete ? del : upsert;
        bind_value(&p, 0, id);
        if (!is_delete) {
            if (!json_object_object_get_ex(ev, "data", &data))
                bench_die("naive", "no data");
            for (int i = 0; i < NDATA; i++) {
                v = NULL;
                json_object_object_get_ex(data, data_cols[i], &v);
                bind_value(&p, 1 + i, v);
            }
        }
        if (mysql_stmt_bind_param(st, p.b) || mysql_stmt_execute(st))
            bench_die("naive: execute", mysql_stmt_error(st));
        if (mysql_commit(db))
            bench_die("naive: commit", mysql_error(db));
        if (amqp_basic_ack(a.conn, DS_AMQP_CHANNEL, env.delivery_tag, 0) !=
            AMQP_STATUS_OK)
            bench_die("naive", "basic.ack failed");
        json_object_put(ev);
        amqp_destroy_envelope(&env);
    }
    double secs = (double)(bench_now_us() - t0) / 1e6;
    ds__amqp_close(&a);
    mysql_stmt_close(upsert);
    mysql_stmt_close(del);
    mysql_close(db);
    json_tokener_free(tok);
    amqp_open(&probe);
    if (queue_depth(&probe, node_queue()) != 0)
        bench_die("naive", "messages left unacked");
    ds__amqp_close(&probe);
    verify_rows(admin, DB_NAIVE, &exp_naive, "naive");
    return n_naive / secs;
}

/* ------------------------------------------------------------------------ */
/* (d) the seed's PHP consumer                                                */

/* Why (d) cannot run here, or NULL when php has both extensions. */
static const char *seed_missing(void)
{
    int rc = system("php -r 'exit(extension_loaded(\"amqp\") && "
                    "extension_loaded(\"mysqli\") ? 0 : 3);' >/dev/null 2>&1");
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) == 127)
        return "php is not installed";
    if (WEXITSTATUS(rc) != 0)
        return "php-amqp or php-mysql is not installed";
    return NULL;
}

/* Runs bench/seed_consumer.php on the first n_naive events, from its start
 * until it exits after the last ack. */
static double run_seed(MYSQL *admin)
{
    char script[600], logf[600], port[16], count[16], why[700];
    const char *root = getenv("DS_TEST_ROOT");
    ds_amqp probe;
    int status;

    snprintf(script, sizeof script, "%s/bench/seed_consumer.php",
             root && *root ? root : ".");
    snprintf(logf, sizeof logf, "%s/bench-seed.log", rundir);
    snprintf(port, sizeof port, "%d", db_port);
    snprintf(count, sizeof count, "%d", n_naive);
    reset_database(admin, DB_SEED);
    fill_queue(n_naive);
    uint64_t t0 = bench_now_us();
    child = bench_spawn(logf,
                        (const char *[]){"php", script, url, node_queue(),
                                         db_host, port, DB_SEED, count, NULL});
    for (;;) {
        pid_t w = waitpid(child, &status, WNOHANG);
        if (w == child)
            break;
        if (bench_now_us() - t0 > (uint64_t)RUN_LIMIT_S * 1000000u)
            bench_die("seed consumer", "not done in time");
        ts_sleep_ms(POLL_MS);
    }
    double secs = (double)(bench_now_us() - t0) / 1e6;
    child = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(why, sizeof why, "stopped with status 0x%x; see %s", status,
                 logf);
        bench_die("seed consumer", why);
    }
    amqp_open(&probe);
    if (queue_depth(&probe, node_queue()) != 0)
        bench_die("seed consumer", "messages left unacked");
    ds__amqp_close(&probe);
    verify_rows(admin, DB_SEED, &exp_naive, "seed consumer");
    return n_naive / secs;
}

/* ------------------------------------------------------------------------ */

/* The server settings the rates depend on, as one line. */
static void print_db_settings(MYSQL *db)
{
    const char *q = "SELECT @@version, @@innodb_flush_log_at_trx_commit, "
                    "@@innodb_buffer_pool_size >> 20, @@innodb_log_file_size "
                    ">> 20, @@innodb_doublewrite, @@log_bin, @@sync_binlog";
    if (mysql_query(db, q))
        bench_die("settings", mysql_error(db));
    MYSQL_RES *res = mysql_store_result(db);
    MYSQL_ROW r = res ? mysql_fetch_row(res) : NULL;
    if (!r)
        bench_die("settings", "no row");
    printf("MariaDB %s: innodb_flush_log_at_trx_commit=%s, buffer pool %s "
           "MiB, redo log %s MiB, doublewrite %s, binlog %s, sync_binlog=%s\n",
           r[0], r[1], r[2], r[3], strcmp(r[4], "1") ? "off" : "on",
           strcmp(r[5], "1") ? "off" : "on", r[6]);
    mysql_free_result(res);
}

/* One table row: the label padded to the column, the value formatted. */
static void row(const char *label, const char *value)
{
    printf("| %-46s | %-14s |\n", label, value);
}

/* The median CPU per event of the daemon, MariaDB and RabbitMQ over n
 * runs of a consumer build, as three rows. */
static void cpu_rows(const char *who, const real_result *res, int n)
{
    double v[3][16];
    const char *what[3] = {"daemon", "MariaDB", "RabbitMQ"};
    char label[96], value[64];

    for (int i = 0; i < n; i++) {
        v[0][i] = res[i].cpu_s * 1e6 / n_events;
        v[1][i] = res[i].db_cpu_s * 1e6 / n_events;
        v[2][i] = res[i].broker_cpu_s * 1e6 / n_events;
    }
    for (int k = 0; k < 3; k++) {
        snprintf(label, sizeof label, "%s %s CPU per event", who, what[k]);
        snprintf(value, sizeof value, "%8.1f us", bench_median(v[k], n));
        row(label, value);
    }
}

/*
 * What this machine allows, from the same run: the most a consumer can be
 * over (d) when the broker alone, (b), bounds it; and the rate at which
 * the daemon, MariaDB and RabbitMQ, at their CPU per event, would fill
 * every core, and how near (a) came to it.
 */
static void ceiling_rows(const real_result *res, int n, double m_a, double m_b,
                         double m_d, bool no_seed)
{
    double per_event[16];
    char value[64];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (!no_seed) {
        snprintf(value, sizeof value, "%8.2f x", m_b / m_d);
        row("(b) / (d): the most (a) / (d) can be here", value);
    }
    for (int i = 0; i < n; i++)
        per_event[i] =
            (res[i].cpu_s + res[i].db_cpu_s + res[i].broker_cpu_s) / n_events;
    double full = (double)(cores > 0 ? cores : 1) / bench_median(per_event, n);
    snprintf(value, sizeof value, "%8.0f ev/s", full);
    char label[96];
    snprintf(label, sizeof label, "(a)'s CPU per event filling %ld cores",
             cores);
    row(label, value);
    snprintf(value, sizeof value, "%8.2f x", m_a / full);
    row("(a) / that CPU bound", value);
    /* However well (a) overlapped its parts, it could not pass that rate:
     * the (a) / (b) this machine allows at (a)'s CPU per event. */
    snprintf(value, sizeof value, "%8.2f x", full / m_b);
    row("that bound / (b): the most (a) / (b) can be", value);
}

int main(void)
{
    double ra[16], rm[16], rb[16], rc[16], rs[16], rb0[16], cpu[16], cpu_m[16],
        trips[16], rb_broker[16], fill;
    int scrapes = 0;
    /* (a) with [metrics] on, beside (a): the cost of the metrics. */
    bool metrics_only = getenv("DS_BENCH_METRICS_ONLY") != NULL;
    /* Another build of the daemon (e.g. the commit before a change), run
     * in every round beside this one: a before/after in one run. */
    const char *base_bin = getenv("DS_BENCH_BASELINE_BIN");
    real_result as[16], a0s[16];
    long peak = 0;
    real_result def = {.hwm_kib = -1};
    int done = 0;
    const int default_prefetch = 500; /* amqp.prefetch's default */
    char label[96], value[64];

    bench_init("bench_consumer", kill_child);
    url = getenv("DS_TEST_AMQP_URL");
    build_dir = getenv("DS_TEST_BUILD");
    db_host = getenv("DS_TEST_MYSQL_HOST");
    if (!url || !build_dir || !db_host || !getenv("DS_TEST_MYSQL_PORT"))
        bench_die("environment",
                  "DS_TEST_AMQP_URL, DS_TEST_BUILD, "
                  "DS_TEST_MYSQL_HOST/PORT are not set (run through "
                  "bench/run.sh)");
    db_port = atoi(getenv("DS_TEST_MYSQL_PORT"));
    n_events = bench_env_int("DS_BENCH_EVENTS", n_events, 1000, 10000000);
    n_keys = bench_env_int("DS_BENCH_KEYS", n_keys, 1, 10000000);
    n_naive = bench_env_int("DS_BENCH_NAIVE", n_naive, 100, n_events);
    if (n_naive > n_events)
        n_naive = n_events;
    rounds = bench_env_int("DS_BENCH_ROUNDS", rounds, 1, 16);
    prefetch = bench_env_int("DS_BENCH_PREFETCH", prefetch, 1, 65535);
    batch_max = bench_env_int("DS_BENCH_BATCH", batch_max, 1, 10000);
    int base_batch =
        bench_env_int("DS_BENCH_BASELINE_BATCH", batch_max, 1, 10000);
    if (getenv("DS_BENCH_QUEUE_TYPE") && *getenv("DS_BENCH_QUEUE_TYPE"))
        queue_type = getenv("DS_BENCH_QUEUE_TYPE");
    const char *only = getenv("DS_BENCH_ONLY");
    bool only_real = only && strcmp(only, "consumer") == 0;
    const char *rd = getenv("DS_TEST_RUNDIR");
    snprintf(rundir, sizeof rundir, "%s", rd && *rd ? rd : "/tmp");
    signal(SIGPIPE, SIG_IGN);

    uint64_t start = bench_now_us();
    const char *no_seed = seed_missing();
    if (no_seed)
        fprintf(stderr,
                "(d) the seed's PHP consumer is skipped: %s "
                "(scripts/install-deps.sh --bench)\n",
                no_seed);
    make_events();
    MYSQL *admin = bench_db_connect(db_host, db_port);
    fill = fill_queue(n_events); /* warm-up; also the fill rate for the log */
    fprintf(stderr, "fill: %d persistent messages at %.0f/s (not timed)\n",
            n_events, fill);

    /* Alternate (a), (b), (c), (d) in every round; past three rounds (a
     * median of three at least), stop starting new ones once the run would
     * no longer fit its budget. */
    for (int r = 0; r < rounds; r++) {
        if (r >= 3 && bench_now_us() - start > (uint64_t)NEW_ROUND_S * 1000000u)
            break;
        bool ab = getenv("DS_BENCH_AB") != NULL || only_real;
        /* Metrics off then on, on then off: each goes first in every other
         * round. */
        real_result m = {0};
        if (r % 2 && !ab)
            m = run_real(admin, prefetch, NULL, batch_max, true);
        real_result a = run_real(admin, prefetch, NULL, batch_max, false);
        if (r % 2 == 0 && !ab)
            m = run_real(admin, prefetch, NULL, batch_max, true);
        rm[r] = m.rate;
        cpu_m[r] = m.cpu_s;
        scrapes += m.scrapes;
        if (base_bin) {
            a0s[r] = run_real(admin, prefetch, base_bin, base_batch, false);
            rb0[r] = a0s[r].rate;
            fprintf(stderr, "round %d: baseline build %.0f/s\n", r + 1, rb0[r]);
        }
        ra[r] = a.rate;
        if (only_real) {
            done++;
            continue;
        }
        as[r] = a;
        cpu[r] = a.cpu_s;
        trips[r] = a.trips_per_ev;
        if (a.hwm_kib > peak)
            peak = a.hwm_kib;
        bool skip = ab || metrics_only;
        rb_broker[r] = 0;
        rb[r] = skip ? 1 : run_noop(&rb_broker[r]);
        rc[r] = skip ? 1 : run_naive(admin);
        rs[r] = no_seed || skip ? 1 : run_seed(admin);
        done++;
        fprintf(stderr,
                "round %d: consumer %.0f/s (%.2f round trips/event, %.1f s "
                "CPU, peak RSS %.1f MiB), with metrics %.0f/s (%d scrapes), "
                "no-op %.0f/s, naive %.0f/s, seed PHP %.0f/s [%.0f s]\n",
                r + 1, ra[r], trips[r], cpu[r], a.hwm_kib / 1024.0, rm[r],
                m.scrapes, rb[r], rc[r], rs[r],
                (double)(bench_now_us() - start) / 1e6);
    }
    if (only_real) {
        mysql_close(admin);
        printf("BENCH_CONSUMER_EV_S=%.0f\n", bench_median(ra, done));
        return 0;
    }
    if (prefetch != default_prefetch && !getenv("DS_BENCH_NO_DEFAULT") &&
        !metrics_only) {
        def = run_real(admin, default_prefetch, NULL, batch_max, false);
        fprintf(stderr, "prefetch %d: consumer %.0f/s, peak RSS %.1f MiB\n",
                default_prefetch, def.rate, def.hwm_kib / 1024.0);
    }

    double m_a = bench_median(ra, done), m_b = bench_median(rb, done),
           m_c = bench_median(rc, done), m_d = bench_median(rs, done);
    printf("\nconsumer benchmark: %d events over %d keys (70%% update, 20%% "
           "create, 10%% delete),\nprefetch %d, batch_max %d, %d rounds, "
           "medians; (c) on the first %d events\n",
           n_events, n_keys, prefetch, batch_max, done, n_naive);
    print_db_settings(admin);
    mysql_close(admin);
    row("measure", "value");
    printf("|%.48s|%.16s|\n", DASHES, DASHES);
    snprintf(value, sizeof value, "%8.0f ev/s", m_a);
    row("(a) datasync-consumer, start to all committed", value);
    /* (b), (c) and (d) ran unless only (a) was asked for. */
    if (!metrics_only && !getenv("DS_BENCH_AB")) {
        snprintf(label, sizeof label,
                 "(b) no-op consumer, ack(multiple) per %d", batch_max);
        snprintf(value, sizeof value, "%8.0f ev/s", m_b);
        row(label, value);
        snprintf(value, sizeof value, "%8.0f ev/s", m_c);
        row("(c) naive, 1 transaction + 1 ack per message", value);
        if (no_seed)
            snprintf(value, sizeof value, "skipped");
        else
            snprintf(value, sizeof value, "%8.0f ev/s", m_d);
        row("(d) seed's PHP consumer, REPLACE + ack each", value);
        snprintf(value, sizeof value, "%8.2f x", m_a / m_b);
        row("(a) / (b)   (target >= 0.70)", value);
        snprintf(value, sizeof value, "%8.2f x", m_a / m_c);
        row("(a) / (c)   (target >= 5)", value);
        if (no_seed)
            snprintf(value, sizeof value, "skipped");
        else
            snprintf(value, sizeof value, "%8.2f x", m_a / m_d);
        row("(a) / (d)   (target >= 10)", value);
    }
    snprintf(label, sizeof label,
             "(a) peak RSS, prefetch %d (target <= 32 MiB)", prefetch);
    snprintf(value, sizeof value, "%8.1f MiB", peak / 1024.0);
    row(label, value);
    snprintf(value, sizeof value, "%8.2f", bench_median(trips, done));
    row("(a) database round trips per event", value);
    if (!getenv("DS_BENCH_AB")) {
        snprintf(value, sizeof value, "%8.0f ev/s", bench_median(rm, done));
        row("(a) metrics on, /metrics scraped every 1 s", value);
        /* The median of each round's own ratio: the two runs of a round
         * are back to back, so the machine's drift between rounds cancels. */
        double paired[16];
        for (int r = 0; r < done; r++)
            paired[r] = rm[r] / ra[r];
        snprintf(value, sizeof value, "%8.3f x", bench_median(paired, done));
        row("metrics on / off, per round (target >= 0.97)", value);
        /* CPU time hardly moves with the machine's load, unlike rates. */
        snprintf(value, sizeof value, "%8.3f x",
                 bench_median(cpu_m, done) / bench_median(cpu, done));
        row("daemon CPU per event, metrics on / off", value);
        snprintf(value, sizeof value, "%8d", scrapes);
        row("scrapes answered during the runs", value);
    }
    cpu_rows("(a)", as, done);
    if (!metrics_only && !getenv("DS_BENCH_AB")) {
        /* The broker's cost of the same events to a consumer that only
         * acks: what (a)'s own way of consuming adds to it. */
        snprintf(value, sizeof value, "%8.1f us",
                 bench_median(rb_broker, done) * 1e6 / n_events);
        row("(b) RabbitMQ CPU per event", value);
        ceiling_rows(as, done, m_a, m_b, m_d, no_seed);
    }
    if (def.hwm_kib >= 0) {
        snprintf(label, sizeof label, "(a) at prefetch %d (default), one run",
                 default_prefetch);
        snprintf(value, sizeof value, "%8.0f ev/s", def.rate);
        row(label, value);
        snprintf(label, sizeof label, "(a) peak RSS, prefetch %d",
                 default_prefetch);
        snprintf(value, sizeof value, "%8.1f MiB", def.hwm_kib / 1024.0);
        row(label, value);
    }
    if (base_bin) {
        snprintf(value, sizeof value, "%8.0f ev/s", bench_median(rb0, done));
        snprintf(label, sizeof label,
                 "(a0) DS_BENCH_BASELINE_BIN, batch_max %d", base_batch);
        row(label, value);
        snprintf(value, sizeof value, "%8.2f x", m_a / bench_median(rb0, done));
        row("(a) / (a0)", value);
        cpu_rows("(a0)", a0s, done);
    }
    printf("(%.0f s in all, fills included)\n",
           (double)(bench_now_us() - start) / 1e6);

    for (int i = 0; i < n_events; i++)
        free(events[i].body);
    free(events);
    return 0;
}
