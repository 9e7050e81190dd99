/* test_producer.c: libdatasync against the private RabbitMQ: delivery, spool and drain, returns, nacks, threads, bad input. */
#include "itest.h"

#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasync.h"
#include "event.h"
#include "ids.h"
#include "producer_private.h"

#define EXCHANGE "ds_ptest"
#define ROUTING_KEY "data.sync"

struct fixture {
    amqp_connection_state_t conn;
    char queue[64];
    char *spool_dir;
    ds_producer *p;
};

static int test_no;
/* The fixture of the running test, freed by the teardown even when an
 * assertion ends the test early. */
static struct fixture *current;

/* The producer's log, on stderr: what a failed run needs to be read. */
static void log_to_stderr(void *ud, ds_log_level level, const char *msg)
{
    (void)ud;
    fprintf(stderr, "  producer %d: %s\n", (int)level, msg);
}

/* A producer on urls, spooling to spool_dir, logging to stderr. */
static ds_producer *open_producer_at(const char *urls, const char *mode,
                                     const char *spool_dir,
                                     int confirm_timeout_ms)
{
    ds_options *o = ds_options_new();
    char timeout[16], err[DS_ERRBUF_SIZE];
    ds_producer *p = NULL;
    int rc;

    assert_non_null(o);
    snprintf(timeout, sizeof timeout, "%d", confirm_timeout_ms);
    assert_int_equal(ds_options_set(o, "amqp.url", urls), 0);
    assert_int_equal(ds_options_set(o, "amqp.exchange", EXCHANGE), 0);
    assert_int_equal(ds_options_set(o, "node.id", "node-a"), 0);
    assert_int_equal(ds_options_set(o, "producer.mode", mode), 0);
    assert_int_equal(ds_options_set(o, "producer.spool_dir", spool_dir), 0);
    assert_int_equal(ds_options_set(o, "producer.confirm_timeout_ms", timeout),
                     0);
    rc = ds_producer_new(&p, o, err, sizeof err);
    if (rc != 0)
        fail_msg("ds_producer_new: %s: %s", ds_err_name(rc), err);
    ds_producer_set_log(p, log_to_stderr, NULL);
    ds_options_free(o);
    return p;
}

/* A producer on the private broker, spooling to spool_dir, logging to
 * stderr. */
static ds_producer *open_producer(const char *mode, const char *spool_dir,
                                  int confirm_timeout_ms)
{
    return open_producer_at(itest_amqp_url(), mode, spool_dir,
                            confirm_timeout_ms);
}

/* A copy of p's backoff, taken under the lock that guards it. */
static ds_backoff backoff_of(ds_producer *p)
{
    ds_backoff b;
    pthread_mutex_lock(&p->lock);
    b = p->backoff;
    pthread_mutex_unlock(&p->lock);
    return b;
}

/* A producer on the private broker with its own spool and a bound queue. */
static struct fixture *fixture_new(const char *mode, int confirm_timeout_ms)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->queue, sizeof f->queue, "ds_ptest.q%d", ++test_no);
    f->spool_dir = itest_mkdtemp("spool");
    f->conn = itest_amqp_connect();
    /* A fresh exchange: no binding left by an earlier test routes here. */
    itest_exchange_delete(f->conn, EXCHANGE);
    itest_queue_delete(f->conn, f->queue);
    itest_queue_declare_bound(f->conn, f->queue, EXCHANGE, ROUTING_KEY);
    f->p = open_producer(mode, f->spool_dir, confirm_timeout_ms);
    current = f;
    return f;
}

static void fixture_free(struct fixture *f)
{
    current = NULL;
    ds_producer_free(f->p);
    if (f->conn)
        itest_queue_delete(f->conn, f->queue);
    itest_amqp_close(f->conn);
    free(f->spool_dir);
    free(f);
}

/* After each test: the broker runs again and the fixture is gone. */
static int teardown(void **state)
{
    (void)state;
    if (itest_service("rabbit", "start") != 0)
        return -1;
    if (current) {
        itest_amqp_close(current->conn);
        current->conn = itest_amqp_connect();
        fixture_free(current);
    }
    return 0;
}

/* Stops the broker, closing the fixture's own connection first. */
static void broker_stop(struct fixture *f)
{
    itest_amqp_close(f->conn);
    f->conn = NULL;
    assert_int_equal(itest_service("rabbit", "stop"), 0);
}

/* Starts the broker and opens the fixture's connection again. */
static void broker_start(struct fixture *f)
{
    assert_int_equal(itest_service("rabbit", "start"), 0);
    f->conn = itest_amqp_connect();
}

static int emit_user(ds_producer *p, ds_op op, int id, const char *name)
{
    char key[64], data[256];
    snprintf(key, sizeof key, "{\"id\":%d}", id);
    snprintf(data, sizeof data, "{\"id\":%d,\"name\":\"%s\"}", id, name);
    return ds_emit(p, op, "users", key, op == DS_OP_DELETE ? NULL : data);
}

/* Waits until the queue holds want messages (or timeout); returns depth. */
static long wait_depth(struct fixture *f, long want, int timeout_ms)
{
    uint64_t end = ds__now_ms() + (uint64_t)timeout_ms;
    long depth;
    while ((depth = itest_queue_depth(f->conn, f->queue)) < want &&
           ds__now_ms() < end)
        usleep(50 * 1000);
    return depth;
}

