/* capture.c: datasync-capture's loop: a binlog transaction's rows are held until its commit, emitted, and its GTID saved once libdatasync has them safe. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "binlog.h"
#include "clockfile.h"
#include "capture.h"
#include "error.h"
#include "ids.h"
#include "mysql_util.h"
#include "rowimage.h"
#include "snapshot.h"
#include "state.h"
#include "statement.h"
#include "txn.h"
#include "unzip.h"
#include "xa.h"

/* While changes flow, the position is saved every SAVE_EVERY_MS if every
 * change before it is settled right then (a look, no wait), and at least
 * every SAVE_WAIT_EVERY_MS waiting for the broker: a wait empties the
 * confirm window and holds up the binlog read, so not at every save. At
 * once when the server goes idle (its heartbeat). */
#define SAVE_EVERY_MS 500
#define SAVE_WAIT_EVERY_MS 5000
#define MAX_DOMAINS 32
#define MAX_BACKOFF_S 30
/* The table the consumer writes with every change it applies: a
 * transaction that writes it is the consumer's, never captured again. */
#define VERSIONS_TABLE "datasync_versions"

/* FL_STANDALONE: a GTID group without a terminating COMMIT/XID (DDL). */
#define GTID_STANDALONE 0x01

typedef struct gtid {
    uint32_t domain, server;
    uint64_t seq;
} gtid;

/* A GTID position: the last transaction seen per replication domain. */
typedef struct gtid_pos {
    gtid g[MAX_DOMAINS];
    size_t n;
} gtid_pos;

struct cap_capture {
    ds_config cfg;
    ds_logger lg;
    volatile sig_atomic_t *stop;
    ds_producer *p;
    cap_charsets cs;
    cap_binlog *bl;

    gtid_pos emitted; /* every transaction up to here is in ds_emit's hands */
    /* The capture's clock: the last version it gave or saw applied in the
     * binlog, and its value at emitted. A function of the binlog from the
     * saved state on, so a transaction read again gets the same versions. */
    uint64_t clk, emitted_clk;
    char saved[CAP_GTID_MAX]; /* what the state file holds */
    uint64_t last_try_ms, last_save_ms;
    /* Set when a flush reported changes lost or returned unroutable: ds_flush
     * tells them once, and the state must never pass them, so no later
     * save may write it (the next start reads them again). */
    int save_refused;

    /* The transaction being read. */
    bool in_trx, standalone, by_consumer;
    gtid cur;
    uint64_t when_ms; /* its GTID event's timestamp */
    cap_txn tx;
    bool xa_prepared, xa_completed; /* an XA transaction's two groups */
    cap_xid xid;                    /* their xid */
    cap_xa_list xa;                 /* prepared, waiting for their outcome */
    cap_table **tables;             /* this transaction's table maps */
    size_t ntables;

    uint64_t n_changes, n_trx, n_skipped;
    char err[DS_ERRMSG_SIZE];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ------------------------------------------------------------------------ */
/* GTID positions                                                            */

static int pos_parse(gtid_pos *pos, const char *s)
{
    pos->n = 0;
    while (*s) {
        gtid g;
        int used = 0;
        if (pos->n == MAX_DOMAINS ||
            sscanf(s, "%" SCNu32 "-%" SCNu32 "-%" SCNu64 "%n", &g.domain,
                   &g.server, &g.seq, &used) != 3)
            return DS_EINVAL;
        pos->g[pos->n++] = g;
        s += used;
        if (*s == ',')
            s++;
        else if (*s)
            return DS_EINVAL;
    }
    return 0;
}

static void pos_format(const gtid_pos *pos, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < pos->n && at < cap; i++)
        at += (size_t)snprintf(
            buf + at, cap - at, "%s%" PRIu32 "-%" PRIu32 "-%" PRIu64,
            i ? "," : "", pos->g[i].domain, pos->g[i].server, pos->g[i].seq);
}

