/* cmd_setup.c: datasync setup: declares the exchanges, the archive stream, and each node's queue and dead-letter queue (idempotent). */
#include "cli.h"
#include "topology.h"

static const char usage[] =
    "Usage: datasync [-c FILE] setup [--nodes a,b,c]\n"
    "\n"
    "Declares on the broker (amqp.url) the topic exchange amqp.exchange, the\n"
    "dead-letter exchange <exchange>.dead, the archive stream\n"
    "<exchange>.archive (unless archive.enabled is false; retention\n"
    "archive.max_age and archive.max_bytes), and for each node its queue\n"
    "datasync.<node> (type amqp.queue_type, bound with amqp.routing_key and\n"
    "<routing_key>.replay) and its dead-letter queue datasync.<node>.dead.\n"
    "Safe to run again: what exists already is left as it is. A queue that\n"
    "exists with other arguments is reported and left alone (exit status 5).\n"
    "\n"
    "  --nodes a,b,c    the nodes (default: node.id of the configuration)\n"
    "  -h, --help       this help\n";

/* The archive first: a node queue made before it would hold changes the
 * archive never saw. */
static int declare_archive(cli_ctx *ctx, cli_broker *b, char *err,
                           size_t errlen)
{
    char stream[300];
    int rc;

    if (!ctx->cfg.archive_enabled) {
        printf("archive: off (archive.enabled = false)\n");
        return 0;
    }
    ds__topology_archive_queue(&ctx->cfg, stream, sizeof stream);
    rc = ds__topology_declare_archive(&b->amqp, &ctx->cfg, err, errlen);
    if (rc == 0) {
        char bytes[40] = "no size limit";
        if (ctx->cfg.archive_max_bytes)
            snprintf(bytes, sizeof bytes, "at most %ld bytes",
                     ctx->cfg.archive_max_bytes);
        printf("archive: stream %s (bound to %s with %s, kept %s, %s): ok\n",
               stream, ctx->cfg.amqp_exchange, ctx->cfg.amqp_routing_key,
               ctx->cfg.archive_max_age, bytes);
    }
    return rc;
}

int cli_cmd_setup(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"nodes", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *list = NULL;
    char err[DS_ERRMSG_SIZE], dead_exchange[300];
    char **nodes = NULL;
    size_t n = 0, failed = 0;
    int c, rc, first_rc = 0;
    cli_broker b = {0};

    while ((c = cli_getopt(ctx, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'n':
            list = optarg;
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

    ds__topology_dead_exchange(&ctx->cfg, dead_exchange, sizeof dead_exchange);
    rc = cli_broker_open(&b, ctx, err, sizeof err);
    if (rc == 0)
        rc =
            ds__topology_declare_exchanges(&b.amqp, &ctx->cfg, err, sizeof err);
    if (rc < 0) {
        cli_error(ctx, "%s", err);
        goto out;
    }
    printf("exchange %s (topic) and %s (direct): ok\n", ctx->cfg.amqp_exchange,
           dead_exchange);
    rc = declare_archive(ctx, &b, err, sizeof err);
    if (rc < 0) {
        cli_error(ctx, "%s", err);
        first_rc = rc;
        ds__amqp_drop(&b.amqp);
    }

    for (size_t i = 0; i < n; i++) {
        char queue[128], dead_queue[128], replay_key[300];

        ds__topology_node_queue(nodes[i], queue, sizeof queue);
        ds__topology_dead_queue(nodes[i], dead_queue, sizeof dead_queue);
        ds__topology_replay_key(&ctx->cfg, replay_key, sizeof replay_key);
        /* A refused declaration closes the channel (and, to be safe, the
         * connection): the next node gets a new one. */
        if (!b.amqp.conn) {
            rc = cli_broker_open(&b, ctx, err, sizeof err);
            if (rc < 0) {
                cli_error(ctx, "%s", err);
                goto out;
            }
        }
        rc = ds__topology_declare_node(&b.amqp, &ctx->cfg, nodes[i], NULL, err,
                                       sizeof err);
        if (rc < 0) {
            cli_error(ctx, "node %s: %s", nodes[i], err);
            ds__amqp_drop(&b.amqp);
            if (!first_rc)
                first_rc = rc;
            failed++;
            continue;
        }
        printf("node %s: queue %s (%s, bound to %s with %s and %s) and "
               "dead-letter queue %s: ok\n",
               nodes[i], queue,
               ctx->cfg.amqp_queue_type == DS_QUEUE_QUORUM ? "quorum"
                                                           : "classic",
               ctx->cfg.amqp_exchange, ctx->cfg.amqp_routing_key, replay_key,
               dead_queue);
    }
    rc = first_rc;
    if (failed)
        cli_error(ctx, "%zu of %zu node%s not set up", failed, n,
                  n == 1 ? "" : "s");

out:
    cli_broker_close(&b);
    cli_nodes_free(nodes, n);
    return cli_exit_code(rc);
}
