/* cmd_status.c: datasync status: per node, queue depth, consumers and dead letters, as a table or JSON. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mysql_util.h"
#include "topology.h"

static const char usage[] =
    "Usage: datasync [-c FILE] status [--nodes a,b,c] [--json]\n"
    "\n"
    "For each node: the messages ready in its queue datasync.<node>, the\n"
    "consumers attached to it (one is active; the others stand by and take\n"
    "over when it leaves; a quorum queue reports its active consumer only),\n"
    "and the messages in its dead-letter queue\n"
    "datasync.<node>.dead. Unacknowledged messages are not shown: AMQP 0-9-1\n"
    "does not report them (the management API does). Then this server's\n"
    "spool (producer.spool_dir): the bytes its applications could not\n"
    "publish yet, and why. A node without a consumer, dead letters, or a\n"
    "spool waiting get a warning, and the exit status 8, so status can serve\n"
    "as a check.\n"
    "\n"
    "  --nodes a,b,c    the nodes (default: node.id of the configuration)\n"
    "  --json           one JSON object on standard output, with each\n"
    "                   node's lag_seconds: 0 when nothing waits beyond what\n"
    "                   its consumer holds; else, for this server's node\n"
    "                   (node.id), how old the last change its consumer\n"
    "                   committed is (from [mysql]); else null\n"
    "  -h, --help       this help\n"
    "\n"
    "Exit status 0, 8 after a warning, 7 when a queue does not exist (run\n"
    "datasync setup).\n";

typedef struct node_status {
    char queue[128], dead_queue[128];
    int queue_rc, dead_rc; /* 0, or why the queue could not be inspected */
    uint32_t ready, consumers, dead;
    char warning[DS_ERRMSG_SIZE];
    /* lag_seconds and where it came from ("queue", "database"); source
     * NULL: unknown, lag_note says why. */
    double lag;
    const char *lag_source;
    char lag_note[DS_ERRMSG_SIZE];
} node_status;

static void inspect(cli_broker *b, const char *node, node_status *st)
{
    char err[DS_ERRMSG_SIZE];

    ds__topology_node_queue(node, st->queue, sizeof st->queue);
    ds__topology_dead_queue(node, st->dead_queue, sizeof st->dead_queue);
    st->queue_rc = cli_queue_inspect(b, st->queue, &st->ready, &st->consumers,
                                     err, sizeof err);
    if (st->queue_rc < 0)
        snprintf(st->warning, sizeof st->warning, "%s", err);
    st->dead_rc =
        cli_queue_inspect(b, st->dead_queue, &st->dead, NULL, err, sizeof err);
    if (st->dead_rc < 0 && st->queue_rc == 0)
        snprintf(st->warning, sizeof st->warning, "%s", err);
    if (st->queue_rc == 0 && st->dead_rc == 0 && st->dead > 0)
        snprintf(st->warning, sizeof st->warning,
                 "%u dead letter%s in %s: datasync dlq list --node %s says "
                 "why",
                 st->dead, st->dead == 1 ? "" : "s", st->dead_queue, node);
    if (st->queue_rc == 0 && st->consumers == 0)
        snprintf(st->warning, sizeof st->warning,
                 "no consumer on %s: is datasync-consumer running on node "
                 "%s?",
                 st->queue, node);
}

/* This server's spool, as its applications' producers left it. */
typedef struct spool_status {
    int rc; /* 0, DS_ENOTFOUND (no spool here), or DS_EIO */
    uint64_t bytes;
    char problem[DS_ERRMSG_SIZE];
    char warning[DS_ERRMSG_SIZE + 1200];
} spool_status;

static void inspect_spool(const cli_ctx *ctx, spool_status *sp)
{
    sp->rc = ds_spool_inspect(ctx->cfg.producer_spool_dir, &sp->bytes,
                              sp->problem, sizeof sp->problem);
    if (sp->rc == 0 && sp->bytes > 0)
        snprintf(sp->warning, sizeof sp->warning,
                 "spool %s holds %llu bytes of changes not yet published%s%s",
                 ctx->cfg.producer_spool_dir, (unsigned long long)sp->bytes,
                 sp->problem[0] ? "; last broker problem: " : "", sp->problem);
}

/* The node queue has a single active consumer: the others wait. */
static uint32_t standby_count(const node_status *st)
{
    return st->consumers > 1 ? st->consumers - 1 : 0;
}

/*
 * The emit time of the change this node's consumer committed last (the
 * version row stored last; markers are not changes), against the
 * database's clock, which stamped it: how far behind the node is at most,
 * while changes wait. Two index walks (deleted, updated_at), never a scan.
 * Returns 0 with *lag_s, DS_ENOTFOUND when nothing was applied yet, or a
 * DS_E code with err.
 */
