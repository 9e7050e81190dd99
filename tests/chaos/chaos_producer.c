/* chaos_producer.c: the chaos run's host application: random creates, updates and deletes over the shared key space, each written to its own database first, then emitted through libdatasync (sync mode) and logged; with --sql-only, SQL transactions alone, for datasync-capture to emit. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mysql.h>

#include "chaos.h"
#include "datasync.h"
#include "ids.h"
#include "support.h"

/*
 * What a careful host does, so that whatever the run finds is datasync's:
 *
 * - One transaction per change: lock the row (SELECT ... FOR UPDATE), write
 *   it, read this server's stored version of the row (a locking read, so
 *   a version committed by the consumer meanwhile is seen), take the
 *   change's hlc = max(wall clock << 16, last + 1, stored + 1) (a hybrid
 *   logical clock observes what it received), and insert the change into
 *   the outbox table chaos_outbox; commit.
 * - Then ds_emit_event() with the change's own id and version; once it
 *   returned 0 the change is appended to the emitted log, then its outbox
 *   row is deleted. At start, after any database error and at the end,
 *   whatever is left in the outbox is emitted again (same id and version:
 *   duplicates are harmless), so a kill -9 between commit and emit loses
 *   no committed change.
 *
 * The hlc is taken after the row write, under the row lock: a remote
 * change the consumer writes to the same row is either committed before
 * (and then observed) or waits for this transaction (and then its version,
 * made before it reached this server, is older or it is newer and wins
 * everywhere alike).
 *
 * On SIGTERM: finish the change in hand, empty the outbox, wait until the
 * spool (producer.spool_dir) is empty, free the producer, exit 0; exit 3
 * if the outbox or the spool could not be emptied by --drain-timeout.
 *
 * --sql-only FILE: an application that cannot call ds_emit (the capture
 * daemon's kind). No libdatasync, no outbox, no version read: the same
 * changes, chosen the same way, in transactions of one to four of them,
 * one in ten rolled back on purpose. Each transaction also inserts its id
 * into chaos_sqltx (not replicated, not captured) and is logged to FILE
 * (tests/chaos/chaos.h: the "S" lines, one write(2)) before its COMMIT or
 * ROLLBACK: the checker knows from chaos_sqltx which logged transactions
 * committed, whatever a kill -9 or a lost connection cut short.
 * datasync-capture reads them from the binlog and emits them.
 */

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static const char *opt_conf, *opt_node, *opt_db, *opt_host = "127.0.0.1";
static const char *opt_emitted, *opt_spool, *opt_sql_log;
static int opt_port, opt_rate, opt_drain_timeout;
static uint64_t opt_seed;

static ds_producer *prod;
static MYSQL *db;
static int log_fd = -1;
static uint64_t last_hlc;
static uint64_t rng;

static struct {
    uint64_t changes, creates, updates, deletes;
    uint64_t emitted, emit_errors, reemitted;
    uint64_t db_errors, lock_retries, hlc_bumps, reconnects;
    uint64_t trx, rolled_back; /* --sql-only */
} st;

/* ------------------------------------------------------------------------ */

/* "chaos-producer <node>", the name on every log line. */
static char me[96];
#define say(...) ts_say(me, __VA_ARGS__)

static void lib_log(void *ud, ds_log_level level, const char *message)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    (void)ud;
    say("libdatasync %s: %s", names[level & 3], message);
}

static uint64_t next_rand(void)
{
    /* xorshift64*: reproducible from the seed, no global libc state. */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * UINT64_C(2685821657736338717);
}

static unsigned pick(unsigned n)
{
    return (unsigned)(next_rand() % n);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !stop_flag)
        ;
}

/* ------------------------------------------------------------------------ */
/* The database                                                               */

static void db_close(void)
{
    if (db)
        mysql_close(db);
    db = NULL;
}

