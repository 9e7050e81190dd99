/* chaos_check.c: the chaos run's checker: every emitted change accounted for on every node, rows as the highest version says and equal everywhere, no dead letters; prints the summary table. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mysql.h>
#include <mysqld_error.h>

#include "chaos.h"
#include "amqp_util.h"
#include "lib/captured.h"
#include "lib/xalloc.h"
#include "support.h"

/*
 *   chaos_check --port P --amqp URL --node ID=DB ... --emitted FILE ...
 *               [--host H] [--faults FILE] [--seed N] [--duration S]
 *               [--spool DIR ...] [--info "label\tvalue" ...] [--details FILE]
 *               [--died "N (which)"] [--joined ID=WHEN ...]
 *               [--captured ID=SQLLOG --tap QUEUE --archive STREAM]
 *
 * Reads the emitted logs (tests/chaos/chaos.h gives the format) and, on
 * every node, datasync_versions, the replicated tables, the outbox, and
 * the node's queues. Counts:
 *   emitted      distinct change ids in the logs
 *   accounted    on a node: its stored version of the change's row is >=
 *                the change's (hlc, origin): applied, or superseded by a
 *                newer one; "all" counts changes accounted on every node
 *   lost         emitted, but not accounted for on some node
 *   wrong effect a (node, row) whose stored version is the highest emitted
 *                version of the row but whose row is not that change's
 *                data (a delete: the row must be absent), or whose stored
 *                version no emitted change has, or a row nobody emitted
 *   differing    rows (by key) whose contents are not the same on all nodes
 *   dead letters messages in datasync.<node>.dead (the workload makes only
 *                valid changes: every one is unexplained)
 *   joined       --joined names a node (one of --node) that was to join
 *                mid-run with datasync bootstrap, and WHEN says when and
 *                from which peer; an empty WHEN: it never joined
 *   captured     --captured names a node whose application writes SQL only
 *                (chaos_producer --sql-only, its log SQLLOG) and whose
 *                datasync-capture emits: its changes are the events of its
 *                origin in the tap queue QUEUE (a node queue nobody
 *                consumes) and the archive stream STREAM, checked like the
 *                emitted ones; every committed change of the log must be
 *                one of them (else it is lost on every node), and each of
 *                them a committed change (never a rolled-back one, never a
 *                consumer's write captured again): tests/chaos/lib/captured.h
 *                An event the tap lacks is a failure, and so is a
 *                committed change emitted twice with two ids (a restarted
 *                capture must emit it again as the same change: capture/txn.h);
 *                and so is any change (any origin) of the tap that the
 *                archive lacks: RabbitMQ 3.10 confirms a change for the node
 *                queues alone while it has not started the stream again
 *                after a restart or a kill, which libdatasync waits out
 *                (producer/io.c archive_running), so one missing means a
 *                producer published into that window
 * Exit 0 when lost, wrong effect, differing, dead letters, inconsistent
 * log lines, captured events unexplained or not in the tap, changes the
 * archive lacks, and --died (processes of the run that died on their own,
 * counted by tests/chaos/run.sh) are all 0 and every --joined node joined;
 * 1 otherwise; 2 when it could not check.
 * Details (each lost change, each wrong row, each difference, dead-letter
 * reasons) go to --details, and the first few to standard output.
 */

#define MAX_NODES 4
#define SHOW 8

typedef struct change {
    char id[37];
    char origin[65];
    uint64_t hlc;
    int table;
    char pk[64];
    char op; /* c, u, d */
    char *data;
    int key;
    uint64_t replay_of_hlc; /* a capture's replay: cc_event */
} change;

typedef struct version {
    bool exists, deleted;
    uint64_t hlc;
    char origin[65];
} version;

typedef struct key {
    int table;
    char pk[64];
    int best; /* change index with the highest version, -1 */
    version ver[MAX_NODES];
    char *row[MAX_NODES]; /* row text, NULL when absent */
} key;

static change *changes;
static size_t nchanges, capchanges;
static key *keys;
static size_t nkeys, capkeys;

static int nnodes;
static char node_id[MAX_NODES][65], node_db[MAX_NODES][65];
static const char *opt_host = "127.0.0.1", *opt_amqp, *opt_faults;
static const char *opt_details, *opt_seed = "?", *opt_duration = "?";
static int opt_port;
static const char *opt_died; /* "N" or "N (what)": processes that died alone */
/* --captured ID=SQLLOG, --tap, --archive: the SQL-only node, and what it
 * did. */
static const char *opt_captured, *opt_tap, *opt_archive;
static cc_result captured;
static bool captured_ok;
static const char *emitted_files[8], *spool_dirs[8], *infos[32];
static int nemitted, nspools, ninfos;
/* --joined: nodes bootstrapped mid-run ("ID=WHEN"), and how many. */
static const char *joins[MAX_NODES];
static int njoins;
static FILE *details;

/* ------------------------------------------------------------------------ */
/* A small string hash map: name -> index                                     */

typedef struct smap {
    char **k;
    size_t *v;
    size_t cap, n;
} smap;

