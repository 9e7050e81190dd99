/* main.c: datasync-consumer's command line, configuration and signals. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "config.h"
#include "consumer.h"
#include "error.h"
#include "log.h"
#include "logsink.h"

/* The one global: signal handlers can set nothing else safely. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* SIGHUP reloads the settings and reopens the log file; the handler only
 * counts, the loop does the work between batches. */
static volatile sig_atomic_t hangups;

static void on_hangup(int sig)
{
    (void)sig;
    hangups++;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: datasync-consumer [-c FILE]\n"
            "       datasync-consumer --help | --version\n"
            "\n"
            "Applies the changes queued for this server (datasync.<node.id>)\n"
            "to its database, in the foreground, until SIGTERM or SIGINT.\n"
            "\n"
            "  -c, --config FILE  configuration (default: $DATASYNC_CONFIG)\n"
            "  -h, --help         this text\n"
            "  -V, --version      the version\n"
            "\n"
            "Exit status: 0 after a clean stop, 1 on a start-up or run-time\n"
            "error, 2 on bad usage, 78 on a bad configuration (a supervisor\n"
            "should not restart it). See datasync-consumer(8).\n");
}

int main(int argc, char **argv)
{
    const char *given = NULL;
    char err[DS_ERRMSG_SIZE];
    ds_config cfg;
    dsc_consumer *c = NULL;
    struct sigaction sa;

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
            given = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("datasync-consumer %s\n", ds_version());
            return 0;
        case ':':
            fprintf(stderr,
                    "datasync-consumer: %s needs a value (the "
                    "configuration file)\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            fprintf(stderr, "datasync-consumer: unknown option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "datasync-consumer: unexpected argument '%s'\n",
                argv[optind]);
        usage(stderr);
        return 2;
    }

    ds__config_defaults(&cfg);
    const char *path = ds__config_path(given);
    const char *where =
        path ? path : "no configuration file (-c or DATASYNC_CONFIG)";
    if (path && ds__config_load(&cfg, path, err, sizeof err) != 0) {
        fprintf(stderr, "datasync-consumer: %s\n", err);
        return EX_CONFIG;
    }
    if (cfg.node_id[0] == '\0') {
        fprintf(stderr,
                "datasync-consumer: %s: node.id is required: set id in the "
                "[node] section\n",
                where);
        return EX_CONFIG;
    }
    /* Every change would be dead-lettered as "table not applied here". */
    if (cfg.apply_tables[0] == '\0') {
        fprintf(stderr,
                "datasync-consumer: %s: apply.tables is empty: list the "
                "tables this server applies in the [apply] section\n",
                where);
        return EX_CONFIG;
    }

    ds_log_sink sink;
    if (ds__log_sink_open(&sink, "datasync-consumer", cfg.node_id,
                          cfg.log_format, cfg.log_file, err, sizeof err) != 0) {
        fprintf(stderr, "datasync-consumer: %s: log.file: %s\n", where, err);
        return EX_CONFIG;
    }
    ds_logger lg = {cfg.log_level, ds__log_sink_write, &sink};
    dsc_settings settings = {path, &cfg, &lg, &sink};

    /* No SA_RESTART: a blocking wait returns at once and the loop sees the
     * flag. Broken pipes are errors on the socket, not a death. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hangup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = dsc_consumer_new(&c, &cfg, &lg, &stop_requested, &hangups, err,
                              sizeof err);
    if (rc) {
        DS_LOG(&lg, DS_LOG_ERROR, "cannot start: %s", err);
        ds__log_sink_close(&sink);
        return 1;
    }
    dsc_consumer_set_reload(c, &settings);
    rc = dsc_consumer_run(c);
    dsc_consumer_free(c);
    ds__log_sink_close(&sink);
    return rc == 0 ? 0 : 1;
}
