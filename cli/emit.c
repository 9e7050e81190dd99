/* emit.c: publishing through libdatasync for publish and replay: the producer
 * from the config file, its log, flush and summary. */
#include <string.h>

#include "cli.h"
#include "ids.h"

/* The library never prints: its log comes here. Warnings are shown (info
 * too with -v); the last one is kept to explain a spooled change. */
static void on_log(void *userdata, ds_log_level level, const char *message)
{
    cli_producer *cp = userdata;

    if (level >= DS_LOG_INFO) {
        /* A first connection that fails is only an info ("broker
         * unreachable, changes go to the spool"); a warning says more. */
        pthread_mutex_lock(&cp->lock);
        snprintf(level >= DS_LOG_WARN ? cp->last_problem : cp->last_info,
                 sizeof cp->last_problem, "%s", message);
        pthread_mutex_unlock(&cp->lock);
    }
    if (level >= (cp->ctx->verbose ? DS_LOG_INFO : DS_LOG_WARN))
        fprintf(stderr, "datasync %s: libdatasync: %s\n", cp->ctx->cmd,
                message);
}

int cli_producer_open(cli_producer *cp, const cli_ctx *ctx,
                      ds_producer_mode mode, bool origin_optional)
{
    ds_options *o = ds_options_new();
    char err[DS_ERRBUF_SIZE];
    int rc;

    memset(cp, 0, sizeof *cp);
    cp->ctx = ctx;
    pthread_mutex_init(&cp->lock, NULL);
    if (!o) {
        cli_error(ctx, "out of memory");
        rc = CLI_EXIT_FAILURE;
        goto fail;
    }
    /* The same file, read by the library itself: the producer gets every
     * setting exactly as the host application's would. */
    if (ctx->config_path && ds_options_load(o, ctx->config_path) < 0) {
        fprintf(stderr, "%s\n", ds_options_errmsg(o));
        rc = CLI_EXIT_CONFIG;
        goto fail;
    }
    if (ds_options_set(o, "producer.mode",
                       mode == DS_MODE_ASYNC ? "async" : "sync") < 0) {
        cli_error(ctx, "%s", ds_options_errmsg(o));
        rc = CLI_EXIT_FAILURE;
        goto fail;
    }
    if (!ctx->cfg.node_id[0]) {
        if (!origin_optional) {
            cli_error(ctx,
                      "node.id is not set in %s: it is the origin of the "
                      "changes publish emits",
                      cli_config_name(ctx));
            rc = CLI_EXIT_CONFIG;
            goto fail;
        }
        /* Replayed events keep their own origin; the producer only wants
         * a valid one for its handle. */
        ds_options_set(o, "node.id", "datasync-cli");
    }
    rc = ds_producer_new(&cp->p, o, err, sizeof err);
    if (rc < 0) {
        cli_error(ctx, "cannot start libdatasync: %s", err);
        rc = cli_exit_code(rc);
        goto fail;
    }
    ds_producer_set_log(cp->p, on_log, cp);
    ds_options_free(o);
    return 0;

fail:
    ds_options_free(o);
    pthread_mutex_destroy(&cp->lock);
    return rc;
}

/* The counters cannot tell this process's changes drained from the spool
 * from older ones another process left there; the spool drains in order,
 * so those go first, and what is counted here is at most what was
 * emitted. A fresh producer may also spool its very first changes while it
 * connects: they are drained, and counted, right after. */
uint64_t cli_producer_answered(cli_producer *cp, uint64_t emitted)
{
    ds_producer_stats st;
    uint64_t n;

    ds_producer_stats_get(cp->p, &st, sizeof st);
    n = st.confirmed + st.unroutable;
    return n < emitted ? n : emitted;
}

int cli_producer_emit_failed(cli_producer *cp, size_t line, int rc,
                             uint64_t *emitted)
{
    const char *what = rc == DS_ESPOOL ? "change lost: " : "";

    if (rc == DS_ESPOOL)
        (*emitted)++;
    if (line)
        cli_error(cp->ctx, "line %zu: %s%s", line, what,
                  ds_producer_errmsg(cp->p));
    else
        cli_error(cp->ctx, "%s%s", what, ds_producer_errmsg(cp->p));
    return cli_exit_code(rc);
}