static uint64_t hash(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

static size_t *smap_slot(smap *m, const char *k, bool insert, bool *isnew)
{
    if (insert && (m->n + 1) * 2 > m->cap) {
        smap old = *m;
        m->cap = old.cap ? old.cap * 2 : 1024;
        m->k = calloc(m->cap, sizeof *m->k);
        m->v = calloc(m->cap, sizeof *m->v);
        if (!m->k || !m->v) {
            fprintf(stderr, "chaos_check: out of memory\n");
            exit(2);
        }
        m->n = 0;
        for (size_t i = 0; i < old.cap; i++) {
            if (!old.k[i])
                continue;
            bool dummy;
            *smap_slot(m, old.k[i], true, &dummy) = old.v[i];
            free(old.k[i]);
        }
        free(old.k);
        free(old.v);
    }
    if (!m->cap)
        return NULL;
    for (size_t i = hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->k[i]) {
            if (!insert)
                return NULL;
            m->k[i] = xstrdup(k);
            m->n++;
            if (isnew)
                *isnew = true;
            return &m->v[i];
        }
        if (strcmp(m->k[i], k) == 0) {
            if (isnew)
                *isnew = false;
            return &m->v[i];
        }
    }
}

static smap key_map, id_map;

static int key_index(int table, const char *pk)
{
    char k[128];
    bool isnew;
    snprintf(k, sizeof k, "%d\t%s", table, pk);
    size_t *slot = smap_slot(&key_map, k, true, &isnew);
    if (isnew) {
        if (nkeys == capkeys) {
            capkeys = capkeys ? capkeys * 2 : 512;
            keys = xrealloc(keys, capkeys * sizeof *keys);
        }
        memset(&keys[nkeys], 0, sizeof keys[nkeys]);
        keys[nkeys].table = table;
        snprintf(keys[nkeys].pk, sizeof keys[nkeys].pk, "%s", pk);
        keys[nkeys].best = -1;
        *slot = nkeys++;
    }
    return (int)*slot;
}

static int vcmp(uint64_t ha, const char *oa, uint64_t hb, const char *ob)
{
    if (ha != hb)
        return ha < hb ? -1 : 1;
    return strcmp(oa, ob);
}

/* ------------------------------------------------------------------------ */

__attribute__((format(printf, 1, 2))) static void detail(const char *fmt, ...)
{
    va_list ap;
    if (!details)
        return;
    va_start(ap, fmt);
    vfprintf(details, fmt, ap);
    va_end(ap);
}

static long inconsistent, dup_lines, bad_lines;

/* A new change; returns its index. */
static size_t add_change(const char *id, const char *origin, uint64_t hlc,
                         int table, const char *pk, char op, const char *data)
{
    if (nchanges == capchanges) {
        capchanges = capchanges ? capchanges * 2 : 4096;
        changes = xrealloc(changes, capchanges * sizeof *changes);
    }
    change *c = &changes[nchanges];
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->origin, sizeof c->origin, "%s", origin);
    c->hlc = hlc;
    c->table = table;
    snprintf(c->pk, sizeof c->pk, "%s", pk);
    c->op = op;
    c->data = data ? xstrdup(data) : NULL;
    c->key = key_index(c->table, c->pk);
    return nchanges++;
}

static void read_emitted(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        /* A producer that never emitted leaves no log: fine. */
        if (errno == ENOENT)
            return;
        fprintf(stderr, "chaos_check: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') {
            bad_lines++; /* a torn last line cannot happen with one write */
            detail("torn line in %s: %s\n", path, line);
            continue;
        }
        line[len - 1] = '\0';
        char *f8[8], *save = NULL;
        int n = 0;
        for (char *t = strtok_r(line, "\t", &save); t && n < 8;
             t = strtok_r(NULL, "\t", &save))
            f8[n++] = t;
        const ch_table *t = n == 8 ? ch_table_named(f8[4]) : NULL;
        if (!t || strcmp(f8[0], "E") != 0 || strlen(f8[1]) != 36) {
            bad_lines++;
            detail("bad line in %s\n", path);
            continue;
        }
        size_t *slot;
        bool isnew;
        slot = smap_slot(&id_map, f8[1], true, &isnew);
        if (!isnew) {
            change *o = &changes[*slot];
            dup_lines++;
            if (o->hlc != strtoull(f8[3], NULL, 10) ||
                strcmp(o->origin, f8[2]) != 0 || strcmp(o->pk, f8[5]) != 0 ||
                o->op != f8[6][0] ||
                strcmp(o->data ? o->data : "-", f8[7]) != 0) {
                inconsistent++;
                detail("inconsistent lines for change %s\n", f8[1]);
            }
            continue;
        }
        *slot = add_change(f8[1], f8[2], strtoull(f8[3], NULL, 10),
                           (int)(t - CH_TABLES), f8[5], f8[6][0],
                           strcmp(f8[7], "-") == 0 ? NULL : f8[7]);
    }
    free(line);
    fclose(f);
}

/* The captured node's changes: its origin's events in the tap and the
 * archive. */
