/* test_consumer.c: three consumers on one MariaDB and RabbitMQ: fan-out, convergence, own-origin cases, poison, SIGTERM. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "support.h"

#include "datasync.h"
#include "amqp_util.h"
#include "ids.h"
#include "mysql_util.h"

static tc_cluster cl;

static int setup(void **state)
{
    (void)state;
    tc_setup(&cl, "dsc", NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tc_teardown(&cl);
    return 0;
}

static const char USERS_SQL[] =
    "SELECT id, name, IFNULL(email, '~'), IFNULL(balance, '~'), "
    "IFNULL(HEX(avatar), '~'), IFNULL(active, '~'), IFNULL(born, '~'), "
    "IFNULL(note, '~') FROM users ORDER BY id";

/* Changes emitted through libdatasync by node a's application (which wrote
 * its own row first) reach b and c; all three end identical, with exact
 * decimals, binaries, unicode and NULLs. */
static void emitted_changes_reach_every_server(void **state)
{
    (void)state;
    char *spool = itest_mkdtemp("dsc-spool");
    ds_options *o = ds_options_new();
    assert_non_null(o);
    assert_int_equal(ds_options_set(o, "node.id", cl.node[0]), 0);
    assert_int_equal(ds_options_set(o, "amqp.url", itest_amqp_url()), 0);
    assert_int_equal(ds_options_set(o, "amqp.exchange", cl.exchange), 0);
    assert_int_equal(ds_options_set(o, "producer.spool_dir", spool), 0);
    ds_producer *p = NULL;
    assert_int_equal(ds_producer_new(&p, o, NULL, 0), 0);

    MYSQL *a = itest_mysql_connect(cl.db[0]);
    char want[8192] = "";
    for (int i = 1; i <= 20; i++) {
        char key[32], data[512], row[512];
        snprintf(key, sizeof key, "{\"id\":%d}", i);
        snprintf(data, sizeof data,
                 "{\"id\":%d,\"name\":\"n\\u00e9v \\u2713 %d\",\"email\":"
                 "\"u%d@example.org\",\"balance\":"
                 "\"12345678901234567890.01234567%02d\",\"avatar\":"
                 "{\"base64\":\"AAEC/w==\"},\"active\":%s,\"born\":"
                 "\"1990-05-17\",\"note\":%s}",
                 i, i, i, i, i % 2 ? "true" : "false",
                 i % 3 ? "null" : "\"x'y\\\"z`\"");
        /* The application's own write on server a. */
        itest_mysql_exec(
            a,
            "INSERT INTO users VALUES (%d, 'n\xc3\xa9v \xe2\x9c\x93 "
            "%d', 'u%d@example.org', "
            "'12345678901234567890.01234567%02d', x'000102FF', "
            "%d, '1990-05-17', %s)",
            i, i, i, i, i % 2, i % 3 ? "NULL" : "'x\\'y\"z`'");
        itest_mysql_exec(a, "COMMIT");
        assert_int_equal(ds_emit(p, DS_OP_CREATE, "users", key, data), 0);
        snprintf(
            row, sizeof row,
            "%d|n\xc3\xa9v \xe2\x9c\x93 %d|u%d@example.org|"
            "12345678901234567890.01234567%02d|000102FF|%d|1990-05-17|%s\n",
            i, i, i, i, i % 2, i % 3 ? "~" : "x'y\"z`");
        strcat(want, row);
    }
    assert_int_equal(ds_flush(p, 10000), 0);
    ds_producer_free(p);
    ds_options_free(o);
    mysql_close(a);
    free(spool);
    for (int i = 0; i < TC_NODES; i++)
        tc_wait_dump(&cl, i, USERS_SQL, want, 20000);
    /* a only recorded its own versions (its rows were there before its
     * consumer saw the changes: wait for the records); b and c applied
     * them. */
    tc_wait_dump(&cl, 0,
                 "SELECT COUNT(*), SUM(applied) FROM datasync_versions WHERE "
                 "tbl = 'users'",
                 "20|0\n", 20000);
    char *v = tc_dump(cl.db[1], "SELECT COUNT(*), SUM(applied) FROM "
                                "datasync_versions WHERE tbl = 'users'");
    assert_string_equal(v, "20|20\n");
    free(v);
    /* MariaDB reads a table of values back as bound (with the typed first
     * part the consumer puts in front): no consumer fell back to the IN
     * list, the slower read. */
    for (int i = 0; i < TC_NODES; i++)
        assert_false(tc_log_has(cl.log[i], 0, "read by IN list"));
}