static int pos_set(gtid_pos *pos, const gtid *g)
{
    for (size_t i = 0; i < pos->n; i++) {
        if (pos->g[i].domain == g->domain) {
            pos->g[i] = *g;
            return 0;
        }
    }
    if (pos->n == MAX_DOMAINS)
        return DS_EINVAL;
    pos->g[pos->n++] = *g;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Saving the position                                                       */

/* Once libdatasync confirmed or spooled everything emitted (waiting up to
 * producer.confirm_timeout_ms for it, or not at all), saves the position
 * those changes reach. Returns 0 (saved, or nothing to save), DS_ETIMEOUT
 * (try again later), or a fatal error. */
static int save_position(cap_capture *c, bool wait)
{
    char pos[CAP_GTID_MAX];
    int rc;

    if (c->save_refused)
        return c->save_refused;
    /* A prepared XA transaction pins the state before its prepare. */
    const cap_xa_held *pin = cap_xa_pin(&c->xa);
    uint64_t clk = pin ? pin->resume_clk : c->emitted_clk;
    if (pin)
        snprintf(pos, sizeof pos, "%s", pin->resume);
    else
        pos_format(&c->emitted, pos, sizeof pos);
    c->last_try_ms = now_ms();
    if (strcmp(pos, c->saved) == 0) {
        c->last_save_ms = c->last_try_ms;
        return 0;
    }
    rc = ds_flush(c->p, wait ? -1 : 0);
    if (rc == DS_ETIMEOUT && !wait)
        return rc;
    if (rc == DS_ETIMEOUT) {
        DS_LOG(&c->lg, DS_LOG_WARN,
               "the broker has not confirmed the changes before %s yet: "
               "the position is saved later",
               pos);
        return rc;
    }
    if (rc) {
        ds__seterr(c->err, sizeof c->err, rc,
                   "flushing the changes before %s: %s (%s)", pos,
                   ds_strerror(rc), ds_producer_errmsg(c->p));
        c->save_refused = rc;
        return rc;
    }
    rc = cap_state_write(c->cfg.capture_state_file, pos, clk, c->err,
                         sizeof c->err);
    if (rc == 0) {
        snprintf(c->saved, sizeof c->saved, "%s", pos);
        c->last_save_ms = now_ms();
        DS_LOG(&c->lg, DS_LOG_DEBUG, "position %s saved", pos);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

static void drop_tables(cap_capture *c)
{
    for (size_t i = 0; i < c->ntables; i++)
        cap_table_free(c->tables[i]);
    c->ntables = 0;
}

static const char *captured_list(const cap_capture *c)
{
    return c->cfg.capture_tables[0] ? c->cfg.capture_tables
                                    : c->cfg.apply_tables;
}

static bool captured(const cap_capture *c, const char *db, const char *name)
{
    const char *list = captured_list(c);
    size_t n = strlen(name);

    if (strcmp(db, c->cfg.mysql_database) != 0)
        return false;
    if (strcmp(name, VERSIONS_TABLE) == 0)
        return true; /* the consumer's marker, never emitted */
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t k = strcspn(p, " \t");
        if (k == n && strncmp(p, name, n) == 0)
            return true;
        p += k;
    }
    return false;
}

static int on_table_map(cap_capture *c, const cap_event *ev)
{
    const unsigned char *p = ev->body + 8, *end = ev->body + ev->len;
    char db[65], name[65];

    /* Only the names first: a table not captured may hold any type. */
    if (ev->len < 8 || p >= end || (size_t)(end - p) < (size_t)*p + 2 ||
        *p >= sizeof db)
        return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                          "malformed TABLE_MAP event");
    memcpy(db, p + 1, *p);
    db[*p] = '\0';
    p += *p + 2;
    if (p >= end || (size_t)(end - p) < (size_t)*p + 2 || *p >= sizeof name)
        return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                          "malformed TABLE_MAP event");
    memcpy(name, p + 1, *p);
    name[*p] = '\0';
    if (!captured(c, db, name))
        return 0;

    cap_table *t, **tables;
    int rc = cap_table_parse(&t, ev->body, ev->len, c->err, sizeof c->err);
    if (rc)
        return rc;
    tables = realloc(c->tables, (c->ntables + 1) * sizeof *tables);
    if (!tables) {
        cap_table_free(t);
        return ds__seterr(c->err, sizeof c->err, DS_ENOMEM, "out of memory");
    }
    c->tables = tables;
    c->tables[c->ntables++] = t;
    return 0;
}

static const cap_table *find_table(const cap_capture *c, uint64_t id)
{
    for (size_t i = c->ntables; i-- > 0;)
        if (c->tables[i]->id == id)
            return c->tables[i];
    return NULL;
}

static void put_values(json_object **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_object_put(v[i]);
        v[i] = NULL;
    }
}

