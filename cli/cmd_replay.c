/* cmd_replay.c: datasync replay: whole events again, ids and versions kept, to
 * every node or to one node's queue, with rate and progress. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ids.h"
#include "topology.h"

static const char usage[] =
    "Usage: datasync [-c FILE] replay [--node ID] [--rate N] "
    "[--skip-invalid] FILE|-\n"
    "       datasync [-c FILE] replay --since TIME [--until TIME] "
    "[--table T]...\n"
    "                (--node ID | --nodes a,b | --all-nodes | --dry-run) "
    "[--rate N]\n"
    "\n"
    "Publishes whole events (one JSON event per line, as 'dlq export' writes\n"
    "them) again, keeping their ids, origins and versions, so a consumer\n"
    "applies each at most once: replaying the same file twice changes nothing\n"
    "the second time. Every line is checked first; an invalid one stops the\n"
    "replay before anything is sent.\n"
    "\n"
    "  --node ID        only to node ID's queue datasync.ID (through the\n"
    "                   default exchange); without it, through libdatasync to\n"
    "                   the exchange, i.e. to every node\n"
    "  --rate N         at most N events per second\n"
    "  --skip-invalid   report and skip invalid lines, replay the others\n"
    "  -h, --help       this help\n"
    "\n"
    "With --since, the events come from the archive stream\n"
    "<exchange>.archive instead (datasync setup declares it unless\n"
    "archive.enabled is false): those emitted in [--since, --until), as\n"
    "their hlc says, of the --table tables (default: all), sent unchanged\n"
    "to the chosen node queues only, never to the exchange's change key, so\n"
    "neither the archive nor other servers see them again. A server applies\n"
    "only what it has not applied yet.\n"
    "\n"
    "  --since TIME     RFC 3339 (2026-12-01T10:00:00Z, ...+01:00, or a date\n"
    "                   for midnight UTC) or an age: -90s, -30m, -2h, -7d, "
    "-1w\n"
    "  --until TIME     the end of the window, excluded (default: now)\n"
    "  --table T        only table T; may be given several times\n"
    "  --nodes a,b      several nodes' queues\n"
    "  --all-nodes      every node queue (bound with <routing_key>.replay)\n"
    "  --dry-run        count the window's changes per table and op, send\n"
    "                   nothing\n"
    "\n"
    "On a terminal a progress line shows done/total, rate and time left.\n"
    "Exit status 0 when every event was confirmed by the broker, 6 when some\n"
    "were not (spooled, nacked, unroutable, unanswered, or skipped), 3 when\n"
    "the archive is off in the configuration, 7 when a queue or the archive\n"
    "does not exist (run datasync setup).\n";

#define TIME_HELP                                                              \
    "%s: '%s' is not a time: RFC 3339 such as 2026-12-01T10:00:00Z, or an "    \
    "age such as -2h (s, m, h, d, w)"

/* ------------------------------------------------------------------------ */
/* The run                                                                   */

struct run {
    cli_ctx *ctx;
    unsigned long rate;
    uint64_t sent;
    cli_progress pg;
    /* Through libdatasync. */
    cli_producer cp;
    /* To one queue. */
    cli_broker b;
    cli_pub pub;
    char queue[128];
    char err[DS_ERRMSG_SIZE];
};

static uint64_t pub_done(const cli_pub *p)
{
    return p->confirmed + p->nacked + p->unroutable + p->unanswered;
}

static void on_settled(void *ctx, uint64_t cookie, const char *id, int result)
{
    struct run *r = ctx;

    if (result == 0)
        return;
    if (r->pg.on)
        fputs("\r\033[K", stderr);
    cli_error(r->ctx, "line %llu: event %s not confirmed: %s",
              (unsigned long long)cookie, id,
              result == DS_EUNROUTABLE ? "unroutable (no such queue)"
                                       : ds_strerror(result));
}

static int emit_to_queue(cli_item *it, void *ctx)
{
    struct run *r = ctx;
    amqp_basic_properties_t props;
    amqp_table_entry_t header;
    size_t len;
    char *body;
    int rc = cli_pub_pump_until(&r->pub,
                                cli_rate_slot(r->pg.start_ms, r->rate, r->sent),
                                r->err, sizeof r->err);

    if (rc < 0)
        return rc;
    if (cli_interrupted())
        return 0; /* the line loop stops too */
    body = ds__event_encode(&it->ev, &len);
    if (!body)
        return ds__seterr(r->err, sizeof r->err, DS_ENOMEM, "out of memory");
    ds__amqp_event_props(&props, &header, it->ev.id, it->ev.origin);
    rc = cli_pub_send(&r->pub, "", r->queue, &props, (amqp_bytes_t){len, body},
                      it->line, r->err, sizeof r->err);
    free(body);
    if (rc == 0)
        r->sent++;
    cli_progress_draw(&r->pg, pub_done(&r->pub), NULL, false);
    return rc;
}