/* ------------------------------------------------------------------------ */

typedef struct kv_change {
    int key;
    uint64_t hlc;
    const char *origin;
    bool del;
    int n;
} kv_change;

static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static char *kv_event(const kv_change *c)
{
    char key[32], data[128];
    snprintf(key, sizeof key, "{\"k\":%d}", c->key);
    snprintf(data, sizeof data, "{\"k\":%d,\"v\":\"e%d-%s\",\"n\":%d}", c->key,
             c->n, c->origin, c->n);
    return tc_event(c->del ? "delete" : (c->n % 2 ? "update" : "create"), "kv",
                    key, c->del ? NULL : data, c->origin, c->hlc);
}

static bool newer(const kv_change *a, const kv_change *b)
{
    if (a->hlc != b->hlc)
        return a->hlc > b->hlc;
    return strcmp(a->origin, b->origin) > 0;
}

/* The same crafted changes, shuffled differently for each server, with
 * duplicates: every server ends with the highest version of each key,
 * deletes included. */
static void shuffled_orders_with_duplicates_converge(void **state)
{
    (void)state;
    enum { KEYS = 25, CHANGES = 400 };
    static const char *const origins[] = {"zo-1", "zo-2", "zo-3"};
    kv_change ch[CHANGES];
    const kv_change *best[KEYS] = {0};

    printf("shuffled: seed %" PRIu64 "\n", rng);
    for (int i = 0; i < CHANGES; i++) {
        ch[i].key = (int)(rnd() % KEYS);
        ch[i].hlc = 1000 + rnd() % 60; /* small range: ties across origins */
        ch[i].origin = origins[rnd() % 3];
        ch[i].del = rnd() % 6 == 0;
        ch[i].n = i;
    }
    /* Distinct versions per key: a duplicate version with other content
     * would be two different changes claiming one version. */
    for (int i = 0; i < CHANGES; i++)
        for (int j = 0; j < i; j++)
            if (ch[j].key == ch[i].key && ch[j].hlc == ch[i].hlc &&
                strcmp(ch[j].origin, ch[i].origin) == 0) {
                ch[i].hlc += 100 + (uint64_t)i;
                j = -1;
            }
    for (int i = 0; i < CHANGES; i++)
        if (!best[ch[i].key] || newer(&ch[i], best[ch[i].key]))
            best[ch[i].key] = &ch[i];

    char want[8192] = "";
    for (int k = 0; k < KEYS; k++) {
        if (!best[k] || best[k]->del)
            continue;
        char row[128];
        snprintf(row, sizeof row, "%d|e%d-%s|%d\n", k, best[k]->n,
                 best[k]->origin, best[k]->n);
        strcat(want, row);
    }

    for (int node = 0; node < TC_NODES; node++) {
        enum { MAX = CHANGES * 2 };
        char *bodies[MAX];
        size_t n = 0;
        int order[CHANGES];
        for (int i = 0; i < CHANGES; i++)
            order[i] = i;
        for (int i = CHANGES - 1; i > 0; i--) {
            int j = (int)(rnd() % (uint64_t)(i + 1));
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < CHANGES; i++) {
            bodies[n++] = kv_event(&ch[order[i]]);
            if (rnd() % 4 == 0) /* a duplicate, soon after or much later */
                bodies[n++] = kv_event(&ch[order[rnd() % (uint64_t)(i + 1)]]);
        }
        tc_publish_to(&cl, node, bodies, n);
        tc_free_all(bodies, n);
    }
    for (int node = 0; node < TC_NODES; node++)
        tc_wait_dump(&cl, node,
                     "SELECT k, v, n FROM kv WHERE k < 1000 ORDER "
                     "BY k",
                     want, 30000);
}