/* A rows event's layout: v2 has extra data after the flags; a compressed
 * one has its rows (after the column bitmaps) zlib-compressed. */
static cap_row_kind rows_layout(uint8_t type, bool *v2, bool *zipped)
{
    int base;

    *zipped = type >= CAP_EV_WRITE_ROWS_COMPRESSED_V1;
    if (*zipped)
        base = type >= CAP_EV_WRITE_ROWS_COMPRESSED
                   ? CAP_EV_WRITE_ROWS_COMPRESSED
                   : CAP_EV_WRITE_ROWS_COMPRESSED_V1;
    else
        base = type >= CAP_EV_WRITE_ROWS ? CAP_EV_WRITE_ROWS
                                         : CAP_EV_WRITE_ROWS_V1;
    *v2 = base == CAP_EV_WRITE_ROWS || base == CAP_EV_WRITE_ROWS_COMPRESSED;
    return (cap_row_kind)(type - base);
}

/* The column of datasync_versions that holds a version, or t->ncols. */
static size_t hlc_column(const cap_table *t)
{
    size_t i = 0;
    while (i < t->ncols && strcmp(t->cols[i].name, "hlc") != 0)
        i++;
    return i;
}

/* A version the consumer stored (column col of a datasync_versions row
 * image): the clock goes above it, so a change the application makes
 * after it, in binlog order, wins over it. */
static void see_version(cap_capture *c, size_t col, json_object *const *vals,
                        const bool *have)
{
    uint64_t hlc =
        have[col] && vals[col] ? json_object_get_uint64(vals[col]) : 0;
    if (hlc > c->clk)
        c->clk = hlc;
}

static int on_rows(cap_capture *c, const cap_event *ev)
{
    const unsigned char *p = ev->body, *end = ev->body + ev->len;
    bool v2, zipped;
    cap_row_kind kind = rows_layout(ev->type, &v2, &zipped);
    unsigned char *rows = NULL;
    size_t nrows;
    uint64_t ncols;
    size_t used;
    int rc = 0;

    if (ev->len < 8)
        goto cut;
    const cap_table *t = find_table(c, le(p, 6));
    if (!t)
        return 0; /* not a captured table */
    /* The consumer's transaction: never captured, but the versions it
     * stored move the clock (what the clock file does for ds_emit). */
    bool versions = strcmp(t->name, VERSIONS_TABLE) == 0;
    size_t hlc_col = versions ? hlc_column(t) : 0;
    if (versions)
        c->by_consumer = true;
    p += 8;
    if (v2) {
        if (end - p < 2 || le(p, 2) < 2 || (uint64_t)(end - p) < le(p, 2))
            goto cut;
        p += le(p, 2); /* extra data, its length included */
    }
    if (!(used = cap_lenenc(p, end, &ncols)) || ncols != t->ncols)
        return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                          "%s.%s: a rows event of %" PRIu64
                          " columns for a table map of %zu",
                          t->db, t->name, ncols, t->ncols);
    p += used;
    size_t bm = (t->ncols + 7) / 8;
    const unsigned char *present1 = p, *present2 = p;
    if ((size_t)(end - p) < bm)
        goto cut;
    p += bm;
    if (kind == CAP_ROW_UPDATE) {
        if ((size_t)(end - p) < bm)
            goto cut;
        present2 = p;
        p += bm;
    }
    if (zipped) {
        rc = cap_unzip(p, (size_t)(end - p), &rows, &nrows, c->err,
                       sizeof c->err);
        if (rc)
            return rc;
        p = rows;
        end = rows + nrows;
    }

    json_object **v1 = calloc(t->ncols * 2, sizeof *v1), **v2v = v1 + t->ncols;
    bool *h1 = calloc(t->ncols * 2, sizeof *h1), *h2 = h1 ? h1 + t->ncols : 0;
    if (!v1 || !h1) {
        free(v1);
        free(h1);
        free(rows);
        return ds__seterr(c->err, sizeof c->err, DS_ENOMEM, "out of memory");
    }
    while (p < end && rc == 0) {
        const unsigned char *row_start = p;
        /* before: update and delete; after: insert and update */
        if (kind != CAP_ROW_INSERT)
            rc = cap_row_decode(t, &c->cs, present1, &p, end, v1, h1, c->err,
                                sizeof c->err);
        if (rc == 0 && kind != CAP_ROW_DELETE)
            rc = cap_row_decode(t, &c->cs,
                                kind == CAP_ROW_UPDATE ? present2 : present1,
                                &p, end, v2v, h2, c->err, sizeof c->err);
        if (rc == 0 && versions) {
            if (hlc_col < t->ncols)
                see_version(c, hlc_col, kind == CAP_ROW_DELETE ? v1 : v2v,
                            kind == CAP_ROW_DELETE ? h1 : h2);
        } else if (rc == 0)
            rc = cap_txn_add(
                &c->tx, t, kind, kind == CAP_ROW_INSERT ? NULL : v1,
                kind == CAP_ROW_INSERT ? NULL : h1,
                kind == CAP_ROW_DELETE ? NULL : v2v,
                kind == CAP_ROW_DELETE ? NULL : h2, c->err, sizeof c->err);
        put_values(v1, t->ncols * 2);
        /* An image of no column takes no byte: the loop would not end. */
        if (rc == 0 && p == row_start)
            rc = ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                            "%s.%s: a rows event whose images hold no column",
                            t->db, t->name);
    }
    free(v1);
    free(h1);
    free(rows);
    return rc;
