/* consumer.c: the apply loop, read straight through: gather → decode and check → apply and commit → dead-letter → ack, the next batch gathered while one commits. */
#include <inttypes.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apply.h"
#include "attempt.h"
#include "catalog.h"
#include "consumer.h"
#include "error.h"
#include "event.h"
#include "http.h"
#include "ids.h"
#include "inbox.h"
#include "meta_sql.h"
#include "metrics.h"
#include "mysql_util.h"
#include "reload.h"
#include "notify.h"
#include "versions.h"

/* How long the loop waits for a first message before looking at the stop
 * flag and its periodic work again. */
#define IDLE_MS 250
/* Retry backoff of database errors: from, doubling up to. */
#define BACKOFF_MIN_MS 100
/* While a batch commits, the next one's frames are read in bulk this
 * often at most. */
#define GATHER_NAP_MS 2
#define BACKOFF_MAX_MS 5000
/* After SIGTERM the batch in hand may still take this long to commit; past
 * it, it is left unacked (delivered again) so the exit stays within 5 s. */
#define STOP_GRACE_MS 2000
#define DEAD_LETTER_TIMEOUT_MS 10000
#define STATS_EVERY_MS 10000
#define PRUNE_EVERY_MS (10 * 60 * 1000)
#define PRUNE_LIMIT 1000
#define PRUNE_ROUNDS 20
/* An idle consumer pings its database this often, so /health and the
 * metrics learn of an outage without a batch, and it reconnects once the
 * database is back. */
#define DB_CHECK_EVERY_MS 2000

/* A batch: the messages taken from the inbox, oldest first, and their
 * changes. */
typedef struct dsc_batch {
    dsc_message **msgs;
    dsc_change *changes;
    size_t n;
    /* The catalogue its changes were checked against (cat_gen), and how
     * many of them named a column that catalogue lacks. */
    uint64_t cat_gen;
    size_t unknown;
} dsc_batch;

struct dsc_consumer {
    const ds_config *cfg;
    const ds_logger *lg;
    volatile sig_atomic_t *stop;
    volatile sig_atomic_t *hangups; /* SIGHUPs received */
    sig_atomic_t hangups_seen;
    dsc_settings *settings; /* what a SIGHUP reloads; NULL: ignored */
    uint64_t stop_deadline; /* 0 until the stop flag is seen */
    MYSQL *db;              /* NULL while disconnected */
    dsc_catalog cat;
    uint64_t cat_gen; /* bumped at every catalogue read */
    dsc_applier *ap;
    ds_clockfile *clock; /* NULL when node.clock_file is off or unusable */
    dsc_inbox in;
    /* The batch in hand, and the next one, gathered while cur commits;
     * each with room for cap (apply.batch_max when allocated, grown by a
     * reload between batches). */
    dsc_batch batches[2];
    dsc_batch *cur, *next;
    size_t cap;
    dsc_attempt attempt; /* cur's first attempt, on the applier's thread */
    /* Counters for the stats line, beside the applier's. */
    uint64_t dead_lettered, retries;
    uint64_t next_stats, next_prune, next_db_check; /* ds__mono_ms */
    uint64_t batches_at_db_check;
    /* Operations: what /metrics and /health show (the endpoint reads it
     * from its own thread), and systemd's notifications. */
    dsc_metrics *metrics;
    dsc_http *http; /* NULL when metrics.listen is empty */
    dsc_notify notify;
    bool db_ever, broker_ever; /* a connection made since start */
    char err[DS_ERRMSG_SIZE];
};

static bool stopping(dsc_consumer *c)
{
    if (*c->stop && c->stop_deadline == 0) {
        c->stop_deadline = ds__mono_ms() + STOP_GRACE_MS;
        dsc_metrics_stopping(c->metrics);
        dsc_notify_stopping(&c->notify);
    }
    return *c->stop != 0;
}