static void emitted_change_arrives_with_every_contract_field(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("sync", 5000);
    amqp_rpc_reply_t r;
    amqp_message_t msg;
    ds_event ev;
    char err[256];

    assert_int_equal(emit_user(f->p, DS_OP_CREATE, 7, "Ann"), 0);

    amqp_basic_get(f->conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(f->queue),
                   1);
    r = amqp_get_rpc_reply(f->conn);
    itest_amqp_check(r, "basic.get");
    assert_int_equal(r.reply.id, AMQP_BASIC_GET_OK_METHOD);
    itest_amqp_check(amqp_read_message(f->conn, ITEST_AMQP_CHANNEL, &msg, 0),
                     "read message");

    int rc =
        ds__event_parse(&ev, msg.body.bytes, msg.body.len, err, sizeof err);
    if (rc != 0)
        fail_msg("body does not validate: %s: %.*s", err, (int)msg.body.len,
                 (char *)msg.body.bytes);
    assert_string_equal(ev.origin, "node-a");
    assert_string_equal(ev.table, "users");
    assert_int_equal(ev.op, DS_OP_CREATE);
    assert_string_equal(json_object_to_json_string(ev.key), "{ \"id\": 7 }");
    assert_int_equal(ev.id[14], '7'); /* UUID version 7 */
    assert_true(ds__hlc_ms(ev.hlc) > 1600000000000ULL);

    amqp_basic_properties_t *pr = &msg.properties;
    assert_true(pr->_flags & AMQP_BASIC_MESSAGE_ID_FLAG);
    assert_int_equal(pr->message_id.len, 36);
    assert_memory_equal(pr->message_id.bytes, ev.id, 36);
    assert_true(pr->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG);
    assert_int_equal(pr->content_type.len, strlen("application/json"));
    assert_memory_equal(pr->content_type.bytes, "application/json", 16);
    assert_int_equal(pr->delivery_mode, AMQP_DELIVERY_PERSISTENT);
    assert_true(pr->_flags & AMQP_BASIC_TIMESTAMP_FLAG);
    assert_true(pr->_flags & AMQP_BASIC_HEADERS_FLAG);
    bool has_origin = false;
    for (int i = 0; i < pr->headers.num_entries; i++) {
        amqp_table_entry_t *e = &pr->headers.entries[i];
        if (e->key.len == 8 && memcmp(e->key.bytes, "x-origin", 8) == 0) {
            assert_int_equal(e->value.value.bytes.len, 6);
            assert_memory_equal(e->value.value.bytes.bytes, "node-a", 6);
            has_origin = true;
        }
    }
    assert_true(has_origin);
    amqp_destroy_message(&msg);
    ds__event_clear(&ev);

    ds_producer_stats st;
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.emitted, 1);
    assert_int_equal(st.confirmed, 1);
    assert_int_equal(st.spooled, 0);
    fixture_free(f);
}

/* Reads every message of the queue and checks the hlc order and the count. */
static void expect_in_order(struct fixture *f, int count, int timeout_ms)
{
    uint64_t last_hlc = 0;
    char err[256];
    for (int i = 0; i < count; i++) {
        char *body = itest_queue_get(f->conn, f->queue, timeout_ms);
        ds_event ev;
        if (!body)
            fail_msg("message %d of %d never arrived", i + 1, count);
        assert_int_equal(
            ds__event_parse(&ev, body, strlen(body), err, sizeof err), 0);
        if (ev.hlc <= last_hlc)
            fail_msg("message %d out of order: hlc %llu after %llu", i + 1,
                     (unsigned long long)ev.hlc, (unsigned long long)last_hlc);
        last_hlc = ev.hlc;
        ds__event_clear(&ev);
        free(body);
    }
    assert_null(itest_queue_get(f->conn, f->queue, 300));
}

static void broker_down_spools_then_drains_in_order(void **state)
{
    (void)state;
    enum { N = 40 };
    struct fixture *f = fixture_new("sync", 1500);
    ds_producer_stats st;

    assert_int_equal(emit_user(f->p, DS_OP_CREATE, 1, "before"), 0);
    assert_non_null(itest_queue_get(f->conn, f->queue, 5000));
    broker_stop(f);

    for (int i = 0; i < N; i++) {
        uint64_t t0 = ds__now_ms();
        int rc = emit_user(f->p, DS_OP_UPDATE, 1, "while-down");
        uint64_t took = ds__now_ms() - t0;
        if (rc != 0)
            fail_msg("emit %d with the broker down: %s (%s)", i,
                     ds_err_name(rc), ds_producer_errmsg(f->p));
        /* The contract: never longer than the confirm timeout (+ grace). */
        if (took > 1500 + 1000)
            fail_msg("emit %d took %llu ms with the broker down", i,
                     (unsigned long long)took);
    }
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.spooled, N);

    broker_start(f);
    /* Backoff is at most 10 s; the drain then publishes all of them. */
    assert_int_equal(wait_depth(f, N, 30000), N);
    expect_in_order(f, N, 2000);
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.confirmed, N + 1);
    assert_true(st.reconnects >= 1);
    fixture_free(f);
}

static void async_emits_spool_while_down_and_drain_after(void **state)
{
    (void)state;
    enum { N = 300 };
    struct fixture *f = fixture_new("async", 1500);

    broker_stop(f);
    for (int i = 0; i < N; i++)
        assert_int_equal(emit_user(f->p, DS_OP_UPDATE, i, "async"), 0);
    assert_int_equal(ds_flush(f->p, 5000), 0);
    ds_producer_stats st;
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.spooled, N);

    broker_start(f);
    assert_int_equal(wait_depth(f, N, 30000), N);
    expect_in_order(f, N, 2000);
    fixture_free(f);
}

/* Makes every file write of this process fail as a full disk would
 * (EFBIG): a file-size limit of one byte. *was gets the limit to restore. */
static void refuse_file_writes(struct rlimit *was)
{
    struct rlimit tiny;

    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, was), 0);
    tiny = *was;
    tiny.rlim_cur = 1;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &tiny), 0);
}

/* Async changes the spool refuses while the broker is down are lost: the
 * next ds_flush says so, once, and stats count them. */
static void async_changes_the_spool_refused_are_reported_by_flush(void **state)
{
    (void)state;
    enum { N = 5 };
    struct fixture *f = fixture_new("async", 1000);
    struct rlimit was;
    ds_producer_stats st;
    char want[64];
    int rc;

    broker_stop(f);
    refuse_file_writes(&was);
    for (int i = 0; i < N; i++)
        assert_int_equal(emit_user(f->p, DS_OP_UPDATE, i, "refused"), 0);
    rc = ds_flush(f->p, 10000);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &was), 0);
    assert_int_equal(rc, DS_ESPOOL);
    snprintf(want, sizeof want, "%d changes were lost", N);
    assert_non_null(strstr(ds_producer_errmsg(f->p), want));
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.lost, N);
    assert_int_equal(st.spooled, 0);
    assert_int_equal(ds_flush(f->p, 5000), 0); /* reported once */

    /* The spool takes changes again, and the broker gets them. */
    assert_int_equal(emit_user(f->p, DS_OP_UPDATE, N, "kept"), 0);
    assert_int_equal(ds_flush(f->p, 5000), 0);
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.spooled, 1);
    broker_start(f);
    assert_int_equal(wait_depth(f, 1, 30000), 1);
    fixture_free(f);
}

/* A sync change the spool refuses while the broker is down is lost: ds_emit
 * says so (DS_ESPOOL, with the spool's reason), and stats count it as the
 * I/O thread counts its own, so a caller's tally of lost changes adds up. */