cut:
    return ds__seterr(c->err, sizeof c->err, DS_EINVAL, "malformed rows event");
}

/* The versions and ids of the transaction in hand (cap_txn_stamp). */
static uint64_t stamp(cap_capture *c, uint64_t clk)
{
    char txid[64];

    snprintf(txid, sizeof txid, "%" PRIu32 "-%" PRIu32 "-%" PRIu64,
             c->cur.domain, c->cur.server, c->cur.seq);
    return cap_txn_stamp(&c->tx, clk, c->when_ms, c->cfg.node_id, txid);
}

static int commit(cap_capture *c)
{
    int rc;

    if (!c->in_trx)
        return 0;
    if (c->by_consumer) {
        /* datasync-consumer's own writes: already everywhere. */
        c->n_skipped += c->tx.n;
        if (c->tx.n)
            DS_LOG(&c->lg, DS_LOG_DEBUG,
                   "transaction %" PRIu32 "-%" PRIu32 "-%" PRIu64
                   " is datasync-consumer's: %zu row changes not captured",
                   c->cur.domain, c->cur.server, c->cur.seq, c->tx.n);
        cap_txn_clear(&c->tx);
    } else if (c->tx.n) {
        size_t n = c->tx.n;
        for (size_t i = 0; i < n && c->lg.level <= DS_LOG_DEBUG; i++) {
            const cap_change *ch = &c->tx.changes[i];
            DS_LOG(&c->lg, DS_LOG_DEBUG, "%s %s %s %s",
                   ch->op == DS_OP_CREATE   ? "create"
                   : ch->op == DS_OP_UPDATE ? "update"
                                            : "delete",
                   ch->table, ch->key, ch->data ? ch->data : "");
        }
        c->clk = stamp(c, c->clk);
        if ((rc = cap_txn_emit(&c->tx, c->p, c->cfg.node_id, c->err,
                               sizeof c->err)))
            return rc;
        c->n_changes += n;
        c->n_trx++;
    }
    c->in_trx = false;
    drop_tables(c);
    if (pos_set(&c->emitted, &c->cur) != 0)
        return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                          "more than %d GTID domains", MAX_DOMAINS);
    c->emitted_clk = c->clk;
    uint64_t now = now_ms();
    if (now - c->last_try_ms >= SAVE_EVERY_MS) {
        rc = save_position(c, now - c->last_save_ms >= SAVE_WAIT_EVERY_MS);
        if (rc && rc != DS_ETIMEOUT)
            return rc;
    }
    return 0;
}

/* The end of an XA transaction's first group: its changes are held until
 * its XA COMMIT, the group itself is done. */
static int on_xa_prepare(cap_capture *c, const cap_event *ev)
{
    char before[CAP_GTID_MAX];

    if (!c->in_trx)
        return 0;
    if (ev->len >= 1 && ev->body[0] != 0)
        return commit(c); /* one phase: committed here */
    if (!c->xa_prepared)
        return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                          "an XA_PREPARE event in a transaction that is not "
                          "an XA one");
    if (c->by_consumer)
        cap_txn_clear(&c->tx);
    pos_format(&c->emitted, before, sizeof before);
    size_t n = c->tx.n;
    /* Versions now, in binlog order: read again, it gets the same. */
    c->clk = stamp(c, c->clk);
    if (cap_xa_hold(&c->xa, &c->xid, &c->tx, before, c->emitted_clk) != 0)
        return ds__seterr(c->err, sizeof c->err, DS_ENOMEM, "out of memory");
    DS_LOG(&c->lg, DS_LOG_DEBUG,
           "XA transaction %" PRIu32 "-%" PRIu32 "-%" PRIu64
           " prepared: %zu row changes held until its XA COMMIT",
           c->cur.domain, c->cur.server, c->cur.seq, n);
    return commit(c);
}

