/* cmd_bootstrap.c: datasync bootstrap: gives a new or rebuilt server a peer's rows and versions from one consistent snapshot, with its queue bound first so nothing made meanwhile is missed. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ids.h"
#include "meta_sql.h"
#include "mysql_util.h"
#include "topology.h"

static const char usage[] =
    "Usage: datasync [-c NEW.conf] bootstrap --from PEER.conf [--to NEW.conf]\n"
    "                [--fresh] [--peer-wait SECONDS]\n"
    "\n"
    "Brings a new server, or one whose database was lost, into the set: it\n"
    "gets the rows of every table in its apply.tables, and their versions,\n"
    "from a running peer, and every change made during and after the copy.\n"
    "\n"
    "  1. declares the new server's queue datasync.<node> and binds it, so\n"
    "     from now on every change waits there;\n"
    "  2. sends a marker through the peer's queue and waits until the peer's\n"
    "     datasync-consumer has recorded it: everything queued for the peer\n"
    "     before step 1 is then applied there;\n"
    "  3. copies each table and its datasync_versions records from one\n"
    "     consistent snapshot of the peer's database (START TRANSACTION WITH\n"
    "     CONSISTENT SNAPSHOT), in multi-row statements, with a progress\n"
    "     line; a table an interrupted run copied is left as it is (see\n"
    "     --fresh).\n"
    "\n"
    "Then start datasync-consumer on the new server: it applies the changes\n"
    "queued since step 1, and the versions make the overlap with the copy\n"
    "harmless. The new server's tables must exist (create the schema first,\n"
    "e.g. with mysqldump --no-data); their rows are replaced. The peer must\n"
    "apply every one of them. The new server's datasync-consumer and\n"
    "datasync-capture must not run during the copy. Interrupted, the command\n"
    "can run again: finished tables are kept (datasync_bootstrap records\n"
    "them), the one in progress starts over; a finished run forgets them.\n"
    "\n"
    "  --from PEER.conf     the configuration of a running peer ([node] id,\n"
    "                       [mysql]: where to read)\n"
    "  --to NEW.conf        the new server's configuration (default: -c or\n"
    "                       $DATASYNC_CONFIG): node.id, [mysql], apply.tables\n"
    "                       and the broker\n"
    "  --fresh              copy every table again, even those copied before\n"
    "  --peer-wait SECONDS  how long the peer may take to reach the marker\n"
    "                       (60)\n"
    "  -h, --help           this help\n"
    "\n"
    "Exit status 0 when every table was copied, 3 on a configuration\n"
    "problem, 5 broker, 1 database or other failure, 130 when interrupted.\n";

/* Which tables a server already has from a bootstrap, so an interrupted
 * run goes on where it stopped. */
static const char STATE_SQL[] =
    "CREATE TABLE IF NOT EXISTS datasync_bootstrap ("
    " tbl VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL"
    " PRIMARY KEY,"
    " peer VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
    " rows_copied BIGINT UNSIGNED NOT NULL,"
    " versions_copied BIGINT UNSIGNED NOT NULL,"
    " copied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
    ") ENGINE = InnoDB";

typedef struct bootstrap {
    cli_ctx *ctx; /* the new server */
    cli_ctx peer; /* the peer's configuration */
    bool fresh;
    int peer_wait_s;
    char marker[37]; /* sent through the peer's queue */
    MYSQL *src, *dst;
    cli_progress pg;
    const char *table; /* being copied, for the progress line */
    uint64_t tables_copied, tables_kept, rows, versions;
    char err[DS_ERRMSG_SIZE];
} bootstrap;

/* ------------------------------------------------------------------------ */
/* Checks before anything is touched                                         */

static bool same_database(const ds_config *a, const ds_config *b)
{
    bool same_server = a->mysql_socket[0] || b->mysql_socket[0]
                           ? strcmp(a->mysql_socket, b->mysql_socket) == 0
                           : strcmp(a->mysql_host, b->mysql_host) == 0 &&
                                 a->mysql_port == b->mysql_port;
    return same_server && strcmp(a->mysql_database, b->mysql_database) == 0;
}