/* ------------------------------------------------------------------------ */

static void publish_one(int node, const char *op, int k, const char *v,
                        const char *origin, uint64_t hlc)
{
    char key[32], data[128];
    snprintf(key, sizeof key, "{\"k\":%d}", k);
    snprintf(data, sizeof data, "{\"k\":%d,\"v\":\"%s\",\"n\":%" PRIu64 "}", k,
             v, hlc);
    char *body = tc_event(op, "kv", key, strcmp(op, "delete") ? data : NULL,
                          origin, hlc);
    tc_publish_to(&cl, node, &body, 1);
    free(body);
}

static void wait_version(int node, int k, uint64_t hlc, const char *origin)
{
    char sql[256], want[128];
    snprintf(sql, sizeof sql,
             "SELECT hlc, origin FROM datasync_versions WHERE tbl = 'kv' AND "
             "pk = '[%d]'",
             k);
    snprintf(want, sizeof want, "%" PRIu64 "|%s\n", hlc, origin);
    tc_wait_dump(&cl, node, sql, want, 10000);
}

static void expect_row(int node, int k, const char *want)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT v FROM kv WHERE k = %d", k);
    tc_wait_dump(&cl, node, sql, want, 5000);
}

/* The three own-origin cases of the rule on server a, and the repair
 * followed by a later own change. */
static void own_origin_cases(void **state)
{
    (void)state;
    const char *own = cl.node[0];
    MYSQL *a = itest_mysql_connect(cl.db[0]);

    /* 1. Nothing stored: the application's write stays; only the version
     * is recorded. */
    itest_mysql_exec(a, "INSERT INTO kv VALUES (1001, 'app1', 0)");
    itest_mysql_exec(a, "COMMIT");
    publish_one(0, "create", 1001, "event1", own, 100);
    wait_version(0, 1001, 100, own);
    expect_row(0, 1001, "app1\n");

    /* 2. An own version stored: again only recorded. */
    itest_mysql_exec(a, "UPDATE kv SET v = 'app2' WHERE k = 1001");
    itest_mysql_exec(a, "COMMIT");
    publish_one(0, "update", 1001, "event2", own, 200);
    wait_version(0, 1001, 200, own);
    expect_row(0, 1001, "app2\n");

    /* 3. Another server's lower version stored (its change arrived after
     * our application's write and overwrote it): our change is applied
     * again. */
    itest_mysql_exec(a, "UPDATE kv SET v = 'own300' WHERE k = 1001");
    itest_mysql_exec(a, "COMMIT");
    publish_one(0, "update", 1001, "remote250", "zz-remote", 250);
    wait_version(0, 1001, 250, "zz-remote");
    expect_row(0, 1001, "remote250\n");
    publish_one(0, "update", 1001, "own300", own, 300);
    wait_version(0, 1001, 300, own);
    expect_row(0, 1001, "own300\n");

    /* After a repair the table holds the consumer's copy: the next own
     * change is written too. */
    itest_mysql_exec(a, "UPDATE kv SET v = 'own400' WHERE k = 1001");
    itest_mysql_exec(a, "COMMIT");
    publish_one(0, "update", 1001, "own400", own, 400);
    wait_version(0, 1001, 400, own);
    expect_row(0, 1001, "own400\n");

    /* A late own change and a lower remote one: superseded. */
    publish_one(0, "update", 1001, "late", own, 350);
    publish_one(0, "delete", 1001, "", "aa-remote", 399);
    publish_one(0, "update", 1001, "sentinel", "zz-remote", 401);
    wait_version(0, 1001, 401, "zz-remote");
    expect_row(0, 1001, "sentinel\n");

    /* An own delete over a remote version: applied (repair). */
    publish_one(0, "delete", 1001, "", own, 500);
    wait_version(0, 1001, 500, own);
    expect_row(0, 1001, "");
    mysql_close(a);
}