/* The statement of an XA transaction's second group: XA COMMIT emits the
 * changes held since its prepare, XA ROLLBACK drops them. */
static int on_xa_outcome(cap_capture *c, const char *q, size_t qlen)
{
    bool rollback = qlen >= 11 && strncasecmp(q, "XA ROLLBACK", 11) == 0;

    if (!cap_xa_take(&c->xa, &c->xid, &c->tx)) {
        /* Its prepare came before the position this read started from:
         * emitted before a restart (an older prepare held the saved
         * position back), or, after a first start, never seen. */
        if (!rollback)
            DS_LOG(&c->lg, DS_LOG_INFO,
                   "%.*s: prepared before the position read from; its "
                   "changes went out before a restart, or, at a first "
                   "start, were not captured",
                   (int)(qlen > 200 ? 200 : qlen), q);
        return commit(c);
    }
    if (rollback)
        cap_txn_clear(&c->tx);
    return commit(c);
}

/* What a QUERY event's statement q means to the transaction in hand; db:
 * the session's database when it ran ("" if none). */
static int on_statement(cap_capture *c, const char *db, const char *q,
                        size_t qlen)
{
    if (qlen == 5 && strncasecmp(q, "BEGIN", 5) == 0)
        return 0;
    if (c->xa_completed)
        return on_xa_outcome(c, q, qlen);
    if (qlen > 3 && strncasecmp(q, "XA ", 3) == 0)
        return 0; /* XA END of a prepared transaction: not a DDL */
    if (qlen == 6 && strncasecmp(q, "COMMIT", 6) == 0)
        return commit(c);
    if (qlen == 8 && strncasecmp(q, "ROLLBACK", 8) == 0) {
        cap_txn_clear(&c->tx); /* never happened: nothing to emit */
        return commit(c);
    }
    char name[65];
    switch (cap_statement_savepoint(q, qlen, name, sizeof name)) {
    case CAP_SP_SET:
        if (cap_txn_savepoint(&c->tx, name) < 0)
            return ds__seterr(c->err, sizeof c->err, DS_ENOMEM,
                              "out of memory");
        return 0;
    case CAP_SP_ROLLBACK:
        /* The rows it undid are in the log before it: they go. */
        if (cap_txn_rollback_to(&c->tx, name) < 0)
            return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                              "transaction %" PRIu32 "-%" PRIu32 "-%" PRIu64
                              ": ROLLBACK TO savepoint %s, which it never set",
                              c->cur.domain, c->cur.server, c->cur.seq, name);
        return 0;
    case CAP_SP_RELEASE:
        cap_txn_release(&c->tx, name);
        return 0;
    case CAP_SP_NONE:
        break;
    }
    if (cap_statement_changes(q, qlen, db, c->cfg.mysql_database,
                              captured_list(c), name, sizeof name))
        /* No row image to send: passing it by would leave the other
         * servers without the change, silently. */
        return ds__seterr(
            c->err, sizeof c->err, DS_EINVAL,
            "transaction %" PRIu32 "-%" PRIu32 "-%" PRIu64
            " changed rows of %s by a statement, which has no row image to "
            "capture: %.*s. Every session must log in binlog_format ROW, and "
            "TRUNCATE of a captured table is always a statement (use "
            "DELETE). See datasync-capture(8), STATEMENTS, to go on",
            c->cur.domain, c->cur.server, c->cur.seq, name,
            (int)(qlen > 200 ? 200 : qlen), q);
    /* DDL: logged, never sent; later rows come with new table maps. */
    DS_LOG(&c->lg, DS_LOG_INFO, "statement in the binlog (not captured): %.*s",
           (int)(qlen > 200 ? 200 : qlen), q);
    drop_tables(c);
    return c->standalone ? commit(c) : 0;
}