static void sync_changes_the_spool_refused_are_counted_lost(void **state)
{
    (void)state;
    enum { N = 3 };
    struct fixture *f = fixture_new("sync", 1000);
    struct rlimit was;
    ds_producer_stats st;
    int rc[N];

    broker_stop(f);
    refuse_file_writes(&was);
    /* Each is taken back after the confirm timeout, or finds the broker
     * known down: ds_emit spools it either way. */
    for (int i = 0; i < N; i++)
        rc[i] = emit_user(f->p, DS_OP_UPDATE, i, "refused");
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &was), 0);
    for (int i = 0; i < N; i++)
        if (rc[i] != DS_ESPOOL)
            fail_msg("emit %d: %s, not DS_ESPOOL", i, ds_err_name(rc[i]));
    if (!strstr(ds_producer_errmsg(f->p), "spool"))
        fail_msg("no reason given: \"%s\"", ds_producer_errmsg(f->p));
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.lost, N);
    assert_int_equal(st.spooled, 0);
    assert_int_equal(st.emitted, N);

    /* The spool takes changes again, and the broker gets them. */
    assert_int_equal(emit_user(f->p, DS_OP_UPDATE, N, "kept"), 0);
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.spooled, 1);
    assert_int_equal(st.lost, N);
    broker_start(f);
    assert_int_equal(wait_depth(f, 1, 30000), 1);
    fixture_free(f);
}

/* Freeing a producer while it drains a large spool waits for the chunk in
 * flight, not for the whole backlog: the rest stays on disk, and the next
 * producer on that spool delivers it. */
static void free_leaves_a_long_drain_to_the_next_producer(void **state)
{
    (void)state;
    enum { N = 30000 };
    struct fixture *f = fixture_new("async", 2000);
    ds_producer_stats st;
    ds_producer *next;

    broker_stop(f);
    for (int i = 0; i < N; i++)
        assert_int_equal(emit_user(f->p, DS_OP_UPDATE, i, "backlog"), 0);
    assert_int_equal(ds_flush(f->p, 30000), 0);
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.spooled, N);

    broker_start(f);
    assert_true(wait_depth(f, 1, 30000) >= 1); /* the drain has begun */
    ds_producer_free(f->p);
    f->p = NULL;
    next = open_producer("async", f->spool_dir, 2000);
    ds_producer_stats_get(next, &st, sizeof st);
    if (st.spool_bytes == 0)
        fail_msg("ds_producer_free drained the whole spool (%ld of %d "
                 "changes delivered)",
                 itest_queue_depth(f->conn, f->queue), N);
    f->p = next;
    assert_true(wait_depth(f, N, 60000) >= N);
    fixture_free(f);
}

static void unroutable_is_reported_not_dropped(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("sync", 5000);
    ds_producer_stats st;

    /* Unbind the only queue: the exchange routes the change nowhere. */
    amqp_queue_unbind(f->conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(f->queue),
                      amqp_cstring_bytes(EXCHANGE),
                      amqp_cstring_bytes(ROUTING_KEY), amqp_empty_table);
    itest_amqp_check(amqp_get_rpc_reply(f->conn), "queue.unbind");

    assert_int_equal(emit_user(f->p, DS_OP_CREATE, 1, "lost?"), DS_EUNROUTABLE);
    assert_non_null(strstr(ds_producer_errmsg(f->p), "no queue is bound"));
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.unroutable, 1);
    ds_producer_free(f->p);

    /* Async: the flush reports it. */
    f->p = open_producer("async", f->spool_dir, 5000);
    assert_int_equal(emit_user(f->p, DS_OP_CREATE, 2, "lost?"), 0);
    assert_int_equal(ds_flush(f->p, 5000), DS_EUNROUTABLE);
    assert_int_equal(ds_flush(f->p, 5000), 0); /* reported once */
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.unroutable, 1);
    fixture_free(f);
}

static void nacked_changes_are_retried_or_spooled_never_lost(void **state)
{
    (void)state;
    enum { N = 30, MAXLEN = 5 };
    struct fixture *f = fixture_new("async", 2000);
    amqp_table_entry_t args[2];
    amqp_table_t table = {2, args};
    char q[80];
    ds_producer_stats st;

    /* A second queue that refuses publishes beyond 5 messages: the broker
     * nacks what it cannot store. */
    snprintf(q, sizeof q, "%s.small", f->queue);
    args[0].key = amqp_cstring_bytes("x-max-length");
    args[0].value.kind = AMQP_FIELD_KIND_I32;
    args[0].value.value.i32 = MAXLEN;
    args[1].key = amqp_cstring_bytes("x-overflow");
    args[1].value.kind = AMQP_FIELD_KIND_UTF8;
    args[1].value.value.bytes = amqp_cstring_bytes("reject-publish");
    itest_queue_delete(f->conn, q);
    amqp_queue_declare(f->conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(q), 0, 1,
                       0, 0, table);
    itest_amqp_check(amqp_get_rpc_reply(f->conn), "queue.declare small");
    amqp_queue_bind(f->conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(q),
                    amqp_cstring_bytes(EXCHANGE),
                    amqp_cstring_bytes(ROUTING_KEY), amqp_empty_table);
    itest_amqp_check(amqp_get_rpc_reply(f->conn), "queue.bind small");

    for (int i = 0; i < N; i++)
        assert_int_equal(emit_user(f->p, DS_OP_CREATE, i, "nack"), 0);
    assert_int_equal(ds_flush(f->p, 10000), 0);
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_true(st.nacked > 0);
    /* Every change is either confirmed or in the spool. */
    assert_int_equal(st.confirmed + st.spooled, N);
    assert_true(st.spooled > 0);
    /* A change refused DS_MAX_NACKS times makes the producer connect again:
     * a stale channel (a quorum queue's leader gone) would refuse it
     * forever. */
    for (uint64_t t_end = ds__now_ms() + 5000;
         st.reconnects == 0 && ds__now_ms() < t_end; usleep(20 * 1000))
        ds_producer_stats_get(f->p, &st, sizeof st);
    assert_true(st.reconnects > 0);

    /* Make room: the spool drains into the small queue over time. Count
     * distinct ids reaching it until all N arrived. */
    char **seen = calloc(N, sizeof *seen);
    int distinct = 0;
    uint64_t end = ds__now_ms() + 60000;
    while (distinct < N && ds__now_ms() < end) {
        char *body = itest_queue_get(f->conn, q, 200);
        if (!body)
            continue;
        ds_event ev;
        char err[256];
        assert_int_equal(
            ds__event_parse(&ev, body, strlen(body), err, sizeof err), 0);
        bool dup = false;
        for (int i = 0; i < distinct; i++)
            dup = dup || strcmp(seen[i], ev.id) == 0;
        if (!dup)
            seen[distinct++] = strdup(ev.id);
        ds__event_clear(&ev);
        free(body);
    }
    if (distinct != N)
        fail_msg("only %d of %d nacked changes ever arrived", distinct, N);
    for (int i = 0; i < distinct; i++)
        free(seen[i]);
    free(seen);
    itest_queue_delete(f->conn, q);
    fixture_free(f);
}

