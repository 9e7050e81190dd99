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
    "On a terminal a progress line shows done/total, rate and time left.\n"
    "Exit status 0 when every event was confirmed by the broker, 6 when some\n"
    "were not (spooled, nacked, unroutable, unanswered, or skipped).\n";

/* ------------------------------------------------------------------------ */
/* Progress and rate                                                         */

typedef struct progress {
    bool on;
    uint64_t total;
    uint64_t start_ms, drawn_ms;
} progress;

static void progress_draw(progress *pg, uint64_t done, bool force)
{
    uint64_t now = ds__mono_ms(), elapsed, rate, left;

    if (!pg->on || (!force && now - pg->drawn_ms < 200))
        return;
    pg->drawn_ms = now;
    elapsed = now - pg->start_ms;
    rate = elapsed ? done * 1000u / elapsed : 0;
    left = rate && pg->total > done ? (pg->total - done) / rate : 0;
    fprintf(stderr, "\r%llu/%llu events, %llu/s, %llu:%02llu left\033[K",
            (unsigned long long)done, (unsigned long long)pg->total,
            (unsigned long long)rate, (unsigned long long)(left / 60),
            (unsigned long long)(left % 60));
}

static void progress_end(progress *pg)
{
    if (pg->on)
        fputs("\r\033[K", stderr);
}

/* When event number i (from 0) may go out at `rate` per second. */
static uint64_t rate_slot(uint64_t start_ms, unsigned long rate, uint64_t i)
{
    return rate ? start_ms + i * 1000u / rate : 0;
}

/* ------------------------------------------------------------------------ */
/* The run                                                                   */

struct run {
    cli_ctx *ctx;
    unsigned long rate;
    uint64_t sent;
    progress pg;
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
    uint64_t slot = rate_slot(r->pg.start_ms, r->rate, r->sent);
    amqp_basic_properties_t props;
    amqp_table_entry_t header;
    size_t len;
    char *body;
    int rc;

    while (ds__mono_ms() < slot && !cli_interrupted()) {
        rc = cli_pub_pump(&r->pub, (int)(slot - ds__mono_ms()), r->err,
                          sizeof r->err);
        if (rc < 0)
            return rc;
        progress_draw(&r->pg, pub_done(&r->pub), false);
    }
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
    progress_draw(&r->pg, pub_done(&r->pub), false);
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
    r->pg.start_ms = ds__mono_ms();
    rc = cli_input_each(in, emit_to_queue, r);
    /* Whatever went out is waited for, even after a read error. */
    if (rc >= 0) {
        int frc = cli_pub_finish(&r->pub, r->err, sizeof r->err);
        if (frc < 0)
            rc = frc;
    }
    cli_pub_close(&r->pub, rc < 0 ? rc : DS_ETIMEOUT);
    progress_end(&r->pg);
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
    uint64_t slot = rate_slot(r->pg.start_ms, r->rate, r->sent);
    int rc;

    while (ds__mono_ms() < slot && !cli_interrupted()) {
        uint64_t left = slot - ds__mono_ms();
        cli_sleep_ms(left < 200 ? left : 200);
        progress_draw(&r->pg, cli_producer_answered(&r->cp, r->sent), false);
    }
    if (cli_interrupted())
        return 0; /* the line loop stops too */
    rc = ds_emit_event(r->cp.p, it->text);
    if (rc < 0) {
        progress_end(&r->pg);
        cli_error(r->ctx, "line %zu: %s", it->line,
                  ds_producer_errmsg(r->cp.p));
        return cli_exit_code(rc);
    }
    r->sent++;
    progress_draw(&r->pg, cli_producer_answered(&r->cp, r->sent), false);
    return 0;
}

static void tick(void *ctx)
{
    struct run *r = ctx;

    progress_draw(&r->pg, cli_producer_answered(&r->cp, r->sent), false);
}

static int replay_to_all(struct run *r, cli_input *in)
{
    int rc, flush_rc, code;

    rc = cli_producer_open(&r->cp, r->ctx, DS_MODE_ASYNC, true);
    if (rc)
        return rc;
    r->pg.start_ms = ds__mono_ms();
    rc = cli_input_each(in, emit_to_all, r);
    flush_rc = cli_producer_flush(&r->cp, r->sent, tick, r);
    progress_draw(&r->pg, cli_producer_answered(&r->cp, r->sent), true);
    progress_end(&r->pg);
    code = cli_producer_close(&r->cp, "replay", r->sent, in->invalid, flush_rc);
    return rc ? rc : code;
}

int cli_cmd_replay(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"node", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"skip-invalid", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct run *r = calloc(1, sizeof *r);
    const char *node = NULL;
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
        case 'h':
            fputs(usage, stdout);
            rc = CLI_EXIT_OK;
            goto out;
        default:
            rc = CLI_EXIT_USAGE;
            goto out;
        }
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
        r->pg.on = cli_interactive();
        r->pg.total = in.valid;
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
    free(r);
    return rc;
}