static void read_captured(void)
{
    const char *eq = strchr(opt_captured, '=');
    char origin[65], err[512];
    int n;
    snprintf(origin, sizeof origin, "%.*s", (int)(eq - opt_captured),
             opt_captured);
    for (n = 0; n < nnodes && strcmp(node_id[n], origin) != 0; n++)
        ;
    const cc_source src = {.origin = origin,
                           .sql_log = eq + 1,
                           .amqp = opt_amqp,
                           .archive = opt_archive,
                           .tap = opt_tap,
                           .host = opt_host,
                           .port = opt_port,
                           .db = node_db[n]};
    if (cc_load(&src, &captured, details, err, sizeof err) != 0) {
        printf("checker: the captured changes of %s: %s\n", origin, err);
        return;
    }
    captured_ok = true;
    for (size_t i = 0; i < captured.nev; i++) {
        const cc_event *e = &captured.ev[i];
        bool isnew;
        size_t *slot = smap_slot(&id_map, e->id, true, &isnew);
        if (isnew) {
            *slot = add_change(e->id, origin, e->hlc, e->table, e->pk, e->op,
                               e->data);
            changes[*slot].replay_of_hlc = e->replay_of_hlc;
        }
    }
}

/* The row text a change's data makes (tests/chaos/lib/captured.h). */
static char *expected_row(const change *c)
{
    return cc_row_text(c->table, c->data);
}

/* For messages: the row text with | between columns. */
static const char *show(const char *row, char *buf, size_t len)
{
    if (!row)
        return "(absent)";
    snprintf(buf, len, "%s", row);
    for (char *p = buf; *p; p++)
        if (*p == '\x1f')
            *p = '|';
    return buf;
}

/* ------------------------------------------------------------------------ */
/* The nodes                                                                  */

static MYSQL *connect_db(const char *name)
{
    char err[512];
    MYSQL *db =
        ts_mysql_open(opt_host, opt_port, name, 10, 10, 0, err, sizeof err);
    if (!db) {
        fprintf(stderr, "chaos_check: database %s: %s\n", name, err);
        exit(2);
    }
    return db;
}

static MYSQL_RES *query(MYSQL *db, const char *sql)
{
    if (mysql_query(db, sql) != 0) {
        fprintf(stderr, "chaos_check: %s: %s\n", sql, mysql_error(db));
        exit(2);
    }
    return mysql_store_result(db);
}

static long rows_in[MAX_NODES][CH_NTABLES], versions_in[MAX_NODES],
    tombstones_in[MAX_NODES], outbox_in[MAX_NODES];

static void read_node(int n)
{
    MYSQL *db = connect_db(node_db[n]);
    MYSQL_RES *res;
    MYSQL_ROW row;

    /* A node that never got a consumer nor a bootstrap has no such table:
     * it holds no version, so every change counts as lost there. */
    if (mysql_query(db, "SELECT tbl, pk, hlc, origin, deleted FROM "
                        "datasync_versions") != 0) {
        if (mysql_errno(db) != ER_NO_SUCH_TABLE) {
            fprintf(stderr, "chaos_check: node %s: datasync_versions: %s\n",
                    node_id[n], mysql_error(db));
            exit(2);
        }
        detail("node %s: no table datasync_versions\n", node_id[n]);
    }
    res = mysql_store_result(db);
    while (res && (row = mysql_fetch_row(res))) {
        const ch_table *t = ch_table_named(row[0]);
        versions_in[n]++;
        if (!t) {
            detail("node %s: a version of unknown table %s\n", node_id[n],
                   row[0]);
            continue;
        }
        key *k = &keys[key_index((int)(t - CH_TABLES), row[1])];
        k->ver[n].exists = true;
        k->ver[n].hlc = strtoull(row[2], NULL, 10);
        snprintf(k->ver[n].origin, sizeof k->ver[n].origin, "%s", row[3]);
        k->ver[n].deleted = atoi(row[4]) != 0;
        tombstones_in[n] += k->ver[n].deleted;
    }
    if (res)
        mysql_free_result(res);

    for (int ti = 0; ti < CH_NTABLES; ti++) {
        const ch_table *t = &CH_TABLES[ti];
        char sql[512];
        size_t len = (size_t)snprintf(sql, sizeof sql, "SELECT ");
        for (int i = 0; i < t->ncols; i++)
            len += (size_t)snprintf(sql + len, sizeof sql - len, "%s`%s`",
                                    i ? ", " : "", t->cols[i].name);
        snprintf(sql + len, sizeof sql - len, " FROM `%s`", t->name);
        res = query(db, sql);
        while ((row = mysql_fetch_row(res))) {
            char pk[64], text[2048];
            size_t tl = 0;
            if (t->npk == 1)
                snprintf(pk, sizeof pk, "[%s]", row[0]);
            else
                snprintf(pk, sizeof pk, "[\"%s\",%s]", row[0], row[1]);
            text[0] = '\0';
            for (int i = 0; i < t->ncols; i++) {
                tl +=
                    (size_t)snprintf(text + tl, sizeof text - tl, "%s%s",
                                     i ? "\x1f" : "", row[i] ? row[i] : "\\N");
                if (tl >= sizeof text)
                    tl = sizeof text - 1;
            }
            key *k = &keys[key_index(ti, pk)];
            free(k->row[n]);
            k->row[n] = xstrdup(text);
            rows_in[n][ti]++;
        }
        mysql_free_result(res);
    }

    if (mysql_query(db, "SELECT COUNT(*) FROM chaos_outbox") == 0) {
        res = mysql_store_result(db);
        if (res && (row = mysql_fetch_row(res)))
            outbox_in[n] = atol(row[0]);
        if (res)
            mysql_free_result(res);
    }
    mysql_close(db);
}

