/* cmd_publish.c: datasync publish: one change from options, or changes and whole events one per line, all checked first. */
#include <ctype.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: datasync [-c FILE] publish --op OP --table TABLE --key JSON "
    "[--data JSON]\n"
    "       datasync [-c FILE] publish [--skip-invalid] FILE|-\n"
    "\n"
    "Publishes changes through libdatasync, with the configuration file's\n"
    "settings; node.id is their origin and must be set.\n"
    "\n"
    "One change:\n"
    "  --op OP          create, update or delete\n"
    "  --table TABLE    the table, unqualified\n"
    "  --key JSON       the primary-key columns, e.g. '{\"id\":42}'\n"
    "  --data JSON      the whole row after the change (create, update)\n"
    "\n"
    "From FILE, or standard input with '-': one JSON object per line, either\n"
    "a change {\"op\":..,\"table\":..,\"key\":{..},\"data\":{..}} or a whole "
    "event\n"
    "(it has \"v\"; sent as it is, id and version kept). Blank lines are\n"
    "ignored. Every line is checked first: if one is invalid, nothing is\n"
    "published and each bad line is reported as 'line N: reason'.\n"
    "  --skip-invalid   report and skip invalid lines, publish the others\n"
    "  -h, --help       this help\n"
    "\n"
    "Prints 'publish: published N, spooled M, skipped K'. Exit status 0 when\n"
    "every change was confirmed by the broker, 6 when some were spooled,\n"
    "unroutable or skipped, 1 when some were lost (the spool could not be\n"
    "written: ', lost L' is added), 4 for invalid input (see datasync\n"
    "--help).\n";

struct run {
    cli_ctx *ctx;
    cli_producer cp;
    uint64_t emitted;
};

static int emit_item(cli_item *it, void *ctx)
{
    struct run *r = ctx;
    int rc;

    if (it->kind == CLI_KIND_EVENT)
        rc = ds_emit_event(r->cp.p, it->text);
    else
        rc = ds_emit(r->cp.p, it->ev.op, it->ev.table, it->key_json,
                     it->data_json);
    /* Sync mode (one change) reports unroutable here; the summary says it. */
    if (rc < 0 && rc != DS_EUNROUTABLE)
        return cli_producer_emit_failed(&r->cp, it->line, rc, &r->emitted);
    r->emitted++;
    return 0;
}

/* Emits every item, flushes, prints the summary. */
static int publish(struct run *r, cli_input *in, cli_item *one,
                   uint64_t skipped)
{
    int rc, flush_rc, code;

    rc = cli_producer_open(&r->cp, r->ctx, one ? DS_MODE_SYNC : DS_MODE_ASYNC,
                           false);
    if (rc)
        return rc;
    if (!one)
        cli_catch_interrupts();
    rc = one ? emit_item(one, r) : cli_input_each(in, emit_item, r);
    flush_rc = cli_producer_flush(&r->cp, r->emitted, NULL, NULL);
    code = cli_producer_close(&r->cp, "publish", r->emitted, skipped, flush_rc);
    if (rc == 0 && cli_interrupted()) {
        cli_error(r->ctx, "interrupted: the rest of %s was not published",
                  in->name);
        return CLI_EXIT_INTERRUPTED;
    }
    return rc ? rc : code;
}

int cli_cmd_publish(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"op", required_argument, NULL, 'o'},
        {"table", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'},
        {"data", required_argument, NULL, 'd'},
        {"skip-invalid", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *op = NULL, *table = NULL, *key = NULL, *data = NULL;
    char err[DS_ERRMSG_SIZE], op_lower[72];
    struct run r = {.ctx = ctx};
    bool skip_invalid = false;
    cli_input in;
    cli_item one;
    int c, rc;

    while ((c = cli_getopt(ctx, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'o':
            /* A person types UPDATE as readily as update; the event itself
             * carries the lower-case name the schema knows. */
            for (size_t i = 0; i < sizeof op_lower; i++) {
                op_lower[i] = (char)tolower((unsigned char)optarg[i]);
                if (!optarg[i])
                    break;
            }
            op_lower[sizeof op_lower - 1] = '\0';
            op = op_lower;
            break;
        case 't':
            table = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'd':
            data = optarg;
            break;
        case 's':
            skip_invalid = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc && (op || table || key || data))
        return cli_usage_error(ctx, "give either --op/--table/--key/--data "
                                    "or an input FILE, not both");
    if (optind + 1 < argc)
        return cli_usage_error(ctx, "one input FILE at most (- for standard "
                                    "input)");
    if (optind == argc && !(op || table || key || data))
        return cli_usage_error(ctx, "nothing to publish: give --op, --table, "
                                    "--key (and --data), or FILE or -");
    if (optind == argc && skip_invalid)
        return cli_usage_error(ctx, "--skip-invalid applies to an input FILE");
    if (optind == argc && (!op || !table || !key))
        return cli_usage_error(ctx,
                               "%s is required: a change needs --op, "
                               "--table and --key (and --data unless "
                               "it is a delete)",
                               !op      ? "--op"
                               : !table ? "--table"
                                        : "--key");
    rc = cli_config(ctx);
    if (rc)
        return rc;

    if (optind == argc) {
        if (cli_change_build(op, table, key, data, &ctx->cfg, &one, err,
                             sizeof err) < 0) {
            cli_error(ctx, "%s", err);
            return CLI_EXIT_INPUT;
        }
        rc = publish(&r, NULL, &one, 0);
        cli_item_clear(&one);
        return rc;
    }

    rc = cli_input_open(&in, ctx, argv[optind],
                        CLI_KIND_CHANGE | CLI_KIND_EVENT);
    if (rc)
        return rc;
    rc = cli_input_check(&in);
    if (rc == 0 && in.invalid > 0 && !skip_invalid) {
        cli_error(ctx,
                  "%zu invalid line%s in %s: nothing published "
                  "(--skip-invalid publishes the valid ones)",
                  in.invalid, in.invalid == 1 ? "" : "s", in.name);
        rc = CLI_EXIT_INPUT;
    }
    if (rc == 0)
        rc = publish(&r, &in, NULL, in.invalid);
    cli_input_close(&in);
    return rc;
}