/* Whether word is one of list's words. */
typedef struct {
    const char *word;
    size_t len;
    bool found;
} word_probe;

static int same_word(const char *w, size_t len, void *ctx)
{
    word_probe *p = ctx;
    if (len == p->len && memcmp(w, p->word, len) == 0)
        p->found = true;
    return 0;
}

/* The new server's tables the peer does not apply, space-separated. */
typedef struct {
    const char *peer_tables;
    char missing[512];
} tables_check;

static int peer_applies(const char *w, size_t len, void *ctx)
{
    tables_check *t = ctx;
    word_probe probe = {w, len, false};
    size_t at = strlen(t->missing);

    ds__config_each_word(t->peer_tables, same_word, &probe);
    if (!probe.found)
        snprintf(t->missing + at, sizeof t->missing - at, "%s%.*s",
                 at ? " " : "", (int)len, w);
    return 0;
}

static int check_configs(bootstrap *bs)
{
    const ds_config *to = &bs->ctx->cfg, *from = &bs->peer.cfg;

    if (!to->node_id[0] || !from->node_id[0]) {
        cli_error(bs->ctx, "%s: node.id is required",
                  to->node_id[0] ? bs->peer.config_path : bs->ctx->config_path);
        return CLI_EXIT_CONFIG;
    }
    if (strcmp(to->node_id, from->node_id) == 0) {
        cli_error(bs->ctx,
                  "--from and --to are both node %s: the peer must be "
                  "another server",
                  to->node_id);
        return CLI_EXIT_CONFIG;
    }
    if (same_database(to, from)) {
        cli_error(bs->ctx,
                  "--from and --to name the same database (%s on %s): "
                  "nothing to copy",
                  to->mysql_database,
                  to->mysql_socket[0] ? to->mysql_socket : to->mysql_host);
        return CLI_EXIT_CONFIG;
    }
    if (!to->apply_tables[0]) {
        cli_error(bs->ctx, "%s: apply.tables is empty: no table to copy",
                  cli_config_name(bs->ctx));
        return CLI_EXIT_CONFIG;
    }
    /* A table the peer does not apply holds its own rows, not the set's,
     * and no versions: a copy would seed the new server with them. */
    tables_check tc = {from->apply_tables, ""};
    ds__config_each_word(to->apply_tables, peer_applies, &tc);
    if (tc.missing[0]) {
        cli_error(bs->ctx,
                  "node %s does not apply %s (its apply.tables in %s): its "
                  "rows there are not the set's to copy; bootstrap from a "
                  "peer that applies every table of node %s",
                  from->node_id, tc.missing, bs->peer.config_path, to->node_id);
        return CLI_EXIT_CONFIG;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Step 1 and 2: the broker                                                  */

/* Declares the new node's queue (and what it hangs on), then sends a marker
 * through the peer's queue: once the peer's consumer has recorded it, every
 * change queued for the peer before the bind is committed there (wait_peer),
 * so none can be missing from both the snapshot and the new queue. */
static int prepare_broker(bootstrap *bs)
{
    const ds_config *to = &bs->ctx->cfg;
    char queue[128], peer_queue[128];
    uint32_t ready = 0, consumers = 0;
    cli_broker b;
    int rc;

    ds__topology_node_queue(to->node_id, queue, sizeof queue);
    ds__topology_node_queue(bs->peer.cfg.node_id, peer_queue,
                            sizeof peer_queue);
    rc = cli_broker_open(&b, bs->ctx, bs->err, sizeof bs->err);
    if (rc == 0)
        rc = ds__topology_declare_exchanges(&b.amqp, to, bs->err,
                                            sizeof bs->err);
    if (rc == 0 && to->archive_enabled)
        rc = ds__topology_declare_archive(&b.amqp, to, bs->err, sizeof bs->err);
    if (rc == 0)
        rc = ds__topology_declare_node(&b.amqp, to, to->node_id, NULL, bs->err,
                                       sizeof bs->err);
    if (rc == 0)
        rc = cli_queue_inspect(&b, queue, &ready, &consumers, bs->err,
                               sizeof bs->err);
    if (rc == 0 && consumers > 0)
        rc = ds__seterr(bs->err, sizeof bs->err, DS_ESTATE,
                        "queue %s has %u consumer%s: stop datasync-consumer "
                        "on node %s during the copy",
                        queue, consumers, consumers == 1 ? "" : "s",
                        to->node_id);
    if (rc == 0) {
        printf("bootstrap: queue %s is bound and keeps every change from now "
               "on (%u waiting)\n",
               queue, ready);
        rc = cli_queue_inspect(&b, peer_queue, &ready, &consumers, bs->err,
                               sizeof bs->err);
    }
    if (rc == 0 && consumers == 0)
        rc = ds__seterr(bs->err, sizeof bs->err, DS_ESTATE,
                        "the peer's queue %s has no consumer: start "
                        "datasync-consumer on node %s first (its unapplied "
                        "changes would be missing on node %s)",
                        peer_queue, bs->peer.cfg.node_id, to->node_id);
    if (rc == 0)
        rc = cli_marker_send(&b, peer_queue, "bootstrap of a new node",
                             bs->marker, bs->err, sizeof bs->err);
    cli_broker_close(&b);
    return rc;
}

/* Waits until the peer's consumer recorded the marker (it does so after
 * committing the batches before it, and before acking), at most
 * --peer-wait seconds. */
static int wait_peer(bootstrap *bs)
{
    char sql[200];
    uint64_t deadline = ds__mono_ms() + (uint64_t)bs->peer_wait_s * 1000;

    snprintf(sql, sizeof sql,
             "SELECT 1 FROM datasync_versions WHERE tbl = '" DS_MARKER_TBL
             "' AND pk = '%s'",
             bs->marker);
    while (!cli_interrupted()) {
        MYSQL_RES *res;
        bool seen;

        /* A fresh read view each time: the session is REPEATABLE READ. */
        mysql_rollback(bs->src);
        if (mysql_query(bs->src, sql) != 0 ||
            !(res = mysql_store_result(bs->src)))
            return ds__mysql_error(bs->src, "waiting for the peer", NULL,
                                   bs->err, sizeof bs->err);
        seen = mysql_num_rows(res) > 0;
        mysql_free_result(res);
        if (seen) {
            printf("bootstrap: node %s has applied everything queued before "
                   "the bind\n",
                   bs->peer.cfg.node_id);
            return 0;
        }
        if (ds__mono_ms() > deadline)
            return ds__seterr(bs->err, sizeof bs->err, DS_ETIMEOUT,
                              "node %s did not apply its queue up to the "
                              "marker %s within %d s: is its datasync-consumer "
                              "keeping up (and of this version)?",
                              bs->peer.cfg.node_id, bs->marker,
                              bs->peer_wait_s);
        cli_sleep_ms(100);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Step 3: the databases                                                     */

/* A table's columns that take values (generated ones do not), in order.
 * By the generation expression, as the consumer's catalogue tells them:
 * MySQL 8 also says DEFAULT_GENERATED in EXTRA for a column with an
 * expression default (CURRENT_TIMESTAMP), which must be copied. */
static int table_columns(MYSQL *db, const char *schema, const char *table,
                         char ***cols, size_t *n, char *err, size_t errlen)
{
    char sql[512], esc_schema[130];
    MYSQL_RES *res;
    MYSQL_ROW row;
    int rc = 0;

    *cols = NULL;
    *n = 0;
    mysql_real_escape_string(db, esc_schema, schema, strlen(schema));
    /* table passed check_tables: [A-Za-z_][A-Za-z0-9_]*, safe in quotes. */
    snprintf(sql, sizeof sql,
             "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE "
             "TABLE_SCHEMA = '%s' AND TABLE_NAME = '%s' AND "
             "IFNULL(GENERATION_EXPRESSION, '') = '' ORDER BY "
             "ORDINAL_POSITION",
             esc_schema, table);
    if (mysql_query(db, sql) != 0 || !(res = mysql_store_result(db)))
        return ds__mysql_error(db, "reading the catalogue", NULL, err, errlen);
    *cols = calloc(mysql_num_rows(res) + 1, sizeof **cols);
    while (*cols && rc == 0 && (row = mysql_fetch_row(res)) != NULL) {
        (*cols)[*n] = strdup(row[0]);
        if (!(*cols)[(*n)++])
            rc = ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    }
    if (!*cols)
        rc = ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    mysql_free_result(res);
    mysql_rollback(db);
    return rc;
}

static void free_columns(char **cols, size_t n)
{
    for (size_t i = 0; cols && i < n; i++)
        free(cols[i]);
    free(cols);
}

/* Both sides have the table, and the new server every column the peer
 * fills. */
static int check_table(bootstrap *bs, const char *table)
{
    char **src = NULL, **dst = NULL;
    size_t nsrc = 0, ndst = 0;
    int rc;

    rc = table_columns(bs->src, bs->peer.cfg.mysql_database, table, &src, &nsrc,
                       bs->err, sizeof bs->err);
    if (rc == 0)
        rc = table_columns(bs->dst, bs->ctx->cfg.mysql_database, table, &dst,
                           &ndst, bs->err, sizeof bs->err);
    if (rc == 0 && nsrc == 0)
        rc = ds__seterr(bs->err, sizeof bs->err, DS_ENOTFOUND,
                        "table %s does not exist in the peer's database %s",
                        table, bs->peer.cfg.mysql_database);
    else if (rc == 0 && ndst == 0)
        rc = ds__seterr(bs->err, sizeof bs->err, DS_ENOTFOUND,
                        "table %s does not exist in the new server's "
                        "database %s: create the schema first (mysqldump "
                        "--no-data on the peer)",
                        table, bs->ctx->cfg.mysql_database);
    for (size_t i = 0; rc == 0 && i < nsrc; i++) {
        bool found = false;
        for (size_t j = 0; j < ndst && !found; j++)
            found = strcmp(src[i], dst[j]) == 0;
        if (!found)
            rc = ds__seterr(bs->err, sizeof bs->err, DS_ECOLUMN,
                            "table %s: column %s of the peer is missing on "
                            "the new server",
                            table, src[i]);
    }
    free_columns(src, nsrc);
    free_columns(dst, ndst);
    return rc;
}

typedef struct table_step {
    bootstrap *bs;
    int (*fn)(bootstrap *bs, const char *table);
} table_step;

static int table_word(const char *word, size_t len, void *ctx)
{
    table_step *step = ctx;
    char table[65];

    snprintf(table, sizeof table, "%.*s", (int)len, word);
    return step->fn(step->bs, table);
}

/* Runs fn for each table of the new server's apply.tables, in order, until
 * one fails. */
static int each_table(bootstrap *bs, int (*fn)(bootstrap *, const char *))
{
    table_step step = {bs, fn};
    return ds__config_each_word(bs->ctx->cfg.apply_tables, table_word, &step);
}

static int begin_snapshot(bootstrap *bs)
{
    static const char *const snapshot[] = {
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    };
    int rc = 0;

    mysql_rollback(bs->src);
    for (size_t i = 0; rc == 0 && i < sizeof snapshot / sizeof *snapshot; i++)
        rc = ds__mysql_exec(bs->src, snapshot[i], bs->err, sizeof bs->err);
    return rc;
}

static int open_databases(bootstrap *bs)
{
    int rc;

    rc = ds__mysql_connect(&bs->src, &bs->peer.cfg, bs->err, sizeof bs->err);
    if (rc == 0)
        rc =
            ds__mysql_connect(&bs->dst, &bs->ctx->cfg, bs->err, sizeof bs->err);
    /* The new server: metadata tables, and rows in any table order. */
    if (rc == 0)
        rc = ds__mysql_exec_script(bs->dst, DS_META_SQL, bs->err,
                                   sizeof bs->err);
    if (rc == 0)
        rc = ds__mysql_exec(bs->dst, STATE_SQL, bs->err, sizeof bs->err);
    if (rc == 0)
        rc = ds__mysql_exec(bs->dst, "SET SESSION foreign_key_checks = 0",
                            bs->err, sizeof bs->err);
    if (rc == 0 && bs->fresh)
        rc = ds__mysql_exec(bs->dst, "DELETE FROM datasync_bootstrap", bs->err,
                            sizeof bs->err);
    if (rc == 0 && mysql_commit(bs->dst) != 0)
        rc = ds__mysql_error(bs->dst, "COMMIT", NULL, bs->err, sizeof bs->err);
    if (rc == 0)
        rc = each_table(bs, check_table);
    /* The peer's versions are copied with its rows. */
    if (rc == 0)
        rc = ds__mysql_exec(bs->src, "SELECT 1 FROM datasync_versions LIMIT 0",
                            bs->err, sizeof bs->err);
    return rc;
}

/* Whether a run before this one finished table. */
static int table_done(bootstrap *bs, const char *table, bool *done)
{
    char sql[160];
    MYSQL_RES *res;

    snprintf(sql, sizeof sql,
             "SELECT 1 FROM datasync_bootstrap WHERE tbl = '%s'", table);
    if (mysql_query(bs->dst, sql) != 0 || !(res = mysql_store_result(bs->dst)))
        return ds__mysql_error(bs->dst, "reading datasync_bootstrap", NULL,
                               bs->err, sizeof bs->err);
    *done = mysql_num_rows(res) > 0;
    mysql_free_result(res);
    return 0;
}

static uint64_t count_rows(bootstrap *bs, const char *quoted)
{
    char sql[160];
    MYSQL_RES *res;
    MYSQL_ROW row;
    uint64_t n = 0;

    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", quoted);
    if (mysql_query(bs->src, sql) == 0 && (res = mysql_store_result(bs->src))) {
        if ((row = mysql_fetch_row(res)) && row[0])
            n = strtoull(row[0], NULL, 10);
        mysql_free_result(res);
    }
    return n; /* only for the progress line: 0 shows no total */
}

static void on_rows(void *ctx, uint64_t rows)
{
    bootstrap *bs = ctx;
    char extra[96];

    snprintf(extra, sizeof extra, " of %s", bs->table);
    cli_progress_draw(&bs->pg, rows, extra, false);
}

/* The new server's copy of table is replaced: rows a previous, interrupted
 * run copied from an older snapshot must not outlive their deletes. */
static int clear_target(bootstrap *bs, const char *table, const char *quoted)
{
    char sql[200];

    snprintf(sql, sizeof sql, "TRUNCATE TABLE %s", quoted);
    if (ds__mysql_exec(bs->dst, sql, bs->err, sizeof bs->err) != 0) {
        snprintf(sql, sizeof sql, "DELETE FROM %s", quoted);
        if (ds__mysql_exec(bs->dst, sql, bs->err, sizeof bs->err) != 0)
            return DS_EMYSQL;
    }
    snprintf(sql, sizeof sql, "DELETE FROM datasync_versions WHERE tbl = '%s'",
             table);
    return ds__mysql_exec(bs->dst, sql, bs->err, sizeof bs->err);
}

static int copy_table(bootstrap *bs, const char *table)
{
    static const char *const vcols[] = {"tbl",    "pk",      "hlc",
                                        "origin", "deleted", "applied"};
    char quoted[80], select[8192], sql[300];
    size_t qlen = 0, slen;
    char **cols = NULL;
    size_t ncols = 0;
    uint64_t rows = 0, versions = 0;
    bool done = false;
    int rc;

    rc = table_done(bs, table, &done);
    if (rc || done) {
        if (done) {
            printf("bootstrap: table %s: copied by an earlier run, kept\n",
                   table);
            bs->tables_kept++;
        }
        return rc;
    }
    quoted[0] = '\0';
    ds__mysql_quote_ident(quoted, sizeof quoted, &qlen, table);
    rc = table_columns(bs->dst, bs->ctx->cfg.mysql_database, table, &cols,
                       &ncols, bs->err, sizeof bs->err);
    /* The peer's columns, in the new server's order (checked to exist). */
    slen = (size_t)snprintf(select, sizeof select, "SELECT ");
    for (size_t i = 0; rc == 0 && i < ncols; i++) {
        if (i)
            select[slen++] = ',';
        rc = ds__mysql_quote_ident(select, sizeof select, &slen, cols[i]);
    }
    if (rc == 0 && slen + qlen + 8 < sizeof select)
        snprintf(select + slen, sizeof select - slen, " FROM %s", quoted);
    else if (rc == 0)
        rc = ds__seterr(bs->err, sizeof bs->err, DS_EINVAL,
                        "table %s: too many columns", table);
    if (rc == 0)
        rc = clear_target(bs, table, quoted);
    cli_copy cp = {bs->src, bs->dst, on_rows, bs};
    bs->table = table;
    cli_progress_start(&bs->pg, "rows", count_rows(bs, quoted));
    if (rc == 0)
        rc = cli_copy_query(&cp, select, table, (const char *const *)cols,
                            ncols, &rows, bs->err, sizeof bs->err);
    cli_progress_end(&bs->pg);
    /* The versions of exactly these rows: same snapshot. Applied = 1: on
     * the new server the copy wrote every row, none is its application's. */
    snprintf(sql, sizeof sql,
             "SELECT tbl, pk, hlc, origin, deleted, 1 FROM datasync_versions "
             "WHERE tbl = '%s'",
             table);
    cp.progress = NULL;
    if (rc == 0)
        rc = cli_copy_query(&cp, sql, "datasync_versions", vcols, 6, &versions,
                            bs->err, sizeof bs->err);
    snprintf(sql, sizeof sql,
             "INSERT INTO datasync_bootstrap (tbl, peer, rows_copied, "
             "versions_copied) VALUES ('%s', '%s', %llu, %llu)",
             table, bs->peer.cfg.node_id, (unsigned long long)rows,
             (unsigned long long)versions);
    if (rc == 0)
        rc = ds__mysql_exec(bs->dst, sql, bs->err, sizeof bs->err);
    if (rc == 0 && mysql_commit(bs->dst) != 0)
        rc = ds__mysql_error(bs->dst, "COMMIT", NULL, bs->err, sizeof bs->err);
    if (rc == 0) {
        char r[32], v[32];
        uint64_t ms = ds__mono_ms() - bs->pg.start_ms;
        printf("bootstrap: table %s: %s rows and %s versions in %.1f s "
               "(%.0f rows/s)\n",
               table, cli_thousands(rows, r, sizeof r),
               cli_thousands(versions, v, sizeof v), ms / 1000.0,
               ms ? rows * 1000.0 / ms : 0.0);
        bs->tables_copied++;
        bs->rows += rows;
        bs->versions += versions;
    }
    free_columns(cols, ncols);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */

/* A finished run forgets which tables it copied: they are kept only for a
 * run interrupted and run again. Kept after success, they would make a
 * later rebuild of this server (its database restored from a backup that
 * holds them) skip tables it no longer has as the peer does. */
static void forget_finished(bootstrap *bs)
{
    if (ds__mysql_exec(bs->dst, "DELETE FROM datasync_bootstrap", bs->err,
                       sizeof bs->err) != 0 ||
        mysql_commit(bs->dst) != 0)
        cli_warn(bs->ctx,
                 "could not clear datasync_bootstrap on node %s (%s): a "
                 "later bootstrap of it needs --fresh",
                 bs->ctx->cfg.node_id, bs->err);
}

/* A change the peer dead-lettered before the marker is in neither the copy
 * nor the new queue: say so, and how to send it to both. */
static void warn_peer_dead_letters(bootstrap *bs)
{
    char dead[128];
    uint32_t ready = 0, consumers = 0;
    cli_broker b;

    ds__topology_dead_queue(bs->peer.cfg.node_id, dead, sizeof dead);
    if (cli_broker_open(&b, bs->ctx, bs->err, sizeof bs->err) != 0 ||
        cli_queue_inspect(&b, dead, &ready, &consumers, bs->err,
                          sizeof bs->err) != 0) {
        cli_warn(bs->ctx, "could not read the peer's dead letters (%s): %s",
                 dead, bs->err);
    } else if (ready > 0) {
        cli_warn(bs->ctx,
                 "%s holds %u dead letter%s: changes node %s could not apply "
                 "are in neither the copy nor node %s's queue. Once their "
                 "cause is fixed, send them to every node: datasync dlq "
                 "export --node %s FILE, datasync replay FILE, then datasync "
                 "dlq purge --node %s --from FILE --yes",
                 dead, ready, ready == 1 ? "" : "s", bs->peer.cfg.node_id,
                 bs->ctx->cfg.node_id, bs->peer.cfg.node_id,
                 bs->peer.cfg.node_id);
    }
    cli_broker_close(&b);
}

static int run(bootstrap *bs)
{
    int rc = check_configs(bs);

    if (rc)
        return rc;
    rc = open_databases(bs);
    if (rc == 0 && !cli_interrupted())
        rc = prepare_broker(bs);
    if (rc == 0 && !cli_interrupted())
        rc = wait_peer(bs);
    if (rc == 0 && !cli_interrupted())
        rc = begin_snapshot(bs);
    if (rc == 0 && !cli_interrupted())
        rc = each_table(bs, copy_table);
    if (rc < 0) {
        cli_error(bs->ctx, "%s", bs->err);
        return cli_exit_code(rc);
    }
    if (cli_interrupted()) {
        cli_error(bs->ctx, "interrupted: run the same command again to go on "
                           "(finished tables are kept)");
        return CLI_EXIT_INTERRUPTED;
    }
    forget_finished(bs);
    warn_peer_dead_letters(bs);
    char r[32], v[32];
    printf("bootstrap: done: %llu table%s copied (%s rows, %s versions), "
           "%llu kept, from node %s. Start datasync-consumer on node %s: it "
           "applies the changes queued since the copy began.\n",
           (unsigned long long)bs->tables_copied,
           bs->tables_copied == 1 ? "" : "s",
           cli_thousands(bs->rows, r, sizeof r),
           cli_thousands(bs->versions, v, sizeof v),
           (unsigned long long)bs->tables_kept, bs->peer.cfg.node_id,
           bs->ctx->cfg.node_id);
    return CLI_EXIT_OK;
}

int cli_cmd_bootstrap(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"fresh", no_argument, NULL, 'F'},
        {"peer-wait", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    bootstrap *bs = calloc(1, sizeof *bs);
    char *end;
    int c, rc;

    if (!bs) {
        cli_error(ctx, "out of memory");
        return CLI_EXIT_FAILURE;
    }
    bs->ctx = ctx;
    bs->peer.cmd = ctx->cmd;
    bs->peer_wait_s = 60;
    while ((c = cli_getopt(ctx, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'f':
            bs->peer.config_arg = optarg;
            break;
        case 't':
            ctx->config_arg = optarg;
            break;
        case 'F':
            bs->fresh = true;
            break;
        case 'w':
            bs->peer_wait_s = (int)strtol(optarg, &end, 10);
            if (*end || bs->peer_wait_s < 1 || bs->peer_wait_s > 86400) {
                rc = cli_usage_error(ctx,
                                     "--peer-wait: '%s' is not a number of "
                                     "seconds (1..86400)",
                                     optarg);
                goto out;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            rc = CLI_EXIT_OK;
            goto out;
        default:
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
    if (optind < argc) {
        rc = cli_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!bs->peer.config_arg) {
        rc = cli_usage_error(ctx, "which peer? --from PEER.conf is required");
        goto out;
    }
    rc = cli_config(ctx);
    if (rc == 0)
        rc = cli_config(&bs->peer);
    if (rc == 0) {
        cli_catch_interrupts();
        rc = run(bs);
    }
out:
    if (bs->src)
        mysql_close(bs->src);
    if (bs->dst)
        mysql_close(bs->dst);
    free(bs);
    return rc;
}