/* Sleeps ms, or less when asked to stop; systemd's watchdog is fed. */
static void nap(dsc_consumer *c, int ms)
{
    for (uint64_t end = ds__mono_ms() + (uint64_t)ms;
         ds__mono_ms() < end && !*c->stop;) {
        dsc_notify_watchdog(&c->notify);
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
}

static bool past_stop_deadline(dsc_consumer *c)
{
    return stopping(c) && ds__mono_ms() >= c->stop_deadline;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                                */

/* Closed after an error, whose text c->err holds. */
static void db_close(dsc_consumer *c)
{
    /* Statements first: they belong to the connection. */
    dsc_applier_set_db(c->ap, NULL);
    if (c->db) {
        mysql_close(c->db);
        dsc_metrics_disconnected(c->metrics, DSC_PEER_DATABASE, c->err);
    }
    c->db = NULL;
}

/* Connects and makes sure the metadata tables exist: after a restore or a
 * DROP they come back before the first batch needs them. */
static int db_open(dsc_consumer *c)
{
    MYSQL *db;
    int rc = ds__mysql_connect(&db, c->cfg, c->err, sizeof c->err);
    if (rc) {
        dsc_metrics_disconnected(c->metrics, DSC_PEER_DATABASE, c->err);
        return rc;
    }
    /* Created only when missing: a consumer whose database user may not
     * CREATE (a DBA ran schemas/datasync-meta.sql) starts all the same. */
    if (mysql_query(db, "SELECT 1 FROM datasync_versions LIMIT 0") == 0) {
        mysql_free_result(mysql_store_result(db));
    } else if (mysql_errno(db) == ER_NO_SUCH_TABLE) {
        rc = ds__mysql_exec_script(db, DS_META_SQL, c->err, sizeof c->err);
    } else {
        rc = ds__mysql_error(db, "datasync_versions", NULL, c->err,
                             sizeof c->err);
    }
    if (rc) {
        mysql_close(db);
        dsc_metrics_disconnected(c->metrics, DSC_PEER_DATABASE, c->err);
        return rc;
    }
    mysql_rollback(db);
    c->db = db;
    dsc_applier_set_db(c->ap, db);
    dsc_metrics_connected(c->metrics, DSC_PEER_DATABASE, c->db_ever);
    c->db_ever = true;
    return 0;
}

static int catalog_reload(dsc_consumer *c, bool announce)
{
    int rc = dsc_catalog_load(&c->cat, c->db, c->cfg->mysql_database,
                              c->cfg->apply_tables, c->err, sizeof c->err);
    /* Batches checked before hold tables of the old catalogue. */
    c->cat_gen++;
    /* End the read transaction: the next batch starts its own. */
    mysql_rollback(c->db);
    /* Statements name columns of the old catalogue. */
    dsc_applier_set_db(c->ap, c->db);
    if (rc == 0 && announce)
        DS_LOG(c->lg, DS_LOG_INFO, "catalogue reloaded");
    return rc;
}

static void broker_lost(dsc_consumer *c, const char *why)
{
    DS_LOG(c->lg, DS_LOG_WARN,
           "broker: %s; reconnecting (unacked messages come again)", why);
    dsc_metrics_disconnected(c->metrics, DSC_PEER_BROKER, why);
    dsc_notify_status(&c->notify, "broker: %s; reconnecting", why);
    dsc_inbox_drop(&c->in);
}

/* Connects to the broker and consumes (dsc_inbox_open), and says so. */
static int broker_open(dsc_consumer *c)
{
    int rc = dsc_inbox_open(&c->in, c->err, sizeof c->err);
    if (rc) {
        dsc_metrics_disconnected(c->metrics, DSC_PEER_BROKER, c->err);
        return rc;
    }
    dsc_metrics_connected(c->metrics, DSC_PEER_BROKER, c->broker_ever);
    c->broker_ever = true;
    return 0;
}

/* Pumps broker frames (heartbeats, deliveries into the buffer) for ms, in
 * slices so the stop flag is seen. Returns -1 if the broker was lost. */
/* Tells the systemd watchdog we are alive and reads the broker's frames
 * for up to wait_ms (heartbeats, deliveries into the inbox). Returns -1
 * when the broker connection is lost or was already. */
static int keep_alive(dsc_consumer *c, int wait_ms)
{
    dsc_notify_watchdog(&c->notify);
    if (!dsc_inbox_connected(&c->in))
        return -1;
    if (dsc_inbox_pump(&c->in, SIZE_MAX, wait_ms, c->err, sizeof c->err)) {
        broker_lost(c, c->err);
        return -1;
    }
    return 0;
}

static int wait_pumping(dsc_consumer *c, int ms)
{
    uint64_t end = ds__mono_ms() + (uint64_t)ms;
    for (uint64_t now = end - (uint64_t)ms; now < end && !past_stop_deadline(c);
         now = ds__mono_ms()) {
        uint64_t left = end - now;
        if (keep_alive(c, left > 200 ? 200 : (int)left) < 0)
            return -1;
    }
    return 0;
}

/* With another consumer of the node active on the queue, this one gets
 * nothing until that one leaves: say so, then say when it takes over. */
static void say_if_standby(dsc_consumer *c)
{
    if (c->in.standby)
        DS_LOG(c->lg, DS_LOG_WARN,
               "another datasync-consumer of node %s is active on %s: this "
               "one stands by and takes over when it leaves",
               c->cfg->node_id, c->in.queue);
}

static void note_takeover(dsc_consumer *c)
{
    if (c->in.standby && c->in.count > 0) {
        c->in.standby = false;
        DS_LOG(c->lg, DS_LOG_INFO,
               "%s: the other consumer left; this one is active now",
               c->in.queue);
    }
}

static void broker_reconnect(dsc_consumer *c)
{
    int backoff = BACKOFF_MIN_MS;
    while (!stopping(c)) {
        if (broker_open(c) == 0) {
            DS_LOG(c->lg, DS_LOG_INFO, "broker: connected to %s, consuming %s",
                   c->in.amqp.host, c->in.queue);
            say_if_standby(c);
            dsc_notify_status(&c->notify, "consuming %s", c->in.queue);
            return;
        }
        DS_LOG(c->lg, DS_LOG_WARN, "broker: %s; retrying in %d ms", c->err,
               backoff);
        nap(c, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

/* ------------------------------------------------------------------------ */
/* The batch                                                                  */

static void change_clear(dsc_change *ch)
{
    ds__event_clear(&ch->ev);
    free(ch->pk);
    memset(ch, 0, sizeof *ch);
}

/* Decodes one message into ch. Returns 0, or -1 when ch is now poison. */
static int decode(dsc_consumer *c, dsc_change *ch, const dsc_message *m)
{
    char why[DS_REASON_MAX];
    const long max = c->cfg->apply_max_message_bytes;

    memset(ch, 0, sizeof *ch);
    if (ds__amqp_is_marker(&m->props)) {
        char id[64];
        ds__amqp_copy_str(m->props.message_id, id, sizeof id);
        if (!ds__valid_uuid(id)) {
            /* Never recordable: a dead letter, not a retry forever. */
            dsc_change_poison(ch, DS_EINVAL,
                              "marker: message_id '%.40s' is not a UUID", id);
            return -1;
        }
        ch->marker = true;
        ch->state = DS_CHANGE_DONE;
        return 1;
    }
    if (m->body.len > (size_t)max) {
        dsc_change_poison(ch, DS_ETOOBIG,
                          "message of %zu bytes, "
                          "apply.max_message_bytes is %ld",
                          m->body.len, max);
        return -1;
    }
    int rc =
        ds__event_parse(&ch->ev, m->body.bytes, m->body.len, why, sizeof why);
    if (rc) {
        dsc_change_poison(ch, rc, "%s", why);
        return -1;
    }
    return 0;
}

/*
 * Checks a decoded change against the catalogue and computes its key.
 * Returns 0 (ch has its key, or is poison), or DS_ECOLUMN for a member
 * that is no column: one may have been added since the catalogue was read,
 * so ch stays pending, without a key, its reason kept, until the caller
 * reads the catalogue again and checks once more, or gives up.
 */
static int check(dsc_consumer *c, dsc_change *ch)
{
    char pk[DS_PK_MAX], why[DS_REASON_MAX];
    size_t pklen = 0;

    free(ch->pk);
    ch->pk = NULL;
    ch->table = dsc_catalog_table(&c->cat, ch->ev.table);
    if (!ch->table) {
        dsc_change_poison(ch, DS_ETABLE,
                          "table %s is not applied on this server",
                          ch->ev.table);
        return 0;
    }
    int rc = dsc_catalog_check(ch->table, &ch->ev, pk, &pklen, why, sizeof why);
    if (rc == DS_ECOLUMN) {
        snprintf(ch->reason, sizeof ch->reason, "%s", why);
        return rc;
    }
    if (rc) {
        dsc_change_poison(ch, rc, "%s", why);
        return 0;
    }
    ch->pk = malloc(pklen);
    if (!ch->pk) {
        dsc_change_poison(ch, DS_ENOMEM, "%s", "out of memory");
        return 0;
    }
    memcpy(ch->pk, pk, pklen);
    ch->pklen = pklen;
    return 0;
}

/* A change still naming no column of the catalogue: a dead letter, with
 * the reason its check kept. */
static void poison_unknown_column(dsc_change *ch)
{
    char why[DS_REASON_MAX];

    memcpy(why, ch->reason, sizeof why);
    dsc_change_poison(ch, DS_ECOLUMN, "%s", why);
}

/* Checks every pending change of b again against the catalogue in hand
 * (after a reload each table pointer is new). One that still names a column
 * the catalogue lacks is dead-lettered when final, else counted in
 * b->unknown to be looked at again after the next reload. */
static void check_again(dsc_consumer *c, dsc_batch *b, bool final)
{
    b->unknown = 0;
    for (size_t i = 0; i < b->n; i++) {
        dsc_change *ch = &b->changes[i];
        if (ch->state != DS_CHANGE_PENDING || check(c, ch) != DS_ECOLUMN)
            continue;
        if (final)
            poison_unknown_column(ch);
        else
            b->unknown++;
    }
    b->cat_gen = c->cat_gen;
}

/* Decodes and checks b's message i against the catalogue in hand, without
 * the database: it may be busy with the batch before. */
static void decode_one(dsc_consumer *c, dsc_batch *b, size_t i)
{
    dsc_change *ch = &b->changes[i];
    if (decode(c, ch, b->msgs[i]) == 0 && check(c, ch) == DS_ECOLUMN)
        b->unknown++;
}

/*
 * Makes b ready to apply, once the database is free: an unknown column may
 * mean a column added since the catalogue was read: if b met one, read the
 * catalogue again and check all again; only what still fails then, or when
 * the catalogue is unreadable for good, becomes a dead letter. A batch
 * checked against an older catalogue is checked again against the one in
 * hand. Returns 0, or DS_EDBCONNECT when the database is away: nothing is
 * dead-lettered for that, the unknown columns wait for the next try.
 */
static int resolve_unknown(dsc_consumer *c, dsc_batch *b)
{
    if (b->unknown > 0) {
        int rc = c->db ? 0 : db_open(c);
        if (rc == 0)
            rc = catalog_reload(c, true);
        if (rc == DS_EDBCONNECT) {
            if (b->cat_gen != c->cat_gen)
                check_again(c, b, false);
            return rc;
        }
        if (rc)
            DS_LOG(c->lg, DS_LOG_WARN, "catalogue: %s", c->err);
    }
    if (b->unknown > 0 || b->cat_gen != c->cat_gen)
        check_again(c, b, true);
    return 0;
}

/* Decodes and checks every message of b against the catalogue in hand. */
static void decode_batch(dsc_consumer *c, dsc_batch *b)
{
    b->cat_gen = c->cat_gen;
    b->unknown = 0;
    for (size_t i = 0; i < b->n; i++)
        decode_one(c, b, i);
}

/* After the applier met an unknown table or column: reload and check the
 * pending changes again, so a dropped column dead-letters its changes. */
static int recheck_after_reload(dsc_consumer *c, dsc_batch *b)
{
    int rc = catalog_reload(c, true);
    if (rc)
        return rc;
    check_again(c, b, true);
    return 0;
}

/*
 * Applies b until it commits. Database errors roll back, reconnect with
 * backoff and try the same batch again, acking nothing, while the broker
 * connection keeps being pumped (heartbeats). first, when not NULL, is an
 * attempt already made (joined): its outcome is taken as the first.
 * Returns 0 once committed, -1 when it gave up (broker lost, or stopping):
 * then nothing is acked and the broker delivers the messages again.
 */
static int apply_batch(dsc_consumer *c, dsc_batch *b, const dsc_attempt *first)
{
    int backoff = BACKOFF_MIN_MS;
    dsc_apply_retry retry;

    for (;;) {
        int rc;
        if (first) {
            rc = first->rc;
            retry = first->retry;
            snprintf(c->err, sizeof c->err, "%s", first->err);
            first = NULL;
        } else {
            if (past_stop_deadline(c)) {
                DS_LOG(c->lg, DS_LOG_WARN,
                       "stopping: a batch of %zu not applied; the broker "
                       "delivers it again",
                       b->n);
                return -1;
            }
            rc = c->db ? 0 : db_open(c);
            if (rc == 0)
                rc = resolve_unknown(c, b);
            if (rc == 0)
                rc = dsc_applier_batch(c->ap, b->changes, b->n, &retry, c->err,
                                       sizeof c->err);
        }
        if (rc == 0)
            return 0;
        if (rc > 0) {
            /* One change isolated (dead-lettered or deferred): again. */
            if (retry.reload_catalog && recheck_after_reload(c, b) != 0) {
                DS_LOG(c->lg, DS_LOG_WARN, "catalogue: %s", c->err);
                db_close(c);
            }
            if (retry.wait_ms && wait_pumping(c, retry.wait_ms) != 0)
                return -1;
            continue;
        }
        c->retries++;
        dsc_metrics_commit_retry(c->metrics);
        DS_LOG(c->lg, DS_LOG_WARN,
               "database: %s; batch of %zu rolled back, retrying in %d ms",
               c->err, b->n, backoff);
        dsc_notify_status(&c->notify, "database: %s; retrying", c->err);
        db_close(c);
        if (wait_pumping(c, backoff) != 0)
            return -1;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

/* The batch is committed: markers in it are recorded now, before the ack,
 * so whoever waits for one knows what came before it is applied. Returns
 * 0, or a DS_E code with c->err when one could not be recorded. */
static int note_markers(dsc_consumer *c, const dsc_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        char id[64];
        if (!b->changes[i].marker) /* a bad one is poison, never a marker */
            continue;
        ds__amqp_copy_str(b->msgs[i]->props.message_id, id, sizeof id);
        int rc = dsc_versions_note_marker(c->db, id, c->err, sizeof c->err);
        if (rc)
            return rc;
        DS_LOG(c->lg, DS_LOG_INFO,
               "marker %s: everything before it is "
               "applied",
               id);
    }
    return 0;
}

/* Dead-letters the poison changes (confirmed), then acks the whole batch
 * with one basic.ack(multiple). Returns whether the dead letters went out
 * (the ack may still have failed: then all comes again). */
static bool finish_batch(dsc_consumer *c, dsc_batch *b)
{
    dsc_message *dead[b->n ? b->n : 1];
    const char *reasons[b->n ? b->n : 1];
    size_t ndead = 0;
    uint64_t gen = b->msgs[0]->gen;

    if (gen != c->in.gen || !dsc_inbox_connected(&c->in))
        return false; /* a newer connection delivers these again */
    for (size_t i = 0; i < b->n; i++) {
        if (b->changes[i].state != DS_CHANGE_POISON)
            continue;
        dead[ndead] = b->msgs[i];
        reasons[ndead++] = b->changes[i].reason;
        DS_LOG(c->lg, DS_LOG_WARN, "dead letter (delivery %" PRIu64 "): %s",
               b->msgs[i]->tag, b->changes[i].reason);
    }
    if (note_markers(c, b) != 0) {
        /* Not recorded, so not acked: nor by a later batch's ack
         * (multiple), which would cover it. Dropping the connection brings
         * the batch back, applied again harmlessly, and the marker with it. */
        char why[DS_ERRMSG_SIZE + 32];
        snprintf(why, sizeof why, "marker not recorded (%s)", c->err);
        broker_lost(c, why);
        return false;
    }
    DS_LOG(c->lg, DS_LOG_DEBUG,
           "batch: messages %zu, dead-lettered %zu, last delivery %" PRIu64,
           b->n, ndead, b->msgs[b->n - 1]->tag);
    int rc =
        dsc_inbox_dead_letter(&c->in, dead, reasons, ndead,
                              DEAD_LETTER_TIMEOUT_MS, c->err, sizeof c->err);
    if (rc) {
        broker_lost(c, c->err);
        return false;
    }
    c->dead_lettered += ndead;
    rc = dsc_inbox_ack(&c->in, gen, b->msgs[b->n - 1]->tag, c->err,
                       sizeof c->err);
    if (rc)
        broker_lost(c, c->err);
    return true;
}

static void free_batch(dsc_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        change_clear(&b->changes[i]);
        dsc_message_free(b->msgs[i]);
        b->msgs[i] = NULL;
    }
    b->n = 0;
    b->unknown = 0;
}

/* apply.batch_max as it is now (a reload may change it), within the
 * batches' room. */
static size_t batch_max(const dsc_consumer *c)
{
    const size_t want = (size_t)c->cfg->apply_batch_max;
    return want < c->cap ? want : c->cap;
}

/* Takes buffered messages into b, up to batch_max; returns how many. */
static size_t take(dsc_consumer *c, dsc_batch *b)
{
    const size_t max = batch_max(c), n0 = b->n;

    note_takeover(c);
    while (b->n < max) {
        dsc_message *m = dsc_inbox_take(&c->in);
        if (!m)
            break;
        b->msgs[b->n++] = m;
    }
    return b->n - n0;
}

/* Waits for a first message, then up to batch_wait_ms for more, and takes
 * up to batch_max (read each time: a reload may change both). The wait
 * reads what came every GATHER_NAP_MS rather than each delivery as it
 * arrives: at 2,000 changes/s a poll and a recv apiece cost a fifth of the
 * consumer's CPU (bench_latency), on a machine it may share with the
 * broker and the database. */
static void gather(dsc_consumer *c, dsc_batch *b)
{
    const size_t max = batch_max(c);

    int rc = dsc_inbox_pump(&c->in, 1, IDLE_MS, c->err, sizeof c->err);
    const uint64_t deadline =
        ds__mono_ms() + (uint64_t)c->cfg->apply_batch_wait_ms;
    while (rc == 0 && c->in.count > 0 && c->in.count < max) {
        uint64_t now = ds__mono_ms();
        if (now >= deadline || stopping(c))
            break; /* stopping: the batch in hand is applied, then the end */
        /* A signal may cut the nap short: the loop looks again. */
        uint64_t ms =
            deadline - now < GATHER_NAP_MS ? deadline - now : GATHER_NAP_MS;
        nanosleep(&(struct timespec){0, (long)ms * 1000000}, NULL);
        rc = dsc_inbox_pump(&c->in, max, 0, c->err, sizeof c->err);
    }
    if (rc) {
        broker_lost(c, c->err);
        return;
    }
    take(c, b);
}

/*
 * While cur's attempt runs: takes what the broker sent into b, up to
 * batch_max, decoding each message as it is taken, and returns once the
 * attempt has ended or b is full. The time a batch takes to commit is the
 * next one's gathering window, so b does not wait batch_wait_ms on top.
 * With nothing buffered it waits for the attempt up to GATHER_NAP_MS, then
 * reads every frame that came meanwhile at once: reading each delivery as
 * it arrives costs a poll and a recv apiece.
 */
static void gather_during_attempt(dsc_consumer *c, dsc_batch *b)
{
    const size_t max = batch_max(c);

    b->cat_gen = c->cat_gen;
    while (b->n < max) {
        if (c->in.count == 0) {
            if (dsc_attempt_wait(&c->attempt, GATHER_NAP_MS))
                return;
            if (dsc_inbox_pump(&c->in, max - b->n, 0, c->err, sizeof c->err) !=
                0) {
                broker_lost(c, c->err);
                return;
            }
        }
        size_t from = b->n;
        take(c, b);
        for (size_t i = from; i < b->n; i++)
            decode_one(c, b, i);
    }
}

/* Waits for the attempt in hand to end. A commit can outlast the broker's
 * heartbeat timeout (a slow disk, a lock held by the application): its
 * frames are read every 200 ms meanwhile, as rabbitmq-c answers heartbeats
 * only as it reads, so the broker neither drops the connection nor hands
 * the queue to a standby consumer while this one is still writing. The
 * deliveries wait in the buffer, bounded by amqp.prefetch. */
static void join_pumping(dsc_consumer *c)
{
    while (!dsc_attempt_wait(&c->attempt, 200))
        keep_alive(c, 0); /* a lost connection: the batch is redelivered */
    dsc_attempt_join(&c->attempt);
}

/*
 * Applies the batch in hand, cur: on the applier's thread when the database
 * is connected, gathering and decoding the next batch meanwhile; then,
 * joined, as before: retries, dead letters, ack. The next batch becomes the
 * batch in hand, unless its connection was lost (the broker delivers its
 * messages again).
 */
static void run_batch(dsc_consumer *c)
{
    dsc_batch *b = c->cur, *nb = c->next;
    int rc;

    /* Not resolved (the database is away): apply_batch tries again. */
    bool ready = resolve_unknown(c, b) == 0;
    dsc_metrics_batch_begin(c->metrics, b->changes, b->n);
    if (ready && c->db && !stopping(c) &&
        dsc_attempt_start(&c->attempt, c->ap, b->changes, b->n) == 0) {
        gather_during_attempt(c, nb);
        join_pumping(c);
        rc = apply_batch(c, b, &c->attempt);
    } else {
        rc = apply_batch(c, b, NULL);
    }
    if (rc == 0) {
        bool dead_lettered = finish_batch(c, b);
        dsc_metrics_batch_done(c->metrics, b->changes, b->n, dead_lettered);
    }
    free_batch(b);
    c->cur = nb;
    c->next = b;
    if (nb->n > 0 &&
        (!dsc_inbox_connected(&c->in) || nb->msgs[0]->gen != c->in.gen))
        free_batch(nb);
}

/* ------------------------------------------------------------------------ */
/* Periodic work                                                              */

/* Room for the batch apply.batch_max allows now. Returns 0, or -1 when
 * memory runs short: batches then stay at the room there is. */
static int batch_room(dsc_consumer *c)
{
    size_t want = (size_t)c->cfg->apply_batch_max;

    if (want <= c->cap)
        return 0;
    /* Each array kept as soon as it is grown (realloc keeps what the next
     * batch already holds): room counts only once all four are. */
    for (int i = 0; i < 2; i++) {
        dsc_batch *b = &c->batches[i];
        dsc_message **msgs = realloc(b->msgs, want * sizeof *msgs);
        if (!msgs)
            return -1;
        b->msgs = msgs;
        dsc_change *changes = realloc(b->changes, want * sizeof *changes);
        if (!changes)
            return -1;
        b->changes = changes;
        memset(changes + c->cap, 0, (want - c->cap) * sizeof *changes);
    }
    c->cap = want;
    return 0;
}

/* SIGHUP. Only ever between batches (periodic runs after the batch in hand
 * is acked and freed, with no attempt running; the next batch, maybe
 * gathered, waits): nothing is lost or applied twice, and a new batch size
 * counts from the batch gathered next. */
static void reload(dsc_consumer *c)
{
    if (!c->settings) {
        DS_LOG(c->lg, DS_LOG_WARN, "SIGHUP received and ignored");
        return;
    }
    if (dsc_reload(c->settings) == 0 && batch_room(c) != 0)
        DS_LOG(c->lg, DS_LOG_ERROR,
               "reload: no memory for batches of %d; they stay at most %zu",
               c->cfg->apply_batch_max, c->cap);
}

/* Pings an idle database (a batch since the last look proves it answers),
 * or connects again to one that was lost. */
static void db_check(dsc_consumer *c)
{
    uint64_t batches = dsc_applier_stats(c->ap)->batches;

    if (c->db && batches != c->batches_at_db_check) {
        c->batches_at_db_check = batches;
        return;
    }
    if (c->db && mysql_ping(c->db) != 0) {
        ds__mysql_error(c->db, "database", NULL, c->err, sizeof c->err);
        DS_LOG(c->lg, DS_LOG_WARN, "%s; reconnecting", c->err);
        db_close(c);
    }
    if (!c->db && db_open(c) == 0)
        DS_LOG(c->lg, DS_LOG_INFO, "database: connected again");
}

static void periodic(dsc_consumer *c)
{
    uint64_t now = ds__mono_ms();

    dsc_notify_watchdog(&c->notify);
    if (now >= c->next_db_check) {
        db_check(c);
        c->next_db_check = now + DB_CHECK_EVERY_MS;
    }

    if (c->hangups && *c->hangups != c->hangups_seen) {
        c->hangups_seen = *c->hangups;
        reload(c);
    }

    if (now >= c->next_stats) {
        const dsc_apply_stats *s = dsc_applier_stats(c->ap);
        long depth = dsc_inbox_connected(&c->in)
                         ? dsc_inbox_queue_depth(&c->in, c->err, sizeof c->err)
                         : -1;
        if (depth < 0 && dsc_inbox_connected(&c->in))
            broker_lost(c, c->err);
        dsc_metrics_queue_ready(c->metrics, depth);
        DS_LOG(c->lg, DS_LOG_INFO,
               "stats: applied %" PRIu64 ", recorded %" PRIu64
               ", superseded %" PRIu64 ", dead-lettered %" PRIu64
               ", retries %" PRIu64 ", in flight %zu, queue depth %ld",
               s->applied, s->recorded, s->superseded, c->dead_lettered,
               c->retries, c->in.count, depth);
        if (c->db && dsc_inbox_connected(&c->in))
            dsc_notify_status(&c->notify,
                              "consuming %s: applied %" PRIu64
                              ", superseded %" PRIu64 ", dead-lettered %" PRIu64
                              ", queue depth %ld",
                              c->in.queue, s->applied, s->superseded,
                              c->dead_lettered, depth);
        c->next_stats = now + STATS_EVERY_MS;
    }
    if (now >= c->next_prune && c->db) {
        long total = 0, n;
        int rounds = 0;
        /* Small deletes, each its own transaction, so pruning never holds
         * many locks or a long transaction. */
        do {
            n = dsc_versions_prune(c->db,
                                   c->cfg->apply_tombstone_retention_hours,
                                   PRUNE_LIMIT, c->err, sizeof c->err);
            if (n > 0)
                total += n;
        } while (n == PRUNE_LIMIT && ++rounds < PRUNE_ROUNDS);
        if (n < 0) {
            DS_LOG(c->lg, DS_LOG_WARN, "prune tombstones: %s", c->err);
            db_close(c);
        } else if (total > 0) {
            DS_LOG(c->lg, DS_LOG_INFO, "pruned %ld tombstones older than %d h",
                   total, c->cfg->apply_tombstone_retention_hours);
        }
        c->next_prune = now + PRUNE_EVERY_MS;
    }
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                 */

int dsc_consumer_run(dsc_consumer *c)
{
    while (!stopping(c)) {
        if (!dsc_inbox_connected(&c->in)) {
            /* A batch gathered on the lost connection comes again. */
            free_batch(c->cur);
            broker_reconnect(c);
            continue;
        }
        if (c->cur->n == 0) {
            gather(c, c->cur);
            decode_batch(c, c->cur);
        }
        if (c->cur->n > 0) {
            run_batch(c);
        } else if (dsc_inbox_connected(&c->in)) {
            /* Nothing delivered for IDLE_MS and nothing unacked: the queue
             * holds nothing ready. */
            dsc_metrics_caught_up(c->metrics);
            dsc_metrics_queue_ready(c->metrics, 0);
        }
        periodic(c);
    }
    const dsc_apply_stats *s = dsc_applier_stats(c->ap);
    DS_LOG(c->lg, DS_LOG_INFO,
           "stopping: applied %" PRIu64 ", recorded %" PRIu64
           ", superseded %" PRIu64 ", dead-lettered %" PRIu64,
           s->applied, s->recorded, s->superseded, c->dead_lettered);
    dsc_inbox_close(&c->in);
    return 0;
}

void dsc_consumer_set_reload(dsc_consumer *c, dsc_settings *settings)
{
    c->settings = settings;
    settings->http = &c->http;
    settings->metrics = c->metrics;
}

void dsc_consumer_free(dsc_consumer *c)
{
    if (!c)
        return;
    /* The endpoint first: its thread reads c->metrics. */
    dsc_http_stop(c->http);
    dsc_attempt_free(&c->attempt);
    for (int i = 0; i < 2; i++)
        free_batch(&c->batches[i]);
    dsc_inbox_close(&c->in);
    db_close(c);
    dsc_applier_free(c->ap);
    ds__clockfile_close(c->clock);
    dsc_catalog_free(&c->cat);
    for (int i = 0; i < 2; i++) {
        free(c->batches[i].msgs);
        free(c->batches[i].changes);
    }
    dsc_metrics_free(c->metrics);
    free(c);
}

/* Whether a start-up failure may pass: the database or the broker not up
 * yet, or another consumer holding the queue. A bad table or a queue of
 * another type needs a person. */
static bool worth_waiting(int rc)
{
    return rc == DS_EDBCONNECT || rc == DS_ECONNECT || rc == DS_ESTATE;
}

/* Connects the database, loads the catalogue, opens the queue. What may
 * pass (worth_waiting) is retried with the run time's backoff until it
 * works or a stop is asked for, so a server that boots before its database
 * or broker needs no restart loop; one line per new reason, and a reminder
 * every minute. */
static int start(dsc_consumer *c)
{
    int backoff = BACKOFF_MIN_MS, rc;
    char last[DS_ERRMSG_SIZE] = "";
    uint64_t last_said = 0;

    for (;;) {
        rc = c->db ? 0 : db_open(c);
        if (rc == 0 && c->cat.ntables == 0)
            rc = catalog_reload(c, false);
        if (rc == DS_EDBCONNECT)
            db_close(c); /* lost while reading: the next try connects anew */
        if (rc == 0)
            rc = broker_open(c);
        if (rc == 0 || !worth_waiting(rc))
            return rc;
        if (stopping(c)) {
            /* Asked to stop while waiting: a clean stop, not a failure
             * (systemd would mark the unit failed). */
            snprintf(last, sizeof last, "%s", c->err);
            return ds__seterr(c->err, sizeof c->err, DS_ECLOSED,
                              "stopped during start-up, while waiting: %s",
                              last);
        }
        if (strcmp(last, c->err) != 0 || ds__mono_ms() - last_said >= 60000) {
            DS_LOG(c->lg, DS_LOG_WARN,
                   "start-up: %s; retrying (every %d ms "
                   "at most)",
                   c->err, BACKOFF_MAX_MS);
            snprintf(last, sizeof last, "%s", c->err);
            last_said = ds__mono_ms();
            dsc_notify_status(&c->notify, "start-up: %s; retrying", c->err);
        }
        nap(c, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

int dsc_consumer_new(dsc_consumer **out, const ds_config *cfg,
                     const ds_logger *lg, volatile sig_atomic_t *stop,
                     volatile sig_atomic_t *hangups, char *err, size_t errlen)
{
    dsc_consumer *c = calloc(1, sizeof *c);
    int rc;

    *out = NULL;
    if (!c)
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    c->cfg = cfg;
    c->lg = lg;
    c->stop = stop;
    c->hangups = hangups;
    c->hangups_seen = hangups ? *hangups : 0;
    dsc_inbox_init(&c->in, cfg, lg);
    dsc_notify_init(&c->notify);
    c->ap = dsc_applier_new(cfg->node_id, lg);
    bool batches_ok = true;
    c->cap = (size_t)cfg->apply_batch_max;
    for (int i = 0; i < 2; i++) {
        dsc_batch *b = &c->batches[i];
        b->msgs = calloc(c->cap, sizeof *b->msgs);
        b->changes = calloc(c->cap, sizeof *b->changes);
        batches_ok = batches_ok && b->msgs && b->changes;
    }
    c->cur = &c->batches[0];
    c->next = &c->batches[1];
    c->metrics = dsc_metrics_new(ds_version(), cfg->node_id);
    if (!c->ap || !batches_ok || !c->metrics) {
        rc = ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
        goto fail;
    }
    /* Before start-up, so /health says what it is waiting for. */
    if (cfg->metrics_listen[0]) {
        rc = dsc_http_start(&c->http, cfg->metrics_listen, c->metrics, lg, err,
                            errlen);
        if (rc)
            goto fail;
        DS_LOG(lg, DS_LOG_INFO,
               "metrics: http://%s/metrics and /health (metrics.listen)",
               cfg->metrics_listen);
    }
    if (cfg->node_clock_file[0]) {
        /* Without it the rows still converge while clocks agree: warn. */
        if (ds__clockfile_open_writer(&c->clock, cfg->node_clock_file, c->err,
                                      sizeof c->err) < 0)
            DS_LOG(lg, DS_LOG_WARN,
                   "%s; producers on this server will not see applied "
                   "versions (node.clock_file)",
                   c->err);
        dsc_applier_set_clock(c->ap, c->clock);
    }
    rc = start(c);
    if (rc) {
        rc = ds__seterr(err, errlen, rc, "%s", c->err);
        goto fail;
    }
    char tables[1024] = "";
    for (int i = 0; i < c->cat.ntables; i++) {
        size_t len = strlen(tables);
        snprintf(tables + len, sizeof tables - len, "%s%s", i ? " " : "",
                 c->cat.tables[i].name);
    }
    DS_LOG(lg, DS_LOG_INFO,
           "datasync-consumer %s: node %s, queue %s (%s) on %s, database %s, "
           "tables %s, batch %d / %d ms, prefetch %d",
           ds_version(), cfg->node_id, c->in.queue,
           cfg->amqp_queue_type == DS_QUEUE_QUORUM ? "quorum" : "classic",
           c->in.amqp.host, cfg->mysql_database, tables, cfg->apply_batch_max,
           cfg->apply_batch_wait_ms, cfg->amqp_prefetch);
    say_if_standby(c);
    c->next_stats = ds__mono_ms() + STATS_EVERY_MS;
    c->next_prune = ds__mono_ms();
    c->next_db_check = ds__mono_ms() + DB_CHECK_EVERY_MS;
    dsc_metrics_started(c->metrics);
    char status[600];
    snprintf(status, sizeof status, "consuming %s into database %s",
             c->in.queue, cfg->mysql_database);
    dsc_notify_ready(&c->notify, status);
    *out = c;
    return 0;
fail:
    dsc_consumer_free(c);
    return rc;
}