static int on_query(cap_capture *c, const cap_event *ev)
{
    /* thread id 4, time 4, db length 1, error 2, status length 2; a
     * statement-logged LOAD DATA (EXECUTE_LOAD_QUERY) adds file id 4,
     * start 4, end 4, duplicates 1. */
    size_t post = ev->type == CAP_EV_EXECUTE_LOAD_QUERY ? 26 : 13;
    if (ev->len < post)
        return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                          "malformed QUERY event");
    size_t dblen = ev->body[8], stlen = (size_t)le(ev->body + 11, 2);
    size_t at = post + stlen + dblen + 1;
    if (at > ev->len)
        return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                          "malformed QUERY event");
    char db[256]; /* NUL-terminated in the event too, but not trusted */
    snprintf(db, sizeof db, "%.*s", (int)dblen,
             (const char *)ev->body + post + stlen);
    if (ev->type != CAP_EV_QUERY_COMPRESSED)
        return on_statement(c, db, (const char *)ev->body + at, ev->len - at);

    unsigned char *q;
    size_t qlen;
    int rc = cap_unzip(ev->body + at, ev->len - at, &q, &qlen, c->err,
                       sizeof c->err);
    if (rc == 0)
        rc = on_statement(c, db, (const char *)q, qlen);
    free(q);
    return rc;
}

static int on_event(cap_capture *c, const cap_event *ev)
{
    switch (ev->type) {
    case CAP_EV_GTID:
        if (ev->len < 13)
            return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                              "malformed GTID event");
        cap_txn_clear(&c->tx);
        drop_tables(c);
        c->cur.seq = le(ev->body, 8);
        c->cur.domain = (uint32_t)le(ev->body + 8, 4);
        c->cur.server = ev->server_id;
        c->when_ms = (uint64_t)ev->when * 1000;
        c->standalone = ev->body[12] & GTID_STANDALONE;
        c->in_trx = true;
        c->by_consumer = false;
        c->xa_prepared = ev->body[12] & CAP_GTID_PREPARED_XA;
        c->xa_completed = ev->body[12] & CAP_GTID_COMPLETED_XA;
        if ((c->xa_prepared || c->xa_completed) &&
            cap_xid_from_gtid(ev->body, ev->len, &c->xid) != 0)
            return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                              "malformed GTID event (its xid)");
        return 0;
    case CAP_EV_TABLE_MAP:
        return c->in_trx ? on_table_map(c, ev) : 0;
    case CAP_EV_INCIDENT: {
        /* The server says changes may be missing from its log here (a
         * replica stops too): reading on would pass them by unseen. */
        size_t n = 0; /* its message's length, within the event */
        if (ev->len >= 3)
            n = ev->body[2] < ev->len - 3 ? ev->body[2] : ev->len - 3;
        return ds__seterr(c->err, sizeof c->err, DS_EINVAL,
                          "the server logged an incident (%u) after %s: "
                          "changes may be missing from its binary log (%.*s); "
                          "bring the tables to the other servers with "
                          "datasync bootstrap, then move capture.state_file "
                          "past it",
                          ev->len >= 2 ? (unsigned)le(ev->body, 2) : 0u,
                          cap_binlog_file(c->bl), (int)n,
                          (const char *)ev->body + 3);
    }
    case CAP_EV_WRITE_ROWS_V1:
    case CAP_EV_UPDATE_ROWS_V1:
    case CAP_EV_DELETE_ROWS_V1:
    case CAP_EV_WRITE_ROWS:
    case CAP_EV_UPDATE_ROWS:
    case CAP_EV_DELETE_ROWS:
    case CAP_EV_WRITE_ROWS_COMPRESSED_V1:
    case CAP_EV_WRITE_ROWS_COMPRESSED_V1 + 1:
    case CAP_EV_WRITE_ROWS_COMPRESSED_V1 + 2:
    case CAP_EV_WRITE_ROWS_COMPRESSED:
    case CAP_EV_WRITE_ROWS_COMPRESSED + 1:
    case CAP_EV_DELETE_ROWS_COMPRESSED:
        return c->in_trx ? on_rows(c, ev) : 0;
    case CAP_EV_XID:
        return commit(c);
    case CAP_EV_XA_PREPARE:
        return on_xa_prepare(c, ev);
    case CAP_EV_QUERY:
    case CAP_EV_QUERY_COMPRESSED:
    case CAP_EV_EXECUTE_LOAD_QUERY:
        return c->in_trx ? on_query(c, ev) : 0;
    case CAP_EV_ROTATE:
        DS_LOG(&c->lg, DS_LOG_DEBUG, "reading binlog file %.*s",
               (int)(ev->len > 8 ? ev->len - 8 : 0), ev->body + 8);
        return 0;
    case CAP_EV_HEARTBEAT: {
        /* Idle: the position reached is saved now. */
        int rc = save_position(c, true);
        return rc == DS_ETIMEOUT ? 0 : rc;
    }
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */

