/* metrics.c: the consumer's counters and gauges, and their Prometheus text rendering. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "ids.h"
#include "metrics.h"

const double dsc_batch_bucket_bounds[DSC_BATCH_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
/* A ts has millisecond resolution; a replay or a backlog reaches minutes. */
const double dsc_latency_bucket_bounds[DSC_LATENCY_BUCKETS] = {
    0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 300, 3600};

/* Relaxed everywhere: each value stands alone, and a scrape needs no
 * ordering between them (see metrics.h). */
#define ADD(a, n) atomic_fetch_add_explicit(&(a), (n), memory_order_relaxed)
#define SET(a, v) atomic_store_explicit(&(a), (v), memory_order_relaxed)
#define GET(a) atomic_load_explicit(&(a), memory_order_relaxed)

#define WHY_MAX 200

struct dsc_metrics {
    char *version, *node;
    uint64_t start_ms; /* wall clock */
    atomic_uint_fast64_t applied, recorded, ignored, batches, retries;
    atomic_uint_fast64_t dead[DSC_DEAD_CLASSES];
    /* Per bucket, not cumulative (the last: above every bound); the
     * renderer adds them up. */
    atomic_uint_fast64_t bucket[DSC_BATCH_BUCKETS + 1];
    atomic_uint_fast64_t batch_us_sum;
    atomic_uint_fast64_t latency_bucket[DSC_LATENCY_BUCKETS + 1];
    atomic_uint_fast64_t latency_ms_sum;
    atomic_uint_fast64_t reconnects[DSC_PEERS];
    atomic_bool connected[DSC_PEERS];
    atomic_bool started, stopping, batch_failing;
    atomic_long queue_ready; /* < 0: unknown */
    /* Wall-clock ms of the ts the lag is counted from; 0: caught up. */
    atomic_int_fast64_t lag_from_ms;
    atomic_uint_fast64_t last_commit_ms; /* 0: no batch yet */
    uint64_t batch_t0_us;                /* the writer's own */
    pthread_mutex_t lock;                /* the reasons below */
    char why[DSC_PEERS][WHY_MAX];
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

dsc_metrics *dsc_metrics_new(const char *version, const char *node)
{
    dsc_metrics *m = calloc(1, sizeof *m);

    if (!m)
        return NULL;
    m->version = strdup(version);
    m->node = strdup(node);
    if (!m->version || !m->node || pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m->version);
        free(m->node);
        free(m);
        return NULL;
    }
    m->start_ms = ds__now_ms();
    SET(m->queue_ready, -1);
    return m;
}

void dsc_metrics_free(dsc_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m->version);
    free(m->node);
    free(m);
}

dsc_dead_class dsc_dead_class_of(int code)
{
    switch (code) {
    case DS_EJSON:
        return DSC_DEAD_MALFORMED;
    case DS_ESCHEMA:
        return DSC_DEAD_SCHEMA;
    case DS_ETOOBIG:
        return DSC_DEAD_TOO_BIG;
    case DS_ETABLE:
        return DSC_DEAD_TABLE;
    case DS_ECOLUMN:
        return DSC_DEAD_COLUMN;
    case DS_ECONSTRAINT:
        return DSC_DEAD_CONSTRAINT;
    case DS_EMYSQL:
        return DSC_DEAD_VALUE;
    default:
        return DSC_DEAD_OTHER;
    }
}

const char *dsc_dead_class_name(dsc_dead_class c)
{
    static const char *const names[DSC_DEAD_CLASSES] = {
        "malformed", "schema",     "too_big", "table",
        "column",    "constraint", "value",   "other"};
    return (unsigned)c < DSC_DEAD_CLASSES ? names[c] : "other";
}

/* ------------------------------------------------------------------------ */
/* The apply loop                                                            */

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d: years taken
 * from March, so the leap day ends a year, counted in 400-year cycles. */
static int64_t days_since_epoch(int y, int m, int d)
{
    if (m <= 2)
        y--;
    int64_t cycle = (y >= 0 ? y : y - 399) / 400;
    int year_of_cycle = (int)(y - cycle * 400);
    int day_of_year = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int day_of_cycle = year_of_cycle * 365 + year_of_cycle / 4 -
                       year_of_cycle / 100 + day_of_year;
    return cycle * 146097 + day_of_cycle - 719468;
}

/* An event's ts, "YYYY-MM-DDTHH:MM:SS[.fff...]Z" (the event parser checked
 * its shape), as wall-clock ms; 0 when there is none. Arithmetic only: it
 * runs for every applied change. */