/* Server b's clock runs an hour ahead. Its change reaches a and is applied
 * there; a's application then writes the same row and emits. Through the
 * clock file a's producer stamps that change above b's, so it wins on every
 * server; without it, a's write would stay in a's table only. */
static void own_write_after_a_future_remote_change_wins(void **state)
{
    (void)state;
    uint64_t future = (ds__now_ms() + 3600 * 1000) << 16; /* wall clock */
    char *spool = itest_mkdtemp("clock-spool"), sql[160], want[160];
    ds_options *o = ds_options_new();
    ds_producer *p;

    publish_one(0, "update", 9001, "from-b", cl.node[1], future);
    publish_one(1, "update", 9001, "from-b", cl.node[1], future);
    publish_one(2, "update", 9001, "from-b", cl.node[1], future);
    expect_row(0, 9001, "from-b\n");

    /* Server a's application: its own write, then the change. */
    MYSQL *a = itest_mysql_connect(cl.db[0]);
    itest_mysql_exec(a, "UPDATE kv SET v = 'from-a' WHERE k = 9001");
    itest_mysql_exec(a, "COMMIT");
    mysql_close(a);
    assert_int_equal(ds_options_load(o, cl.conf[0]), 0);
    assert_int_equal(ds_options_set(o, "producer.spool_dir", spool), 0);
    assert_int_equal(ds_producer_new(&p, o, NULL, 0), 0);
    ds_options_free(o);
    assert_int_equal(ds_emit(p, DS_OP_UPDATE, "kv", "{\"k\":9001}",
                             "{\"k\":9001,\"v\":\"from-a\",\"n\":0}"),
                     0);
    ds_producer_free(p);
    free(spool);

    snprintf(sql, sizeof sql,
             "SELECT v, origin, hlc > %" PRIu64 " FROM kv JOIN "
             "datasync_versions ON tbl = 'kv' AND pk = '[9001]' WHERE k = 9001",
             future);
    snprintf(want, sizeof want, "from-a|%s|1\n", cl.node[0]);
    for (int node = 0; node < TC_NODES; node++)
        tc_wait_dump(&cl, node, sql, want, 10000);
}

/* Waits (10 s) until a statement in database db has run for 500 ms: on
 * these few rows, one that waits for a lock. */
static void wait_lock_wait(MYSQL *watch, const char *db)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE "
             "db = '%s' AND command IN ('Query', 'Execute') AND time_ms > 500",
             db);
    for (int waited = 0; waited < 10000; waited += 20) {
        if (itest_mysql_count(watch, sql) > 0)
            return;
        ts_sleep_ms(20);
    }
    fail_msg("no statement waited for a lock in %s within 10 s", db);
}

/* A second writer of the same database (a consumer that lost its queue to
 * a standby and still commits, in the real world) holds a newer version of
 * a key, uncommitted, while the consumer applies an older one: the
 * consumer must read the version once that writer has committed, and
 * supersede its change, not overwrite the newer row, however long the
 * writer takes. */
static void an_older_change_waits_for_a_concurrent_newer_one(void **state)
{
    (void)state;
    MYSQL *writer = itest_mysql_connect(cl.db[0]);
    MYSQL *watch = itest_mysql_connect(NULL);

    itest_mysql_exec(writer, "START TRANSACTION");
    itest_mysql_exec(writer, "INSERT INTO kv VALUES (2001, 'newer', 1000)");
    itest_mysql_exec(writer,
                     "INSERT INTO datasync_versions (tbl, pk, hlc, origin, "
                     "deleted, applied) VALUES ('kv', '[2001]', 1000, "
                     "'zz-other', 0, 1)");
    long offset = tc_file_size(cl.log[0]);
    publish_one(0, "create", 2001, "older", "aa-remote", 500);
    wait_lock_wait(watch, cl.db[0]);
    /* Held past the consumer's lock wait timeout (5 s): the read fails
     * with the server's own error, told as such, and is tried again. */
    for (int waited = 0;
         !tc_log_has(cl.log[0], offset, "read versions: [1205]");
         waited += 100) {
        if (waited > 15000)
            fail_msg("no 'read versions: [1205]' in %s within 15 s", cl.log[0]);
        ts_sleep_ms(100);
    }
    itest_mysql_exec(writer, "COMMIT");

    /* A later change of another key: once it is in, so is the older one. */
    publish_one(0, "create", 2002, "after", "aa-remote", 501);
    wait_version(0, 2002, 501, "aa-remote");
    expect_row(0, 2001, "newer\n");
    wait_version(0, 2001, 1000, "zz-other");
    mysql_close(writer);
    mysql_close(watch);
}