enum { THREADS = 8, PER_THREAD = 250 };

static void *emit_many(void *arg)
{
    ds_producer *p = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        int rc = emit_user(p, DS_OP_UPDATE, i, "thread");
        if (rc != 0)
            return (void *)(intptr_t)rc;
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_threads(const char *mode)
{
    struct fixture *f = fixture_new(mode, 5000);
    pthread_t th[THREADS];
    enum { TOTAL = THREADS * PER_THREAD };
    char **ids = calloc(TOTAL, sizeof *ids);
    char err[256];

    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, emit_many, f->p), 0);
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(ds_flush(f->p, 10000), 0);
    for (int i = 0; i < TOTAL; i++) {
        char *body = itest_queue_get(f->conn, f->queue, 5000);
        ds_event ev;
        if (!body)
            fail_msg("only %d of %d changes arrived", i, TOTAL);
        assert_int_equal(
            ds__event_parse(&ev, body, strlen(body), err, sizeof err), 0);
        ids[i] = strdup(ev.id);
        ds__event_clear(&ev);
        free(body);
    }
    assert_null(itest_queue_get(f->conn, f->queue, 300));
    qsort(ids, TOTAL, sizeof *ids, cmp_str);
    for (int i = 1; i < TOTAL; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("id %s arrived twice", ids[i]);
    for (int i = 0; i < TOTAL; i++)
        free(ids[i]);
    free(ids);
    fixture_free(f);
}

static void eight_threads_sync_each_change_once(void **state)
{
    (void)state;
    run_threads("sync");
}

static void eight_threads_async_each_change_once(void **state)
{
    (void)state;
    run_threads("async");
}

static void bad_input_is_refused_and_publishes_nothing(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("sync", 5000);
    struct {
        ds_op op;
        const char *table, *key, *data;
        int code;
        const char *names;
    } cases[] = {
        {(ds_op)9, "users", "{\"id\":1}", "{}", DS_EINVAL, "op"},
        {DS_OP_CREATE, "users; DROP TABLE x", "{\"id\":1}", "{\"a\":1}",
         DS_ESCHEMA, "table"},
        {DS_OP_CREATE, "", "{\"id\":1}", "{\"a\":1}", DS_ESCHEMA, "table"},
        {DS_OP_CREATE, NULL, "{\"id\":1}", "{\"a\":1}", DS_EINVAL, "table"},
        {DS_OP_CREATE, "users", "[1]", "{\"a\":1}", DS_ESCHEMA, "key"},
        {DS_OP_CREATE, "users", "{}", "{\"a\":1}", DS_ESCHEMA, "key"},
        {DS_OP_CREATE, "users", "{\"id\":null}", "{\"a\":1}", DS_ESCHEMA,
         "key"},
        {DS_OP_CREATE, "users", "{\"id\":1", "{\"a\":1}", DS_EJSON, "key"},
        {DS_OP_DELETE, "users", "{\"id\":1}", "{\"a\":1}", DS_ESCHEMA, "data"},
        {DS_OP_CREATE, "users", "{\"id\":1}", NULL, DS_ESCHEMA, "data"},
        {DS_OP_UPDATE, "users", "{\"id\":1}", "{\"a\":[1]}", DS_ESCHEMA,
         "data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = ds_emit(f->p, cases[i].op, cases[i].table, cases[i].key,
                         cases[i].data);
        if (rc != cases[i].code)
            fail_msg("case %zu: got %s (%s), want %s", i, ds_err_name(rc),
                     ds_producer_errmsg(f->p), ds_err_name(cases[i].code));
        if (!strstr(ds_producer_errmsg(f->p), cases[i].names))
            fail_msg("case %zu: message \"%s\" does not name %s", i,
                     ds_producer_errmsg(f->p), cases[i].names);
    }
    assert_int_equal(ds_emit_event(f->p, "{\"v\":1}"), DS_ESCHEMA);
    assert_int_equal(ds_emit_event(f->p, "not json"), DS_EJSON);
    assert_int_equal(ds_emit_event(f->p, NULL), DS_EINVAL);
    assert_int_equal(ds_emit(NULL, DS_OP_CREATE, "t", "{\"a\":1}", "{}"),
                     DS_EINVAL);

    ds_producer_stats st;
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.emitted, 0);
    assert_int_equal(itest_queue_depth(f->conn, f->queue), 0);
    fixture_free(f);
}

static void emit_event_keeps_id_and_version(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("sync", 5000);
    const char *event =
        "{\"v\":1,\"id\":\"0190a5f0-1c2d-7e3f-8a4b-5c6d7e8f9a0b\","
        "\"origin\":\"node-b\",\"hlc\":123456789,"
        "\"ts\":\"2024-07-01T12:00:00.000Z\",\"op\":\"update\","
        "\"table\":\"users\",\"key\":{\"id\":5},\"data\":{\"id\":5}}";
    char err[256];
    ds_event ev;

    assert_int_equal(ds_emit_event(f->p, event), 0);
    char *body = itest_queue_get(f->conn, f->queue, 5000);
    assert_non_null(body);
    assert_int_equal(ds__event_parse(&ev, body, strlen(body), err, sizeof err),
                     0);
    assert_string_equal(ev.id, "0190a5f0-1c2d-7e3f-8a4b-5c6d7e8f9a0b");
    assert_string_equal(ev.origin, "node-b");
    assert_int_equal(ev.hlc, 123456789);
    ds__event_clear(&ev);
    free(body);
    fixture_free(f);
}

