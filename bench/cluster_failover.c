/* cluster_failover.c: how long libdatasync takes, after kill -9 of the cluster member it publishes to, to get a change confirmed by another member (bench/run.sh, on services.sh's 3-node cluster). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqp_util.h"
#include "config.h"
#include "datasync.h"
#include "error.h"
#include "support.h"
#include "topology.h"

/*
 * One producer (sync mode, amqp.url listing the three members) emits a
 * change every EMIT_GAP_MS from a thread of its own, into a quorum queue
 * with three replicas. Each of DS_BENCH_KILLS (10) rounds:
 *   1. the member the producer is connected to (its log's last "connected
 *      to broker 127.0.0.1:PORT") is killed with SIGKILL to its beam
 *      process, read from the member's pid file: t0;
 *   2. the stats are polled every millisecond: the producer reconnects
 *      (stats.reconnects grows), then the first change confirmed after
 *      that (stats.confirmed grows past its value at the reconnection) is
 *      the first confirmed publish on another member: t1. t1 - t0 is the
 *      failover time; the reconnection's own time is shown beside it;
 *   3. the member is started again (services.sh cluster start N) and the
 *      next round waits until the producer has confirmed changes for a
 *      second with all three members up.
 * Whether the queue's leader was on the killed member is noted per round:
 * then a new leader must be elected before anything is confirmed.
 * The archive stream is left out (archive.enabled = false): on RabbitMQ
 * 3.10 a stream whose leader's member is down refuses (nacks) publishes
 * until it is back, so with it a change is only confirmed once the killed
 * member returns (the producer spools meanwhile; README, Cluster).
 *
 * Environment: DS_TEST_CLUSTER_URLS, DS_TEST_CLUSTER_PORTS (services.sh
 * cluster env), DS_TEST_SERVICES, DS_TEST_RUNDIR; DS_BENCH_KILLS (10);
 * DS_BENCH_ARCHIVE=1 declares the archive stream too (to see its effect).
 */

#define EXCHANGE "ds_failover"
#define NODE "failover"
#define MEMBERS 3
#define EMIT_GAP_MS 5
#define ROUND_LIMIT_MS 120000 /* no confirm this long after a kill: failure */

static const char *urls, *services, *rundir;
static int ports[MEMBERS];
static ds_producer *prod;
static atomic_int connected_port, stop_emitting;
static atomic_ullong emit_errors;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "cluster_failover: %s: %s\n", what, why);
    exit(1);
}

static ds_producer_stats stats(void)
{
    ds_producer_stats s;
    ds_producer_stats_get(prod, &s, sizeof s);
    return s;
}

/* The member (0..2) listening on port, or -1. */
static int member_of_port(int port)
{
    for (int i = 0; i < MEMBERS; i++)
        if (ports[i] == port)
            return i;
    return -1;
}

/* Remembers the port of every "connected to broker 127.0.0.1:PORT". */
static void on_log(void *ud, ds_log_level level, const char *msg)
{
    const char *at = strstr(msg, "connected to broker ");
    (void)ud;
    if (at && (at = strrchr(at, ':')))
        atomic_store(&connected_port, atoi(at + 1));
    if (level >= DS_LOG_WARN && getenv("DS_BENCH_VERBOSE"))
        fprintf(stderr, "  producer: %s\n", msg);
}

static void *emitter(void *arg)
{
    char key[64], data[128];
    (void)arg;
    for (long i = 0; !atomic_load(&stop_emitting); i++) {
        snprintf(key, sizeof key, "{\"id\":%ld}", i % 1000);
        snprintf(data, sizeof data, "{\"id\":%ld,\"n\":%ld}", i % 1000, i);
        if (ds_emit(prod, DS_OP_UPDATE, "items", key, data))
            atomic_fetch_add(&emit_errors, 1);
        ts_sleep_ms(EMIT_GAP_MS);
    }
    return NULL;
}

static void run(const char *cmd)
{
    if (system(cmd) != 0)
        die("command failed", cmd);
}

/* services.sh cluster ARGS, its output to the bench's log. */
static void cluster_cmd(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' cluster %s >>'%s/failover-services.log' 2>&1", services,
             args, rundir);
    run(cmd);
}