static int db_open(void)
{
    char err[512];
    /* CLIENT_FOUND_ROWS: an update reports the row it matched, so "one
     * row changed" can be checked even if the values happen to repeat. */
    db = ts_mysql_open(opt_host, opt_port, opt_db, 3, 10, CLIENT_FOUND_ROWS,
                       err, sizeof err);
    if (!db) {
        say("database: %s", err);
        return -1;
    }
    if (mysql_query(db, "SET SESSION innodb_lock_wait_timeout = 10") != 0 ||
        mysql_autocommit(db, 0) != 0) {
        say("database: %s", mysql_error(db));
        db_close();
        return -1;
    }
    return 0;
}

/* Runs sql; returns 0 or the MySQL errno (result sets are discarded). */
static unsigned int exec(const char *sql)
{
    if (mysql_query(db, sql) != 0)
        return mysql_errno(db) ? mysql_errno(db) : 2013;
    MYSQL_RES *res = mysql_store_result(db);
    if (res)
        mysql_free_result(res);
    return mysql_errno(db);
}

/* Runs a query expecting at most one row: *found, and the first column
 * (when col0 is not NULL) as an unsigned number. */
static unsigned int query_one(const char *sql, bool *found, uint64_t *col0)
{
    *found = false;
    if (mysql_query(db, sql) != 0)
        return mysql_errno(db) ? mysql_errno(db) : 2013;
    MYSQL_RES *res = mysql_store_result(db);
    if (!res)
        return mysql_errno(db) ? mysql_errno(db) : 2013;
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row) {
        *found = true;
        if (col0)
            *col0 = row[0] ? strtoull(row[0], NULL, 10) : 0;
    }
    mysql_free_result(res);
    return 0;
}