static void forked_child_reconnects(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("sync", 5000);
    pid_t child;
    int status;

    assert_int_equal(emit_user(f->p, DS_OP_CREATE, 1, "parent"), 0);
    ds_backoff parent_backoff = backoff_of(f->p);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int rc = emit_user(f->p, DS_OP_UPDATE, 1, "child");
        rc = rc == 0 ? ds_flush(f->p, 5000) : rc;
        /* A child drawing its parent's jitter would retry in step. */
        bool reseeded = backoff_of(f->p).rng != parent_backoff.rng;
        ds_producer_free(f->p);
        _exit(rc != 0 ? 1 : !reseeded ? 2 : 0);
    }
    waitpid(child, &status, 0);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2)
        fail_msg("the child kept its parent's backoff generator");
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(emit_user(f->p, DS_OP_UPDATE, 1, "parent-again"), 0);
    assert_int_equal(wait_depth(f, 3, 5000), 3);
    fixture_free(f);
}

/* In a forked child, the first call fails to set the producer up again (no
 * file descriptor left for the spool): it reports it, and the next call,
 * with descriptors to spare, sets it up and emits. */
static int child_retries_after_a_failed_setup(ds_producer *p)
{
    struct rlimit was, none;
    int rc;

    /* A limit of 0: no new descriptor at all, however many are closed. */
    if (getrlimit(RLIMIT_NOFILE, &was) < 0)
        return 10;
    none = was;
    none.rlim_cur = 0;
    if (setrlimit(RLIMIT_NOFILE, &none) < 0)
        return 11;
    rc = emit_user(p, DS_OP_UPDATE, 1, "no-fd");
    if (setrlimit(RLIMIT_NOFILE, &was) < 0)
        return 12;
    if (rc >= 0)
        return 13;
    rc = emit_user(p, DS_OP_UPDATE, 1, "child-after");
    rc = rc == 0 ? ds_flush(p, 5000) : rc;
    ds_producer_free(p);
    return rc == 0 ? 0 : 14;
}

static void forked_child_retries_a_failed_setup(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("sync", 5000);
    pid_t child;
    int status;

    assert_int_equal(emit_user(f->p, DS_OP_CREATE, 1, "parent"), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(child_retries_after_a_failed_setup(f->p));
    assert_int_equal(waitpid(child, &status, 0), child);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child: %s %d",
                 WIFEXITED(status) ? "exit status" : "killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    assert_int_equal(wait_depth(f, 2, 5000), 2);
    fixture_free(f);
}

/* Two producers sharing a spool directory, as the processes of one
 * server's application do, take turns changing one row: every change is
 * stamped above the one before it, whichever producer made it. Otherwise
 * two changes within a millisecond would carry the same version and the
 * later one would be superseded on every other server. */
static void producers_sharing_a_spool_stamp_in_order(void **state)
{
    (void)state;
    enum { N = 200 };
    struct fixture *f = fixture_new("sync", 5000);
    ds_producer *other = open_producer("sync", f->spool_dir, 5000);

    for (int i = 0; i < N; i++)
        assert_int_equal(
            emit_user(i % 2 ? other : f->p, DS_OP_UPDATE, 1, "turns"), 0);
    ds_producer_free(other);
    expect_in_order(f, N, 2000);
    fixture_free(f);
}

/* A resource alarm: the broker blocks publishers (connection.blocked). Sync
 * emits still return within the timeout, their changes spooled, and arrive
 * once the alarm clears. */
static void blocked_broker_spools_within_the_timeout(void **state)
{
    (void)state;
    enum { N = 5 };
    struct fixture *f = fixture_new("sync", 1500);
    char cmd[512];
    ds_producer_stats st;

    assert_int_equal(emit_user(f->p, DS_OP_CREATE, 1, "before"), 0);
    snprintf(cmd, sizeof cmd,
             "%s rabbit ctl set_vm_memory_high_watermark 0.0000001 >/dev/null",
             itest_env("DS_TEST_SERVICES"));
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < N; i++) {
        uint64_t t0 = ds__now_ms();
        assert_int_equal(emit_user(f->p, DS_OP_UPDATE, 1, "blocked"), 0);
        if (ds__now_ms() - t0 > 1500 + 1000)
            fail_msg("emit %d took %llu ms while blocked", i,
                     (unsigned long long)(ds__now_ms() - t0));
    }
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.spooled, N);
    snprintf(cmd, sizeof cmd,
             "%s rabbit ctl set_vm_memory_high_watermark 0.4 >/dev/null",
             itest_env("DS_TEST_SERVICES"));
    assert_int_equal(system(cmd), 0);
    /* The "before" change plus every spooled one, at least once each. */
    assert_true(wait_depth(f, N + 1, 30000) >= N + 1);
    fixture_free(f);
}

/* The broker closes every connection (rabbitmqctl close_all_connections),
 * the fixture's too, which is opened again; then waits until p has
 * reconnected for the n-th time and returns the host:port it is on. */
static void break_connections(struct fixture *f, ds_producer *p, uint64_t n,
                              char *host, size_t len)
{
    char cmd[512];
    ds_producer_stats st;
    uint64_t end = ds__now_ms() + 20000;

    snprintf(cmd, sizeof cmd,
             "%s rabbit ctl close_all_connections 'test: broken' >/dev/null",
             itest_env("DS_TEST_SERVICES"));
    assert_int_equal(system(cmd), 0);
    itest_amqp_close(f->conn);
    f->conn = itest_amqp_connect();
    do {
        usleep(20 * 1000);
        ds_producer_stats_get(p, &st, sizeof st);
    } while (st.reconnects < n && ds__now_ms() < end);
    if (st.reconnects < n)
        fail_msg("the producer did not reconnect within 20 s");
    pthread_mutex_lock(&p->lock);
    snprintf(host, len, "%s", p->amqp.host);
    pthread_mutex_unlock(&p->lock);
}

/* When the connection breaks, the next attempt begins with the next URL of
 * amqp.url (a cluster's next member), not with the broker that just went
 * away: across a network a host that is down costs a whole connect timeout
 * before the next URL is tried. Two URLs for the one private broker
 * (127.0.0.1 and localhost) tell the attempts apart. */