static void producer_log(void *userdata, ds_log_level level,
                         const char *message)
{
    const ds_logger *lg = userdata;
    if (level >= lg->level && lg->fn)
        lg->fn(lg->userdata, level, message);
}

/* Sleeps up to s seconds, a second at a time, unless a stop is asked. */
static void backoff(cap_capture *c, int s)
{
    for (int i = 0; i < s && !*c->stop; i++) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}

/* A first start reads the database (the snapshot, or the current
 * position) before anything else: one that does not answer yet is waited
 * for with backoff, as a saved position's start waits in cap_run, so a
 * server that boots before its database needs no restart loop. Only the
 * wait is retried: a snapshot that fails once it began fails the start, as
 * before, rather than copying the tables again and again. A stop asked
 * meanwhile is DS_ECLOSED (a clean stop). */
static int wait_for_database(cap_capture *c, const ds_config *cfg, char *err,
                             size_t errlen)
{
    int wait_s = 1;

    for (;;) {
        MYSQL *db;
        int rc = ds__mysql_connect(&db, cfg, err, errlen);
        if (rc == 0) {
            mysql_close(db);
            return 0;
        }
        if (rc != DS_EDBCONNECT)
            return rc;
        DS_LOG(&c->lg, DS_LOG_WARN, "start-up: %s; again in %d s", err, wait_s);
        backoff(c, wait_s);
        if (*c->stop)
            return ds__seterr(err, errlen, DS_ECLOSED,
                              "stopped during start-up, while waiting for "
                              "the database");
        wait_s = wait_s * 2 > MAX_BACKOFF_S ? MAX_BACKOFF_S : wait_s * 2;
    }
}

/* The clock a first start begins with: now, or above every version this
 * server applied (its clock file), if that is higher. From then on only
 * the binlog moves it. */
static uint64_t first_clock(const ds_config *cfg)
{
    ds_clockfile *cf = NULL;
    char err[DS_ERRMSG_SIZE];
    uint64_t clk = ds__now_ms() << 16;

    if (cfg->node_clock_file[0] &&
        ds__clockfile_open_reader(&cf, cfg->node_clock_file, err, sizeof err) ==
            0) {
        uint64_t applied = ds__clockfile_read(cf);
        if (applied >= clk)
            clk = applied + 1;
        ds__clockfile_close(cf);
    }
    return clk;
}