static long dead[MAX_NODES], ready[MAX_NODES], consumers[MAX_NODES];
static bool amqp_ok;

/* Messages and consumers of a queue (passive declare); false if missing. */
static bool inspect(ds_amqp *a, const char *queue, long *messages, long *cons)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(a->conn, DS_AMQP_CHANNEL, ds__amqp_str(queue), 1, 0,
                           0, 0, amqp_empty_table);
    if (!ok) {
        /* The 404 closed the channel: open it again for the next one. */
        amqp_channel_open(a->conn, DS_AMQP_CHANNEL);
        amqp_get_rpc_reply(a->conn);
        return false;
    }
    *messages = (long)ok->message_count;
    if (cons)
        *cons = (long)ok->consumer_count;
    return true;
}

/* Prints up to max dead letters' reasons; leaves them in the queue (not
 * acked: the broker takes them back when the connection closes). */
static void peek_dead(ds_amqp *a, const char *queue, int max)
{
    for (int i = 0; i < max; i++) {
        amqp_rpc_reply_t r =
            amqp_basic_get(a->conn, DS_AMQP_CHANNEL, ds__amqp_str(queue), 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL ||
            r.reply.id != AMQP_BASIC_GET_OK_METHOD)
            return;
        amqp_message_t msg;
        if (amqp_read_message(a->conn, DS_AMQP_CHANNEL, &msg, 0).reply_type !=
            AMQP_RESPONSE_NORMAL)
            return;
        char reason[300] = "(no x-datasync-error)";
        const amqp_bytes_t *why =
            ts_amqp_header(&msg.properties, "x-datasync-error");
        if (why)
            snprintf(reason, sizeof reason, "%.*s", (int)why->len,
                     (const char *)why->bytes);
        printf("  dead letter in %s: %s\n    %.*s\n", queue, reason,
               (int)(msg.body.len > 300 ? 300 : msg.body.len),
               (const char *)msg.body.bytes);
        detail("dead letter in %s: %s: %.*s\n", queue, reason,
               (int)msg.body.len, (const char *)msg.body.bytes);
        amqp_destroy_message(&msg);
    }
}

static void read_queues(void)
{
    ds_amqp a = {0};
    char err[512];
    if (ds__amqp_connect(&a, opt_amqp, 0, 10000, err, sizeof err) != 0) {
        printf("checker: cannot reach the broker: %s\n", err);
        return;
    }
    amqp_ok = true;
    for (int n = 0; n < nnodes; n++) {
        char q[256], dq[256];
        snprintf(q, sizeof q, "datasync.%.64s", node_id[n]);
        snprintf(dq, sizeof dq, "datasync.%.64s.dead", node_id[n]);
        if (!inspect(&a, q, &ready[n], &consumers[n]))
            ready[n] = consumers[n] = -1;
        if (!inspect(&a, dq, &dead[n], NULL))
            dead[n] = -1;
    }
    for (int n = 0; n < nnodes; n++)
        if (dead[n] > 0) {
            char dq[256];
            snprintf(dq, sizeof dq, "datasync.%.64s.dead", node_id[n]);
            peek_dead(&a, dq, 3);
        }
    ds__amqp_close(&a);
}

/* ------------------------------------------------------------------------ */
/* The fault log: lines "<date> <time> FAULT <kind> ..."                      */

static void fault_counts(char *out, size_t len, int *total)
{
    char kinds[16][32];
    int counts[16], nk = 0;
    *total = 0;
    out[0] = '\0';
    FILE *f = opt_faults ? fopen(opt_faults, "r") : NULL;
    if (!f) {
        snprintf(out, len, "(no fault log)");
        return;
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, " FAULT ");
        char kind[32];
        if (!p || sscanf(p + 7, "%31s", kind) != 1)
            continue;
        int i;
        for (i = 0; i < nk && strcmp(kinds[i], kind) != 0; i++)
            ;
        if (i == nk) {
            if (nk == 16)
                continue;
            snprintf(kinds[nk], sizeof kinds[nk], "%s", kind);
            counts[nk++] = 0;
        }
        counts[i]++;
        ++*total;
    }
    fclose(f);
    size_t l = 0;
    for (int i = 0; i < nk; i++)
        l += (size_t)snprintf(out + l, len - l, "%s%s %d", i ? ", " : "",
                              kinds[i], counts[i]);
    if (nk == 0)
        snprintf(out, len, "none");
}

/* ------------------------------------------------------------------------ */

/* One line of the summary table: a value per node, then the total (none
 * when total < 0). */
static void print_row(const char *label, const long *per_node, long total)
{
    printf(" %-28s", label);
    for (int n = 0; n < nnodes; n++)
        printf(" %10ld", per_node[n]);
    if (total >= 0)
        printf(" %10ld", total);
    printf("\n");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: chaos_check --port P --amqp URL --node ID=DB... "
            "--emitted FILE... [--host H] [--faults FILE] [--seed N] "
            "[--duration S] [--spool DIR...] [--info 'label\\tvalue'...] "
            "[--details FILE] [--died 'N (which)'] [--joined ID=WHEN...] "
            "[--captured ID=SQLLOG --tap QUEUE --archive STREAM]\n");
    exit(2);
}