static void broken_connection_moves_to_the_next_url(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("sync", 2000);
    char urls[256], want[64], host[256];
    int port = itest_amqp_port();

    ds_producer_free(f->p);
    snprintf(urls, sizeof urls,
             "amqp://guest:guest@127.0.0.1:%d/%%2f "
             "amqp://guest:guest@localhost:%d/%%2f",
             port, port);
    f->p = open_producer_at(urls, "sync", f->spool_dir, 2000);
    assert_int_equal(emit_user(f->p, DS_OP_CREATE, 1, "first"), 0);
    pthread_mutex_lock(&f->p->lock);
    snprintf(host, sizeof host, "%s", f->p->amqp.host);
    pthread_mutex_unlock(&f->p->lock);
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    assert_string_equal(host, want);

    break_connections(f, f->p, 1, host, sizeof host);
    snprintf(want, sizeof want, "localhost:%d", port);
    assert_string_equal(host, want);
    assert_int_equal(emit_user(f->p, DS_OP_UPDATE, 1, "second"), 0);

    /* And round again to the first. */
    break_connections(f, f->p, 2, host, sizeof host);
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    assert_string_equal(host, want);
    assert_int_equal(emit_user(f->p, DS_OP_UPDATE, 1, "third"), 0);
    assert_true(wait_depth(f, 3, 10000) >= 3);
    fixture_free(f);
}

/* Sends SIGSTOP or SIGCONT to the private broker: a stopped broker is a black
 * hole, TCP stays open but nothing answers. */
static void signal_broker(int sig)
{
    char *path = itest_path("rabbit/rabbit.pid");
    FILE *f = fopen(path, "r");
    int pid = 0;
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    free(path);
    assert_int_equal(kill((pid_t)pid, sig), 0);
}

static int resume_broker(void **state)
{
    signal_broker(SIGCONT);
    return teardown(state);
}

/* A black-holed broker never blocks an emit or a flush past the confirm
 * timeout, even when the socket stops taking bytes (rabbitmq-c 0.11 would
 * wait forever in basic.publish): everything lands in the spool, and
 * reaches the queue once the broker answers again. */
static void blackholed_broker_never_blocks(void **state)
{
    (void)state;
    enum { SMALL = 3, BIG = 200, BLOB = 60000 };
    struct fixture *f = fixture_new("sync", 1000);
    char *data = malloc(BLOB + 64), key[32], *async_spool;
    ds_producer *ap;
    ds_producer_stats st;

    /* A second producer, async, connected before the broker goes silent. */
    async_spool = itest_mkdtemp("spool-async");
    ap = open_producer("async", async_spool, 1000);
    assert_int_equal(emit_user(ap, DS_OP_CREATE, 2, "before"), 0);
    assert_int_equal(ds_flush(ap, 5000), 0);
    assert_int_equal(emit_user(f->p, DS_OP_CREATE, 1, "before"), 0);

    signal_broker(SIGSTOP);
    for (int i = 0; i < SMALL; i++) {
        uint64_t t0 = ds__now_ms();
        assert_int_equal(emit_user(f->p, DS_OP_UPDATE, 1, "black hole"), 0);
        if (ds__now_ms() - t0 > 1000 + 1000)
            fail_msg("sync emit %d blocked %llu ms", i,
                     (unsigned long long)(ds__now_ms() - t0));
    }

    /* Enough bytes to fill the socket's buffers: the I/O thread blocks in
     * basic.publish until the watchdog shuts the socket down. */
    uint64_t t0 = ds__now_ms();
    for (int i = 0; i < BIG; i++) {
        int n = snprintf(data, BLOB + 64, "{\"id\":%d,\"blob\":\"", i);
        memset(data + n, 'x', BLOB);
        strcpy(data + n + BLOB, "\"}");
        snprintf(key, sizeof key, "{\"id\":%d}", i);
        assert_int_equal(ds_emit(ap, DS_OP_UPDATE, "users", key, data), 0);
    }
    int rc = ds_flush(ap, 5000);
    uint64_t took = ds__now_ms() - t0;
    if (rc != 0)
        fail_msg("flush with a black-holed broker: %s (%s) after %llu ms",
                 ds_err_name(rc), ds_producer_errmsg(ap),
                 (unsigned long long)took);
    ds_producer_stats_get(ap, &st, sizeof st);
    assert_int_equal(st.spooled, BIG);
    free(data);

    signal_broker(SIGCONT);
    /* 1 + 1 before, SMALL + BIG spooled: each arrives (duplicates allowed:
     * a publish the broker took before going silent may come twice). */
    assert_true(wait_depth(f, 2 + SMALL + BIG, 60000) >= 2 + SMALL + BIG);
    ds_producer_free(ap);
    free(async_spool);
    fixture_free(f);
}

/* ---------------------------------------------------------------------- */
/* Each thread's error detail (ds_producer_errmsg) is its own.            */

enum { DETAIL_THREADS = 8, DETAIL_ROUNDS = 300 };

struct detail_run {
    ds_producer *p;
    int thread;
    pthread_barrier_t *start;
    char failure[512]; /* the first mismatch this thread saw */
};

/* Alternates a valid emit and an invalid one whose message names a column
 * no other thread (and no other round) uses, and checks after each call
 * that the detail is this thread's last failure. */
static void *emit_valid_and_invalid(void *arg)
{
    struct detail_run *run = arg;
    char key[64], data[128], want[64], last[64] = "";

    pthread_barrier_wait(run->start);
    for (int i = 0; i < DETAIL_ROUNDS && !run->failure[0]; i++) {
        int rc;
        snprintf(key, sizeof key, "{\"id\":%d}", i);
        snprintf(data, sizeof data, "{\"id\":%d,\"name\":\"t%d\"}", i,
                 run->thread);
        rc = ds_emit(run->p, DS_OP_UPDATE, "users", key, data);
        if (rc != 0) {
            snprintf(run->failure, sizeof run->failure,
                     "valid emit %d: %s (%s)", i, ds_err_name(rc),
                     ds_producer_errmsg(run->p));
            break;
        }
        /* A success leaves the last failure's detail in place. */
        if (!strstr(ds_producer_errmsg(run->p), last)) {
            snprintf(run->failure, sizeof run->failure,
                     "after valid emit %d: \"%s\", want \"%s\"", i,
                     ds_producer_errmsg(run->p), last);
            break;
        }
        /* Two shapes of bad input, both naming the column key.t<T>_<i> or
         * data.t<T>_<i>: its thread and round. */
        if (i % 2) {
            snprintf(key, sizeof key, "{\"t%d_%d\":null}", run->thread, i);
            snprintf(want, sizeof want, "key.t%d_%d:", run->thread, i);
            rc = ds_emit(run->p, DS_OP_UPDATE, "users", key, data);
        } else {
            snprintf(data, sizeof data, "{\"t%d_%d\":[1]}", run->thread, i);
            snprintf(want, sizeof want, "data.t%d_%d:", run->thread, i);
            rc = ds_emit(run->p, DS_OP_UPDATE, "users", key, data);
        }
        if (rc != DS_ESCHEMA || !strstr(ds_producer_errmsg(run->p), want)) {
            snprintf(run->failure, sizeof run->failure,
                     "invalid emit %d: %s \"%s\", want ESCHEMA naming %s", i,
                     ds_err_name(rc), ds_producer_errmsg(run->p), want);
            break;
        }
        memcpy(last, want, sizeof last);
    }
    return NULL;
}