/* ------------------------------------------------------------------------ */

typedef struct poison_case {
    char *body;
    const char *reason; /* expected substring of x-datasync-error */
    bool found[TC_NODES];
} poison_case;

/* Bad changes among good ones in the same batches: each bad one lands in
 * datasync.<node>.dead with its reason; every good one applies; no table
 * is harmed. */
static void poison_mix_is_dead_lettered(void **state)
{
    (void)state;
    enum { MAXC = 64 };
    poison_case pc[MAXC];
    char *all[MAXC * 2];
    size_t np = 0, n = 0;
    uint64_t h = 5000;
    char big[5000];

#define POISON(body_expr, why)                                                 \
    do {                                                                       \
        pc[np].body = (body_expr);                                             \
        pc[np].reason = (why);                                                 \
        memset(pc[np].found, 0, sizeof pc[np].found);                          \
        all[n++] = strdup(pc[np++].body);                                      \
    } while (0)
#define GOOD(k)                                                                \
    do {                                                                       \
        char key_[32], data_[64];                                              \
        snprintf(key_, sizeof key_, "{\"k\":%d}", (k));                        \
        snprintf(data_, sizeof data_, "{\"k\":%d,\"v\":\"good\"}", (k));       \
        all[n++] = tc_event("create", "kv", key_, data_, "zz-src", ++h);       \
    } while (0)

    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *bigdata = malloc(sizeof big + 64);
    snprintf(bigdata, sizeof big + 64, "{\"k\":2050,\"v\":\"%s\"}", big);

    /* A first user whose email a bad change will try to take. */
    all[n++] = tc_event("create", "users", "{\"id\":2103}",
                        "{\"id\":2103,\"name\":\"first\",\"email\":\"dup@x\"}",
                        "zz-src", ++h);
    GOOD(2000);
    POISON(strdup("{not json"), "EJSON");
    GOOD(2001);
    POISON(
        tc_event("create", "nosuch", "{\"id\":1}", "{\"id\":1}", "zz-src", ++h),
        "ETABLE");
    POISON(tc_event("create", "x", "{\"id\":3}", "{\"id\":3}", "zz-src", ++h),
           "ETABLE");
    POISON(tc_event("create", "kv", "{\"k\":2100}",
                    "{\"k\":2100,\"v\":\"a\",\"nosuch\":1}", "zz-src", ++h),
           "ECOLUMN");
    GOOD(2002);
    POISON(tc_event("create", "users", "{\"id\":2101}",
                    "{\"id\":2101,\"name\":\"n\",\"balance\":\"abc\"}",
                    "zz-src", ++h),
           "[1366]");
    POISON(tc_event("create", "users", "{\"id\":2102}",
                    "{\"id\":2102,\"name\":\"abcdefghijklmnopqrstuvwxyz0123\"}",
                    "zz-src", ++h),
           "[1406]");
    GOOD(2003);
    POISON(tc_event("create", "kv", "{\"k\":2050}", bigdata, "zz-src", ++h),
           "ETOOBIG");
    POISON(tc_event("create", "users; DROP TABLE x", "{\"id\":1}", "{\"id\":1}",
                    "zz-src", ++h),
           "ESCHEMA");
    POISON(
        tc_event("create", "users`", "{\"id\":1}", "{\"id\":1}", "zz-src", ++h),
        "ESCHEMA");
    POISON(tc_event("create",
                    "u\xd1\x95"
                    "ers",
                    "{\"id\":1}", "{\"id\":1}", "zz-src", ++h),
           "ESCHEMA");
    GOOD(2004);
    POISON(tc_event("create", "kv", "{\"k\":2101}",
                    "{\"k\":2101,\"v`; DROP TABLE x; --\":\"a\"}", "zz-src",
                    ++h),
           "ECOLUMN");
    POISON(tc_event("create", "kv", "{\"k\":2102}",
                    "{\"k\":2102,\"\xd1\xb5\":\"a\"}", "zz-src", ++h),
           "ECOLUMN");
    POISON(tc_event("create", "kv", "{\"k\\u0060\":2103}",
                    "{\"k\":2103,\"v\":\"a\"}", "zz-src", ++h),
           "ECOLUMN");
    POISON(tc_event("create", "tags", "{\"k1\":\"a\"}",
                    "{\"k1\":\"a\",\"v\":\"b\"}", "zz-src", ++h),
           "missing primary-key column");
    POISON(tc_event("create", "kv", "{\"k\":\"abc\"}", "{\"v\":\"a\"}",
                    "zz-src", ++h),
           "must be an integer");
    GOOD(2005);
    POISON(tc_event("create", "users", "{\"id\":2104}",
                    "{\"id\":2104,\"name\":null}", "zz-src", ++h),
           "[1048]");
    POISON(tc_event("create", "users", "{\"id\":2105}",
                    "{\"id\":2105,\"name\":\"second\",\"email\":\"dup@x\"}",
                    "zz-src", ++h),
           "[1062]");
    POISON(tc_event("create", "orders", "{\"id\":1}",
                    "{\"id\":1,\"user_id\":999999,\"total\":\"1.00\"}",
                    "zz-src", ++h),
           "[1452]");
    POISON(tc_event("create", "users", "{\"id\":2106}",
                    "{\"id\":2106,\"name\":\"n\",\"avatar\":{\"base64\":"
                    "\"!!\"}}",
                    "zz-src", ++h),
           "base64");
    GOOD(2006);
    GOOD(2007);
    free(bigdata);

    tc_publish_all(&cl, all, n);
    tc_free_all(all, n);

    for (int node = 0; node < TC_NODES; node++) {
        size_t got = 0;
        while (got < np) {
            char *body = NULL, *reason = NULL;
            if (!tc_dead_get(&cl, node, &body, &reason, 30000))
                fail_msg("node %s: %zu of %zu dead letters arrived (log %s)",
                         cl.node[node], got, np, cl.log[node]);
            size_t i;
            for (i = 0; i < np; i++)
                if (!pc[i].found[node] && strcmp(pc[i].body, body) == 0)
                    break;
            if (i == np)
                fail_msg("node %s: unexpected dead letter %.200s (%s)",
                         cl.node[node], body, reason);
            if (!strstr(reason, pc[i].reason))
                fail_msg("node %s: dead letter %.100s: reason '%s' lacks "
                         "'%s'",
                         cl.node[node], body, reason, pc[i].reason);
            printf("node %s dead letter: %s\n", cl.node[node], reason);
            pc[i].found[node] = true;
            got++;
            free(body);
            free(reason);
        }
        tc_wait_dump(&cl, node,
                     "SELECT k, v FROM kv WHERE k BETWEEN 2000 AND 2999 "
                     "ORDER BY k",
                     "2000|good\n2001|good\n2002|good\n2003|good\n2004|good\n"
                     "2005|good\n2006|good\n2007|good\n",
                     10000);
        tc_wait_dump(&cl, node,
                     "SELECT id, name, email FROM users WHERE id > 2000 "
                     "ORDER BY id",
                     "2103|first|dup@x\n", 5000);
        tc_wait_dump(&cl, node, "SELECT COUNT(*) FROM x", "2\n", 1000);
        tc_wait_dump(&cl, node, "SELECT COUNT(*) FROM orders", "0\n", 1000);
    }
    for (size_t i = 0; i < np; i++)
        free(pc[i].body);
#undef POISON
#undef GOOD
}

