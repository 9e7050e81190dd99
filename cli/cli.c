/* cli.c: the CLI's shared plumbing: the exit-code table, messages, configuration, option and node-list parsing. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------------------------ */
/* Exit codes                                                                */

/* The one table of exit codes: --help prints it, datasync(1) documents it,
 * cli_exit_code() maps through it. A DS_E code listed nowhere is a generic
 * failure. */
typedef struct exit_row {
    int code;
    const char *meaning;
    int errs[8]; /* DS_E codes that map here, 0-terminated */
} exit_row;

static const exit_row exit_table[] = {
    {CLI_EXIT_OK, "success", {0}},
    {CLI_EXIT_FAILURE,
     "failure: input/output, spool, out of memory, anything not below",
     {DS_EIO, DS_ESPOOL, DS_ENOMEM, 0}},
    {CLI_EXIT_USAGE, "usage: unknown command or option, missing argument", {0}},
    {CLI_EXIT_CONFIG,
     "configuration: bad file (FILE:LINE: reason) or value",
     {DS_ECONFIG, 0}},
    {CLI_EXIT_INPUT,
     "invalid input: JSON, schema, size (line N: reason)",
     {DS_EINVAL, DS_EJSON, DS_ESCHEMA, DS_ETOOBIG, 0}},
    {CLI_EXIT_BROKER,
     "broker unreachable, or a broker call failed (e.g. queue type conflict)",
     {DS_ECONNECT, DS_EAMQP, DS_ETIMEOUT, 0}},
    {CLI_EXIT_PARTIAL,
     "partial: not all confirmed (spooled, nacked, unroutable, skipped...)",
     {DS_EUNROUTABLE, DS_ENACK, 0}},
    {CLI_EXIT_NOTFOUND,
     "a queue does not exist: run datasync setup",
     {DS_ENOTFOUND, 0}},
    {CLI_EXIT_WARN,
     "status: a warning (a node without consumer, dead letters, a spool "
     "waiting)",
     {0}},
    {CLI_EXIT_INTERRUPTED,
     "interrupted: what was sent was waited for and summarised",
     {0}},
};

int cli_exit_code(int err)
{
    if (err == 0)
        return CLI_EXIT_OK;
    for (size_t i = 0; i < sizeof exit_table / sizeof exit_table[0]; i++)
        for (const int *e = exit_table[i].errs; *e; e++)
            if (*e == err)
                return exit_table[i].code;
    return CLI_EXIT_FAILURE;
}