static void each_thread_reads_its_own_error_detail(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("async", 5000);
    struct detail_run runs[DETAIL_THREADS];
    pthread_t th[DETAIL_THREADS];
    pthread_barrier_t start;
    ds_producer_stats st;

    pthread_barrier_init(&start, NULL, DETAIL_THREADS);
    for (int t = 0; t < DETAIL_THREADS; t++) {
        runs[t] = (struct detail_run){.p = f->p, .thread = t, .start = &start};
        assert_int_equal(
            pthread_create(&th[t], NULL, emit_valid_and_invalid, &runs[t]), 0);
    }
    for (int t = 0; t < DETAIL_THREADS; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);
    for (int t = 0; t < DETAIL_THREADS; t++)
        if (runs[t].failure[0])
            fail_msg("thread %d: %s", t, runs[t].failure);
    /* This thread failed nothing: it reads no other thread's detail. */
    assert_string_equal(ds_producer_errmsg(f->p), "");
    assert_int_equal(ds_flush(f->p, 10000), 0);
    ds_producer_stats_get(f->p, &st, sizeof st);
    assert_int_equal(st.emitted, DETAIL_THREADS * DETAIL_ROUNDS);

    /* One thread, two producers: a failure on the second keeps the
     * first's detail. */
    char *spool2 = itest_mkdtemp("spool-second");
    ds_producer *p2 = open_producer("async", spool2, 5000);
    assert_int_equal(
        ds_emit(f->p, DS_OP_CREATE, "first one", "{\"id\":1}", "{\"id\":1}"),
        DS_ESCHEMA);
    assert_int_equal(ds_emit(p2, DS_OP_CREATE, "users", "{}", "{\"id\":1}"),
                     DS_ESCHEMA);
    assert_non_null(strstr(ds_producer_errmsg(f->p), "table"));
    assert_non_null(strstr(ds_producer_errmsg(p2), "key"));
    ds_producer_free(p2);
    free(spool2);
    fixture_free(f);
}

/* ds_producer_new writes its reason to its own buffer, never into the
 * options it was given as const. */
static void creation_failure_has_its_own_output(void **state)
{
    (void)state;
    ds_options *o = ds_options_new();
    ds_producer *p = (ds_producer *)&p; /* must come back NULL */
    char err[DS_ERRBUF_SIZE], tiny[8];

    assert_non_null(o);
    assert_int_equal(ds_producer_new(&p, o, err, sizeof err), DS_ECONFIG);
    assert_null(p);
    assert_non_null(strstr(err, "node.id"));
    assert_string_equal(ds_options_errmsg(o), "");
    /* Cut to the buffer, terminated; no buffer at all is allowed. */
    assert_int_equal(ds_producer_new(&p, o, tiny, sizeof tiny), DS_ECONFIG);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_int_equal(ds_producer_new(&p, o, NULL, 0), DS_ECONFIG);

    assert_int_equal(ds_options_set(o, "node.id", "node-a"), 0);
    assert_int_equal(
        ds_options_set(o, "producer.spool_dir", "/proc/self/no-such/spool"), 0);
    assert_int_equal(ds_producer_new(&p, o, err, sizeof err), DS_ESPOOL);
    assert_null(p);
    assert_non_null(strstr(err, "/proc/self/no-such"));
    assert_string_equal(ds_options_errmsg(o), "");
    ds_options_free(o);
}

/* ---------------------------------------------------------------------- */
/* The log callback runs with no library lock held.                       */

struct reentry {
    ds_producer *p;
    int called;     /* atomic: callbacks entered */
    int returned;   /* atomic: callbacks that got through their calls */
    int unroutable; /* atomic: "returned unroutable" messages seen */
};

static void log_calling_back(void *ud, ds_log_level level, const char *msg)
{
    struct reentry *re = ud;
    ds_producer_stats st;

    __atomic_add_fetch(&re->called, 1, __ATOMIC_SEQ_CST);
    fprintf(stderr, "  producer %d: %s\n", (int)level, msg);
    /* Both take or read the producer's state: with its lock held by the
     * caller of this callback, the first would deadlock. */
    ds_producer_stats_get(re->p, &st, sizeof st);
    (void)ds_producer_errmsg(re->p);
    if (strstr(msg, "returned unroutable"))
        __atomic_add_fetch(&re->unroutable, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&re->returned, 1, __ATOMIC_SEQ_CST);
}

static void *emit_one(void *arg)
{
    return (void *)(intptr_t)emit_user(arg, DS_OP_CREATE, 1, "nobody");
}

static void log_callback_may_call_back_into_the_producer(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("sync", 2000);
    static struct reentry re; /* outlives a producer leaked on failure */
    pthread_t th;
    void *ret;

    re = (struct reentry){.p = f->p};
    ds_producer_set_log(f->p, log_calling_back, &re);
    /* No queue bound: the I/O thread logs the broker's return of the change
     * from deep inside its frame handling. */
    amqp_queue_unbind(f->conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(f->queue),
                      amqp_cstring_bytes(EXCHANGE),
                      amqp_cstring_bytes(ROUTING_KEY), amqp_empty_table);
    itest_amqp_check(amqp_get_rpc_reply(f->conn), "queue.unbind");

    /* In a thread of its own: a deadlocked producer must fail this test,
     * not hang it. */
    assert_int_equal(pthread_create(&th, NULL, emit_one, f->p), 0);
    uint64_t end = ds__now_ms() + 10000;
    while (__atomic_load_n(&re.unroutable, __ATOMIC_SEQ_CST) == 0 &&
           ds__now_ms() < end)
        usleep(20 * 1000);
    if (__atomic_load_n(&re.unroutable, __ATOMIC_SEQ_CST) == 0) {
        current = NULL; /* its threads are stuck: leave the producer be */
        fail_msg("the log callback never got through (%d entered, %d "
                 "returned): it ran with the producer's lock held",
                 re.called, re.returned);
    }
    pthread_join(th, &ret);
    assert_int_equal((int)(intptr_t)ret, DS_EUNROUTABLE);
    /* Messages are told on the producer's threads and the caller's alike,
     * outside the lock; also the closing ones, inside ds_producer_free. */
    fixture_free(f);
    assert_int_equal(re.called, re.returned);
}