static int64_t ts_ms(const ds_event *ev)
{
    const char *s = ev->ts;
    int ms = 0;

    if (strlen(s) < 20)
        return 0;
    int64_t days =
        days_since_epoch(digits(s, 4), digits(s + 5, 2), digits(s + 8, 2));
    int64_t secs = days * 86400 + digits(s + 11, 2) * 3600 +
                   digits(s + 14, 2) * 60 + digits(s + 17, 2);
    if (s[19] == '.')
        for (int scale = 100, i = 20; s[i] >= '0' && s[i] <= '9';
             i++, scale /= 10)
            ms += (s[i] - '0') * scale;
    return secs * 1000 + ms;
}

void dsc_metrics_batch_begin(dsc_metrics *m, const dsc_change *changes,
                             size_t n)
{
    m->batch_t0_us = mono_us();
    if (GET(m->lag_from_ms) != 0)
        return;
    /* It had caught up: the lag now grows from the oldest change waiting. */
    for (size_t i = 0; i < n; i++) {
        int64_t t = changes[i].ev.ts[0] ? ts_ms(&changes[i].ev) : 0;
        if (t > 0) {
            SET(m->lag_from_ms, t);
            return;
        }
    }
}

/* Bucket of value in a histogram of n bounds: the first bound it does not
 * exceed (le), or n, above them all. */
static int bucket_of(const double *bounds, int n, double value)
{
    int b = 0;
    while (b < n && value > bounds[b])
        b++;
    return b;
}

/* An applied change's latency here: from its ts, the emitting server's
 * clock, to now, just after its commit; a ts ahead of this clock counts 0. */
static void observe_latency(dsc_metrics *m, int64_t now, const dsc_change *ch)
{
    int64_t t = ch->ev.ts[0] ? ts_ms(&ch->ev) : 0;
    if (t <= 0)
        return;
    uint64_t ms = now > t ? (uint64_t)(now - t) : 0;
    ADD(m->latency_bucket[bucket_of(dsc_latency_bucket_bounds,
                                    DSC_LATENCY_BUCKETS, (double)ms / 1e3)],
        1);
    ADD(m->latency_ms_sum, ms);
}

void dsc_metrics_batch_done(dsc_metrics *m, const dsc_change *changes, size_t n,
                            bool dead_lettered)
{
    uint64_t applied = 0, recorded = 0, ignored = 0;
    uint64_t dead[DSC_DEAD_CLASSES] = {0};
    int64_t last_ts = 0;
    const int64_t now = (int64_t)ds__now_ms();

    /* The lag runs from the last ts there is. The loop below runs for
     * every change: it parses the ts of applied ones only, by arithmetic. */
    for (size_t i = n; i-- > 0 && last_ts <= 0;)
        if (changes[i].ev.ts[0])
            last_ts = ts_ms(&changes[i].ev);
    for (size_t i = 0; i < n; i++) {
        const dsc_change *ch = &changes[i];
        if (ch->marker)
            continue;
        if (ch->state == DS_CHANGE_POISON) {
            dead[dsc_dead_class_of(ch->poison_code)]++;
            continue;
        }
        if (ch->state != DS_CHANGE_DONE)
            continue;
        switch (ch->decision) {
        case DS_DECIDE_APPLY:
            applied++;
            observe_latency(m, now, ch);
            break;
        case DS_DECIDE_RECORD_ONLY:
            recorded++;
            break;
        case DS_DECIDE_SUPERSEDED:
            ignored++;
            break;
        }
    }
    ADD(m->applied, applied);
    ADD(m->recorded, recorded);
    ADD(m->ignored, ignored);
    if (dead_lettered)
        for (int c = 0; c < DSC_DEAD_CLASSES; c++)
            if (dead[c])
                ADD(m->dead[c], dead[c]);

    dsc_metrics_observe_batch(m, mono_us() - m->batch_t0_us);
    if (last_ts > 0)
        SET(m->lag_from_ms, last_ts);
    SET(m->last_commit_ms, (uint64_t)now);
    SET(m->batch_failing, false);
}

void dsc_metrics_observe_batch(dsc_metrics *m, uint64_t us)
{
    ADD(m->bucket[bucket_of(dsc_batch_bucket_bounds, DSC_BATCH_BUCKETS,
                            (double)us / 1e6)],
        1);
    ADD(m->batch_us_sum, us);
    ADD(m->batches, 1);
}

void dsc_metrics_commit_retry(dsc_metrics *m)
{
    ADD(m->retries, 1);
    SET(m->batch_failing, true);
}

