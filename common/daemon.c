/* daemon.c: what datasync-consumer and datasync-capture share at start-up: the command line, the configuration, the log sink, the signals. */
#include <getopt.h>
#include <stdarg.h>
#include <string.h>
#include <sysexits.h>

#include "daemon.h"
#include "error.h"

static int usage_error(const ds_daemon *d, void (*usage)(FILE *),
                       const char *what, const char *arg)
{
    fprintf(stderr, "%s: %s '%s'\n", d->prog, what, arg);
    usage(stderr);
    return 2;
}

/* -c FILE, --help, --version. */
static int read_args(ds_daemon *d, int argc, char **argv, const char **given,
                     void (*usage)(FILE *))
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int opt;

    opterr = 0; /* the messages below say it in the program's words */
    while ((opt = getopt_long(argc, argv, ":c:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            *given = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("%s %s\n", d->prog, ds_version());
            return 0;
        case ':':
            fprintf(stderr, "%s: %s needs a value (the configuration file)\n",
                    d->prog, argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            return usage_error(d, usage, "unknown option", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error(d, usage, "unexpected argument", argv[optind]);
    return DS_DAEMON_GO_ON;
}

int ds__daemon_start(ds_daemon *d, const char *prog, int argc, char **argv,
                     void (*usage)(FILE *out))
{
    const char *given = NULL;
    char err[DS_ERRMSG_SIZE];

    memset(d, 0, sizeof *d);
    d->prog = prog;
    int rc = read_args(d, argc, argv, &given, usage);
    if (rc != DS_DAEMON_GO_ON)
        return rc;
    ds__config_defaults(&d->cfg);
    d->path = ds__config_path(given);
    d->where =
        d->path ? d->path : "no configuration file (-c or DATASYNC_CONFIG)";
    if (d->path && ds__config_load(&d->cfg, d->path, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return EX_CONFIG;
    }
    if (d->cfg.node_id[0] == '\0')
        return ds__daemon_config_error(
            d, "node.id is required: set id in the [node] section");
    return DS_DAEMON_GO_ON;
}

int ds__daemon_config_error(const ds_daemon *d, const char *fmt, ...)
{
    char msg[DS_ERRMSG_SIZE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s: %s\n", d->prog, d->where, msg);
    return EX_CONFIG;
}

int ds__daemon_open_log(ds_daemon *d)
{
    char err[DS_ERRMSG_SIZE];

    if (ds__log_sink_open(&d->sink, d->prog, d->cfg.node_id, d->cfg.log_format,
                          d->cfg.log_file, err, sizeof err) != 0)
        return ds__daemon_config_error(d, "log.file: %s", err);
    d->lg = (ds_logger){d->cfg.log_level, ds__log_sink_write, &d->sink};
    return DS_DAEMON_GO_ON;
}

void ds__daemon_signals(void (*on_stop)(int), void (*on_hangup)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hangup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