static pid_t beam_pid(int member)
{
    char path[600];
    long pid = 0;
    snprintf(path, sizeof path, "%s/cluster/n%d/rabbit/rabbit.pid", rundir,
             member + 1);
    FILE *f = fopen(path, "r");
    if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 1)
        die(path, "no pid");
    fclose(f);
    return (pid_t)pid;
}

/* The member (0..2) leading the node queue, -1 when unknown. */
static int leader_member(int dead)
{
    char cmd[1024], line[512];
    int found = -1;
    for (int m = 0; m < MEMBERS && found < 0; m++) {
        if (m == dead)
            continue;
        snprintf(cmd, sizeof cmd,
                 "'%s' cluster ctl %d list_queues -q --no-table-headers name "
                 "leader 2>/dev/null",
                 services, m + 1);
        FILE *f = popen(cmd, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f)) {
            char name[128], node[256];
            if (sscanf(line, "%127s %255s", name, node) != 2 ||
                strcmp(name, "datasync." NODE) != 0)
                continue;
            /* "ds<amqp port>@localhost": services.sh names nodes so. */
            found = member_of_port(atoi(node + 2));
        }
        pclose(f);
    }
    return found;
}

/* Exchange and a quorum node queue with three replicas, declared by
 * datasync's own code; the queue emptied. */
static void declare(void)
{
    ds_config cfg;
    ds_amqp a = {0};
    char err[DS_ERRMSG_SIZE], q[128];
    ds__config_defaults(&cfg);
    if (ds__config_set(&cfg, "node.id", NODE, err, sizeof err) ||
        ds__config_set(&cfg, "amqp.url", urls, err, sizeof err) ||
        ds__config_set(&cfg, "amqp.exchange", EXCHANGE, err, sizeof err) ||
        ds__config_set(&cfg, "amqp.queue_type", "quorum", err, sizeof err))
        die("config", err);
    if (ds__amqp_connect(&a, urls, 0, 10000, err, sizeof err) ||
        ds__topology_declare_exchanges(&a, &cfg, err, sizeof err) ||
        ds__topology_declare_node(&a, &cfg, NODE, NULL, err, sizeof err) ||
        (getenv("DS_BENCH_ARCHIVE") &&
         ds__topology_declare_archive(&a, &cfg, err, sizeof err)))
        die("topology", err);
    ds__topology_node_queue(NODE, q, sizeof q);
    amqp_queue_purge(a.conn, DS_AMQP_CHANNEL, amqp_cstring_bytes(q));
    ds__amqp_close(&a);
}

static ds_producer *new_producer(const char *spool)
{
    ds_options *o = ds_options_new();
    ds_producer *p;
    char err[DS_ERRBUF_SIZE];
    if (!o || ds_options_set(o, "amqp.url", urls) ||
        ds_options_set(o, "amqp.exchange", EXCHANGE) ||
        ds_options_set(o, "node.id", NODE) ||
        ds_options_set(o, "node.clock_file", "") ||
        ds_options_set(o, "producer.mode", "sync") ||
        ds_options_set(o, "producer.spool_dir", spool) ||
        ds_options_set(o, "archive.enabled", "false"))
        die("options", o ? ds_options_errmsg(o) : "out of memory");
    if (ds_producer_new(&p, o, err, sizeof err))
        die("producer", err);
    ds_options_free(o);
    ds_producer_set_log(p, on_log, NULL);
    return p;
}