void cli_print_exit_codes(FILE *out)
{
    fputs("Exit status:\n", out);
    for (size_t i = 0; i < sizeof exit_table / sizeof exit_table[0]; i++)
        fprintf(out, "  %d  %s\n", exit_table[i].code, exit_table[i].meaning);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

static void vmessage(const cli_ctx *ctx, const char *kind, const char *fmt,
                     va_list ap)
{
    char msg[4096];

    vsnprintf(msg, sizeof msg, fmt, ap);
    /* One write per message, so concurrent output does not interleave. */
    fprintf(stderr, "datasync%s%s: %s%s\n", ctx && ctx->cmd ? " " : "",
            ctx && ctx->cmd ? ctx->cmd : "", kind, msg);
}

void cli_error(const cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage(ctx, "", fmt, ap);
    va_end(ap);
}

void cli_warn(const cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage(ctx, "warning: ", fmt, ap);
    va_end(ap);
}

int cli_usage_error(const cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage(ctx, "", fmt, ap);
    va_end(ap);
    if (ctx && ctx->cmd)
        fprintf(stderr, "Try 'datasync %s --help'.\n", ctx->cmd);
    else
        fputs("Try 'datasync --help'.\n", stderr);
    return CLI_EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

int cli_config(cli_ctx *ctx)
{
    char err[DS_ERRMSG_SIZE];
    int rc;

    if (ctx->cfg_loaded)
        return 0;
    ds__config_defaults(&ctx->cfg);
    ctx->config_path = ds__config_path(ctx->config_arg);
    if (ctx->config_path) {
        rc = ds__config_load(&ctx->cfg, ctx->config_path, err, sizeof err);
        if (rc < 0) {
            /* The message is already "FILE:LINE: reason" (or "FILE: why"
             * when it cannot be read): print it as it is. */
            fprintf(stderr, "datasync: %s\n", err);
            return CLI_EXIT_CONFIG;
        }
    }
    ctx->cfg_loaded = true;
    return 0;
}

const char *cli_config_name(const cli_ctx *ctx)
{
    return ctx->config_path ? ctx->config_path
                            : "the configuration (no -c FILE or "
                              "DATASYNC_CONFIG: defaults only)";
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

int cli_getopt(const cli_ctx *ctx, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    char spec[64];
    int c;

    /* A leading ':' makes getopt tell a missing argument from an unknown
     * option; opterr = 0 keeps its own messages out. */
    if (shortopts[0] == '+')
        snprintf(spec, sizeof spec, "+:%s", shortopts + 1);
    else
        snprintf(spec, sizeof spec, ":%s", shortopts);
    opterr = 0;
    c = getopt_long(argc, argv, spec, longopts, NULL);
    if (c == '?') {
        const char *arg = argv[optind - 1];

        /* optopt is 0 for an unknown long option, the option's value for
         * a known one given a value it does not take ("--json=x"). */
        if (!optopt)
            cli_usage_error(ctx, "unknown option %s", arg);
        else if (strncmp(arg, "--", 2) == 0)
            cli_usage_error(ctx, "option %s takes no value", arg);
        else
            cli_usage_error(ctx, "unknown option -%c", optopt);
        return '?';
    }
    if (c == ':') {
        cli_usage_error(ctx, "option %s needs a value", argv[optind - 1]);
        return '?';
    }
    return c;
}

void cli_nodes_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* node.id, for a command run without --node(s). */
static int default_node(cli_ctx *ctx, const char *option, const char **out)
{
    if (!ctx->cfg.node_id[0])
        return cli_usage_error(ctx,
                               "no node given: use %s or set node.id in %s",
                               option, cli_config_name(ctx));
    *out = ctx->cfg.node_id;
    return 0;
}

int cli_nodes(cli_ctx *ctx, const char *list, char ***names, size_t *n)
{
    char **out = NULL;
    size_t count = 0, cap;
    const char *p;

    *names = NULL;
    *n = 0;
    if (!list) {
        const char *one = NULL;
        int rc = default_node(ctx, "--nodes a,b,c", &one);
        if (rc)
            return rc;
        list = one;
    }
    cap = 1;
    for (p = list; *p; p++)
        cap += *p == ',';
    out = calloc(cap, sizeof *out);
    if (!out)
        goto nomem;
    for (p = list;;) {
        size_t len = strcspn(p, ",");
        char *name = strndup(p, len);

        if (!name)
            goto nomem;
        out[count++] = name;
        if (!ds__valid_origin(name)) {
            cli_usage_error(ctx,
                            "'%s' is not a valid node name ([A-Za-z0-9._-]{1,"
                            "64}, names separated by commas)",
                            name);
            cli_nodes_free(out, count);
            return CLI_EXIT_USAGE;
        }
        for (size_t i = 0; i + 1 < count; i++) {
            if (strcmp(out[i], name) == 0) {
                cli_usage_error(ctx, "node %s is given twice", name);
                cli_nodes_free(out, count);
                return CLI_EXIT_USAGE;
            }
        }
        if (!p[len])
            break;
        p += len + 1;
    }
    *names = out;
    *n = count;
    return 0;

nomem:
    cli_nodes_free(out, count);
    cli_error(ctx, "out of memory");
    return CLI_EXIT_FAILURE;
}

int cli_node(cli_ctx *ctx, const char *given, const char **out)
{
    if (given) {
        if (!ds__valid_origin(given))
            return cli_usage_error(
                ctx, "'%s' is not a valid node name ([A-Za-z0-9._-]{1,64})",
                given);
        *out = given;
        return 0;
    }
    return default_node(ctx, "--node ID", out);
}

/* ------------------------------------------------------------------------ */
/* Small things                                                              */

void cli_redact_urls(const char *urls, char *out, size_t len)
{
    size_t used = 0;
    const char *p = urls;

    if (len == 0)
        return;
    out[0] = '\0';
    while (*p && used + 1 < len) {
        size_t wlen, i, at = 0, colon = 0, scheme;
        const char *w;

        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        w = p;
        wlen = strcspn(w, " \t");
        p += wlen;
        /* amqp://user:password@host: the password runs from the first ':'
         * after "//" to the last '@' before the host. */
        scheme = 0;
        for (i = 0; i + 2 < wlen; i++) {
            if (w[i] == ':' && w[i + 1] == '/' && w[i + 2] == '/') {
                scheme = i + 3;
                break;
            }
        }
        for (i = scheme; i < wlen && w[i] != '/'; i++) {
            if (w[i] == '@')
                at = i;
        }
        for (i = scheme; i < at; i++) {
            if (w[i] == ':') {
                colon = i;
                break;
            }
        }
        if (at && colon)
            used += (size_t)snprintf(out + used, len - used, "%s%.*s:***%.*s",
                                     used ? " " : "", (int)colon, w,
                                     (int)(wlen - at), w + at);
        else
            used += (size_t)snprintf(out + used, len - used, "%s%.*s",
                                     used ? " " : "", (int)wlen, w);
        if (used >= len)
            used = len - 1;
    }
}

/* The one global of the program: a signal handler can set nothing else. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

void cli_catch_interrupts(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    /* No SA_RESTART: a read of standard input waiting for a line returns.
     * SA_RESETHAND: a second signal is not caught. */
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool cli_interrupted(void)
{
    return interrupted != 0;
}

bool cli_interactive(void)
{
    return isatty(STDERR_FILENO) == 1;
}

void cli_sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void cli_format_time(uint64_t unix_s, char *out, size_t len)
{
    time_t t = (time_t)unix_s;
    struct tm tm;

    if (!gmtime_r(&t, &tm) ||
        strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, len, "%llu", (unsigned long long)unix_s);
}
