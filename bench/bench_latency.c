/* bench_latency.c: end-to-end latency, from ds_emit to the row written on each of three servers, at a steady 2,000 changes/s. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#include "amqp_util.h"
#include "bench_util.h"
#include "config.h"
#include "datasync.h"
#include "error.h"
#include "support.h"
#include "topology.h"

/*
 * One application (node lat-src) emits creates through libdatasync in
 * async mode, paced at DS_BENCH_LAT_RATE changes/s for DS_BENCH_LAT_SECONDS
 * (2000 for 30 s), each a new row of table lat whose data carries the wall
 * clock (CLOCK_REALTIME, microseconds) read just before its ds_emit. Three
 * servers lat-a, lat-b, lat-c, each with its own MariaDB (a: the run's
 * instance; b, c: two more started here through tests/lib/services.sh) and
 * its own datasync-consumer at the default settings (prefetch 500,
 * batch_max 200, batch_wait_ms 10, or DS_BENCH_LAT_BATCH_WAIT_MS), share
 * the run's broker. The exchange also feeds the archive stream, as
 * datasync setup declares it by default (DS_BENCH_LAT_ARCHIVE=0: none).
 *
 * On every server the table stamps each row as it is written:
 * applied_at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6). The consumer writes
 * the row inside the transaction that then writes the batch's versions and
 * commits, so applied_at is the row's write within its committing
 * transaction, its commit following within that batch's last statements
 * (about a millisecond: bench_consumer prints what a batch costs). The
 * servers run on this machine and share its clock, so applied_at - emit is
 * the latency of that change to that server. Reported per server and over
 * all three: p50, p99, max, and how many changes took over 100 ms, each
 * the median over DS_BENCH_LAT_ROUNDS rounds (3) run back to back on the
 * same servers, each round with rows of its own.
 *
 * Beside the servers, a no-op consumer on a queue of its own, bound like
 * theirs, takes each change as the broker delivers it: its row, "(no-op)",
 * is the library's and the broker's share of the latency, measured in the
 * same run; the rest is the servers'. Its queue is a fourth one for the
 * broker to fill; DS_BENCH_LAT_NOOP=0 leaves it out. Each consumer's
 * /metrics then tells how its batches went (count, changes per batch, time
 * from taking a batch to its ack), and /proc where the CPU went while
 * emitting (broker, MariaDBs, consumers, this process): on a machine with
 * few cores these runs are bound by CPU, and smaller batches cost more.
 *
 * Beside them, a thread times an fdatasync of 512 bytes every 10 ms in the
 * run directory, on the disk the MariaDBs and the broker write to: its
 * row, "(disk sync)", is what one sync cost meanwhile. Every commit waits
 * for one, so a stall of the disk is one in every server's latency.
 *
 * Every change must arrive on every server and at the no-op consumer, or
 * the run fails; the consumers must stop cleanly (exit 0) on SIGTERM.
 */

#define NODES 3
#define EXCHANGE "ds_bench_latency"
#define DB "ds_bench_lat"
#define SETTLE_S 120 /* all rows on every server within this, after emits */
#define DASHES "--------------------------------------------"

static const char *url, *build_dir, *rundir, *services;
static const char *const node_ids[NODES] = {"lat-a", "lat-b", "lat-c"};
static char db_host[NODES][64];
static int db_port[NODES];
static bool own_db[NODES]; /* started here: stopped here */
static pid_t consumers[NODES];
static int metrics_port[NODES];  /* each consumer's [metrics] listen */
static int batch_wait_ms = -1;   /* apply.batch_wait_ms; < 0: the default */
static bool with_archive = true; /* the archive stream, as datasync setup */

static void stop_own_dbs(void);

/* bench_die's cleanup: the consumers and MariaDBs started here go. */
static void cleanup(void)
{
    for (int i = 0; i < NODES; i++)
        if (consumers[i] > 0) {
            kill(consumers[i], SIGKILL);
            waitpid(consumers[i], NULL, 0);
        }
    stop_own_dbs();
}

static long long wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_mono_us(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000u), (long)(t % 1000000u) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* ------------------------------------------------------------------------ */
/* The databases                                                              */

/* services.sh for a MariaDB of server i's own, run directory
 * $DS_TEST_RUNDIR/lat-<i>; its output (the env lines) into out. It is
 * sized as the run's own (DS_SVC_MARIA_POOL and DS_SVC_MARIA_LOG are
 * passed on), so the three servers differ in nothing but their data. */
static int own_db_cmd(int i, const char *action, char *out, size_t outlen)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "env -u DS_TEST_MYSQL_PORT -u DS_TEST_AMQP_PORT "
             "DS_TEST_RUNDIR='%s/%s' '%s' %s 2>>'%s/%s.services.log'",
             rundir, node_ids[i], services, action, rundir, node_ids[i]);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = out ? fread(out, 1, outlen - 1, p) : 0;
    if (out)
        out[n] = '\0';
    else
        while (fgetc(p) != EOF)
            ;
    return pclose(p);
}