static int replay_to_queue(struct run *r, cli_input *in, const char *node)
{
    int rc, code;

    ds__topology_node_queue(node, r->queue, sizeof r->queue);
    rc = cli_broker_open(&r->b, r->ctx, r->err, sizeof r->err);
    if (rc == 0)
        rc = cli_queue_inspect(&r->b, r->queue, NULL, NULL, r->err,
                               sizeof r->err);
    if (rc == 0)
        rc = cli_pub_open(&r->pub, &r->b, 256,
                          r->ctx->cfg.producer_confirm_timeout_ms, on_settled,
                          r, r->err, sizeof r->err);
    if (rc < 0) {
        cli_error(r->ctx, "%s", r->err);
        cli_broker_close(&r->b);
        return cli_exit_code(rc);
    }
    rc = cli_input_each(in, emit_to_queue, r);
    /* Whatever went out is waited for, even after a read error. */
    if (rc >= 0) {
        int frc = cli_pub_finish(&r->pub, r->err, sizeof r->err);
        if (frc < 0)
            rc = frc;
    }
    cli_pub_close(&r->pub, rc < 0 ? rc : DS_ETIMEOUT);
    cli_progress_end(&r->pg);
    cli_broker_close(&r->b);

    printf("replay: %llu event%s to queue %s: confirmed %llu, nacked %llu, "
           "unroutable %llu, unanswered %llu, skipped %zu\n",
           (unsigned long long)r->sent, r->sent == 1 ? "" : "s", r->queue,
           (unsigned long long)r->pub.confirmed,
           (unsigned long long)r->pub.nacked,
           (unsigned long long)r->pub.unroutable,
           (unsigned long long)r->pub.unanswered, in->invalid);
    fflush(stdout);
    if (rc < 0) {
        cli_error(r->ctx, "%s", r->err);
        return cli_exit_code(rc);
    }
    if (rc > 0)
        return rc;
    code = r->pub.confirmed == r->sent && in->invalid == 0 ? CLI_EXIT_OK
                                                           : CLI_EXIT_PARTIAL;
    return code;
}

static int emit_to_all(cli_item *it, void *ctx)
{
    struct run *r = ctx;
    uint64_t slot = cli_rate_slot(r->pg.start_ms, r->rate, r->sent);
    int rc;

    while (ds__mono_ms() < slot && !cli_interrupted()) {
        uint64_t left = slot - ds__mono_ms();
        cli_sleep_ms(left < 200 ? left : 200);
        cli_progress_draw(&r->pg, cli_producer_answered(&r->cp, r->sent), NULL,
                          false);
    }
    if (cli_interrupted())
        return 0; /* the line loop stops too */
    rc = ds_emit_event(r->cp.p, it->text);
    if (rc < 0) {
        cli_progress_end(&r->pg);
        return cli_producer_emit_failed(&r->cp, it->line, rc, &r->sent);
    }
    r->sent++;
    cli_progress_draw(&r->pg, cli_producer_answered(&r->cp, r->sent), NULL,
                      false);
    return 0;
}

static void tick(void *ctx)
{
    struct run *r = ctx;

    cli_progress_draw(&r->pg, cli_producer_answered(&r->cp, r->sent), NULL,
                      false);
}

static int replay_to_all(struct run *r, cli_input *in)
{
    int rc, flush_rc, code;

    rc = cli_producer_open(&r->cp, r->ctx, DS_MODE_ASYNC, true);
    if (rc)
        return rc;
    rc = cli_input_each(in, emit_to_all, r);
    flush_rc = cli_producer_flush(&r->cp, r->sent, tick, r);
    cli_progress_draw(&r->pg, cli_producer_answered(&r->cp, r->sent), NULL,
                      true);
    cli_progress_end(&r->pg);
    code = cli_producer_close(&r->cp, "replay", r->sent, in->invalid, flush_rc);
    return rc ? rc : code;
}

/* replay --since: checks the options and the window before anything is
 * read or sent. */