/* A quoted SQL string literal of s into out (capacity 2*len+3). */
static void sql_quote(char *out, const char *s)
{
    size_t n = strlen(s);
    out[0] = '\'';
    unsigned long m = mysql_real_escape_string(db, out + 1, s, n);
    out[1 + m] = '\'';
    out[2 + m] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Emitting                                                                   */

static void log_line(const char *line)
{
    size_t len = strlen(line), done = 0;
    /* One write per line: a kill -9 leaves whole lines only. */
    while (done < len) {
        ssize_t n = write(log_fd, line + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            say("emitted log: %s", strerror(errno));
            exit(1);
        }
        done += (size_t)n;
    }
}

/* Emits one committed change and, once ds_emit_event returned 0, logs it
 * and deletes its outbox row. Returns 0, -1 when emitting failed (the
 * outbox keeps it), -2 on a database error deleting the row (it is
 * emitted again later: harmless). */
static int emit_logged(const char *id, const char *event, const char *logline)
{
    int rc = ds_emit_event(prod, event);
    if (rc != 0) {
        st.emit_errors++;
        say("ds_emit_event %s: %s (%s); kept in the outbox", id,
            ds_err_name(rc), ds_producer_errmsg(prod));
        return -1;
    }
    st.emitted++;
    log_line(logline);
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM chaos_outbox WHERE id = '%s'", id);
    if (exec(sql) != 0 || mysql_commit(db) != 0) {
        say("outbox delete %s: %s", id, mysql_error(db));
        return -2;
    }
    return 0;
}

/* Emits whatever the outbox holds, oldest version first. Returns 0 when
 * it is empty, -1 on a database error, -2 when an emit failed. */
static int sweep_outbox(void)
{
    if (mysql_query(db, "SELECT id, hlc, event, logline FROM chaos_outbox "
                        "ORDER BY hlc") != 0)
        return -1;
    MYSQL_RES *res = mysql_store_result(db);
    if (!res)
        return -1;
    /* End the read's transaction: deletes commit one by one. */
    mysql_commit(db);
    MYSQL_ROW row;
    int rc = 0, n = 0;
    while (rc == 0 && (row = mysql_fetch_row(res))) {
        uint64_t h = strtoull(row[1], NULL, 10);
        if (h > last_hlc)
            last_hlc = h;
        rc = emit_logged(row[0], row[2], row[3]);
        if (rc == 0) {
            n++;
            st.reemitted++;
        }
    }
    mysql_free_result(res);
    if (n)
        say("outbox: emitted %d committed changes again", n);
    return rc == -1 ? -2 : rc == -2 ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* One change                                                                 */

/* The row's new values: SQL (a, b, ...) assignments/values and JSON. */
typedef struct row_text {
    char sql_cols[512], sql_vals[1024], sql_set[1024], json[1024];
} row_text;

static void add_col(row_text *r, const char *name, const char *sql_value,
                    const char *json_value, bool is_key)
{
    size_t lc = strlen(r->sql_cols), lv = strlen(r->sql_vals),
           ls = strlen(r->sql_set), lj = strlen(r->json);
    snprintf(r->sql_cols + lc, sizeof r->sql_cols - lc, "%s`%s`",
             lc ? ", " : "", name);
    snprintf(r->sql_vals + lv, sizeof r->sql_vals - lv, "%s%s", lv ? ", " : "",
             sql_value);
    if (!is_key)
        snprintf(r->sql_set + ls, sizeof r->sql_set - ls, "%s`%s` = %s",
                 ls ? ", " : "", name, sql_value);
    snprintf(r->json + lj, sizeof r->json - lj, "%s\"%s\":%s", lj ? "," : "{",
             name, json_value);
}

static void add_int(row_text *r, const char *name, long long v, bool is_key)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", v);
    add_col(r, name, s, s, is_key);
}

/* s: plain text without quotes, backslashes or control characters. */
static void add_str(row_text *r, const char *name, const char *s, bool is_key)
{
    char q[300], j[300];
    if (!s) {
        add_col(r, name, "NULL", "null", is_key);
        return;
    }
    sql_quote(q, s);
    snprintf(j, sizeof j, "\"%s\"", s);
    add_col(r, name, q, j, is_key);
}

static void make_row(const ch_table *t, int idx, row_text *r)
{
    int id;
    const char *k1;
    char buf[128];

    memset(r, 0, sizeof *r);
    ch_key(t, idx, &id, &k1);
    if (strcmp(t->name, "items") == 0) {
        add_int(r, "id", id, true);
        snprintf(buf, sizeof buf, "item-%d \xc3\xbc\xe2\x9c\x93 %u", id,
                 (unsigned)next_rand());
        add_str(r, "name", buf, false);
        add_int(r, "qty", (long long)pick(1100) - 100, false);
        snprintf(buf, sizeof buf, "%u.%02u", pick(1000000), pick(100));
        add_str(r, "price", buf, false);
        if (pick(5) == 0) {
            add_str(r, "note", NULL, false);
        } else {
            snprintf(buf, sizeof buf, "note %08x from %s",
                     (unsigned)next_rand(), opt_node);
            add_str(r, "note", buf, false);
        }
        add_int(r, "rev", (long long)(st.changes + 1), false);
    } else if (strcmp(t->name, "accounts") == 0) {
        add_int(r, "id", id, true);
        snprintf(buf, sizeof buf, "user%d@chaos.test", id);
        add_str(r, "email", buf, false);
        add_int(r, "balance",
                (long long)(next_rand() % (UINT64_C(1) << 40)) - (1LL << 39),
                false);
        bool active = pick(2);
        add_col(r, "active", active ? "1" : "0", active ? "true" : "false",
                false);
        if (pick(3) == 0) {
            add_str(r, "born", NULL, false);
        } else {
            snprintf(buf, sizeof buf, "%04u-%02u-%02u", 1950 + pick(56),
                     1 + pick(12), 1 + pick(28));
            add_str(r, "born", buf, false);
        }
    } else {
        add_str(r, "k1", k1, true);
        add_int(r, "k2", id, true);
        snprintf(buf, sizeof buf, "v-%s-%08x", opt_node, (unsigned)next_rand());
        add_str(r, "v", buf, false);
    }
    size_t lj = strlen(r->json);
    snprintf(r->json + lj, sizeof r->json - lj, "}");
}

/* Lock wait timeout, deadlock, a concurrent insert of the same key: roll
 * back and try another change. Anything else: reconnect. */
static bool retryable(unsigned int e)
{
    return e == 1205 || e == 1213 || e == 1062;
}

/* One change written in the open transaction. */
typedef struct written {
    const ch_table *t;
    const char *op; /* "create", "update", "delete" */
    char pk[64];    /* the canonical key: [17], ["red",3] */
    char key[128];  /* the event's key object */
    row_text row;   /* the new values (not for a delete) */
} written;

/* Picks a key of the 300, locks its row and creates, updates or deletes
 * it in the open transaction. Returns 0, or the MySQL errno of the failed
 * step (the caller rolls back). */
static unsigned int write_change(written *w)
{
    const ch_table *t;
    unsigned r = pick(300);
    int idx;
    char where[128], sql[4096];
    bool exists;
    unsigned int e;

    /* Each key of the 300 equally likely. */
    for (int i = 0;; i++) {
        if (r < (unsigned)CH_TABLES[i].nkeys) {
            t = &CH_TABLES[i];
            idx = (int)r;
            break;
        }
        r -= (unsigned)CH_TABLES[i].nkeys;
    }
    w->t = t;
    ch_key_text(t, idx, CH_KEY_WHERE, where, sizeof where);
    ch_key_text(t, idx, CH_KEY_PK, w->pk, sizeof w->pk);
    ch_key_text(t, idx, CH_KEY_JSON, w->key, sizeof w->key);

    snprintf(sql, sizeof sql, "SELECT 1 FROM `%s` WHERE %s FOR UPDATE", t->name,
             where);
    if ((e = query_one(sql, &exists, NULL)))
        return e;
    if (!exists) {
        w->op = "create";
        make_row(t, idx, &w->row);
        snprintf(sql, sizeof sql, "INSERT INTO `%s` (%s) VALUES (%s)", t->name,
                 w->row.sql_cols, w->row.sql_vals);
    } else if (pick(100) < 70) {
        w->op = "update";
        make_row(t, idx, &w->row);
        snprintf(sql, sizeof sql, "UPDATE `%s` SET %s WHERE %s", t->name,
                 w->row.sql_set, where);
    } else {
        w->op = "delete";
        snprintf(sql, sizeof sql, "DELETE FROM `%s` WHERE %s", t->name, where);
    }
    if ((e = exec(sql)))
        return e;
    if (mysql_affected_rows(db) != 1) {
        say("%s %s %s changed %llu rows; expected 1", w->op, t->name, w->pk,
            (unsigned long long)mysql_affected_rows(db));
        return 1213; /* cannot happen under the row lock: try another */
    }
    return 0;
}

/* A committed change in the counts. */
static void count_committed(const char *op)
{
    st.changes++;
    if (op[0] == 'c')
        st.creates++;
    else if (op[0] == 'u')
        st.updates++;
    else
        st.deletes++;
}

/* One change emitted by this host: written, versioned, put in the outbox
 * and committed, then emitted. Returns 0, 1 when the emit failed (the
 * outbox keeps it), or the MySQL errno of the failed step (the caller
 * rolls back). */
static unsigned int one_change(void)
{
    written w;
    char sql[12288];
    bool found;
    uint64_t stored = 0;
    unsigned int e;

    if ((e = write_change(&w)))
        return e;
    const ch_table *t = w.t;
    const char *op = w.op, *pk = w.pk, *key = w.key;
    const row_text *row = &w.row;

    /* The version this server holds for the row, read with a lock after
     * the write: see the comment at the top. */
    char qpk[160];
    sql_quote(qpk, pk);
    snprintf(sql, sizeof sql,
             "SELECT hlc FROM datasync_versions WHERE tbl = '%s' AND pk = %s "
             "FOR UPDATE",
             t->name, qpk);
    e = query_one(sql, &found, &stored);
    if (e == 1146) /* no consumer has started here yet */
        found = false;
    else if (e)
        return e;

    uint64_t hlc = ts_wall_ms() << 16;
    if (hlc <= last_hlc)
        hlc = last_hlc + 1;
    if (found && hlc <= stored) {
        st.hlc_bumps++;
        hlc = stored + 1;
    }

    char id[37], ts[32];
    if (ds__uuid7(id) != 0) {
        say("no randomness for a UUID");
        exit(1);
    }
    ds__rfc3339_ms(ts_wall_ms(), ts);
    char event[2048], logline[2048];
    snprintf(event, sizeof event,
             "{\"v\":1,\"id\":\"%s\",\"origin\":\"%s\",\"hlc\":%" PRIu64
             ",\"ts\":\"%s\",\"op\":\"%s\",\"table\":\"%s\",\"key\":%s%s%s}",
             id, opt_node, hlc, ts, op, t->name, key,
             op[0] == 'd' ? "" : ",\"data\":", op[0] == 'd' ? "" : row->json);
    snprintf(logline, sizeof logline,
             "E\t%s\t%s\t%" PRIu64 "\t%s\t%s\t%s\t%s\n", id, opt_node, hlc,
             t->name, pk, op, op[0] == 'd' ? "-" : row->json);

    char qev[4200], qline[4200];
    sql_quote(qev, event);
    sql_quote(qline, logline);
    snprintf(sql, sizeof sql,
             "INSERT INTO chaos_outbox (id, hlc, event, logline) VALUES "
             "('%s', %" PRIu64 ", %s, %s)",
             id, hlc, qev, qline);
    if ((e = exec(sql)))
        return e;
    if (mysql_commit(db) != 0)
        return mysql_errno(db) ? mysql_errno(db) : 2013;
    /* Committed (or, after a lost connection, perhaps: the outbox sweep
     * settles that). */
    last_hlc = hlc;
    count_committed(op);

    int rc = emit_logged(id, event, logline);
    return rc == -2 ? 2013 : rc == -1 ? 1 : 0;
}

/* --sql-only: one transaction of one to four changes (more often one),
 * its id in chaos_sqltx, logged, then committed, or one time in ten
 * rolled back. *n: the changes it made. Returns 0, or the MySQL errno of
 * the failed step (the caller rolls back; a failure of the COMMIT itself
 * leaves its fate to chaos_sqltx). */
static unsigned int sql_transaction(int *n)
{
    written w[4];
    char txid[37], sql[128], lines[4 * 1400];
    size_t len = 0;
    unsigned int e;
    const bool rollback = pick(10) == 0;

    *n = pick(2) ? 1 : 2 + (int)pick(3);
    if (ds__uuid7(txid) != 0) {
        say("no randomness for a UUID");
        exit(1);
    }
    for (int i = 0; i < *n; i++) {
        if ((e = write_change(&w[i])))
            return e;
        len += (size_t)snprintf(
            lines + len, sizeof lines - len, "S\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
            txid, opt_node, rollback ? "rollback" : "commit", w[i].t->name,
            w[i].pk, w[i].op, w[i].op[0] == 'd' ? "-" : w[i].row.json);
    }
    snprintf(sql, sizeof sql, "INSERT INTO chaos_sqltx (id) VALUES ('%s')",
             txid);
    if ((e = exec(sql)))
        return e;
    /* Logged before the outcome: a kill -9 after it leaves a transaction
     * that chaos_sqltx says committed or not. */
    log_line(lines);
    if (rollback) {
        if (mysql_rollback(db) != 0)
            return mysql_errno(db) ? mysql_errno(db) : 2013;
        st.rolled_back++;
        return 0;
    }
    if (mysql_commit(db) != 0)
        return mysql_errno(db) ? mysql_errno(db) : 2013;
    st.trx++;
    for (int i = 0; i < *n; i++)
        count_committed(w[i].op);
    return 0;
}

/* ------------------------------------------------------------------------ */

/* The largest hlc of this producer's emitted log (a restart continues
 * above it: versions stay strictly increasing per producer). */
static uint64_t max_logged_hlc(void)
{
    FILE *f = fopen(opt_emitted, "r");
    char line[4096];
    uint64_t max = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        char *save = NULL, *tok = strtok_r(line, "\t", &save);
        for (int i = 0; tok && i < 3; i++)
            tok = strtok_r(NULL, "\t", &save);
        if (tok) {
            uint64_t h = strtoull(tok, NULL, 10);
            if (h > max)
                max = h;
        }
    }
    fclose(f);
    return max;
}

