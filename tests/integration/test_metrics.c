/* test_metrics.c: datasync-consumer's /metrics and /health against real services: exact counters, lag, MariaDB down and back, a trickle gathered into one batch, SIGTERM during a batch wait, bad requests, 100 idle connections, sd_notify. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "ids.h"
#include "support.h"

/*
 * Node a of a three-server cluster runs with [metrics] listen on a free
 * loopback port; the changes of these tests go to its queue only. Every
 * check reads the consumer from outside: HTTP on a plain socket, the
 * Prometheus text through tests/lib/prom_check.py (Prometheus's own Python
 * parser, plus the rules it lets pass), the rows from MariaDB.
 */

static tc_cluster cl;
static int port;

/* ------------------------------------------------------------------------ */
/* HTTP from outside                                                         */

static int connect_endpoint(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct response {
    int status; /* 0: closed without a status line */
    char *head; /* status line and headers */
    char *body;
} response;

static void response_free(response *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Sends request (raw bytes) on a new connection and reads until the
 * server closes it or timeout_ms passes. */
static response http_raw(const char *request, size_t len, int timeout_ms)
{
    response r = {0};
    size_t cap = 65536, got = 0;
    char *buf = malloc(cap);
    int fd = connect_endpoint();

    assert_non_null(buf);
    if (fd < 0) {
        free(buf);
        return r;
    }
    for (size_t sent = 0; sent < len;) {
        ssize_t n = send(fd, request + sent, len - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may close on an oversized request */
        sent += (size_t)n;
    }
    for (long long end = ts_now_ms() + timeout_ms; ts_now_ms() < end;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (got + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    char *split = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1)
        r.status = 0;
    r.head = strndup(buf, split ? (size_t)(split - buf) : got);
    r.body = strdup(split ? split + 4 : "");
    free(buf);
    return r;
}

static response http(const char *method, const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                     "close\r\n\r\n",
                     method, path);
    return http_raw(req, (size_t)n, 5000);
}

static char *scrape(void)
{
    response r = http("GET", "/metrics");
    if (r.status != 200)
        fail_msg("GET /metrics: status %d: %s", r.status, r.head);
    assert_non_null(strstr(r.head, "text/plain; version=0.0.4"));
    char *body = r.body;
    r.body = NULL;
    response_free(&r);
    return body;
}

/* The value of series (name and labels exactly as rendered); -1 when the
 * text has no such sample. */
static double value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static double metric(const char *series)
{
    char *text = scrape();
    double v = value(text, series);
    free(text);
    return v;
}

/* Runs tests/lib/prom_check.py on text with the families every scrape
 * must hold; fails the test on any problem. */
static void prom_check(const char *text)
{
    char *path = itest_path("metrics-%d.txt", port);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/tests/lib/prom_check.py %s "
             "datasync_build_info datasync_consumer_changes_applied_total "
             "datasync_consumer_changes_ignored_total "
             "datasync_consumer_dead_lettered_total "
             "datasync_consumer_batches_total "
             "datasync_consumer_batch_duration_seconds "
             "datasync_consumer_change_latency_seconds "
             "datasync_consumer_commit_retries_total "
             "datasync_consumer_reconnects_total "
             "datasync_consumer_queue_messages_ready "
             "datasync_consumer_lag_seconds datasync_consumer_connected",
             itest_root(), path);
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("prom_check.py failed (exit %d) on %s", rc, path);
    free(path);
}

/* Polls series until it equals want, or fails after timeout_ms. */
static void wait_metric(const char *series, double want, int timeout_ms)
{
    double v = -1;
    for (long long end = ts_now_ms() + timeout_ms; ts_now_ms() < end;
         ts_sleep_ms(100))
        if ((v = metric(series)) == want)
            return;
    fail_msg("%s is %g after %d ms, want %g (log %s)", series, v, timeout_ms,
             want, cl.log[0]);
}

static int wait_health(int want, int timeout_ms, char **body)
{
    response r = {0};
    for (long long end = ts_now_ms() + timeout_ms; ts_now_ms() < end;
         ts_sleep_ms(100)) {
        response_free(&r);
        r = http("GET", "/health");
        if (r.status == want)
            break;
    }
    int status = r.status;
    if (body) {
        *body = r.body;
        r.body = NULL;
    }
    response_free(&r);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Changes                                                                   */

/* A change with the ts of wall-clock ms at (tc_event's own is fixed). */
static char *event_at(const char *op, const char *table, const char *key,
                      const char *data, uint64_t hlc, uint64_t at_ms)
{
    char *body = tc_event(op, table, key, data, "zm-x", hlc), ts[32];
    char *p = strstr(body, "\"ts\":\"");
    assert_non_null(p);
    ds__rfc3339_ms(at_ms, ts);
    assert_int_equal(strlen(ts), 24); /* the same width as tc_event's */
    memcpy(p + 6, ts, 24);
    return body;
}

/* An update of kv row k to v and n, at hlc, with the ts of at_ms. */
static char *kv_update(int k, const char *v, int n, uint64_t hlc,
                       uint64_t at_ms)
{
    char key[32], data[96];
    snprintf(key, sizeof key, "{\"k\":%d}", k);
    snprintf(data, sizeof data, "{\"k\":%d,\"v\":\"%s\",\"n\":%d}", k, v, n);
    return event_at("update", "kv", key, data, hlc, at_ms);
}

static void publish(char **bodies, size_t n)
{
    tc_publish_to(&cl, 0, bodies, n);
    tc_free_all(bodies, n);
}

static int setup(void **state)
{
    (void)state;
    tc_setup(&cl, "dsm", NULL);
    /* Node a again, with its endpoint. */
    assert_int_equal(tc_stop(&cl, 0, SIGTERM, 5000), 0);
    port = ts_loopback_port();
    assert_true(port > 0);
    FILE *f = fopen(cl.conf[0], "a");
    assert_non_null(f);
    fprintf(f, "[metrics]\nlisten = 127.0.0.1:%d\n", port);
    fclose(f);
    tc_start(&cl, 0);
    /* The queue's depth is known once the consumer saw it empty (or its
     * first periodic check): from then on every scrape has every family. */
    wait_metric("datasync_consumer_queue_messages_ready", 0, 5000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tc_teardown(&cl);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The tests                                                                 */

#define NEW 40
#define OLD 10

/* 40 new rows, 10 changes older than those rows, 9 poison of 7 classes:
 * every counter says exactly that, the lag and the queue go to 0, and the
 * text passes the parser. */
static void counters_match_what_was_sent(void **state)
{
    (void)state;
    char *before = scrape();
    prom_check(before);
    const char *names[] = {
        "datasync_consumer_changes_applied_total",
        "datasync_consumer_changes_ignored_total",
        "datasync_consumer_dead_lettered_total{reason=\"malformed\"}",
        "datasync_consumer_dead_lettered_total{reason=\"schema\"}",
        "datasync_consumer_dead_lettered_total{reason=\"too_big\"}",
        "datasync_consumer_dead_lettered_total{reason=\"table\"}",
        "datasync_consumer_dead_lettered_total{reason=\"column\"}",
        "datasync_consumer_dead_lettered_total{reason=\"constraint\"}",
        "datasync_consumer_dead_lettered_total{reason=\"value\"}",
        "datasync_consumer_dead_lettered_total{reason=\"other\"}",
        "datasync_consumer_changes_recorded_total",
    };
    const double want[] = {NEW, OLD, 2, 1, 1, 2, 1, 1, 1, 0, 0};
    enum { N = sizeof names / sizeof names[0] };
    double base[N];
    for (int i = 0; i < N; i++) {
        base[i] = value(before, names[i]);
        assert_true(base[i] >= 0);
    }
    double batches0 = value(before, "datasync_consumer_batches_total");
    const char *lat_count = "datasync_consumer_change_latency_seconds_count",
               *lat_le60 =
                   "datasync_consumer_change_latency_seconds_bucket{le=\"60\"}";
    double lat_count0 = value(before, lat_count),
           lat_le60_0 = value(before, lat_le60);
    free(before);

    char *bodies[NEW + OLD + 9];
    size_t n = 0;
    uint64_t now = ts_wall_ms();
    for (int i = 0; i < NEW; i++)
        bodies[n++] = kv_update(1000 + i, "new", i, 500000 + i, now);
    for (int i = 0; i < OLD; i++)
        bodies[n++] = kv_update(1000 + i, "old", 0, 400000 + i, now);
    char big[5000];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *bigdata = malloc(sizeof big + 64);
    assert_non_null(bigdata);
    snprintf(bigdata, sizeof big + 64, "{\"k\":2005,\"v\":\"%s\"}", big);
    bodies[n++] = strdup("{not json");                   /* malformed */
    bodies[n++] = strdup("[1, 2");                       /* malformed */
    bodies[n++] = strdup("{\"v\":1,\"op\":\"update\"}"); /* schema */
    bodies[n++] =
        event_at("update", "kv", "{\"k\":2005}", bigdata, /* too_big */
                 600000, now);
    bodies[n++] = event_at("update", "x", "{\"id\":1}", "{\"id\":1}", 600001,
                           now); /* table */
    bodies[n++] = event_at("update", "nosuch", "{\"id\":1}", "{\"id\":1}",
                           600002, now); /* table */
    bodies[n++] = event_at("update", "kv", "{\"k\":2001}",
                           "{\"k\":2001,\"nope\":1}", 600003, now); /* column */
    bodies[n++] = event_at("create", "users", "{\"id\":2002}",
                           "{\"id\":2002,\"name\":null}", 600004,
                           now); /* constraint: NOT NULL */
    char longv[200];
    memset(longv, 'v', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    char data[300];
    snprintf(data, sizeof data, "{\"k\":2003,\"v\":\"%s\"}", longv);
    bodies[n++] = event_at("update", "kv", "{\"k\":2003}", data, 600005,
                           now); /* value: longer than VARCHAR(64) */
    free(bigdata);
    assert_int_equal(n, NEW + OLD + 9);
    publish(bodies, n);

    /* Done once everything sent is counted somewhere. */
    double total_want = 0;
    for (int i = 0; i < N; i++)
        total_want += want[i];
    char *text = NULL;
    double total = 0;
    for (long long end = ts_now_ms() + 30000; ts_now_ms() < end;
         ts_sleep_ms(200)) {
        free(text);
        text = scrape();
        total = 0;
        for (int i = 0; i < N; i++)
            total += value(text, names[i]) - base[i];
        if (total >= total_want)
            break;
    }
    printf("counted %g of %g changes\n", total, total_want);
    ts_sleep_ms(1000); /* nothing more may come */
    free(text);
    text = scrape();
    bool ok = true;
    for (int i = 0; i < N; i++) {
        double got = value(text, names[i]) - base[i];
        printf("%-62s %4g (want %g)\n", names[i], got, want[i]);
        ok &= got == want[i];
    }
    if (!ok)
        fail_msg("counters differ from what was sent (log %s)", cl.log[0]);
    double batches = value(text, "datasync_consumer_batches_total") - batches0;
    assert_true(batches >= 1);
    assert_true(value(text, "datasync_consumer_batch_duration_seconds_count") ==
                value(text, "datasync_consumer_batches_total"));
    /* One latency per applied change: the 40 new rows. Their ts is this
     * test's clock at publishing, the server's too: well under a minute. */
    assert_true(value(text, lat_count) - lat_count0 == NEW);
    assert_true(value(text, lat_le60) - lat_le60_0 == NEW);
    prom_check(text);
    free(text);

    /* What the counters claim is what the database holds. */
    MYSQL *db = itest_mysql_connect(cl.db[0]);
    assert_int_equal(itest_mysql_count(db, "SELECT COUNT(*) FROM kv WHERE "
                                           "k BETWEEN 1000 AND 1039 AND v = "
                                           "'new'"),
                     NEW);
    mysql_close(db);

    /* Drained: nothing ready, and the lag is 0 once nothing is delivered. */
    wait_metric("datasync_consumer_lag_seconds", 0, 5000);
    wait_metric("datasync_consumer_queue_messages_ready", 0, 5000);
}

/* Sets node a's apply.batch_wait_ms through SIGHUP and waits for the
 * reload to say it took it. */
static void set_batch_wait(int ms)
{
    long offset = tc_file_size(cl.log[0]);
    FILE *f = fopen(cl.conf[0], "a");
    assert_non_null(f);
    fprintf(f, "[apply]\nbatch_wait_ms = %d\n", ms); /* the last one counts */
    fclose(f);
    kill(cl.pid[0], SIGHUP);
    for (long long end = ts_now_ms() + 10000; ts_now_ms() < end;
         ts_sleep_ms(50))
        if (tc_log_has(cl.log[0], offset, "apply.batch_wait_ms"))
            return;
    fail_msg("no reload of apply.batch_wait_ms %d (log %s)", ms, cl.log[0]);
}

/* Changes that come one at a time, 50 ms apart, within apply.batch_wait_ms
 * of the first are one batch: one commit, one ack. The consumer reads them
 * in naps while it waits, not as each arrives: the wait must still gather
 * them all. */
static void a_trickle_within_batch_wait_is_one_batch(void **state)
{
    (void)state;
    enum { TRICKLE = 8 };
    set_batch_wait(2000);
    double batches0 = metric("datasync_consumer_batches_total");
    assert_true(batches0 >= 0);
    uint64_t now = ts_wall_ms();
    for (int i = 0; i < TRICKLE; i++) {
        char *body = kv_update(3000 + i, "trickle", i, 700000 + i, now);
        publish(&body, 1);
        ts_sleep_ms(50);
    }
    MYSQL *db = itest_mysql_connect(cl.db[0]);
    long long rows = 0;
    for (long long end = ts_now_ms() + 10000;
         ts_now_ms() < end &&
         (rows = itest_mysql_count(db, "SELECT COUNT(*) FROM kv WHERE v = "
                                       "'trickle'")) < TRICKLE;
         ts_sleep_ms(100))
        ;
    mysql_close(db);
    assert_int_equal(rows, TRICKLE);
    /* The rows are in before the batch's ack and its count: the count is
     * read once it has moved and a second batch would have shown. */
    for (long long end = ts_now_ms() + 5000;
         ts_now_ms() < end &&
         metric("datasync_consumer_batches_total") < batches0 + 1;
         ts_sleep_ms(50))
        ;
    ts_sleep_ms(300);
    double batches = metric("datasync_consumer_batches_total") - batches0;
    set_batch_wait(20); /* the next tests' setting, whatever this one found */
    if (batches != 1)
        fail_msg("%d changes 50 ms apart made %g batches, want 1 (log %s)",
                 TRICKLE, batches, cl.log[0]);
}

/* SIGTERM while the consumer waits a long apply.batch_wait_ms for a batch
 * to fill: it stops waiting, applies and acks what it holds, and exits 0
 * within the 5 s a stop may take; the change is not delivered again. */
static void sigterm_ends_a_batch_wait(void **state)
{
    (void)state;
    set_batch_wait(30000);
    char *body = kv_update(3100, "stopped", 1, 710000, ts_wall_ms());
    publish(&body, 1);
    ts_sleep_ms(300); /* delivered, and waited on */
    long long t0 = ts_now_ms();
    int rc = tc_stop(&cl, 0, SIGTERM, 10000);
    long long took = ts_now_ms() - t0;
    MYSQL *db = itest_mysql_connect(cl.db[0]);
    long long rows = itest_mysql_count(db, "SELECT COUNT(*) FROM kv WHERE k = "
                                           "3100 AND v = 'stopped'");
    mysql_close(db);
    /* Acked before the exit: nothing waits in the queue to come again. */
    long left = tc_queue_total(cl.queue[0]);
    printf("exit %d after %lld ms; row %lld, left in the queue %ld\n", rc, took,
           rows, left);
    /* Started again at the next tests' setting before any verdict, so a
     * failure here is this test's alone. */
    FILE *f = fopen(cl.conf[0], "a");
    assert_non_null(f);
    fprintf(f, "[apply]\nbatch_wait_ms = 20\n");
    fclose(f);
    tc_start(&cl, 0);
    wait_metric("datasync_consumer_queue_messages_ready", 0, 5000);
    assert_int_equal(rc, 0);
    assert_true(took < 5000);
    assert_int_equal(rows, 1);
    assert_int_equal(left, 0);
}

/* MariaDB stopped: /health 503 with the reason, within the idle check's
 * period; a change waiting meanwhile makes the lag grow and the batch
 * retry; started again: 200, the change applied, one reconnect. */
static void health_follows_mariadb(void **state)
{
    (void)state;
    char *body = NULL;
    assert_int_equal(wait_health(200, 5000, &body), 200);
    assert_string_equal(body, "ok\n");
    free(body);
    double reconnects0 =
        metric("datasync_consumer_reconnects_total{peer=\"database\"}");
    double retries0 = metric("datasync_consumer_commit_retries_total");

    assert_int_equal(itest_service("maria", "stop"), 0);
    long long down_at = ts_now_ms();
    int status = wait_health(503, 10000, &body);
    printf("/health %d after %lld ms with MariaDB stopped: %s", status,
           ts_now_ms() - down_at, body);
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "database not connected"));
    assert_true(strchr(body, '\n') == body + strlen(body) - 1); /* one line */
    free(body);
    char *text = scrape();
    assert_true(value(text, "datasync_consumer_healthy") == 0);
    assert_true(value(text, "datasync_consumer_connected{peer=\"database\"}") ==
                0);
    assert_true(value(text, "datasync_consumer_connected{peer=\"broker\"}") ==
                1);
    free(text);

    char *bodies[1] = {event_at("update", "kv", "{\"k\":3000}",
                                "{\"k\":3000,\"v\":\"during\",\"n\":1}", 700000,
                                ts_wall_ms())};
    publish(bodies, 1);
    ts_sleep_ms(2500);
    text = scrape();
    double lag = value(text, "datasync_consumer_lag_seconds");
    double retries = value(text, "datasync_consumer_commit_retries_total");
    printf("MariaDB down, one change waiting: lag %g s, retries +%g\n", lag,
           retries - retries0);
    assert_true(lag >= 1.5);
    assert_true(retries > retries0);
    prom_check(text);
    free(text);

    assert_int_equal(itest_service("maria", "start"), 0);
    long long up_at = ts_now_ms();
    status = wait_health(200, 30000, &body);
    printf("/health %d %lld ms after MariaDB started: %s", status,
           ts_now_ms() - up_at, body);
    assert_int_equal(status, 200);
    free(body);
    assert_true(
        metric("datasync_consumer_reconnects_total{peer=\"database\"}") >
        reconnects0);
    MYSQL *db = itest_mysql_connect(cl.db[0]);
    for (long long end = ts_now_ms() + 10000; ts_now_ms() < end;
         ts_sleep_ms(100))
        if (itest_mysql_count(db, "SELECT COUNT(*) FROM kv WHERE k = 3000") ==
            1)
            break;
    assert_int_equal(
        itest_mysql_count(db, "SELECT COUNT(*) FROM kv WHERE k = 3000"), 1);
    mysql_close(db);
    wait_metric("datasync_consumer_lag_seconds", 0, 5000);
}

/* Other paths 404, other methods 405, oversized requests 4xx or closed,
 * garbage 400 or closed; the endpoint still answers afterwards. */
static void bad_requests_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        int status;
    } cases[] = {{"GET", "/", 404},         {"GET", "/metricsx", 404},
                 {"GET", "/health/x", 404}, {"POST", "/metrics", 405},
                 {"PUT", "/health", 405},   {"DELETE", "/metrics", 405},
                 {"POST", "/nope", 404},    {"GET", "/metrics?x=1", 200},
                 {"HEAD", "/metrics", 200}, {"HEAD", "/health", 200}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        response r = http(cases[i].method, cases[i].path);
        printf("%s %s: %d\n", cases[i].method, cases[i].path, r.status);
        assert_int_equal(r.status, cases[i].status);
        if (cases[i].status == 405)
            assert_non_null(strstr(r.head, "Allow: GET, HEAD"));
        if (strcmp(cases[i].method, "HEAD") == 0)
            assert_string_equal(r.body, "");
        response_free(&r);
    }

    /* A body sent with a POST is not read: answered 405, closed. */
    const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: "
                        "1000000\r\n\r\nabc";
    response r = http_raw(post, sizeof post - 1, 5000);
    printf("POST with a 1 MB body announced: %d\n", r.status);
    assert_int_equal(r.status, 405);
    response_free(&r);

    size_t big = 64 * 1024;
    char *req = malloc(big + 256);
    assert_non_null(req);
    /* A request line of 64 KiB. */
    int n = snprintf(req, 64, "GET /metrics?");
    memset(req + n, 'a', big);
    n += (int)big;
    n += snprintf(req + n, 128, " HTTP/1.1\r\nHost: x\r\n\r\n");
    r = http_raw(req, (size_t)n, 5000);
    printf("request line of 64 KiB: %d\n", r.status);
    assert_true(r.status == 0 || (r.status >= 400 && r.status < 500));
    response_free(&r);
    /* One header of 64 KiB. */
    n = snprintf(req, 64, "GET /metrics HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'h', big);
    n += (int)big;
    n += snprintf(req + n, 128, "\r\nHost: x\r\n\r\n");
    r = http_raw(req, (size_t)n, 5000);
    printf("header of 64 KiB: %d\n", r.status);
    assert_true(r.status == 0 || (r.status >= 400 && r.status < 500));
    response_free(&r);
    free(req);
    /* Not HTTP at all. */
    const char junk[] = "\x16\x03\x01 hello\r\n\r\n";
    r = http_raw(junk, sizeof junk - 1, 5000);
    printf("not HTTP: %d\n", r.status);
    assert_true(r.status == 0 || r.status == 400);
    response_free(&r);

    char *text = scrape();
    prom_check(text);
    free(text);
}

#define IDLE 100
#define FLOW 500

/* 100 connections held open and silent (half of them with a request begun)
 * while 500 changes flow: all applied, /metrics still answers, and the
 * apply loop's pace is compared with the same changes without them. */
static double apply_time_ms(int first_key)
{
    char *bodies[FLOW];
    double applied0 = metric("datasync_consumer_changes_applied_total");
    for (int i = 0; i < FLOW; i++) {
        char key[32], data[64];
        snprintf(key, sizeof key, "{\"k\":%d}", first_key + i);
        snprintf(data, sizeof data, "{\"k\":%d,\"v\":\"flow\",\"n\":%d}",
                 first_key + i, i);
        bodies[i] = event_at("update", "kv", key, data, 800000 + first_key + i,
                             ts_wall_ms());
    }
    long long t0 = ts_now_ms();
    publish(bodies, FLOW);
    MYSQL *db = itest_mysql_connect(cl.db[0]);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM kv WHERE k BETWEEN %d AND %d AND v = "
             "'flow'",
             first_key, first_key + FLOW - 1);
    long long got = 0;
    for (long long end = t0 + 60000; ts_now_ms() < end; ts_sleep_ms(20))
        if ((got = itest_mysql_count(db, sql)) == FLOW)
            break;
    double ms = (double)(ts_now_ms() - t0);
    mysql_close(db);
    if (got != FLOW)
        fail_msg("%lld of %d changes applied after 60 s (log %s)", got, FLOW,
                 cl.log[0]);
    wait_metric("datasync_consumer_changes_applied_total", applied0 + FLOW,
                5000);
    return ms;
}

/* CPU seconds the consumer of node i used so far (utime + stime). */
static double cpu_s(int i)
{
    char path[64], line[1024];
    unsigned long ut = 0, st = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)cl.pid[i]);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    const char *p = strrchr(line, ')');
    assert_non_null(p);
    /* After ") state": fields 4.. ; utime and stime are fields 14 and 15. */
    assert_int_equal(sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu "
                            "%lu",
                            &ut, &st),
                     2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void idle_connections_do_not_block_the_apply_loop(void **state)
{
    (void)state;
    double alone = apply_time_ms(10000);

    int fds[IDLE];
    for (int i = 0; i < IDLE; i++) {
        fds[i] = connect_endpoint();
        assert_true(fds[i] >= 0);
        if (i % 2)
            assert_int_equal(send(fds[i], "GET /met", 8, MSG_NOSIGNAL), 8);
    }
    long long held_from = ts_now_ms();
    double busy = apply_time_ms(20000);
    long long t0 = ts_now_ms();
    char *text = scrape();
    long long scrape_ms = ts_now_ms() - t0;
    /* What the endpoint's thread costs while they sit there. */
    double cpu0 = cpu_s(0);
    ts_sleep_ms(2000);
    double idle_cpu = cpu_s(0) - cpu0;
    printf("500 changes applied in %.0f ms alone, %.0f ms with %d idle "
           "connections held; /metrics answered in %lld ms beside them "
           "(%lld ms after they opened); consumer CPU over 2 s with them "
           "held and no changes: %.2f s\n",
           alone, busy, IDLE, scrape_ms, t0 - held_from, idle_cpu);
    prom_check(text);
    free(text);
    for (int i = 0; i < IDLE; i++)
        close(fds[i]);
    printf("500 changes applied in %.0f ms after they closed\n",
           apply_time_ms(30000));
}

/* sd_notify: READY=1 once consuming, WATCHDOG=1 at half of WATCHDOG_USEC,
 * STOPPING=1 at SIGTERM, STATUS= lines. Node b runs with NOTIFY_SOCKET set
 * as systemd would. Without libsystemd (DS_HAVE_SYSTEMD unset) the consumer
 * sends nothing, and the test checks exactly that. */
static void systemd_notifications(void **state)
{
    (void)state;
    char *path = itest_path("notify-%d.sock", port);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);

    assert_int_equal(tc_stop(&cl, 1, SIGTERM, 5000), 0);
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("WATCHDOG_USEC", "1000000", 1);
    tc_start(&cl, 1);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");

    int ready = 0, watchdog = 0, status = 0, stopping = 0, exit_status = -1;
    long long stop_at = ts_now_ms() + 3000, end = stop_at + 10000;
    bool stopped = false, exited = false;
    while (ts_now_ms() < end) {
        if (!stopped && ts_now_ms() >= stop_at) {
            kill(cl.pid[1], SIGTERM);
            stopped = true;
        }
        if (stopped && !exited &&
            waitpid(cl.pid[1], &exit_status, WNOHANG) == cl.pid[1]) {
            exited = true;
            cl.pid[1] = 0;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, exited ? 0 : 100) <= 0) {
            if (exited)
                break; /* its last datagrams are read */
            continue;
        }
        char msg[1024];
        ssize_t n = recv(fd, msg, sizeof msg - 1, 0);
        if (n <= 0)
            continue;
        msg[n] = '\0';
        ready += strstr(msg, "READY=1") != NULL;
        watchdog += strstr(msg, "WATCHDOG=1") != NULL;
        status += strstr(msg, "STATUS=") != NULL;
        stopping += strstr(msg, "STOPPING=1") != NULL;
    }
    assert_true(exited);
    assert_true(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0);
    printf("notifications: READY %d, WATCHDOG %d in ~3 s, STATUS %d, "
           "STOPPING %d\n",
           ready, watchdog, status, stopping);
#ifdef DS_HAVE_SYSTEMD
    assert_int_equal(ready, 1);
    assert_true(watchdog >= 3); /* every 0.5 s for 3 s */
    assert_true(status >= 1);
    assert_int_equal(stopping, 1);
#else
    assert_int_equal(ready + watchdog + status + stopping, 0);
#endif
    close(fd);
    unlink(path);
    free(path);
    tc_start(&cl, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_match_what_was_sent),
        cmocka_unit_test(a_trickle_within_batch_wait_is_one_batch),
        cmocka_unit_test(sigterm_ends_a_batch_wait),
        cmocka_unit_test(health_follows_mariadb),
        cmocka_unit_test(bad_requests_are_refused),
        cmocka_unit_test(idle_connections_do_not_block_the_apply_loop),
        cmocka_unit_test(systemd_notifications),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