/* The --node index of the node an "ID=WHEN" names; -1 when none. */
static int joined_node(const char *join)
{
    size_t len = strcspn(join, "=");
    for (int n = 0; n < nnodes; n++)
        if (strlen(node_id[n]) == len && strncmp(node_id[n], join, len) == 0)
            return n;
    return -1;
}

/* The command line into the opt_* settings and the node list; usage()
 * when it is wrong. */
static void parse_args(int argc, char **argv)
{
    const char *port = "0", *nodes[MAX_NODES];
    const ts_opt opts[] = {TS_OPT("host", &opt_host),
                           TS_OPT("port", &port),
                           TS_OPT("amqp", &opt_amqp),
                           TS_OPT_LIST("node", nodes, &nnodes, MAX_NODES),
                           TS_OPT_LIST("emitted", emitted_files, &nemitted, 8),
                           TS_OPT("faults", &opt_faults),
                           TS_OPT("seed", &opt_seed),
                           TS_OPT("duration", &opt_duration),
                           TS_OPT_LIST("spool", spool_dirs, &nspools, 8),
                           TS_OPT_LIST("info", infos, &ninfos, 32),
                           TS_OPT("details", &opt_details),
                           TS_OPT("died", &opt_died),
                           TS_OPT_LIST("joined", joins, &njoins, MAX_NODES),
                           TS_OPT("captured", &opt_captured),
                           TS_OPT("tap", &opt_tap),
                           TS_OPT("archive", &opt_archive),
                           TS_OPT_END};
    if (ts_opts_parse(argc, argv, opts) != 0)
        usage();
    opt_port = atoi(port);
    for (int n = 0; n < nnodes; n++) {
        const char *eq = strchr(nodes[n], '=');
        if (!eq)
            usage();
        snprintf(node_id[n], sizeof node_id[n], "%.*s", (int)(eq - nodes[n]),
                 nodes[n]);
        snprintf(node_db[n], sizeof node_db[n], "%s", eq + 1);
    }
    if (!opt_port || !opt_amqp || nnodes == 0 || nemitted == 0)
        usage();
    if (!opt_captured != !opt_archive || !opt_captured != !opt_tap ||
        (opt_captured &&
         (!strchr(opt_captured, '=') || joined_node(opt_captured) < 0)))
        usage(); /* the captured node is one of --node */
    for (int j = 0; j < njoins; j++)
        if (!strchr(joins[j], '=') || joined_node(joins[j]) < 0)
            usage(); /* a late node is checked like every node */
}

/* What the checks counted: the verdict and the summary table read it. */
typedef struct tally {
    long by_op[3]; /* create, update, delete */
    char by_origin[4][65];
    long by_origin_n[4];
    long accounted[MAX_NODES], lost[MAX_NODES], accounted_all, lost_any;
    long wrong[MAX_NODES], wrong_all, differing, versions_differ;
    int shown_lost, shown_wrong, shown_diff;
    long dead_total, outbox_total;
    long undone_by_replay; /* count_undone_by_replays */
    long long spool_total;
} tally;

static const char *op_name(char op)
{
    return op == 'c' ? "create" : op == 'u' ? "update" : "delete";
}

/* Reads the emitted logs, every node's tables and the queues. */
static void load(void)
{
    for (int i = 0; i < nemitted; i++)
        read_emitted(emitted_files[i]);
    if (opt_captured)
        read_captured();
    for (int n = 0; n < nnodes; n++)
        read_node(n);
    read_queues();
}

/* The highest emitted version of every row. */
static void find_best(void)
{
    for (size_t i = 0; i < nchanges; i++) {
        key *k = &keys[changes[i].key];
        if (k->best < 0 ||
            vcmp(changes[i].hlc, changes[i].origin, changes[k->best].hlc,
                 changes[k->best].origin) > 0)
            k->best = (int)i;
    }
}

/* One change, counted by kind and origin (the first four origins). */
static void count_emitted(const change *ch, tally *t)
{
    for (int o = 0; o < 4; o++) {
        if (!t->by_origin[o][0])
            snprintf(t->by_origin[o], sizeof t->by_origin[o], "%s", ch->origin);
        if (strcmp(t->by_origin[o], ch->origin) == 0) {
            t->by_origin_n[o]++;
            break;
        }
    }
    t->by_op[ch->op == 'c' ? 0 : ch->op == 'u' ? 1 : 2]++;
}

/* One change on every node: accounted for when the node's stored version
 * of its row is at least the change's, lost otherwise. */