static void print_stats(const char *when)
{
    ds_producer_stats ps;
    if (opt_sql_log) {
        say("%s: changes committed %" PRIu64 " (create %" PRIu64
            ", update %" PRIu64 ", delete %" PRIu64 ") in %" PRIu64
            " transactions, %" PRIu64 " transactions rolled back on purpose, "
            "db errors %" PRIu64 ", lock retries %" PRIu64,
            when, st.changes, st.creates, st.updates, st.deletes, st.trx,
            st.rolled_back, st.db_errors, st.lock_retries);
        return;
    }
    ds_producer_stats_get(prod, &ps, sizeof ps);
    say("%s: changes %" PRIu64 " (create %" PRIu64 ", update %" PRIu64
        ", delete %" PRIu64 "), emitted %" PRIu64
        " (again from the outbox %" PRIu64 "), emit errors %" PRIu64
        ", db errors %" PRIu64 ", lock retries %" PRIu64
        ", hlc raised by an observed version %" PRIu64
        "; library: confirmed %" PRIu64 ", spooled %" PRIu64 ", nacked %" PRIu64
        ", reconnects %" PRIu64 "; spool backlog %lld bytes",
        when, st.changes, st.creates, st.updates, st.deletes, st.emitted,
        st.reemitted, st.emit_errors, st.db_errors, st.lock_retries,
        st.hlc_bumps, ps.confirmed, ps.spooled, ps.nacked, ps.reconnects,
        ts_spool_backlog(opt_spool));
}

