/* replay_archive.c: datasync replay --since: the archive's changes of a time window, filtered, sent again to chosen node queues only. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ids.h"
#include "topology.h"

/* Counts of one table, for --dry-run. */
typedef struct table_count {
    char table[65];
    uint64_t op[3]; /* by ds_op - 1: create, update, delete */
} table_count;

typedef struct archive_run {
    cli_ctx *ctx;
    const cli_replay_opts *o;
    cli_archive ar;
    cli_broker out; /* sending: its own connection */
    cli_pub pub;
    char (*queues)[128]; /* the node queues, or one replay key */
    size_t nqueues;
    char exchange[256]; /* "" for node queues, amqp.exchange for all */
    cli_progress pg;
    uint64_t in_window, invalid, sent;
    table_count *counts;
    size_t ncounts;
    char err[DS_ERRMSG_SIZE];
} archive_run;

static bool table_wanted(const cli_replay_opts *o, const char *table)
{
    if (o->ntables == 0)
        return true;
    for (size_t i = 0; i < o->ntables; i++)
        if (strcmp(o->tables[i], table) == 0)
            return true;
    return false;
}

static int count_change(archive_run *r, const ds_event *ev)
{
    size_t i;

    for (i = 0; i < r->ncounts; i++)
        if (strcmp(r->counts[i].table, ev->table) == 0)
            break;
    if (i == r->ncounts) {
        table_count *more =
            realloc(r->counts, (r->ncounts + 1) * sizeof *r->counts);
        if (!more)
            return ds__seterr(r->err, sizeof r->err, DS_ENOMEM,
                              "out of memory");
        r->counts = more;
        memset(&more[i], 0, sizeof more[i]);
        snprintf(more[i].table, sizeof more[i].table, "%s", ev->table);
        r->ncounts++;
    }
    r->counts[i].op[ev->op - 1]++;
    return 0;
}

static void on_settled(void *ctx, uint64_t cookie, const char *id, int result)
{
    archive_run *r = ctx;

    if (result == 0)
        return;
    cli_progress_end(&r->pg);
    cli_error(r->ctx, "event %s (archive message %llu) not confirmed: %s", id,
              (unsigned long long)cookie,
              result == DS_EUNROUTABLE
                  ? "unroutable (no node queue bound for replays: run "
                    "datasync setup)"
                  : ds_strerror(result));
}

/* The body goes out as it was archived: same bytes, id and origin. */
static int send_change(archive_run *r, const ds_event *ev, amqp_bytes_t body)
{
    amqp_basic_properties_t props;
    amqp_table_entry_t header;
    int rc = cli_pub_pump_until(
        &r->pub, cli_rate_slot(r->pg.start_ms, r->o->rate, r->sent), r->err,
        sizeof r->err);

    if (rc < 0)
        return rc;
    ds__amqp_event_props(&props, &header, ev->id, ev->origin);
    for (size_t q = 0; q < r->nqueues; q++) {
        rc = cli_pub_send(&r->pub, r->exchange, r->queues[q], &props, body,
                          r->ar.read, r->err, sizeof r->err);
        if (rc < 0)
            return rc;
    }
    r->sent++;
    return 0;
}

static int handle(archive_run *r, amqp_bytes_t body)
{
    char why[DS_ERRMSG_SIZE];
    ds_event ev;
    int64_t t;
    int rc = 0;

    if (ds__event_parse(&ev, body.bytes, body.len, why, sizeof why) != 0) {
        /* The archive holds what producers published; a bad one was
         * dead-lettered by every consumer and is not replayed either. */
        r->invalid++;
        return 0;
    }
    t = (int64_t)(ev.hlc >> 16);
    if (t >= r->o->since_ms && t < r->o->until_ms &&
        table_wanted(r->o, ev.table)) {
        r->in_window++;
        rc = r->o->dry_run ? count_change(r, &ev) : send_change(r, &ev, body);
    }
    ds__event_clear(&ev);
    return rc;
}

/* Opens the sending side and checks that every named node queue exists,
 * before a single change goes out. */
static int open_targets(archive_run *r)
{
    const cli_replay_opts *o = r->o;
    int rc;

    r->nqueues = o->all_nodes ? 1 : o->nnodes;
    r->queues = calloc(r->nqueues ? r->nqueues : 1, sizeof *r->queues);
    if (!r->queues)
        return ds__seterr(r->err, sizeof r->err, DS_ENOMEM, "out of memory");
    rc = cli_broker_open(&r->out, r->ctx, r->err, sizeof r->err);
    if (rc < 0)
        return rc;
    if (o->all_nodes) {
        snprintf(r->exchange, sizeof r->exchange, "%s",
                 r->ctx->cfg.amqp_exchange);
        ds__topology_replay_key(&r->ctx->cfg, r->queues[0],
                                sizeof r->queues[0]);
    }
    for (size_t i = 0; !o->all_nodes && i < o->nnodes; i++) {
        ds__topology_node_queue(o->nodes[i], r->queues[i], sizeof r->queues[i]);
        rc = cli_queue_inspect(&r->out, r->queues[i], NULL, NULL, r->err,
                               sizeof r->err);
        if (rc < 0)
            return rc;
    }
    return cli_pub_open(&r->pub, &r->out, 1024,
                        r->ctx->cfg.producer_confirm_timeout_ms, on_settled, r,
                        r->err, sizeof r->err);
}