static void start_own_db(int i)
{
    char env[4096], pid[32];
    if (own_db_cmd(i, "maria start", NULL, 0) != 0)
        bench_die(node_ids[i],
                  "its MariaDB did not start (see the services log)");
    own_db[i] = true;
    /* Taken down with us if we die without stopping it. */
    snprintf(pid, sizeof pid, "watch %d", (int)getpid());
    own_db_cmd(i, pid, NULL, 0);
    if (own_db_cmd(i, "env", env, sizeof env) != 0)
        bench_die(node_ids[i], "services.sh env failed");
    const char *p = strstr(env, "DS_TEST_MYSQL_PORT=");
    if (!p)
        bench_die(node_ids[i], "no DS_TEST_MYSQL_PORT in services.sh env");
    db_port[i] = atoi(p + strlen("DS_TEST_MYSQL_PORT="));
    snprintf(db_host[i], sizeof db_host[i], "127.0.0.1");
}

static void stop_own_dbs(void)
{
    for (int i = 0; i < NODES; i++)
        if (own_db[i]) {
            own_db[i] = false;
            own_db_cmd(i, "down", NULL, 0);
        }
}

static MYSQL *db_connect(int i)
{
    return bench_db_connect(db_host[i], db_port[i]);
}

static void reset_database(int i)
{
    MYSQL *db = db_connect(i);
    bench_sql(db, "DROP DATABASE IF EXISTS " DB);
    bench_sql(db, "CREATE DATABASE " DB " CHARACTER SET utf8mb4");
    /* applied_at: when the consumer's transaction wrote the row. */
    bench_sql(db, "CREATE TABLE " DB ".lat (id INT PRIMARY KEY, emit_us BIGINT "
                  "NOT NULL, payload VARCHAR(200), applied_at TIMESTAMP(6) NOT "
                  "NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE "
                  "CURRENT_TIMESTAMP(6)) ENGINE=InnoDB");
    mysql_close(db);
}

/* ------------------------------------------------------------------------ */
/* Broker and consumers                                                       */

static void config_for(ds_config *cfg, int i)
{
    char err[DS_ERRMSG_SIZE];
    ds__config_defaults(cfg);
    if (ds__config_set(cfg, "node.id", node_ids[i], err, sizeof err) ||
        ds__config_set(cfg, "amqp.url", url, err, sizeof err) ||
        ds__config_set(cfg, "amqp.exchange", EXCHANGE, err, sizeof err))
        bench_die("config", err);
}

/* Declares the exchanges and every server's queue, and empties them, so
 * no change is unroutable and no earlier run's message is counted; and
 * the archive stream that datasync setup declares by default, or, without
 * it, deletes one an earlier run declared. */
static void declare_topology(void)
{
    ds_amqp a;
    ds_config cfg;
    char err[DS_ERRMSG_SIZE], q[128];

    memset(&a, 0, sizeof a);
    if (ds__amqp_connect(&a, url, 0, 30000, err, sizeof err) < 0)
        bench_die("connect", err);
    for (int i = 0; i < NODES; i++) {
        config_for(&cfg, i);
        if (ds__topology_declare_exchanges(&a, &cfg, err, sizeof err) ||
            ds__topology_declare_node(&a, &cfg, node_ids[i], NULL, err,
                                      sizeof err))
            bench_die("topology", err);
        ds__topology_node_queue(node_ids[i], q, sizeof q);
        amqp_queue_purge(a.conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(q));
        if (ds__amqp_reply_error(amqp_get_rpc_reply(a.conn), "queue.purge", err,
                                 sizeof err) < 0)
            bench_die("purge", err);
    }
    if (with_archive) {
        if (ds__topology_declare_archive(&a, &cfg, err, sizeof err))
            bench_die("archive", err);
    } else {
        ds__topology_archive_queue(&cfg, q, sizeof q);
        amqp_queue_delete(a.conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(q), 0, 0);
        if (ds__amqp_reply_error(amqp_get_rpc_reply(a.conn), "queue.delete",
                                 err, sizeof err) < 0)
            bench_die("archive", err);
    }
    ds__amqp_close(&a);
}