static void usage(void)
{
    fprintf(stderr,
            "usage: chaos_producer -c CONF --node ID --db NAME --port PORT "
            "--emitted FILE --spool DIR [--host H] [--seed N] [--rate N] "
            "[--drain-timeout S]\n"
            "       chaos_producer --sql-only FILE --node ID --db NAME "
            "--port PORT [--host H] [--seed N] [--rate N]\n");
    exit(2);
}

/* (Re)connects to the database until it answers or the deadline (0: until
 * stopped), and empties the outbox. Returns 0 when connected and the
 * outbox is empty. */
static int recover(int64_t deadline)
{
    int backoff = 100;
    for (;;) {
        if (!db && db_open() == 0)
            st.reconnects++;
        if (db && opt_sql_log)
            return 0; /* no outbox */
        if (db) {
            int rc = sweep_outbox();
            if (rc == 0)
                return 0;
            if (rc == -1) {
                say("database: %s; reconnecting", mysql_error(db));
                db_close();
            }
        }
        if (deadline ? ts_now_ms() >= deadline : stop_flag)
            return -1;
        sleep_ms(backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
    }
}

/* The command line into the opt_* settings; usage() when it is wrong. */
static void parse_args(int argc, char **argv)
{
    const char *port = "3306", *seed = "1", *rate = "80", *drain = "90";
    const ts_opt opts[] = {TS_OPT("c", &opt_conf),
                           TS_OPT("node", &opt_node),
                           TS_OPT("db", &opt_db),
                           TS_OPT("host", &opt_host),
                           TS_OPT("port", &port),
                           TS_OPT("emitted", &opt_emitted),
                           TS_OPT("spool", &opt_spool),
                           TS_OPT("seed", &seed),
                           TS_OPT("rate", &rate),
                           TS_OPT("drain-timeout", &drain),
                           TS_OPT("sql-only", &opt_sql_log),
                           TS_OPT_END};
    if (ts_opts_parse(argc, argv, opts) != 0)
        usage();
    opt_port = atoi(port);
    opt_seed = strtoull(seed, NULL, 10);
    opt_rate = atoi(rate);
    opt_drain_timeout = atoi(drain);
    if (!opt_node || !opt_db || opt_rate <= 0)
        usage();
    if (!opt_sql_log && (!opt_conf || !opt_emitted || !opt_spool))
        usage();
    snprintf(me, sizeof me, "chaos-producer %s", opt_node);
}

/* libdatasync's producer, from -c with this node, spool and sync mode.
 * Returns 0, or -1 having said why. */
static int open_producer(void)
{
    ds_options *o = ds_options_new();
    if (!o || ds_options_load(o, opt_conf) != 0 ||
        ds_options_set(o, "node.id", opt_node) != 0 ||
        ds_options_set(o, "producer.spool_dir", opt_spool) != 0 ||
        ds_options_set(o, "producer.mode", "sync") != 0) {
        say("configuration: %s", o ? ds_options_errmsg(o) : "out of memory");
        ds_options_free(o);
        return -1;
    }
    char err[DS_ERRBUF_SIZE];
    int rc = ds_producer_new(&prod, o, err, sizeof err);
    ds_options_free(o);
    if (rc != 0) {
        say("ds_producer_new: %s: %s", ds_err_name(rc), err);
        return -1;
    }
    ds_producer_set_log(prod, lib_log, NULL);
    return 0;
}

/* The end of an emitting run: empty the outbox, then wait for the spool
 * to drain. Returns the exit status: 0, or 3 if either is left. */
static int drain(void)
{
    int64_t deadline = ts_now_ms() + (int64_t)opt_drain_timeout * 1000;
    say("stopping: emptying the outbox and the spool (at most %d s)",
        opt_drain_timeout);
    int status = 0;
    if (recover(deadline) != 0) {
        say("FAILED: the outbox still holds changes at the deadline");
        status = 3;
    }
    int64_t next_note = ts_now_ms() + 5000;
    long long backlog;
    while ((backlog = ts_spool_backlog(opt_spool)) > 0 &&
           ts_now_ms() < deadline) {
        if (ts_now_ms() >= next_note) {
            say("waiting for the spool to drain: %lld bytes", backlog);
            next_note = ts_now_ms() + 5000;
        }
        sleep_ms(200);
    }
    if (backlog > 0) {
        say("FAILED: %lld bytes still in the spool at the deadline", backlog);
        status = 3;
    }
    return status;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    rng = opt_seed * UINT64_C(0x9E3779B97F4A7C15) + 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *log = opt_sql_log ? opt_sql_log : opt_emitted;
    log_fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        say("%s: %s", log, strerror(errno));
        return 1;
    }
    if (opt_sql_log) {
        say("started: SQL only, database %s, seed %" PRIu64
            ", %d changes/s, transactions logged to %s",
            opt_db, opt_seed, opt_rate, opt_sql_log);
    } else {
        last_hlc = max_logged_hlc();
        if (open_producer() != 0)
            return 1;
        say("started: database %s, seed %" PRIu64 ", %d changes/s, spool %s "
            "(backlog %lld bytes), last hlc %" PRIu64,
            opt_db, opt_seed, opt_rate, opt_spool, ts_spool_backlog(opt_spool),
            last_hlc);
    }

    recover(0);
    int64_t next_stats = ts_now_ms() + 10000;
    const int64_t interval_us = 1000000 / opt_rate;
    int64_t slot_us = ts_now_ms() * 1000;
    while (!stop_flag) {
        /* Pace at --rate, without catching up more than a second. */
        int64_t now_us = ts_now_ms() * 1000;
        if (slot_us < now_us - 1000000)
            slot_us = now_us - 1000000;
        if (slot_us > now_us)
            sleep_ms((int)((slot_us - now_us) / 1000));
        if (stop_flag)
            break;
        if (!db && recover(0) != 0)
            continue;
        int n = 1;
        unsigned int e = opt_sql_log ? sql_transaction(&n) : one_change();
        slot_us += interval_us * n;
        if (e) {
            if (e != 1)
                mysql_rollback(db);
            if (e == 1) {
                /* An emit failed: the outbox keeps the change; retry it
                 * after a pause. */
                sleep_ms(500);
                recover(0);
            } else if (retryable(e)) {
                st.lock_retries++;
            } else {
                st.db_errors++;
                say("database: [%u] %s; reconnecting", e, mysql_error(db));
                db_close();
            }
        }
        if (ts_now_ms() >= next_stats) {
            print_stats("stats");
            next_stats = ts_now_ms() + 10000;
        }
    }

    int status = opt_sql_log ? 0 : drain();
    print_stats("final");
    ds_producer_free(prod);
    db_close();
    close(log_fd);
    say("exit %d", status);
    return status;
}