static int last_applied_age(const ds_config *cfg, double *lag_s, char *err,
                            size_t errlen)
{
    static const char sql[] =
        "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - emit_ms "
        "FROM ((SELECT updated_at, hlc >> 16 AS emit_ms FROM "
        "datasync_versions WHERE deleted = 0 AND tbl <> '" DS_MARKER_TBL "' "
        "ORDER BY updated_at DESC LIMIT 1) UNION ALL (SELECT updated_at, "
        "hlc >> 16 FROM datasync_versions WHERE deleted = 1 AND tbl <> "
        "'" DS_MARKER_TBL "' ORDER BY updated_at DESC LIMIT 1)) AS last "
        "ORDER BY updated_at DESC LIMIT 1";
    MYSQL *db = NULL;
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    int rc = ds__mysql_connect(&db, cfg, err, errlen);

    if (rc)
        return rc;
    if (mysql_real_query(db, sql, sizeof sql - 1) != 0 ||
        !(res = mysql_store_result(db))) {
        rc = ds__mysql_error(db, "datasync_versions", NULL, err, errlen);
        goto out;
    }
    row = mysql_fetch_row(res);
    if (!row || !row[0]) {
        rc = ds__seterr(err, errlen, DS_ENOTFOUND,
                        "no change applied yet in %s.datasync_versions",
                        cfg->mysql_database);
        goto out;
    }
    long long ms = strtoll(row[0], NULL, 10);
    /* A producer's clock ahead of the database's: not behind at all. */
    *lag_s = ms > 0 ? (double)ms / 1000.0 : 0.0;
out:
    mysql_free_result(res);
    mysql_close(db);
    return rc;
}

/* lag_seconds of a node whose queue was inspected (see the usage text). */
static void inspect_lag(const cli_ctx *ctx, const char *node, node_status *st)
{
    char err[DS_ERRMSG_SIZE];

    if (st->queue_rc != 0) {
        snprintf(st->lag_note, sizeof st->lag_note, "queue not inspected");
        return;
    }
    if (st->ready == 0 && st->consumers > 0) {
        st->lag = 0;
        st->lag_source = "queue";
        return;
    }
    if (strcmp(node, ctx->cfg.node_id) != 0) {
        snprintf(st->lag_note, sizeof st->lag_note,
                 "changes wait and node %s's database is not this server's "
                 "([mysql] is node %s's)",
                 node, ctx->cfg.node_id[0] ? ctx->cfg.node_id : "unnamed");
        return;
    }
    if (last_applied_age(&ctx->cfg, &st->lag, err, sizeof err) == 0)
        st->lag_source = "database";
    else
        snprintf(st->lag_note, sizeof st->lag_note, "%s", err);
}

static json_object *count_or_null(int rc, uint32_t n)
{
    return rc == 0 ? json_object_new_int64(n) : NULL;
}

static int print_json(const cli_broker *b, char **nodes, size_t n,
                      const node_status *st, const cli_ctx *ctx,
                      const spool_status *sp)
{
    json_object *root = json_object_new_object(), *list;
    int rc = CLI_EXIT_OK;

    if (!root)
        return CLI_EXIT_FAILURE;
    list = json_object_new_array();
    json_object_object_add(root, "broker", json_object_new_string(b->urls));
    json_object_object_add(root, "nodes", list);
    json_object_object_add(
        root, "unacked_note",
        json_object_new_string("unacked is null: AMQP 0-9-1 does not report "
                               "it (needs the management API)"));
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "node", json_object_new_string(nodes[i]));
        json_object_object_add(o, "queue", json_object_new_string(st[i].queue));
        json_object_object_add(o, "queue_exists",
                               json_object_new_boolean(st[i].queue_rc == 0));
        json_object_object_add(o, "ready",
                               count_or_null(st[i].queue_rc, st[i].ready));
        json_object_object_add(o, "unacked", NULL);
        json_object_object_add(o, "consumers",
                               count_or_null(st[i].queue_rc, st[i].consumers));
        json_object_object_add(
            o, "standby", count_or_null(st[i].queue_rc, standby_count(&st[i])));
        json_object_object_add(o, "dead_letter_queue",
                               json_object_new_string(st[i].dead_queue));
        json_object_object_add(o, "dead_letters",
                               count_or_null(st[i].dead_rc, st[i].dead));
        /* Milliseconds are what the clocks give: no more digits. */
        char lag[32];
        snprintf(lag, sizeof lag, "%.3f", st[i].lag);
        json_object_object_add(
            o, "lag_seconds",
            st[i].lag_source ? json_object_new_double_s(st[i].lag, lag) : NULL);
        json_object_object_add(
            o, "lag_source",
            st[i].lag_source ? json_object_new_string(st[i].lag_source) : NULL);
        if (!st[i].lag_source)
            json_object_object_add(o, "lag_note",
                                   json_object_new_string(st[i].lag_note));
        json_object_object_add(
            o, "warning",
            st[i].warning[0] ? json_object_new_string(st[i].warning) : NULL);
        json_object_array_add(list, o);
    }
    if (sp->rc != DS_ENOTFOUND) {
        json_object *o = json_object_new_object();
        json_object_object_add(
            o, "dir", json_object_new_string(ctx->cfg.producer_spool_dir));
        json_object_object_add(
            o, "bytes",
            sp->rc == 0 ? json_object_new_int64((int64_t)sp->bytes) : NULL);
        json_object_object_add(
            o, "broker_problem",
            sp->problem[0] ? json_object_new_string(sp->problem) : NULL);
        json_object_object_add(root, "spool", o);
    }
    if (puts(json_object_to_json_string_ext(
            root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) <
        0)
        rc = CLI_EXIT_FAILURE;
    json_object_put(root);
    return rc;
}

