/* test_consumer_faults.c: three consumers through kill -9, a MariaDB outage and a RabbitMQ restart, converging every time. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cluster.h"
#include "support.h"

static tc_cluster cl;

static int setup(void **state)
{
    (void)state;
    tc_setup(&cl, "dsf", NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tc_teardown(&cl);
    return 0;
}

enum { KEYS = 100 };

/* The stream: updates of KEYS keys, versions increasing, so the expected
 * end state is the last change of each key. A delete now and then. */
typedef struct stream {
    uint64_t hlc;
    int n;
    int last[KEYS]; /* n of the last change, or -1 when deleted */
} stream;

static void stream_init(stream *s, uint64_t start)
{
    s->hlc = start;
    s->n = 0;
    for (int k = 0; k < KEYS; k++)
        s->last[k] = -2; /* never written */
}

static void stream_publish(stream *s, int count)
{
    static const char *const origins[] = {"zf-1", "zf-2", "zf-3"};
    char **bodies = malloc((size_t)count * sizeof *bodies);
    assert_non_null(bodies);
    for (int i = 0; i < count; i++) {
        int k = (s->n * 37 + i) % KEYS;
        char key[32], data[96];
        bool del = s->n % 11 == 5;
        snprintf(key, sizeof key, "{\"k\":%d}", k);
        snprintf(data, sizeof data, "{\"k\":%d,\"v\":\"s%d\",\"n\":%d}", k,
                 s->n, s->n);
        bodies[i] = tc_event(del ? "delete" : "update", "kv", key,
                             del ? NULL : data, origins[s->n % 3], ++s->hlc);
        s->last[k] = del ? -1 : s->n;
        s->n++;
    }
    tc_publish_all(&cl, bodies, (size_t)count);
    tc_free_all(bodies, (size_t)count);
    free(bodies);
}

static char *stream_expected(const stream *s)
{
    size_t cap = 64 * KEYS, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (int k = 0; k < KEYS; k++)
        if (s->last[k] >= 0)
            len += (size_t)snprintf(out + len, cap - len, "%d|s%d|%d\n", k,
                                    s->last[k], s->last[k]);
    return out;
}

static const char KV_SQL[] = "SELECT k, v, n FROM kv ORDER BY k";
static const char VERSIONS_SQL[] =
    "SELECT tbl, pk, hlc, origin, deleted FROM datasync_versions ORDER BY "
    "tbl, pk";

static void expect_converged(const stream *s, int timeout_ms)
{
    char *want = stream_expected(s);
    for (int i = 0; i < TC_NODES; i++)
        tc_wait_dump(&cl, i, KV_SQL, want, timeout_ms);
    free(want);
    /* The same versions everywhere: every change was accepted once, with
     * the same effect, on every server. */
    char *a = tc_dump(cl.db[0], VERSIONS_SQL);
    assert_non_null(a);
    for (int i = 1; i < TC_NODES; i++)
        tc_wait_dump(&cl, i, VERSIONS_SQL, a, 5000);
    free(a);
}

static void expect_alive(void)
{
    for (int i = 0; i < TC_NODES; i++) {
        int status;
        if (waitpid(cl.pid[i], &status, WNOHANG) == cl.pid[i]) {
            cl.pid[i] = 0;
            fail_msg("consumer %s died (log %s)", cl.node[i], cl.log[i]);
        }
    }
}

/* kill -9 of a consumer mid-stream, then a restart: its unacked batch
 * comes again, its committed one is superseded; all end identical. */
static void kill9_mid_stream_converges(void **state)
{
    (void)state;
    stream s;
    stream_init(&s, 100000);
    stream_publish(&s, 600);
    ts_sleep_ms(150);
    assert_int_equal(tc_stop(&cl, 1, SIGKILL, 5000), -SIGKILL);
    stream_publish(&s, 600);
    tc_start(&cl, 1);
    stream_publish(&s, 300);
    expect_converged(&s, 30000);
    expect_alive();
}

/* MariaDB stopped for 10 s mid-stream: the consumers roll back and retry,
 * ack nothing meanwhile (every message stays in the queues), keep their
 * broker connections (heartbeats flow), and converge once it is back. */
static void mariadb_outage_acks_nothing_and_converges(void **state)
{
    (void)state;
    stream s;
    stream_init(&s, 200000);
    stream_publish(&s, 300);
    expect_converged(&s, 30000);

    long offset[TC_NODES];
    for (int i = 0; i < TC_NODES; i++)
        offset[i] = tc_file_size(cl.log[i]);
    assert_int_equal(itest_service("maria", "stop"), 0);
    long long down_at = ts_now_ms();
    stream_publish(&s, 300);
    ts_sleep_ms(2000);
    for (int i = 0; i < TC_NODES; i++) {
        long total = tc_queue_total(cl.queue[i]);
        printf("%s: %ld messages (ready + unacked) with the database down\n",
               cl.queue[i], total);
        assert_int_equal(total, 300);
    }
    while (ts_now_ms() - down_at < 10000)
        ts_sleep_ms(100);
    for (int i = 0; i < TC_NODES; i++) {
        long total = tc_queue_total(cl.queue[i]);
        printf("%s: %ld messages after 10 s down\n", cl.queue[i], total);
        assert_int_equal(total, 300);
    }
    expect_alive();
    /* SIGTERM while the database is down: the batch in hand is left
     * unacked (it comes again) and the consumer still exits 0 within 5 s. */
    long long t0 = ts_now_ms();
    int rc = tc_stop(&cl, 2, SIGTERM, 10000);
    printf("%s: exit %d after %lld ms with the database down\n", cl.node[2], rc,
           ts_now_ms() - t0);
    assert_int_equal(rc, 0);
    assert_true(ts_now_ms() - t0 < 5000);
    assert_int_equal(itest_service("maria", "start"), 0);
    tc_start(&cl, 2);
    expect_converged(&s, 40000);
    for (int i = 0; i < TC_NODES; i++) {
        assert_true(tc_log_has(cl.log[i], offset[i], "database:"));
        if (tc_log_has(cl.log[i], offset[i], "broker:"))
            fail_msg("%s lost its broker connection during the database "
                     "outage (log %s)",
                     cl.node[i], cl.log[i]);
        long total = -1;
        for (long long end = ts_now_ms() + 10000; ts_now_ms() < end;
             ts_sleep_ms(200))
            if ((total = tc_queue_total(cl.queue[i])) == 0)
                break;
        assert_int_equal(total, 0);
    }
}