static int archive_replay(cli_ctx *ctx, cli_replay_opts *ro, const char *since,
                          const char *until, const char *node,
                          const char *nodes, const char *file)
{
    int64_t now = (int64_t)ds__now_ms();
    int targets = (node != NULL) + (nodes != NULL) + ro->all_nodes;
    int rc;

    if (!since)
        return cli_usage_error(ctx, "--until, --table, --nodes, --all-nodes "
                                    "and --dry-run go with --since");
    if (file)
        return cli_usage_error(ctx, "--since reads the archive, not '%s'",
                               file);
    if (targets > 1 || (targets == 1 && ro->dry_run))
        return cli_usage_error(ctx, "choose one of --node, --nodes, "
                                    "--all-nodes and --dry-run");
    if (targets == 0 && !ro->dry_run)
        return cli_usage_error(ctx, "to which servers? --node ID, --nodes "
                                    "a,b, --all-nodes, or --dry-run to count");
    if (cli_parse_time(since, now, &ro->since_ms) != 0)
        return cli_usage_error(ctx, TIME_HELP, "--since", since);
    ro->until_ms = now;
    if (until && cli_parse_time(until, now, &ro->until_ms) != 0)
        return cli_usage_error(ctx, TIME_HELP, "--until", until);
    if (ro->since_ms > now)
        return cli_usage_error(ctx, "--since %s is in the future", since);
    if (ro->until_ms > now + 1000)
        return cli_usage_error(ctx, "--until %s is in the future", until);
    if (ro->until_ms <= ro->since_ms)
        return cli_usage_error(ctx, "--until %s is not after --since %s", until,
                               since);
    for (size_t i = 0; i < ro->ntables; i++)
        if (!ds__valid_table_name(ro->tables[i]))
            return cli_usage_error(ctx, "--table '%s' is not a table name",
                                   ro->tables[i]);
    rc = cli_config(ctx);
    if (rc)
        return rc;
    if (!ctx->cfg.archive_enabled) {
        cli_error(ctx,
                  "the archive is off in %s (archive.enabled = false): "
                  "replay --since reads it",
                  cli_config_name(ctx));
        return CLI_EXIT_CONFIG;
    }
    if (node) {
        rc = cli_node(ctx, node, &node);
        if (rc)
            return rc;
        ro->nodes = (char **)&node;
        ro->nnodes = 1;
        return cli_replay_archive(ctx, ro);
    }
    if (nodes) {
        rc = cli_nodes(ctx, nodes, &ro->nodes, &ro->nnodes);
        if (rc)
            return rc;
    }
    rc = cli_replay_archive(ctx, ro);
    if (nodes)
        cli_nodes_free(ro->nodes, ro->nnodes);
    return rc;
}

int cli_cmd_replay(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"node", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"skip-invalid", no_argument, NULL, 's'},
        {"since", required_argument, NULL, 'S'},
        {"until", required_argument, NULL, 'U'},
        {"table", required_argument, NULL, 't'},
        {"nodes", required_argument, NULL, 'N'},
        {"all-nodes", no_argument, NULL, 'A'},
        {"dry-run", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct run *r = calloc(1, sizeof *r);
    const char *node = NULL, *nodes = NULL, *since = NULL, *until = NULL;
    cli_replay_opts ro = {0};
    bool skip_invalid = false;
    cli_input in;
    char *end;
    int c, rc;

    if (!r) {
        cli_error(ctx, "out of memory");
        return CLI_EXIT_FAILURE;
    }
    r->ctx = ctx;
    while ((c = cli_getopt(ctx, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'n':
            node = optarg;
            break;
        case 'r':
            errno = 0;
            r->rate = strtoul(optarg, &end, 10);
            if (errno || *end || r->rate == 0 || optarg[0] == '-' ||
                r->rate > 10000000) {
                rc = cli_usage_error(ctx,
                                     "--rate: '%s' is not a number of events "
                                     "per second (1..10000000)",
                                     optarg);
                goto out;
            }
            break;
        case 's':
            skip_invalid = true;
            break;
        case 'S':
            since = optarg;
            break;
        case 'U':
            until = optarg;
            break;
        case 't': {
            char **more = realloc(ro.tables, (ro.ntables + 1) * sizeof *more);
            if (!more) {
                cli_error(ctx, "out of memory");
                rc = CLI_EXIT_FAILURE;
                goto out;
            }
            ro.tables = more;
            ro.tables[ro.ntables++] = optarg;
            break;
        }
        case 'N':
            nodes = optarg;
            break;
        case 'A':
            ro.all_nodes = true;
            break;
        case 'D':
            ro.dry_run = true;
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
    ro.rate = r->rate;
    if (since || until || ro.ntables || nodes || ro.all_nodes || ro.dry_run) {
        rc = archive_replay(ctx, &ro, since, until, node, nodes,
                            optind < argc ? argv[optind] : NULL);
        goto out;
    }
    if (optind + 1 != argc) {
        rc = cli_usage_error(ctx, optind == argc
                                      ? "which events? give FILE, or - for "
                                        "standard input"
                                      : "one input FILE at most");
        goto out;
    }
    if (node && (rc = cli_node(ctx, node, &node)) != 0)
        goto out;
    rc = cli_config(ctx);
    if (rc)
        goto out;
    rc = cli_input_open(&in, ctx, argv[optind], CLI_KIND_EVENT);
    if (rc)
        goto out;
    rc = cli_input_check(&in);
    if (rc == 0 && in.invalid > 0 && !skip_invalid) {
        cli_error(ctx,
                  "%zu invalid line%s in %s: nothing replayed "
                  "(--skip-invalid replays the valid ones)",
                  in.invalid, in.invalid == 1 ? "" : "s", in.name);
        rc = CLI_EXIT_INPUT;
    }
    if (rc == 0) {
        cli_progress_start(&r->pg, "events", in.valid);
        cli_catch_interrupts();
        rc = node ? replay_to_queue(r, &in, node) : replay_to_all(r, &in);
        if (rc == 0 && cli_interrupted()) {
            cli_error(ctx, "interrupted: the rest of %s was not replayed",
                      in.name);
            rc = CLI_EXIT_INTERRUPTED;
        }
    }
    cli_input_close(&in);
out:
    free(ro.tables);
    free(r);
    return rc;
}