void dsc_metrics_caught_up(dsc_metrics *m)
{
    SET(m->lag_from_ms, 0);
}

void dsc_metrics_connected(dsc_metrics *m, dsc_peer peer, bool reconnected)
{
    if (reconnected)
        ADD(m->reconnects[peer], 1);
    SET(m->connected[peer], true);
}

void dsc_metrics_disconnected(dsc_metrics *m, dsc_peer peer, const char *why)
{
    pthread_mutex_lock(&m->lock);
    snprintf(m->why[peer], WHY_MAX, "%s", why ? why : "");
    /* One line: /health's reason is the body's only line. */
    m->why[peer][strcspn(m->why[peer], "\r\n")] = '\0';
    pthread_mutex_unlock(&m->lock);
    SET(m->connected[peer], false);
}

void dsc_metrics_queue_ready(dsc_metrics *m, long ready)
{
    SET(m->queue_ready, ready);
}

void dsc_metrics_started(dsc_metrics *m)
{
    SET(m->started, true);
}

void dsc_metrics_stopping(dsc_metrics *m)
{
    SET(m->stopping, true);
}

/* ------------------------------------------------------------------------ */
/* Readers                                                                   */

int dsc_metrics_health(dsc_metrics *m, char *reason, size_t len)
{
    static const char *const peer_names[DSC_PEERS] = {"broker", "database"};

    if (GET(m->stopping)) {
        snprintf(reason, len, "stopping");
        return 503;
    }
    for (int p = 0; p < DSC_PEERS; p++) {
        if (GET(m->connected[p]))
            continue;
        pthread_mutex_lock(&m->lock);
        snprintf(reason, len, "%s%s not connected%s%s",
                 GET(m->started) ? "" : "starting: ", peer_names[p],
                 m->why[p][0] ? ": " : "", m->why[p]);
        pthread_mutex_unlock(&m->lock);
        return 503;
    }
    if (!GET(m->started)) {
        snprintf(reason, len, "starting");
        return 503;
    }
    if (GET(m->batch_failing)) {
        snprintf(reason, len,
                 "last batch rolled back on a database error; retrying");
        return 503;
    }
    snprintf(reason, len, "ok");
    return 200;
}

/* A growing text; on out of memory it stays failed and the render says so. */
typedef struct text {
    char *buf;
    size_t len, cap;
    bool failed;
} text;