static void check_accounted(const change *ch, tally *t)
{
    const key *k = &keys[ch->key];
    bool all = true;
    for (int n = 0; n < nnodes; n++) {
        const version *v = &k->ver[n];
        if (v->exists && vcmp(v->hlc, v->origin, ch->hlc, ch->origin) >= 0) {
            t->accounted[n]++;
            continue;
        }
        all = false;
        t->lost[n]++;
        detail("LOST on %s: change %s %s %s %s version (%" PRIu64
               ", %s); node holds %s%" PRIu64 ", %s)\n",
               node_id[n], ch->id, op_name(ch->op), CH_TABLES[ch->table].name,
               ch->pk, ch->hlc, ch->origin, v->exists ? "(" : "no version (",
               v->hlc, v->exists ? v->origin : "-");
        if (t->shown_lost++ < SHOW)
            printf("  LOST on %s: change %s (%s %s %s, hlc %" PRIu64
                   ", origin %s); the node holds %s%" PRIu64 ", %s)\n",
                   node_id[n], ch->id, op_name(ch->op),
                   CH_TABLES[ch->table].name, ch->pk, ch->hlc, ch->origin,
                   v->exists ? "(" : "no version (", v->hlc,
                   v->exists ? v->origin : "-");
    }
    t->accounted_all += all;
    t->lost_any += !all;
}

/* The captured node's committed changes that no event is: lost on every
 * node, as nothing brought them anywhere. */
static void check_captured(tally *t)
{
    for (size_t i = 0; i < captured.nsql; i++) {
        const cc_sql *c = &captured.sql[i];
        if (!c->committed || c->event >= 0)
            continue;
        for (int n = 0; n < nnodes; n++)
            t->lost[n]++;
        t->lost_any++;
        if (t->shown_lost++ < SHOW)
            printf("  LOST everywhere: committed change %s %s %s of SQL "
                   "transaction %s was never emitted by datasync-capture\n",
                   op_name(c->op), CH_TABLES[c->table].name, c->pk, c->txid);
    }
}

/* A capture's replay is an old change with a newer version. When the
 * row's newest change below the replay's version (replays aside) is
 * another origin's, made after the replayed change's first version, the
 * replay undoes that newer write everywhere: the rows converge, to the
 * older write. Counted, each one in the details, and a failure: a replay
 * must carry its first id and version (datasync-capture's versions come
 * from the binlog), a true duplicate. */
static void count_undone_by_replays(tally *t)
{
    for (size_t i = 0; i < nchanges; i++) {
        const change *r = &changes[i], *cur = NULL;
        if (!r->replay_of_hlc)
            continue;
        for (size_t j = 0; j < nchanges; j++) {
            const change *x = &changes[j];
            if (x->key == r->key && !x->replay_of_hlc && x->hlc < r->hlc &&
                (!cur || x->hlc > cur->hlc))
                cur = x;
        }
        if (!cur || strcmp(cur->origin, r->origin) == 0 ||
            cur->hlc <= r->replay_of_hlc)
            continue;
        t->undone_by_replay++;
        detail(
            "UNDONE BY A REPLAY: change %s (%s %s %s, hlc %" PRIu64
            ", %s), the row's newest, came after %s's change first "
            "emitted at hlc %" PRIu64 ", re-emitted as %s at hlc %" PRIu64 "\n",
            cur->id, op_name(cur->op), CH_TABLES[cur->table].name, cur->pk,
            cur->hlc, cur->origin, r->origin, r->replay_of_hlc, r->id, r->hlc);
    }
}

/* Why key k's row on node n is not the effect of the row's highest
 * emitted version best (NULL: none, or want, the row text it makes);
 * NULL when it is. */
static const char *wrong_effect(const key *k, int n, const change *best,
                                const char *want)
{
    const version *v = &k->ver[n];
    if (best && v->exists &&
        vcmp(v->hlc, v->origin, best->hlc, best->origin) == 0) {
        if (!want && k->row[n])
            return "deleted by the highest version, but present";
        if (want && !k->row[n])
            return "absent, but the highest version is a create/update";
        if (want && strcmp(want, k->row[n]) != 0)
            return "row differs from the highest version's data";
        if (v->deleted != (best->op == 'd'))
            return "tombstone flag disagrees with the change";
        return NULL;
    }
    if (v->exists &&
        (!best || vcmp(v->hlc, v->origin, best->hlc, best->origin) > 0))
        return "stored version is no emitted change's";
    if (!best && k->row[n])
        return "row that no emitted change made";
    return NULL;
}

/* One row on every node: the effect of its highest emitted version. */
static void check_effect(const key *k, tally *t)
{
    const change *best = k->best >= 0 ? &changes[k->best] : NULL;
    char *want = best && best->op != 'd' ? expected_row(best) : NULL;
    bool any_wrong = false;
    for (int n = 0; n < nnodes; n++) {
        const version *v = &k->ver[n];
        const char *why = wrong_effect(k, n, best, want);
        if (!why)
            continue;
        t->wrong[n]++;
        any_wrong = true;
        char b1[1024], b2[1024];
        detail("WRONG on %s: %s %s: %s; stored version (%" PRIu64
               ", %s%s); highest emitted %s (%" PRIu64 ", %s, %s); row "
               "%s; expected %s\n",
               node_id[n], CH_TABLES[k->table].name, k->pk, why, v->hlc,
               v->exists ? v->origin : "none", v->deleted ? ", tombstone" : "",
               best ? best->id : "-", best ? best->hlc : 0,
               best ? best->origin : "-",
               best ? (best->op == 'd' ? "delete" : "write") : "-",
               show(k->row[n], b1, sizeof b1), show(want, b2, sizeof b2));
        if (t->shown_wrong++ < SHOW)
            printf("  WRONG on %s: %s %s: %s (stored version %" PRIu64
                   " %s; highest emitted %" PRIu64 " %s)\n    row:      "
                   "%s\n    expected: %s\n",
                   node_id[n], CH_TABLES[k->table].name, k->pk, why, v->hlc,
                   v->exists ? v->origin : "none", best ? best->hlc : 0,
                   best ? best->origin : "-", show(k->row[n], b1, sizeof b1),
                   show(want, b2, sizeof b2));
    }
    t->wrong_all += any_wrong;
    free(want);
}