static void start_consumer(int i)
{
    char conf[600], logf[600], bin[600];

    snprintf(conf, sizeof conf, "%s/%s.conf", rundir, node_ids[i]);
    snprintf(logf, sizeof logf, "%s/%s.log", rundir, node_ids[i]);
    snprintf(bin, sizeof bin, "%s/datasync-consumer", build_dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        bench_die(conf, strerror(errno));
    fprintf(f,
            "[node]\nid = %s\nclock_file = %s/%s.clock\n"
            "[amqp]\nurl = %s\nexchange = %s\n"
            "[mysql]\nhost = %s\nport = %d\nuser = root\ndatabase = " DB "\n"
            "[apply]\ntables = lat\n"
            "[log]\nlevel = info\n"
            "[metrics]\nlisten = 127.0.0.1:%d\n",
            node_ids[i], rundir, node_ids[i], url, EXCHANGE, db_host[i],
            db_port[i], metrics_port[i]);
    if (batch_wait_ms >= 0)
        fprintf(f, "[apply]\nbatch_wait_ms = %d\n", batch_wait_ms);
    fclose(f);
    consumers[i] = bench_spawn(logf, (const char *[]){bin, "-c", conf, NULL});
}

/* Where a server's time went: its batches, read from its /metrics once
 * every change is in. */
typedef struct batch_figures {
    double batches, changes, seconds; /* committed batches, their changes */
    double over25;                    /* batches that took over 25 ms */
    /* The consumer's own view, datasync_consumer_change_latency_seconds:
     * applied changes, and those within 20 and 100 ms of their ts. */
    double latencies, within20, within100;
} batch_figures;

static batch_figures read_batch_figures(int i)
{
    const char *h = "datasync_consumer_batch_duration_seconds";
    char name[128];
    batch_figures f = {0, 0, 0, 0, 0, 0, 0};
    const char *r = bench_scrape_metrics(metrics_port[i]);
    if (!r)
        bench_die(node_ids[i], "/metrics did not answer");
    snprintf(name, sizeof name, "%s_count", h);
    f.batches = bench_metric(r, name);
    snprintf(name, sizeof name, "%s_sum", h);
    f.seconds = bench_metric(r, name);
    snprintf(name, sizeof name, "%s_bucket{le=\"0.025\"}", h);
    f.over25 = f.batches - bench_metric(r, name);
    f.changes = bench_metric(r, "datasync_consumer_changes_applied_total");
    h = "datasync_consumer_change_latency_seconds";
    snprintf(name, sizeof name, "%s_count", h);
    f.latencies = bench_metric(r, name);
    snprintf(name, sizeof name, "%s_bucket{le=\"0.02\"}", h);
    f.within20 = bench_metric(r, name);
    snprintf(name, sizeof name, "%s_bucket{le=\"0.1\"}", h);
    f.within100 = bench_metric(r, name);
    return f;
}

/* Until every queue has its consumer: then nothing emitted waits for one. */
static void wait_consuming(void)
{
    ds_amqp a;
    char err[DS_ERRMSG_SIZE], q[128];
    uint64_t end = bench_now_us() + 30 * 1000000u;

    memset(&a, 0, sizeof a);
    if (ds__amqp_connect(&a, url, 0, 30000, err, sizeof err) < 0)
        bench_die("connect", err);
    for (int i = 0; i < NODES; i++) {
        ds__topology_node_queue(node_ids[i], q, sizeof q);
        for (;;) {
            amqp_queue_declare_ok_t *ok = amqp_queue_declare(
                a.conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(q), 1, 0, 0, 0,
                amqp_empty_table);
            if (!ok)
                bench_die("queue.declare (passive)", q);
            if (ok->consumer_count > 0)
                break;
            if (waitpid(consumers[i], NULL, WNOHANG) == consumers[i]) {
                consumers[i] = 0;
                bench_die(node_ids[i], "datasync-consumer exited at start-up");
            }
            if (bench_now_us() > end)
                bench_die(node_ids[i],
                          "datasync-consumer not consuming after 30 s");
            usleep(50 * 1000);
        }
    }
    ds__amqp_close(&a);
}

static void stop_consumers(void)
{
    for (int i = 0; i < NODES; i++)
        kill(consumers[i], SIGTERM);
    for (int i = 0; i < NODES; i++) {
        int status;
        uint64_t end = bench_now_us() + 10 * 1000000u;
        while (waitpid(consumers[i], &status, WNOHANG) != consumers[i]) {
            if (bench_now_us() > end)
                bench_die(node_ids[i], "no exit within 10 s of SIGTERM");
            usleep(10 * 1000);
        }
        consumers[i] = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            bench_die(node_ids[i], "datasync-consumer did not exit 0");
    }
}

/* ------------------------------------------------------------------------ */
/* The broker's part                                                          */

/*
 * A no-op consumer on a queue of its own, bound like a server's: it takes
 * each change as the broker delivers it (no ack, no database) and keeps
 * receive time - emit time. What the servers add on top of it is theirs;
 * what it shows is the library's and the broker's.
 */
typedef struct probe {
    pthread_t thread;
    ds_amqp a;
    int n;
    long long base; /* the round's first change id */
    long long *us;  /* per change id - base; -1 until delivered */
    long got;
    char err[DS_ERRMSG_SIZE];
} probe;

static void probe_open(probe *pr, int n, long long base)
{
    amqp_bytes_t q;

    memset(pr, 0, sizeof *pr);
    pr->n = n;
    pr->base = base;
    pr->us = malloc((size_t)n * sizeof *pr->us);
    if (!pr->us)
        bench_die("probe", "out of memory");
    for (int i = 0; i < n; i++)
        pr->us[i] = -1;
    if (ds__amqp_connect(&pr->a, url, 0, 30000, pr->err, sizeof pr->err) < 0)
        bench_die("probe connect", pr->err);
    amqp_connection_state_t conn = pr->a.conn;
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(
        conn, DS_AMQP_CHANNEL, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    if (ds__amqp_reply_error(amqp_get_rpc_reply(conn), "queue.declare", pr->err,
                             sizeof pr->err) < 0)
        bench_die("probe", pr->err);
    q = amqp_bytes_malloc_dup(ok->queue);
    amqp_queue_bind(conn, DS_AMQP_CHANNEL, q, amqp_cstring_bytes(EXCHANGE),
                    amqp_cstring_bytes("data.sync"), amqp_empty_table);
    if (ds__amqp_reply_error(amqp_get_rpc_reply(conn), "queue.bind", pr->err,
                             sizeof pr->err) < 0)
        bench_die("probe", pr->err);
    amqp_basic_consume(conn, DS_AMQP_CHANNEL, q, amqp_empty_bytes, 0, 1, 1,
                       amqp_empty_table);
    if (ds__amqp_reply_error(amqp_get_rpc_reply(conn), "basic.consume", pr->err,
                             sizeof pr->err) < 0)
        bench_die("probe", pr->err);
    amqp_bytes_free(q);
}

/* The number after the first "name": in body that a number follows (the
 * event's own "id" is a string), or -1. */
static long long body_number(amqp_bytes_t body, const char *name)
{
    char needle[32];
    int len = snprintf(needle, sizeof needle, "\"%s\":", name);
    const char *b = body.bytes, *end = b + body.len;
    for (const char *p = b; p + len < end; p++)
        if (memcmp(p, needle, (size_t)len) == 0 && p[len] >= '0' &&
            p[len] <= '9')
            return strtoll(p + len, NULL, 10);
    return -1;
}

static void *probe_run(void *arg)
{
    probe *pr = arg;
    struct timeval tv = {SETTLE_S, 0};

    while (pr->got < pr->n) {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(pr->a.conn);
        amqp_rpc_reply_t r = amqp_consume_message(pr->a.conn, &env, &tv, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            ds__amqp_reply_error(r, "probe consume", pr->err, sizeof pr->err);
            break;
        }
        long long now = wall_us(),
                  id = body_number(env.message.body, "id") - pr->base,
                  emit = body_number(env.message.body, "emit_us");
        if (id >= 0 && id < pr->n && emit > 0 && pr->us[id] < 0) {
            pr->us[id] = now - emit;
            pr->got++;
        }
        amqp_destroy_envelope(&env);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The disk's part                                                            */

/*
 * The disk beside the run: 512 bytes written and fdatasync'ed every
 * DISK_PROBE_MS in the run directory, on the file system where the
 * MariaDBs and the broker keep their data. Every commit, and every
 * persistent message the broker confirms, waits for such a sync, so a
 * stall here is a stall in every server's latency, whatever the consumers
 * do: the row "(disk sync)" tells when the disk, not datasync, set a
 * round's p99 and max. The same thread times its sleeps between syncs:
 * the row "(woke late)" is how much later than asked a sleeping thread
 * got a core, what every process here waits when the two cores are
 * oversubscribed or the virtual machine is held up by its host.
 */
#define DISK_PROBE_MS 10
#define DISK_PROBE_BYTES 512

typedef struct disk_probe {
    pthread_t thread;
    int fd;
    atomic_bool stop;
    long long *us;   /* each sync's time */
    long long *late; /* each sleep's overshoot */
    long n, cap;
} disk_probe;

static void *disk_probe_run(void *arg)
{
    disk_probe *dp = arg;
    char block[DISK_PROBE_BYTES];

    memset(block, 'd', sizeof block);
    while (!atomic_load(&dp->stop) && dp->n < dp->cap) {
        uint64_t t0 = bench_now_us();
        if (pwrite(dp->fd, block, sizeof block,
                   (off_t)(dp->n % 256) * (off_t)sizeof block) < 0 ||
            fdatasync(dp->fd) < 0)
            bench_die("disk probe", strerror(errno));
        uint64_t t1 = bench_now_us();
        usleep(DISK_PROBE_MS * 1000);
        uint64_t slept = bench_now_us() - t1;
        dp->us[dp->n] = (long long)(t1 - t0);
        dp->late[dp->n++] = slept > DISK_PROBE_MS * 1000
                                ? (long long)slept - DISK_PROBE_MS * 1000
                                : 0;
    }
    return NULL;
}

/* Starts probing for a round expected to emit for about seconds. */
static void disk_probe_start(disk_probe *dp, int seconds)
{
    char file[600];

    memset(dp, 0, sizeof *dp);
    snprintf(file, sizeof file, "%s/lat-disk-probe", rundir);
    dp->fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    dp->cap = (long)(seconds * 2 + 60) * (1000 / DISK_PROBE_MS);
    dp->us = malloc((size_t)dp->cap * sizeof *dp->us);
    dp->late = malloc((size_t)dp->cap * sizeof *dp->late);
    if (dp->fd < 0 || !dp->us || !dp->late)
        bench_die("disk probe", dp->fd < 0 ? strerror(errno) : "no memory");
    atomic_init(&dp->stop, false);
    if (pthread_create(&dp->thread, NULL, disk_probe_run, dp) != 0)
        bench_die("disk probe", "no thread");
}

static void disk_probe_stop(disk_probe *dp)
{
    atomic_store(&dp->stop, true);
    pthread_join(dp->thread, NULL);
    close(dp->fd);
}

/* ------------------------------------------------------------------------ */
/* The application                                                            */

/* Emits n creates, ids base.., at rate per second, paced by an absolute schedule (a
 * late emit does not shift the ones after it), those due in the same
 * millisecond together (one wake-up, as an application under load would
 * emit). Returns how many emits came more than 5 ms behind the schedule:
 * the emitter itself was held up. *flush_s: how long ds_flush waited after
 * the last emit for the broker's confirms (the publishing side's lag). */
static int emit_all(int n, int rate, long long base, double *flush_s)
{
    ds_options *o = ds_options_new();
    ds_producer *p;
    char err[DS_ERRBUF_SIZE], spool[600], key[32], data[320];
    int late = 0;

    snprintf(spool, sizeof spool, "%s/lat-spool", rundir);
    if (!o || ds_options_set(o, "amqp.url", url) ||
        ds_options_set(o, "amqp.exchange", EXCHANGE) ||
        ds_options_set(o, "node.id", "lat-src") ||
        ds_options_set(o, "producer.mode", "async") ||
        ds_options_set(o, "producer.spool_dir", spool))
        bench_die("options", o ? ds_options_errmsg(o) : "out of memory");
    if (ds_producer_new(&p, o, err, sizeof err))
        bench_die("producer", err);
    ds_options_free(o);

    uint64_t t0 = bench_now_us() + 100000;
    for (int i = 0; i < n; i++) {
        uint64_t due = t0 + (uint64_t)i * 1000000u / (uint64_t)rate;
        if (bench_now_us() < due)
            sleep_until_mono_us(due + 999 - (due - t0 + 999) % 1000);
        if (bench_now_us() > due + 5000)
            late++;
        snprintf(key, sizeof key, "{\"id\":%lld}", base + i);
        snprintf(data, sizeof data,
                 "{\"id\":%lld,\"emit_us\":%lld,\"payload\":\"change %d of the "
                 "latency bench, a row of ordinary size\"}",
                 base + i, wall_us(), i);
        int rc = ds_emit(p, DS_OP_CREATE, "lat", key, data);
        if (rc)
            bench_die("ds_emit", ds_producer_errmsg(p));
    }
    uint64_t f0 = bench_now_us();
    int rc = ds_flush(p, 60000);
    *flush_s = (double)(bench_now_us() - f0) / 1e6;
    if (rc)
        bench_die("ds_flush", ds_producer_errmsg(p));
    ds_producer_stats st;
    if (ds_producer_stats_get(p, &st, sizeof st) == 0 && st.spooled > 0)
        fprintf(stderr, "bench_latency: %llu changes went to the spool\n",
                (unsigned long long)st.spooled);
    ds_producer_free(p);
    return late;
}

/* ------------------------------------------------------------------------ */
/* The figures                                                                */

typedef struct lat_stats {
    double p50, p99, max; /* ms */
    long over100;
} lat_stats;

static int cmp_ll(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;
    return a < b ? -1 : a > b;
}

static lat_stats stats_of(long long *us, long n)
{
    lat_stats s = {0, 0, 0, 0};
    if (n <= 0)
        return s; /* a probe that took no sample: nothing to say */
    qsort(us, (size_t)n, sizeof *us, cmp_ll);
    s.p50 = us[(n - 1) / 2] / 1000.0;
    s.p99 = us[(long)((n - 1) * 0.99)] / 1000.0;
    s.max = us[n - 1] / 1000.0;
    for (long i = 0; i < n; i++)
        if (us[i] > 100000)
            s.over100++;
    return s;
}

/* Waits until server i holds the round's n rows (ids base..), then reads
 * every change's latency (microseconds) into us[0..n). */
static void read_latencies(int i, int n, long long base, long long *us)
{
    MYSQL *db = db_connect(i);
    uint64_t end = bench_now_us() + (uint64_t)SETTLE_S * 1000000u;
    char why[128], range[96], sql[256];
    long long have;

    snprintf(range, sizeof range,
             " FROM " DB ".lat WHERE id >= %lld AND id < %lld", base, base + n);
    snprintf(sql, sizeof sql, "SELECT COUNT(*)%s", range);
    while ((have = bench_scalar(db, sql)) < n) {
        if (bench_now_us() > end) {
            snprintf(why, sizeof why, "holds %lld of %d rows after %d s", have,
                     n, SETTLE_S);
            bench_die(node_ids[i], why);
        }
        usleep(100 * 1000);
    }
    if (have != n)
        bench_die(node_ids[i], "holds more rows than were emitted");
    /* UNIX_TIMESTAMP of a TIMESTAMP(6) is exact whatever the time zone. */
    snprintf(sql, sizeof sql,
             "SELECT id - %lld, CAST(UNIX_TIMESTAMP(applied_at) * 1000000 AS "
             "SIGNED) - emit_us%s",
             base, range);
    if (mysql_query(db, sql))
        bench_die("latencies", mysql_error(db));
    MYSQL_RES *res = mysql_store_result(db);
    MYSQL_ROW row;
    long got = 0;
    while (res && (row = mysql_fetch_row(res)) != NULL) {
        long id = atol(row[0]);
        if (id < 0 || id >= n)
            bench_die(node_ids[i], "a row that was never emitted");
        us[id] = atoll(row[1]);
        got++;
    }
    if (res)
        mysql_free_result(res);
    if (got != n)
        bench_die(node_ids[i], "rows missing from the result");
    mysql_close(db);
}

/* CPU seconds so far of the processes a run keeps busy. */
typedef struct cpu_use {
    double broker, db, consumers, self;
} cpu_use;

static cpu_use cpu_now(void)
{
    cpu_use u = {0, 0, 0, 0};
    char file[64];

    u.broker = bench_proc_cpu_s(bench_pidfile(rundir, "rabbit/rabbit.pid"));
    for (int i = 0; i < NODES; i++) {
        /* Server a's MariaDB is the run's; b's and c's are under lat-b,
         * lat-c (start_own_db). */
        snprintf(file, sizeof file, "%s%smaria/mariadbd.pid",
                 own_db[i] ? node_ids[i] : "", own_db[i] ? "/" : "");
        u.db += bench_proc_cpu_s(bench_pidfile(rundir, file));
        u.consumers += bench_proc_cpu_s(consumers[i]);
    }
    u.self = bench_proc_cpu_s(getpid());
    return u;
}

/* One round: every server's latencies, all three's, the no-op's (when it
 * ran), and what the machine did meanwhile. */
typedef struct round_result {
    lat_stats server[NODES], all, noop;
    lat_stats disk, woke_late; /* the disk's syncs, the sleeps' overshoot */
    int late;                  /* emits over 5 ms behind the schedule */
    double flush_s;            /* ds_flush after the last emit */
    cpu_use cpu;               /* CPU seconds while emitting */
    double emit_s;             /* how long emitting took */
} round_result;

/*
 * Round r: n changes, ids r * n.., at rate per second; waits for every row
 * on every server (and, with_noop, every delivery to the no-op consumer).
 * us[NODES] and all: room for n and NODES * n latencies.
 */
static round_result run_round(int r, int n, int rate, bool with_noop,
                              long long *us[NODES], long long *all)
{
    round_result res;
    long long base = (long long)r * n;
    probe pr;
    disk_probe dp;

    memset(&res, 0, sizeof res);
    disk_probe_start(&dp, n / rate);
    if (with_noop) {
        probe_open(&pr, n, base);
        if (pthread_create(&pr.thread, NULL, probe_run, &pr) != 0)
            bench_die("probe", "no thread");
    }
    cpu_use c0 = cpu_now();
    uint64_t t0 = bench_now_us();
    res.late = emit_all(n, rate, base, &res.flush_s);
    cpu_use c1 = cpu_now();
    res.emit_s = (double)(bench_now_us() - t0) / 1e6;
    res.cpu = (cpu_use){c1.broker - c0.broker, c1.db - c0.db,
                        c1.consumers - c0.consumers, c1.self - c0.self};

    for (int i = 0; i < NODES; i++) {
        read_latencies(i, n, base, us[i]);
        memcpy(all + (size_t)i * (size_t)n, us[i], (size_t)n * sizeof *all);
        res.server[i] = stats_of(us[i], n);
    }
    res.all = stats_of(all, (long)n * NODES);
    disk_probe_stop(&dp);
    res.disk = stats_of(dp.us, dp.n);
    res.woke_late = stats_of(dp.late, dp.n);
    free(dp.us);
    free(dp.late);
    if (with_noop) {
        pthread_join(pr.thread, NULL);
        ds__amqp_close(&pr.a);
        if (pr.got != n)
            bench_die("probe", pr.err[0] ? pr.err : "changes missing");
        res.noop = stats_of(pr.us, n);
        free(pr.us);
    }
    char noop[48] = "";
    if (with_noop)
        snprintf(noop, sizeof noop, "; no-op p99 %.2f ms", res.noop.p99);
    fprintf(
        stderr,
        "round %d: all three p50 %.2f, p99 %.2f, max %.2f ms%s; disk sync "
        "p99 %.2f, max %.2f ms; woke late max %.2f ms; CPU while emitting "
        "%.0f%% of one core\n",
        r + 1, res.all.p50, res.all.p99, res.all.max, noop, res.disk.p99,
        res.disk.max, res.woke_late.max,
        100 * (res.cpu.broker + res.cpu.db + res.cpu.consumers + res.cpu.self) /
            res.emit_s);
    return res;
}

/* The row of who: the medians over the rounds of p50, p99, max and the
 * count over 100 ms, from its figures of each round; returns them. */
static lat_stats print_median_row(const char *who, const lat_stats *per_round,
                                  int rounds)
{
    double v[4][64];
    for (int r = 0; r < rounds; r++) {
        v[0][r] = per_round[r].p50;
        v[1][r] = per_round[r].p99;
        v[2][r] = per_round[r].max;
        v[3][r] = (double)per_round[r].over100;
    }
    lat_stats m = {bench_median(v[0], rounds), bench_median(v[1], rounds),
                   bench_median(v[2], rounds),
                   (long)(bench_median(v[3], rounds) + 0.5)};
    printf("| %-12s | %8.2f | %8.2f | %8.2f | %8ld |\n", who, m.p50, m.p99,
           m.max, m.over100);
    return m;
}

/* Where the CPU went while the changes were emitted, over all rounds, in
 * per cent of one core: on a machine with few cores, the latency follows
 * it. */
static void print_cpu(const round_result *rs, int rounds)
{
    cpu_use t = {0, 0, 0, 0};
    double secs = 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    for (int r = 0; r < rounds; r++) {
        t.broker += rs[r].cpu.broker;
        t.db += rs[r].cpu.db;
        t.consumers += rs[r].cpu.consumers;
        t.self += rs[r].cpu.self;
        secs += rs[r].emit_s;
    }
    printf("\nCPU while emitting, %% of one core (%ld cores: %ld%%)\n", cores,
           100 * cores);
    printf("| %8s | %12s | %12s | %15s | %8s |\n", "broker", "3 MariaDBs",
           "3 consumers", "emitter, no-op", "all");
    printf("|%.10s|%.14s|%.14s|%.17s|%.10s|\n", DASHES, DASHES, DASHES, DASHES,
           DASHES);
    printf("| %8.0f | %12.0f | %12.0f | %15.0f | %8.0f |\n",
           100 * t.broker / secs, 100 * t.db / secs, 100 * t.consumers / secs,
           100 * t.self / secs,
           100 * (t.broker + t.db + t.consumers + t.self) / secs);
}

int main(void)
{
    bench_init("bench_latency", cleanup);
    url = getenv("DS_TEST_AMQP_URL");
    build_dir = getenv("DS_TEST_BUILD");
    rundir = getenv("DS_TEST_RUNDIR");
    services = getenv("DS_TEST_SERVICES");
    const char *host = getenv("DS_TEST_MYSQL_HOST");
    const char *port = getenv("DS_TEST_MYSQL_PORT");
    if (!url || !build_dir || !rundir || !services || !host || !port)
        bench_die("environment",
                  "DS_TEST_AMQP_URL, DS_TEST_BUILD, DS_TEST_RUNDIR, "
                  "DS_TEST_SERVICES, DS_TEST_MYSQL_HOST/PORT are not "
                  "set (run through bench/run.sh)");
    int rate = bench_env_int("DS_BENCH_LAT_RATE", 2000, 1, 100000);
    int seconds = bench_env_int("DS_BENCH_LAT_SECONDS", 30, 1, 3600);
    int rounds = bench_env_int("DS_BENCH_LAT_ROUNDS", 3, 1, 64);
    bool with_noop = bench_env_int("DS_BENCH_LAT_NOOP", 1, 0, 1) == 1;
    with_archive = bench_env_int("DS_BENCH_LAT_ARCHIVE", 1, 0, 1) == 1;
    int n = rate * seconds;
    batch_wait_ms = bench_env_int("DS_BENCH_LAT_BATCH_WAIT_MS", -1, 0, 60000);
    signal(SIGPIPE, SIG_IGN);

    uint64_t start = bench_now_us();
    snprintf(db_host[0], sizeof db_host[0], "%s", host);
    db_port[0] = atoi(port);
    for (int i = 1; i < NODES; i++)
        start_own_db(i);
    for (int i = 0; i < NODES; i++)
        reset_database(i);
    declare_topology();
    for (int i = 0; i < NODES; i++) {
        metrics_port[i] = ts_loopback_port();
        start_consumer(i);
    }
    wait_consuming();

    long long *us[NODES];
    long long *all = malloc((size_t)n * NODES * sizeof *all);
    round_result rs[64];
    for (int i = 0; i < NODES; i++)
        if (!(us[i] = malloc((size_t)n * sizeof **us)))
            bench_die("latencies", "out of memory");
    if (!all)
        bench_die("latencies", "out of memory");
    for (int r = 0; r < rounds; r++)
        rs[r] = run_round(r, n, rate, with_noop, us, all);
    batch_figures bf[NODES];
    for (int i = 0; i < NODES; i++)
        bf[i] = read_batch_figures(i);
    stop_consumers();
    stop_own_dbs();

    char wait[64] = "default settings";
    if (batch_wait_ms >= 0)
        snprintf(wait, sizeof wait, "batch_wait_ms %d", batch_wait_ms);
    printf("\nlatency benchmark: %d changes at %d/s for %d s, ds_emit "
           "(async) to the row written on each of %d servers\n(own MariaDB "
           "each, one broker%s, consumers at %s); medians of %d rounds, ms\n",
           n, rate, seconds, NODES,
           with_archive ? " with the archive stream" : ", no archive", wait,
           rounds);
    printf("| %-12s | %8s | %8s | %8s | %8s |\n", "server", "p50", "p99", "max",
           "> 100 ms");
    printf("|%.14s|%.10s|%.10s|%.10s|%.10s|\n", DASHES, DASHES, DASHES, DASHES,
           DASHES);
    lat_stats col[NODES + 4][64] = {{{0}}}; /* per row, each round's figures */
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < NODES; i++)
            col[i][r] = rs[r].server[i];
        col[NODES][r] = rs[r].all;
        col[NODES + 1][r] = rs[r].noop;
        col[NODES + 2][r] = rs[r].disk;
        col[NODES + 3][r] = rs[r].woke_late;
    }
    for (int i = 0; i < NODES; i++)
        print_median_row(node_ids[i], col[i], rounds);
    lat_stats all_three = print_median_row("all three", col[NODES], rounds);
    if (with_noop)
        print_median_row("(no-op)", col[NODES + 1], rounds);
    print_median_row("(disk sync)", col[NODES + 2], rounds);
    print_median_row("(woke late)", col[NODES + 3], rounds);
    double flush = 0;
    int late = 0;
    for (int r = 0; r < rounds; r++) {
        late += rs[r].late;
        flush = rs[r].flush_s > flush ? rs[r].flush_s : flush;
    }
    printf("(disk sync: %d bytes written and fdatasync'ed every %d ms beside "
           "the run, where the MariaDBs and the broker keep their data; every "
           "commit waits for such a sync; woke late: how much later than "
           "asked a thread woke from each %d ms sleep between them)\n",
           DISK_PROBE_BYTES, DISK_PROBE_MS, DISK_PROBE_MS);
    printf("targets: p99 <= 20 ms, max <= 100 ms: %s\n",
           all_three.p99 <= 20 && all_three.max <= 100 ? "met" : "NOT met");
    printf("(ds_flush waited %.3f s at most after a round's last emit for the "
           "broker's confirms)\n",
           flush);
    if (late)
        printf("(%d emits came over 5 ms behind schedule: the emitter was "
               "held up)\n",
               late);
    printf("\nthe consumers' batches over all rounds, from their /metrics (a "
           "batch's time runs from taking it to its ack), and their own count "
           "of applied changes\nwithin 20 and 100 ms of their ts "
           "(datasync_consumer_change_latency_seconds, measured at the "
           "commit)\n");
    printf("| %-12s | %8s | %9s | %12s | %8s | %9s | %9s |\n", "server",
           "batches", "changes/b", "ms per batch", "> 25 ms", "<= 20 ms",
           "<= 100 ms");
    printf("|%.14s|%.10s|%.11s|%.14s|%.10s|%.11s|%.11s|\n", DASHES, DASHES,
           DASHES, DASHES, DASHES, DASHES, DASHES);
    for (int i = 0; i < NODES; i++)
        printf("| %-12s | %8.0f | %9.1f | %12.2f | %8.0f | %8.1f%% | %8.1f%% "
               "|\n",
               node_ids[i], bf[i].batches,
               bf[i].batches > 0 ? bf[i].changes / bf[i].batches : 0,
               bf[i].batches > 0 ? bf[i].seconds * 1000 / bf[i].batches : 0,
               bf[i].over25,
               bf[i].latencies > 0 ? 100 * bf[i].within20 / bf[i].latencies : 0,
               bf[i].latencies > 0 ? 100 * bf[i].within100 / bf[i].latencies
                                   : 0);
    print_cpu(rs, rounds);
    printf("(%.0f s in all)\n", (double)(bench_now_us() - start) / 1e6);
    for (int i = 0; i < NODES; i++)
        free(us[i]);
    free(all);
    return 0;
}