int cap_new(cap_capture **out, const ds_config *cfg, const char *path,
            const ds_logger *lg, volatile sig_atomic_t *stop, char *err,
            size_t errlen)
{
    cap_capture *c;
    ds_options *opts = NULL;
    char pos[CAP_GTID_MAX];
    int rc;

    *out = NULL;
    if (!(c = calloc(1, sizeof *c)))
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    c->cfg = *cfg;
    c->lg = *lg;
    c->stop = stop;

    if (!(opts = ds_options_new())) {
        rc = ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
        goto fail;
    }
    if ((path && (rc = ds_options_load(opts, path)) != 0) ||
        (rc = ds_options_set(opts, "producer.mode", "async")) != 0) {
        ds__seterr(err, errlen, rc, "%s", ds_options_errmsg(opts));
        goto fail;
    }
    if ((rc = ds_producer_new(&c->p, opts, err, errlen)))
        goto fail;
    ds_producer_set_log(c->p, producer_log, &c->lg);
    ds_options_free(opts);
    opts = NULL;
    rc = cap_state_read(cfg->capture_state_file, pos, sizeof pos, &c->clk, err,
                        errlen);
    if (rc == DS_ENOTFOUND) {
        int waited = wait_for_database(c, cfg, err, errlen);
        if (waited) {
            rc = waited;
            goto fail;
        }
    }
    /* No clock saved: a first start, or a state of an earlier release. */
    if (c->clk == 0)
        c->clk = first_clock(cfg);
    if (rc == DS_ENOTFOUND && cfg->capture_snapshot) {
        /* A first start that copies the tables first; the position saved
         * only once the copy is confirmed. */
        if ((rc = cap_snapshot(cfg, c->p, lg, stop, &c->clk, pos, sizeof pos,
                               err, errlen)))
            goto fail;
        if ((rc = cap_state_write(cfg->capture_state_file, pos, c->clk, err,
                                  errlen)))
            goto fail;
    } else if (rc == DS_ENOTFOUND) {
        /* A first start: from now on, saved at once so that a crash
         * before the first save cannot move the start later. */
        if ((rc = cap_binlog_current_pos(cfg, pos, sizeof pos, err, errlen)))
            goto fail;
        if ((rc = cap_state_write(cfg->capture_state_file, pos, c->clk, err,
                                  errlen)))
            goto fail;
        DS_LOG(lg, DS_LOG_INFO,
               "no state in %s: starting at the server's current position "
               "'%s'",
               cfg->capture_state_file, pos);
    } else if (rc) {
        goto fail;
    }
    if (pos_parse(&c->emitted, pos) != 0) {
        rc = ds__seterr(err, errlen, DS_EINVAL,
                        "%s: '%.100s' is not a GTID position",
                        cfg->capture_state_file, pos);
        goto fail;
    }
    snprintf(c->saved, sizeof c->saved, "%s", pos);
    c->emitted_clk = c->clk;
    c->last_try_ms = c->last_save_ms = now_ms();

    *out = c;
    return 0;
fail:
    ds_options_free(opts);
    cap_free(c);
    return rc;
}

int cap_run(cap_capture *c)
{
    char pos[CAP_GTID_MAX];
    cap_event ev;
    int rc = 0, wait_s = 1;

    while (!*c->stop) {
        if (!c->bl) {
            pos_format(&c->emitted, pos, sizeof pos);
            rc = cap_binlog_open(&c->bl, &c->cfg, pos, &c->cs, c->err,
                                 sizeof c->err);
            if (rc == DS_EDBCONNECT) {
                DS_LOG(&c->lg, DS_LOG_WARN, "%s; again in %d s", c->err,
                       wait_s);
                backoff(c, wait_s);
                wait_s =
                    wait_s * 2 > MAX_BACKOFF_S ? MAX_BACKOFF_S : wait_s * 2;
                continue;
            }
            if (rc)
                break;
            DS_LOG(&c->lg, DS_LOG_INFO, "reading the binlog after %s",
                   pos[0] ? pos : "its start");
            wait_s = 1;
        }
        rc = cap_binlog_next(c->bl, &ev, c->err, sizeof c->err);
        if (rc && *c->stop) {
            rc = 0; /* a read cut by the stop signal */
            break;
        }
        if (rc == 0)
            rc = on_event(c, &ev);
        if (rc == DS_EDBCONNECT && !*c->stop) {
            /* The transaction in hand is read again from the position. */
            DS_LOG(&c->lg, DS_LOG_WARN, "%s: reconnecting", c->err);
            cap_binlog_close(c->bl);
            c->bl = NULL;
            c->in_trx = false;
            c->clk = c->emitted_clk;
            cap_txn_clear(&c->tx);
            drop_tables(c);
            rc = 0;
            continue;
        }
        if (rc)
            break;
    }
    if (rc)
        DS_LOG(&c->lg, DS_LOG_ERROR, "%s", c->err);
    /* What was emitted is saved once it is safe, on a stop as after an
     * error: the next start resumes after it. */
    int src = save_position(c, true);
    if (src)
        DS_LOG(&c->lg, DS_LOG_ERROR, "the position was not saved: %s",
               src == DS_ETIMEOUT ? "the broker did not confirm in time"
                                  : c->err);
    DS_LOG(&c->lg, DS_LOG_INFO,
           "stopped at %s: %" PRIu64 " changes in %" PRIu64
           " transactions captured, %" PRIu64
           " row changes of datasync-consumer not captured",
           c->saved, c->n_changes, c->n_trx, c->n_skipped);
    return rc ? rc : src;
}

void cap_free(cap_capture *c)
{
    if (!c)
        return;
    cap_binlog_close(c->bl);
    ds_producer_free(c->p);
    drop_tables(c);
    free(c->tables);
    cap_txn_free(&c->tx);
    cap_xa_free(&c->xa);
    free(c);
}