/* SIGTERM with changes flowing: each consumer commits, acks and exits 0
 * well within 5 s; what it acked is in its table. */
static void sigterm_exits_promptly(void **state)
{
    (void)state;
    char *bodies[100];
    for (int i = 0; i < 100; i++) {
        char key[32], data[64];
        snprintf(key, sizeof key, "{\"k\":%d}", 3000 + i);
        snprintf(data, sizeof data, "{\"k\":%d,\"v\":\"t\"}", 3000 + i);
        bodies[i] =
            tc_event("create", "kv", key, data, "zz-src", 9000 + (uint64_t)i);
    }
    tc_publish_all(&cl, bodies, 100);
    tc_free_all(bodies, 100);
    for (int node = 0; node < TC_NODES; node++) {
        long long t0 = ts_now_ms();
        int rc = tc_stop(&cl, node, SIGTERM, 10000);
        long long took = ts_now_ms() - t0;
        printf("node %s: exit %d after %lld ms\n", cl.node[node], rc, took);
        assert_int_equal(rc, 0);
        assert_true(took < 5000);
    }
    /* Restarted, they finish the rest: nothing was lost. */
    char want[4096] = "";
    for (int i = 0; i < 100; i++) {
        char row[32];
        snprintf(row, sizeof row, "%d|t\n", 3000 + i);
        strcat(want, row);
    }
    for (int node = 0; node < TC_NODES; node++)
        tc_start(&cl, node);
    for (int node = 0; node < TC_NODES; node++)
        tc_wait_dump(&cl, node,
                     "SELECT k, v FROM kv WHERE k BETWEEN 3000 AND 3999 "
                     "ORDER BY k",
                     want, 20000);
}