/* Waits until the producer confirmed changes for a second on a member. */
static void wait_steady(void)
{
    long long end = ts_now_ms() + 120000;
    for (;;) {
        uint64_t c0 = stats().confirmed;
        ts_sleep_ms(1000);
        if (stats().confirmed > c0 + 10 &&
            member_of_port(atomic_load(&connected_port)) >= 0 &&
            stats().spool_bytes == 0)
            return;
        if (ts_now_ms() > end)
            die("steady state", "no confirms for 120 s");
    }
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

int main(void)
{
    char spool[] = "/tmp/ds-failover-spool-XXXXXX", cmd[700];
    const char *portlist = getenv("DS_TEST_CLUSTER_PORTS");
    int kills = 10;
    double fail_s[32], conn_s[32];

    urls = getenv("DS_TEST_CLUSTER_URLS");
    services = getenv("DS_TEST_SERVICES");
    rundir = getenv("DS_TEST_RUNDIR");
    if (!urls || !portlist || !services || !rundir)
        die("environment", "DS_TEST_CLUSTER_URLS/PORTS, DS_TEST_SERVICES, "
                           "DS_TEST_RUNDIR are not set (run through "
                           "bench/run.sh)");
    if (sscanf(portlist, "%d %d %d", &ports[0], &ports[1], &ports[2]) != 3)
        die("DS_TEST_CLUSTER_PORTS", portlist);
    if (getenv("DS_BENCH_KILLS"))
        kills = atoi(getenv("DS_BENCH_KILLS"));
    if (kills < 1 || kills > 32)
        kills = 10;
    if (!mkdtemp(spool))
        die("mkdtemp", strerror(errno));

    declare();
    prod = new_producer(spool);
    pthread_t th;
    if (pthread_create(&th, NULL, emitter, NULL))
        die("thread", "cannot start the emitter");

    printf("\nfailover: kill -9 of the member the producer publishes to, "
           "%d times\n",
           kills);
    printf("| kill | member | queue leader there | reconnected | first "
           "confirm |\n");
    printf("|------|--------|--------------------|-------------|-----------"
           "----|\n");
    for (int k = 0; k < kills; k++) {
        wait_steady();
        int m = member_of_port(atomic_load(&connected_port));
        bool leader = leader_member(-1) == m;
        pid_t pid = beam_pid(m);
        ds_producer_stats s0 = stats();
        long long t0 = ts_now_ms(), t_conn = 0, t_conf = 0;
        uint64_t c_conn = 0;

        if (kill(pid, SIGKILL) != 0)
            die("kill", strerror(errno));
        while (!t_conf) {
            ds_producer_stats s = stats();
            long long t = ts_now_ms();
            if (!t_conn && s.reconnects > s0.reconnects) {
                t_conn = t;
                c_conn = s.confirmed;
            } else if (t_conn && s.confirmed > c_conn) {
                t_conf = t;
            }
            if (t - t0 > ROUND_LIMIT_MS)
                die("failover", "no confirm within 120 s of the kill");
            ts_sleep_ms(1);
        }
        int to = member_of_port(atomic_load(&connected_port));
        fail_s[k] = (double)(t_conf - t0) / 1e3;
        conn_s[k] = (double)(t_conn - t0) / 1e3;
        printf("| %4d | %d -> %d | %-18s | %9.3f s | %11.3f s |\n", k + 1,
               m + 1, to + 1, leader ? "yes" : "no", conn_s[k], fail_s[k]);
        fflush(stdout);
        /* Its helpers go too; then it starts on the same data. */
        snprintf(cmd, sizeof cmd, "kill %d", m + 1);
        cluster_cmd(cmd);
        snprintf(cmd, sizeof cmd, "start %d", m + 1);
        cluster_cmd(cmd);
    }
    atomic_store(&stop_emitting, 1);
    pthread_join(th, NULL);
    ds_producer_stats end = stats();
    ds_producer_free(prod);

    qsort(fail_s, (size_t)kills, sizeof *fail_s, cmp_double);
    qsort(conn_s, (size_t)kills, sizeof *conn_s, cmp_double);
    printf("\n| measure                                   | value    |\n");
    printf("|-------------------------------------------|----------|\n");
    printf("| first confirm after kill -9, median       | %6.2f s |\n",
           fail_s[kills / 2]);
    printf("| first confirm after kill -9, max (< 5 s)  | %6.2f s |\n",
           fail_s[kills - 1]);
    printf("| reconnected after kill -9, median         | %6.2f s |\n",
           conn_s[kills / 2]);
    printf("| reconnected after kill -9, max            | %6.2f s |\n",
           conn_s[kills - 1]);
    printf("(%llu changes confirmed, %llu spooled meanwhile, %llu nacked, "
           "%llu emit errors)\n",
           (unsigned long long)end.confirmed, (unsigned long long)end.spooled,
           (unsigned long long)end.nacked,
           (unsigned long long)atomic_load(&emit_errors));
    printf("BENCH_FAILOVER_MEDIAN_S=%.3f\nBENCH_FAILOVER_MAX_S=%.3f\n",
           fail_s[kills / 2], fail_s[kills - 1]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", spool);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", spool);
    return 0;
}