int cli_producer_flush(cli_producer *cp, uint64_t emitted, void (*tick)(void *),
                       void *tickctx)
{
    /* ds_flush waits a fixed time; a long replay needs longer, as long as
     * the broker keeps answering. The I/O thread spools what goes
     * unconfirmed for confirm_timeout_ms, so the counters move at least
     * that often while anything is outstanding. */
    uint64_t patience =
        (uint64_t)cp->ctx->cfg.producer_confirm_timeout_ms + 1000u;
    uint64_t last = UINT64_MAX, since = ds__mono_ms();
    int rc;

    for (;;) {
        ds_producer_stats st;
        uint64_t now, moved;

        rc = ds_flush(cp->p, 200);
        ds_producer_stats_get(cp->p, &st, sizeof st);
        if (rc != DS_ETIMEOUT) {
            /* Everything is confirmed or spooled (or lost: settled too);
             * what was spooled while the broker answers is drained soon:
             * wait for it too. */
            if (st.spooled == 0 ||
                cli_producer_answered(cp, emitted) + st.lost >= emitted)
                return rc;
            cli_sleep_ms(100);
        }
        if (tick)
            tick(tickctx);
        now = ds__mono_ms();
        moved = st.confirmed + st.spooled + st.unroutable;
        if (moved != last) {
            last = moved;
            since = now;
        } else if (now - since > patience) {
            return rc;
        }
    }
}

static uint64_t at_most(uint64_t n, uint64_t limit)
{
    return n < limit ? n : limit;
}

int cli_producer_close(cli_producer *cp, const char *verb, uint64_t emitted,
                       uint64_t skipped, int flush_rc)
{
    ds_producer_stats st;
    uint64_t published, unroutable, lost, kept, spooled;
    int code = CLI_EXIT_OK;

    ds_producer_stats_get(cp->p, &st, sizeof st);
    unroutable = at_most(st.unroutable, emitted);
    /* A change ds_emit could not even spool was told then, and counted
     * both lost and emitted (cli_producer_emit_failed). */
    lost = at_most(st.lost, emitted - unroutable);
    kept = emitted - unroutable - lost; /* confirmed or in the spool */
    published = at_most(cli_producer_answered(cp, emitted) - unroutable, kept);
    /* The spool drains oldest first, so what it still holds is the newest:
     * this run's spooled changes are not counted as published while it
     * holds anything, even if the confirms of older ones add up to them. */
    if (st.spool_bytes > 0)
        published = at_most(published, kept - at_most(st.spooled, kept));
    /* In the spool, or spooled by ds_producer_free below. */
    spooled = kept - published;
    /* Lost and unroutable changes are told below, from the counters: the
     * error ds_flush gave for them may have been overwritten since. */
    if (flush_rc < 0 && flush_rc != DS_ETIMEOUT && flush_rc != DS_EUNROUTABLE &&
        flush_rc != DS_ESPOOL)
        cli_error(cp->ctx, "%s", ds_producer_errmsg(cp->p));
    ds_producer_free(cp->p);
    cp->p = NULL;

    printf("%s: published %llu, spooled %llu, skipped %llu", verb,
           (unsigned long long)published, (unsigned long long)spooled,
           (unsigned long long)skipped);
    if (unroutable)
        printf(", unroutable %llu", (unsigned long long)unroutable);
    if (lost)
        printf(", lost %llu", (unsigned long long)lost);
    putchar('\n');
    fflush(stdout);

    if (spooled) {
        char urls[2048];

        cli_redact_urls(cp->ctx->cfg.amqp_url, urls, sizeof urls);
        cli_warn(cp->ctx,
                 "%llu change%s not confirmed by the broker (%s) but kept in "
                 "the spool %s; the next producer using that directory sends "
                 "them. Last problem: %s",
                 (unsigned long long)spooled, spooled == 1 ? " was" : "s were",
                 urls, cp->ctx->cfg.producer_spool_dir,
                 cp->last_problem[0] ? cp->last_problem
                 : cp->last_info[0]  ? cp->last_info
                                     : "no confirm in time");
        code = CLI_EXIT_PARTIAL;
    }
    if (unroutable) {
        cli_error(cp->ctx,
                  "%llu change%s returned unroutable: no queue is bound to "
                  "exchange %s with routing key %s (run datasync setup)",
                  (unsigned long long)unroutable,
                  unroutable == 1 ? " was" : "s were",
                  cp->ctx->cfg.amqp_exchange, cp->ctx->cfg.amqp_routing_key);
        code = CLI_EXIT_PARTIAL;
    }
    if (skipped)
        code = CLI_EXIT_PARTIAL;
    if (lost) {
        /* Not in the broker, not on this disk: the one outcome worse than a
         * partial run. */
        cli_error(
            cp->ctx,
            "%llu change%s lost: the broker did not confirm them and "
            "the spool %s refused them (disk full or an I/O error: see the "
            "library's message). Publish them again once the spool "
            "can be written",
            (unsigned long long)lost, lost == 1 ? " was" : "s were",
            cp->ctx->cfg.producer_spool_dir);
        code = CLI_EXIT_FAILURE;
    }
    pthread_mutex_destroy(&cp->lock);
    return code;
}