/* One row: the same contents (and version) on every node? */
static void check_agreement(const key *k, tally *t)
{
    bool differ = false, vdiffer = false;
    for (int n = 1; n < nnodes; n++) {
        const char *a = k->row[0], *b = k->row[n];
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
            differ = true;
        const version *v0 = &k->ver[0], *vn = &k->ver[n];
        if (v0->exists != vn->exists ||
            (v0->exists && vcmp(v0->hlc, v0->origin, vn->hlc, vn->origin) != 0))
            vdiffer = true;
    }
    t->versions_differ += vdiffer;
    if (!differ)
        return;
    t->differing++;
    char b[1024];
    detail("DIFFER %s %s:", CH_TABLES[k->table].name, k->pk);
    for (int n = 0; n < nnodes; n++)
        detail(" %s=%s", node_id[n], show(k->row[n], b, sizeof b));
    detail("\n");
    if (t->shown_diff++ < SHOW) {
        printf("  DIFFER %s %s:\n", CH_TABLES[k->table].name, k->pk);
        for (int n = 0; n < nnodes; n++)
            printf("    %-10s %s (version %" PRIu64 " %s)\n", node_id[n],
                   show(k->row[n], b, sizeof b), k->ver[n].hlc,
                   k->ver[n].exists ? k->ver[n].origin : "none");
    }
}

/* The totals over nodes and spools, and whether the run passes. */
static bool verdict(tally *t)
{
    for (int n = 0; n < nnodes; n++) {
        t->dead_total += dead[n] > 0 ? dead[n] : 0;
        t->outbox_total += outbox_in[n];
    }
    for (int i = 0; i < nspools; i++)
        t->spool_total += ts_spool_backlog(spool_dirs[i]);

    /* The captured node: understood, every event a committed change, and
     * every one in the tap (what the node queues got). */
    if (opt_captured &&
        (!captured_ok || captured.unexplained || captured.rolled_back_seen ||
         captured.not_in_tap || captured.not_in_archive ||
         captured.all_not_in_archive || captured.emitted_again))
        return false;
    /* A capture's replay must be a true duplicate: one that undid another
     * origin's newer write lost that write everywhere. */
    bool pass = t->lost_any == 0 && t->differing == 0 && t->dead_total == 0 &&
                t->wrong_all == 0 && inconsistent == 0 && bad_lines == 0 &&
                t->undone_by_replay == 0 && amqp_ok && nchanges > 0;
    for (int n = 0; n < nnodes; n++)
        if (dead[n] < 0)
            pass = false; /* the dead-letter queue must exist to be empty */
    /* A consumer or producer that died on its own is a bug too. */
    if (opt_died && atol(opt_died) != 0)
        pass = false;
    /* A node that was to join and did not: not a pass with one node less. */
    for (int j = 0; j < njoins; j++)
        if (!strchr(joins[j], '=')[1])
            pass = false;
    return pass;
}

/* The SQL-only writer's lines: what it committed, what was captured. */
static void print_captured(const tally *t)
{
    const cc_result *c = &captured;
    char label[96];
    snprintf(label, sizeof label, "SQL writer %.*s",
             (int)strcspn(opt_captured, "="), opt_captured);
    if (!captured_ok) {
        printf(" %-28s NOT CHECKED: see above\n", label);
        return;
    }
    printf(" %-28s %ld changes committed in %ld transactions; rolled back: "
           "%ld on purpose (%ld changes), %ld failed (%ld changes)\n",
           label, c->changes_committed, c->trx_committed, c->trx_rolled_back,
           c->changes_rolled_back, c->trx_failed, c->changes_failed);
    printf(" %-28s %zu events: committed changes matched %ld, emitted again "
           "with a new id and version %ld, not captured %ld; rolled-back "
           "changes emitted %ld, unexplained events %ld\n",
           "captured (tap, archive)", c->nev, c->matched, c->emitted_again,
           c->not_captured, c->rolled_back_seen, c->unexplained);
    printf(" %-28s tap queue %ld messages, archive stream %ld; of the "
           "captured events, the tap lacks %ld, the archive %ld; of all "
           "origins' changes in the tap, the archive lacks %ld\n",
           "broker's copies (all origins)", c->tap_messages,
           c->archive_messages, c->not_in_tap, c->not_in_archive,
           c->all_not_in_archive);
    if (c->not_in_archive || c->all_not_in_archive)
        printf(" %-28s LACKS %ld changes every node queue has (%ld of them "
               "captured): confirmed while the broker had not started the "
               "stream again after a restart or a kill (RabbitMQ 3.10 then "
               "confirms for the node queues alone; libdatasync must wait "
               "for the stream); datasync replay --since would miss them; "
               "the captured ones are in the details with their stamp "
               "time\n",
               "archive", c->all_not_in_archive, c->not_in_archive);
    printf(" %-28s %ld (another origin's newer write overwritten by an "
           "older change emitted again; must be 0)\n",
           "undone by capture replays", t->undone_by_replay);
}