static void print_dry_run(const archive_run *r)
{
    static const char *const ops[] = {"create", "update", "delete"};
    char n[32];

    printf("%-32s %-8s %12s\n", "table", "op", "changes");
    for (size_t i = 0; i < r->ncounts; i++)
        for (int op = 0; op < 3; op++)
            if (r->counts[i].op[op])
                printf("%-32s %-8s %12s\n", r->counts[i].table, ops[op],
                       cli_thousands(r->counts[i].op[op], n, sizeof n));
}

static void print_summary(const archive_run *r)
{
    char read[32], window[32], sent[32], conf[32];

    printf("replay: %s read from %s, %s in the window",
           cli_thousands(r->ar.read - r->ar.markers, read, sizeof read),
           r->ar.stream, cli_thousands(r->in_window, window, sizeof window));
    if (r->invalid)
        printf(" (%llu invalid, skipped)", (unsigned long long)r->invalid);
    if (r->o->dry_run) {
        printf("; dry run: nothing sent\n");
        return;
    }
    if (r->o->all_nodes)
        printf(", %s sent to every node queue: %s confirmed",
               cli_thousands(r->sent, sent, sizeof sent),
               cli_thousands(r->pub.confirmed, conf, sizeof conf));
    else
        printf(", %s sent to %zu node queue%s (%s messages): %s confirmed",
               cli_thousands(r->sent, sent, sizeof sent), r->nqueues,
               r->nqueues == 1 ? "" : "s",
               cli_thousands(r->sent * r->nqueues, window, sizeof window),
               cli_thousands(r->pub.confirmed, conf, sizeof conf));
    if (r->pub.nacked + r->pub.unroutable + r->pub.unanswered)
        printf(", %llu nacked, %llu unroutable, %llu unanswered",
               (unsigned long long)r->pub.nacked,
               (unsigned long long)r->pub.unroutable,
               (unsigned long long)r->pub.unanswered);
    printf(". The servers ignore the changes they have already applied.\n");
}

static int read_all(archive_run *r)
{
    amqp_bytes_t body;
    char extra[64];
    uint64_t last_pump_ms = ds__mono_ms();
    int rc = 0;

    while (!cli_interrupted() &&
           (rc = cli_archive_next(&r->ar, &body, r->err, sizeof r->err)) > 0) {
        rc = handle(r, body);
        if (rc < 0)
            return rc;
        /* Reading up to the window can take minutes with nothing sent:
         * the publishing connection still answers heartbeats (and takes
         * its confirms), or the broker would close it as dead. */
        uint64_t now = ds__mono_ms();
        if (!r->o->dry_run && now - last_pump_ms >= 1000) {
            last_pump_ms = now;
            if ((rc = cli_pub_pump(&r->pub, 0, r->err, sizeof r->err)) < 0)
                return rc;
        }
        snprintf(extra, sizeof extra, ", %llu in the window",
                 (unsigned long long)r->in_window);
        cli_progress_draw(&r->pg, r->ar.read, extra, false);
    }
    return cli_interrupted() ? 0 : rc;
}

int cli_replay_archive(cli_ctx *ctx, const cli_replay_opts *o)
{
    archive_run *r = calloc(1, sizeof *r);
    int rc;

    if (!r) {
        cli_error(ctx, "out of memory");
        return CLI_EXIT_FAILURE;
    }
    r->ctx = ctx;
    r->o = o;
    cli_catch_interrupts();
    rc = o->dry_run ? 0 : open_targets(r);
    if (rc == 0)
        rc = cli_archive_open(&r->ar, ctx, o->since_ms, r->err, sizeof r->err);
    if (rc == 0) {
        cli_progress_start(&r->pg, "read from the archive", 0);
        rc = read_all(r);
        cli_progress_end(&r->pg);
    }
    /* Whatever went out is waited for, even after a read error. */
    if (!o->dry_run && r->pub.b) {
        int frc = cli_pub_finish(&r->pub, r->err, sizeof r->err);
        if (rc == 0)
            rc = frc;
        cli_pub_close(&r->pub, rc < 0 ? rc : DS_ETIMEOUT);
    }
    if (rc == 0 || r->ar.read) {
        if (o->dry_run)
            print_dry_run(r);
        print_summary(r);
    }
    if (rc < 0) {
        cli_error(ctx, "%s", r->err);
        rc = cli_exit_code(rc);
    } else if (cli_interrupted()) {
        cli_error(ctx, "interrupted: the rest of the window was not replayed");
        rc = CLI_EXIT_INTERRUPTED;
    } else if (!o->dry_run && r->pub.confirmed != r->sent * r->nqueues) {
        rc = CLI_EXIT_PARTIAL;
    }
    cli_archive_close(&r->ar);
    cli_broker_close(&r->out);
    free(r->queues);
    free(r->counts);
    free(r);
    return rc;
}