static void print_table(char **nodes, size_t n, const node_status *st,
                        const cli_ctx *ctx, const spool_status *sp)
{
    printf("%-20s %-30s %10s %10s %10s %12s\n", "NODE", "QUEUE", "READY",
           "UNACKED", "CONSUMERS", "DEAD");
    for (size_t i = 0; i < n; i++) {
        char ready[16] = "-", consumers[16] = "-", dead[16] = "-";

        if (st[i].queue_rc == 0) {
            snprintf(ready, sizeof ready, "%u", st[i].ready);
            snprintf(consumers, sizeof consumers, "%u", st[i].consumers);
        }
        if (st[i].dead_rc == 0)
            snprintf(dead, sizeof dead, "%u", st[i].dead);
        printf("%-20s %-30s %10s %10s %10s %12s\n", nodes[i], st[i].queue,
               ready, "n/a", consumers, dead);
    }
    for (size_t i = 0; i < n; i++)
        if (st[i].queue_rc == 0 && standby_count(&st[i]) > 0)
            printf("%s: 1 consumer active, %u standing by\n", nodes[i],
                   standby_count(&st[i]));
    printf("unacked: n/a (needs the management API)\n");
    if (sp->rc == 0)
        printf("spool %s: %llu bytes waiting%s%s\n",
               ctx->cfg.producer_spool_dir, (unsigned long long)sp->bytes,
               sp->problem[0] ? ", last broker problem: " : "", sp->problem);
}

int cli_cmd_status(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"nodes", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *list = NULL;
    char err[DS_ERRMSG_SIZE];
    char **nodes = NULL;
    size_t n = 0;
    node_status *st = NULL;
    spool_status sp = {0};
    bool json = false;
    cli_broker b = {0};
    int c, rc;

    while ((c = cli_getopt(ctx, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'n':
            list = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
    rc = cli_config(ctx);
    if (rc)
        return rc;
    rc = cli_nodes(ctx, list, &nodes, &n);
    if (rc)
        return rc;
    st = calloc(n, sizeof *st);
    if (!st) {
        cli_error(ctx, "out of memory");
        rc = CLI_EXIT_FAILURE;
        goto out;
    }
    rc = cli_broker_open(&b, ctx, err, sizeof err);
    if (rc < 0) {
        cli_error(ctx, "%s", err);
        rc = cli_exit_code(rc);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        inspect(&b, nodes[i], &st[i]);
        /* A lost connection is not a missing queue: stop there. */
        if (!b.amqp.conn) {
            cli_error(ctx, "node %s: %s", nodes[i], st[i].warning);
            rc = CLI_EXIT_BROKER;
            goto out;
        }
    }
    /* After the broker: the lag may read the database, which the table
     * does not show. */
    for (size_t i = 0; json && i < n; i++)
        inspect_lag(ctx, nodes[i], &st[i]);
    inspect_spool(ctx, &sp);
    rc = json ? print_json(&b, nodes, n, st, ctx, &sp) : CLI_EXIT_OK;
    if (!json)
        print_table(nodes, n, st, ctx, &sp);
    fflush(stdout);
    bool warned = false;
    for (size_t i = 0; i < n; i++) {
        if (st[i].warning[0]) {
            cli_warn(ctx, "node %s: %s", nodes[i], st[i].warning);
            warned = true;
        }
        if (rc == CLI_EXIT_OK && (st[i].queue_rc < 0 || st[i].dead_rc < 0))
            rc = cli_exit_code(st[i].queue_rc < 0 ? st[i].queue_rc
                                                  : st[i].dead_rc);
    }
    if (sp.warning[0]) {
        cli_warn(ctx, "%s", sp.warning);
        warned = true;
    }
    if (rc == CLI_EXIT_OK && warned)
        rc = CLI_EXIT_WARN;

out:
    cli_broker_close(&b);
    free(st);
    cli_nodes_free(nodes, n);
    return rc;
}