/* Publishes a marker (as datasync bootstrap sends one) with message id id
 * to node i's queue. */
static void publish_marker(int i, const char *id)
{
    amqp_connection_state_t conn = itest_amqp_connect();
    amqp_basic_properties_t props;

    ds__amqp_marker_props(&props, id);
    assert_int_equal(amqp_basic_publish(conn, 1, amqp_cstring_bytes(""),
                                        amqp_cstring_bytes(cl.queue[i]), 0, 0,
                                        &props, amqp_cstring_bytes("{}")),
                     AMQP_STATUS_OK);
    itest_amqp_close(conn);
}

/* A marker is recorded once its batch committed; one whose id could never
 * be recorded is a dead letter with its reason, not acked unrecorded nor
 * retried forever. */
static void markers_are_recorded_or_dead_lettered(void **state)
{
    static const char good[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    char sql[160], *body = NULL, *reason = NULL;

    (void)state;
    publish_marker(0, "not-a-uuid");
    publish_marker(0, good);
    if (!tc_dead_get(&cl, 0, &body, &reason, 30000))
        fail_msg("the bad marker is not dead-lettered (log %s)", cl.log[0]);
    if (!strstr(reason, "not a UUID"))
        fail_msg("dead letter reason '%s' lacks 'not a UUID'", reason);
    free(body);
    free(reason);
    snprintf(
        sql, sizeof sql,
        "SELECT COUNT(*) FROM datasync_versions WHERE tbl = '" DS_MARKER_TBL
        "' AND pk = '%s'",
        good);
    tc_wait_dump(&cl, 0, sql, "1\n", 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(emitted_changes_reach_every_server),
        cmocka_unit_test(shuffled_orders_with_duplicates_converge),
        cmocka_unit_test(own_origin_cases),
        cmocka_unit_test(own_write_after_a_future_remote_change_wins),
        cmocka_unit_test(an_older_change_waits_for_a_concurrent_newer_one),
        cmocka_unit_test(poison_mix_is_dead_lettered),
        cmocka_unit_test(markers_are_recorded_or_dead_lettered),
        cmocka_unit_test(sigterm_exits_promptly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