/* The table's head: the run and what was emitted. */
static void print_run(const tally *t)
{
    char faults[512];
    int nfaults;
    fault_counts(faults, sizeof faults, &nfaults);
    printf(" %-28s %s\n", "seed", opt_seed);
    printf(" %-28s %s s\n", "fault period", opt_duration);
    printf(" %-28s %d: %s\n", "faults", nfaults, faults);
    for (int i = 0; i < ninfos; i++) {
        const char *tab = strchr(infos[i], '\t');
        if (tab)
            printf(" %-28.*s %s\n", (int)(tab - infos[i]), infos[i], tab + 1);
        else
            printf(" %s\n", infos[i]);
    }
    printf(" %-28s %zu (create %ld, update %ld, delete %ld;", "emitted changes",
           nchanges, t->by_op[0], t->by_op[1], t->by_op[2]);
    for (int o = 0; o < 4 && t->by_origin[o][0]; o++)
        printf(" %s %ld", t->by_origin[o], t->by_origin_n[o]);
    printf(")\n");
    printf(" %-28s %ld logged twice (re-emitted), %ld inconsistent, %ld bad\n",
           "emitted log lines", dup_lines, inconsistent, bad_lines);
    if (opt_captured)
        print_captured(t);
    for (int j = 0; j < njoins; j++) {
        const char *eq = strchr(joins[j], '=');
        char label[80];
        snprintf(label, sizeof label, "%.*s joined (bootstrap)",
                 (int)(eq - joins[j]), joins[j]);
        printf(" %-28s %s\n", label,
               eq[1] ? eq + 1 : "NEVER: no bootstrap attempt succeeded");
    }
}

/* The table's middle: a column per node. */
static void print_nodes(const tally *t)
{
    printf(" %-28s", "");
    for (int n = 0; n < nnodes; n++)
        printf(" %10s", node_id[n]);
    printf(" %10s\n", "all nodes");
    print_row("accounted for", t->accounted, t->accounted_all);
    print_row("lost", t->lost, t->lost_any);
    print_row("wrong effect (rows)", t->wrong, t->wrong_all);
    print_row("dead letters", dead, t->dead_total);
    print_row("messages left in queue", ready, -1);
    printf(" %-28s", "rows items/accounts/tags");
    for (int n = 0; n < nnodes; n++) {
        char b[32];
        snprintf(b, sizeof b, "%ld/%ld/%ld", rows_in[n][0], rows_in[n][1],
                 rows_in[n][2]);
        printf(" %10s", b);
    }
    printf("\n %-28s", "versions (tombstones)");
    for (int n = 0; n < nnodes; n++) {
        char b[32];
        snprintf(b, sizeof b, "%ld (%ld)", versions_in[n], tombstones_in[n]);
        printf(" %10s", b);
    }
    printf("\n");
    print_row("outbox rows left", outbox_in, t->outbox_total);
}

/* The summary table: one screen. */
static void print_summary(const tally *t, bool pass)
{
    const char *rule =
        "------------------------------------------------------------------"
        "------------------";
    printf("\n%s\n datasync chaos run: %s\n%s\n", rule, pass ? "PASS" : "FAIL",
           rule);
    print_run(t);
    printf("%s\n", rule);
    print_nodes(t);
    printf("%s\n", rule);
    printf(" %-28s %ld (versions differ: %ld)\n", "rows differing across nodes",
           t->differing, t->versions_differ);
    printf(" %-28s %lld bytes\n", "spool left (producers)", t->spool_total);
    if (opt_died)
        printf(" %-28s %s\n", "processes that died alone", opt_died);
    printf(" %-28s %s\n", "verdict",
           pass ? "PASS: lost 0, wrong effect 0, differing 0, dead letters 0"
                : "FAIL: see the lines above, the details file and the logs");
    printf("%s\n", rule);
}

int main(int argc, char **argv)
{
    static tally t;

    parse_args(argc, argv);
    if (opt_details && !(details = fopen(opt_details, "w"))) {
        fprintf(stderr, "chaos_check: %s: %s\n", opt_details, strerror(errno));
        return 2;
    }
    load();
    find_best();
    for (size_t i = 0; i < nchanges; i++) {
        count_emitted(&changes[i], &t);
        check_accounted(&changes[i], &t);
    }
    check_captured(&t);
    count_undone_by_replays(&t);
    for (size_t ki = 0; ki < nkeys; ki++) {
        check_effect(&keys[ki], &t);
        check_agreement(&keys[ki], &t);
    }
    bool pass = verdict(&t);
    print_summary(&t, pass);
    if (details)
        fclose(details);
    return pass ? 0 : 1;
}