/* RabbitMQ restarted mid-stream: the consumers reconnect, redeclare and
 * converge; persistent messages survive in the durable queues. */
static void rabbitmq_restart_reconnects_and_converges(void **state)
{
    (void)state;
    stream s;
    stream_init(&s, 300000);
    long offset[TC_NODES];
    for (int i = 0; i < TC_NODES; i++)
        offset[i] = tc_file_size(cl.log[i]);
    stream_publish(&s, 800);
    itest_amqp_close(cl.amqp);
    cl.amqp = NULL;
    assert_int_equal(itest_service("rabbit", "restart"), 0);
    tc_amqp_open(&cl);
    stream_publish(&s, 400);
    expect_converged(&s, 60000);
    expect_alive();
    for (int i = 0; i < TC_NODES; i++)
        assert_true(tc_log_has(cl.log[i], offset[i], "broker: connected"));
}

/* The database holds every write for 20 s (FLUSH TABLES WITH READ LOCK)
 * while three batches' worth of changes wait: the batch being written
 * outlasts the broker's heartbeat timeout (heartbeat = 5), yet no consumer
 * loses its broker connection, and all converge once the lock goes. */
static void a_long_commit_keeps_the_broker_connection(void **state)
{
    (void)state;
    stream s;
    stream_init(&s, 600000);
    stream_publish(&s, 300); /* every key, as the tests before wrote them */
    expect_converged(&s, 30000);

    long offset[TC_NODES];
    for (int i = 0; i < TC_NODES; i++)
        offset[i] = tc_file_size(cl.log[i]);
    MYSQL *lock = itest_mysql_connect(NULL);
    itest_mysql_exec(lock, "FLUSH TABLES WITH READ LOCK");
    stream_publish(&s, 300); /* a batch held, the next one full, more */
    ts_sleep_ms(20000);
    itest_mysql_exec(lock, "UNLOCK TABLES");
    mysql_close(lock);
    expect_converged(&s, 30000);
    expect_alive();
    for (int i = 0; i < TC_NODES; i++)
        if (tc_log_has(cl.log[i], offset[i], "broker:"))
            fail_msg("%s lost its broker connection while a commit waited "
                     "(log %s)",
                     cl.node[i], cl.log[i]);
}

/* A column added to every server, then MariaDB stopped, then a change that
 * names it: the consumers cannot read the new catalogue while the database
 * is away, and must wait for it, not dead-letter the change. Last: it
 * leaves kv with a row and a column the other tests do not expect. */
static void column_added_while_database_away_waits_for_it(void **state)
{
    (void)state;
    stream s;
    stream_init(&s, 700000);
    stream_publish(&s, 300); /* every key, newer than the tests' before */
    expect_converged(&s, 30000);
    for (int i = 0; i < TC_NODES; i++) {
        MYSQL *db = itest_mysql_connect(cl.db[i]);
        itest_mysql_exec(db, "ALTER TABLE kv ADD COLUMN nick VARCHAR(16)");
        mysql_close(db);
    }

    assert_int_equal(itest_service("maria", "stop"), 0);
    char *body = tc_event("create", "kv", "{\"k\":1000}",
                          "{\"k\":1000,\"v\":\"new\",\"n\":1,"
                          "\"nick\":\"added\"}",
                          "zf-1", 500000);
    tc_publish_all(&cl, &body, 1);
    tc_free_all(&body, 1);
    ts_sleep_ms(3000); /* each consumer takes it and meets the column */
    assert_int_equal(itest_service("maria", "start"), 0);

    for (int i = 0; i < TC_NODES; i++) {
        tc_wait_dump(&cl, i, "SELECT k, v, nick FROM kv WHERE k = 1000",
                     "1000|new|added\n", 30000);
        char *dead = NULL, *reason = NULL;
        if (tc_dead_get(&cl, i, &dead, &reason, 500))
            fail_msg("%s dead-lettered a change it could apply once the "
                     "database was back: %s",
                     cl.node[i], reason);
    }
    expect_alive();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kill9_mid_stream_converges),
        cmocka_unit_test(mariadb_outage_acks_nothing_and_converges),
        cmocka_unit_test(rabbitmq_restart_reconnects_and_converges),
        cmocka_unit_test(a_long_commit_keeps_the_broker_connection),
        cmocka_unit_test(column_added_while_database_away_waits_for_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