static void put(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(text *t, const char *fmt, ...)
{
    va_list ap;

    for (int tries = 0; tries < 2 && !t->failed; tries++) {
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 > t->len + (size_t)n + 1
                         ? t->cap * 2
                         : t->len + (size_t)n + 1;
        char *grown = realloc(t->buf, cap);
        if (!grown) {
            t->failed = true;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

/* A label value as the format wants it: \, " and newline escaped. */
static void put_label_value(text *t, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            put(t, "\\\\");
        else if (*v == '"')
            put(t, "\\\"");
        else if (*v == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *v);
    }
}

static void family(text *t, const char *name, const char *type,
                   const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(text *t, const char *name, const char *help,
                    atomic_uint_fast64_t *v)
{
    family(t, name, "counter", help);
    put(t, "%s %" PRIuFAST64 "\n", name, GET(*v));
}

static void per_peer(text *t, const char *name, const char *type,
                     const char *help, uint64_t broker, uint64_t database)
{
    family(t, name, type, help);
    put(t, "%s{peer=\"broker\"} %" PRIu64 "\n", name, broker);
    put(t, "%s{peer=\"database\"} %" PRIu64 "\n", name, database);
}

/* A histogram family from per-bucket counts (the last: above every
 * bound), made cumulative here, and the sum of the observations. */
static void histogram(text *t, const char *name, const char *help,
                      const double *bounds, int n,
                      atomic_uint_fast64_t *per_bucket, double sum)
{
    uint64_t cumulative = 0;

    family(t, name, "histogram", help);
    for (int b = 0; b <= n; b++) {
        cumulative += GET(per_bucket[b]);
        if (b < n)
            put(t, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, bounds[b],
                cumulative);
        else
            put(t, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
    }
    /* _count is the +Inf bucket by definition: the same sum, so a scrape in
     * the middle of an update still agrees with itself. */
    put(t, "%s_sum %.6f\n", name, sum);
    put(t, "%s_count %" PRIu64 "\n", name, cumulative);
}

char *dsc_metrics_render(dsc_metrics *m, uint64_t now_ms, size_t *len)
{
    text t = {malloc(4096), 0, 4096, false};
    char reason[8];

    if (!t.buf)
        return NULL;
    t.buf[0] = '\0';
    family(&t, "datasync_build_info", "gauge",
           "The running datasync-consumer's version and node; always 1.");
    put(&t, "datasync_build_info{version=\"");
    put_label_value(&t, m->version);
    put(&t, "\",node=\"");
    put_label_value(&t, m->node);
    put(&t, "\"} 1\n");
    family(&t, "datasync_consumer_start_time_seconds", "gauge",
           "When the consumer started, in seconds since the epoch.");
    put(&t, "datasync_consumer_start_time_seconds %.3f\n",
        (double)m->start_ms / 1e3);
    family(&t, "datasync_consumer_healthy", "gauge",
           "1 when GET /health answers 200: connected to the broker and the "
           "database, and the last batch committed.");
    put(&t, "datasync_consumer_healthy %d\n",
        dsc_metrics_health(m, reason, sizeof reason) == 200);
    per_peer(&t, "datasync_consumer_connected", "gauge",
             "1 while the consumer holds a connection to the peer.",
             GET(m->connected[DSC_PEER_BROKER]),
             GET(m->connected[DSC_PEER_DATABASE]));

    counter(&t, "datasync_consumer_changes_applied_total",
            "Changes whose row was written or deleted, in committed batches.",
            &m->applied);
    counter(&t, "datasync_consumer_changes_recorded_total",
            "This server's own changes whose version only was recorded.",
            &m->recorded);
    counter(&t, "datasync_consumer_changes_ignored_total",
            "Changes not newer than the stored version of their row "
            "(duplicates, late or superseded deliveries).",
            &m->ignored);
    family(&t, "datasync_consumer_dead_lettered_total", "counter",
           "Changes sent to the dead-letter queue, by class of reason.");
    for (int c = 0; c < DSC_DEAD_CLASSES; c++)
        put(&t,
            "datasync_consumer_dead_lettered_total{reason=\"%s\"} %" PRIuFAST64
            "\n",
            dsc_dead_class_name((dsc_dead_class)c), GET(m->dead[c]));
    counter(&t, "datasync_consumer_batches_total",
            "Batches committed and acknowledged.", &m->batches);
    histogram(&t, "datasync_consumer_batch_duration_seconds",
              "Time from taking a batch to its ack, of committed batches.",
              dsc_batch_bucket_bounds, DSC_BATCH_BUCKETS, m->bucket,
              (double)GET(m->batch_us_sum) / 1e6);
    histogram(&t, "datasync_consumer_change_latency_seconds",
              "Time from an applied change's ts (the emitting server's clock "
              "at ds_emit) to its commit here; includes the difference of "
              "the two servers' clocks.",
              dsc_latency_bucket_bounds, DSC_LATENCY_BUCKETS, m->latency_bucket,
              (double)GET(m->latency_ms_sum) / 1e3);
    counter(&t, "datasync_consumer_commit_retries_total",
            "Batch attempts rolled back on a database error and tried "
            "again.",
            &m->retries);
    per_peer(&t, "datasync_consumer_reconnects_total", "counter",
             "Connections made again after one was lost.",
             GET(m->reconnects[DSC_PEER_BROKER]),
             GET(m->reconnects[DSC_PEER_DATABASE]));

    long ready = GET(m->queue_ready);
    if (ready >= 0) {
        family(&t, "datasync_consumer_queue_messages_ready", "gauge",
               "Messages waiting in this node's queue, not yet delivered "
               "(checked every 10 s, and 0 once nothing is delivered).");
        put(&t, "datasync_consumer_queue_messages_ready %ld\n", ready);
    }
    int64_t from = GET(m->lag_from_ms);
    double lag = from > 0 && (int64_t)now_ms > from
                     ? (double)((int64_t)now_ms - from) / 1e3
                     : 0.0;
    family(&t, "datasync_consumer_lag_seconds", "gauge",
           "Now minus the ts of the last committed change while changes "
           "wait; 0 once the queue is drained.");
    put(&t, "datasync_consumer_lag_seconds %.3f\n", lag);
    uint64_t last = GET(m->last_commit_ms);
    if (last) {
        family(&t, "datasync_consumer_last_commit_timestamp_seconds", "gauge",
               "When the last batch committed, in seconds since the epoch.");
        put(&t, "datasync_consumer_last_commit_timestamp_seconds %.3f\n",
            (double)last / 1e3);
    }
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    if (len)
        *len = t.len;
    return t.buf;
}