/* ---------------------------------------------------------------------- */
/* ds_producer_stats_get fills only what fits.                            */

static void stats_fill_only_what_fits(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("sync", 5000);
    ds_producer_stats full;
    /* A caller built when the struct ended before unroutable. */
    size_t older = offsetof(ds_producer_stats, unroutable);
    union {
        ds_producer_stats st;
        unsigned char bytes[sizeof(ds_producer_stats)];
    } old;
    /* A caller built against a header with one more counter. */
    struct {
        ds_producer_stats st;
        uint64_t later;
    } newer;

    for (int i = 0; i < 3; i++)
        assert_int_equal(emit_user(f->p, DS_OP_CREATE, i, "counted"), 0);
    assert_int_equal(ds_producer_stats_get(f->p, &full, sizeof full), 0);
    assert_int_equal(full.emitted, 3);
    assert_int_equal(full.confirmed, 3);

    memset(&old, 0xa5, sizeof old);
    assert_int_equal(ds_producer_stats_get(f->p, &old.st, older), 0);
    assert_int_equal(old.st.emitted, 3);
    assert_int_equal(old.st.confirmed, 3);
    assert_int_equal(old.st.spooled, 0);
    for (size_t i = older; i < sizeof old; i++)
        if (old.bytes[i] != 0xa5)
            fail_msg("byte %zu past an older caller's %zu-byte struct was "
                     "written",
                     i, older);

    memset(&newer, 0xa5, sizeof newer);
    assert_int_equal(ds_producer_stats_get(f->p, &newer.st, sizeof newer), 0);
    assert_memory_equal(&newer.st, &full, sizeof full);
    assert_int_equal(newer.later, 0);

    assert_int_equal(ds_producer_stats_get(NULL, &full, sizeof full),
                     DS_EINVAL);
    assert_int_equal(ds_producer_stats_get(f->p, NULL, sizeof full), DS_EINVAL);
    fixture_free(f);
}

/* ---------------------------------------------------------------------- */
/* A long-lived producer's memory does not grow with what it emitted.     */

/* Bytes the process holds from malloc, in every arena and mmapped. */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Sync mode reads one confirm per change: rabbitmq-c kept each decoded
 * frame (about 40 bytes, in 128 KiB pages) until the connection closed. */
static void confirms_do_not_grow_memory(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("sync", 5000);
    const int warm = 300, more = 6000;
    size_t before, after;

    for (int i = 0; i < warm; i++)
        assert_int_equal(emit_user(f->p, DS_OP_UPDATE, i % 50, "warm"), 0);
    before = heap_in_use();
    for (int i = 0; i < more; i++)
        assert_int_equal(emit_user(f->p, DS_OP_UPDATE, i % 50, "more"), 0);
    after = heap_in_use();
    if (after > before + 64 * 1024)
        fail_msg("%d more sync emits grew the heap by %zu bytes (%zu per "
                 "change)",
                 more, after - before, (after - before) / (size_t)more);
    fixture_free(f);
}

/* ---------------------------------------------------------------------- */
/* Two producers of one process retry on different schedules.             */

static void two_producers_jitter_apart(void **state)
{
    (void)state;
    enum { STEPS = 12 };
    struct fixture *f = fixture_new("sync", 5000);
    char *spool2 = itest_mkdtemp("spool-second");
    ds_producer *p2 = open_producer("sync", spool2, 5000);
    ds_backoff a = backoff_of(f->p), b = backoff_of(p2);
    uint64_t da[STEPS], db[STEPS];

    for (int i = 0; i < STEPS; i++) {
        da[i] = ds__backoff_next(&a);
        db[i] = ds__backoff_next(&b);
    }
    assert_memory_not_equal(da, db, sizeof da);
    ds_producer_free(p2);
    free(spool2);
    fixture_free(f);
}

int main(void)
{
    if (getenv("DS_TEST_FILTER"))
        cmocka_set_test_filter(getenv("DS_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            emitted_change_arrives_with_every_contract_field, teardown),
        cmocka_unit_test_teardown(emit_event_keeps_id_and_version, teardown),
        cmocka_unit_test_teardown(bad_input_is_refused_and_publishes_nothing,
                                  teardown),
        cmocka_unit_test_teardown(unroutable_is_reported_not_dropped, teardown),
        cmocka_unit_test_teardown(eight_threads_sync_each_change_once,
                                  teardown),
        cmocka_unit_test_teardown(eight_threads_async_each_change_once,
                                  teardown),
        cmocka_unit_test_teardown(forked_child_reconnects, teardown),
        cmocka_unit_test_teardown(forked_child_retries_a_failed_setup,
                                  teardown),
        cmocka_unit_test_teardown(producers_sharing_a_spool_stamp_in_order,
                                  teardown),
        cmocka_unit_test_teardown(each_thread_reads_its_own_error_detail,
                                  teardown),
        cmocka_unit_test(creation_failure_has_its_own_output),
        cmocka_unit_test_teardown(log_callback_may_call_back_into_the_producer,
                                  teardown),
        cmocka_unit_test_teardown(stats_fill_only_what_fits, teardown),
        cmocka_unit_test_teardown(confirms_do_not_grow_memory, teardown),
        cmocka_unit_test_teardown(two_producers_jitter_apart, teardown),
        cmocka_unit_test_teardown(
            nacked_changes_are_retried_or_spooled_never_lost, teardown),
        cmocka_unit_test_teardown(blocked_broker_spools_within_the_timeout,
                                  teardown),
        cmocka_unit_test_teardown(broken_connection_moves_to_the_next_url,
                                  teardown),
        cmocka_unit_test_teardown(blackholed_broker_never_blocks,
                                  resume_broker),
        cmocka_unit_test_teardown(broker_down_spools_then_drains_in_order,
                                  teardown),
        cmocka_unit_test_teardown(async_emits_spool_while_down_and_drain_after,
                                  teardown),
        cmocka_unit_test_teardown(
            async_changes_the_spool_refused_are_reported_by_flush, teardown),
        cmocka_unit_test_teardown(
            sync_changes_the_spool_refused_are_counted_lost, teardown),
        cmocka_unit_test_teardown(free_leaves_a_long_drain_to_the_next_producer,
                                  teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
