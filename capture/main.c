/* main.c: datasync-capture's command line, configuration and signals. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "capture.h"
#include "config.h"
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

static void usage(FILE *out)
{
    fprintf(out,
            "usage: datasync-capture [-c FILE]\n"
            "       datasync-capture --help | --version\n"
            "\n"
            "Reads the local MariaDB's binary log as a replica and emits a\n"
            "change event for each row change of the captured tables, in\n"
            "the foreground, until SIGTERM or SIGINT.\n"
            "\n"
            "  -c, --config FILE  configuration (default: $DATASYNC_CONFIG)\n"
            "  -h, --help         this text\n"
            "  -V, --version      the version\n"
            "\n"
            "Exit status: 0 after a clean stop, 1 on a start-up or run-time\n"
            "error, 2 on bad usage, 78 on a bad configuration (a supervisor\n"
            "should not restart it). See datasync-capture(8).\n");
}

int main(int argc, char **argv)
{
    const char *given = NULL;
    char err[DS_ERRMSG_SIZE];
    ds_config cfg;
    cap_capture *c = NULL;
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
            printf("datasync-capture %s\n", ds_version());
            return 0;
        case ':':
            fprintf(stderr,
                    "datasync-capture: %s needs a value (the configuration "
                    "file)\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            fprintf(stderr, "datasync-capture: unknown option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "datasync-capture: unexpected argument '%s'\n",
                argv[optind]);
        usage(stderr);
        return 2;
    }

    ds__config_defaults(&cfg);
    const char *path = ds__config_path(given);
    const char *where =
        path ? path : "no configuration file (-c or DATASYNC_CONFIG)";
    if (path && ds__config_load(&cfg, path, err, sizeof err) != 0) {
        fprintf(stderr, "datasync-capture: %s\n", err);
        return EX_CONFIG;
    }
    if (cfg.node_id[0] == '\0') {
        fprintf(stderr,
                "datasync-capture: %s: node.id is required: set id in the "
                "[node] section\n",
                where);
        return EX_CONFIG;
    }
    if (cfg.capture_server_id == 0) {
        fprintf(stderr,
                "datasync-capture: %s: capture.server_id is required: set "
                "server_id in the [capture] section (unique among the "
                "server's replicas)\n",
                where);
        return EX_CONFIG;
    }
    if (cfg.capture_tables[0] == '\0' && cfg.apply_tables[0] == '\0') {
        fprintf(stderr,
                "datasync-capture: %s: no table to capture: set tables in "
                "the [capture] or the [apply] section\n",
                where);
        return EX_CONFIG;
    }

    ds_log_sink sink;
    if (ds__log_sink_open(&sink, "datasync-capture", cfg.node_id,
                          cfg.log_format, cfg.log_file, err, sizeof err) != 0) {
        fprintf(stderr, "datasync-capture: %s: log.file: %s\n", where, err);
        return EX_CONFIG;
    }
    ds_logger lg = {cfg.log_level, ds__log_sink_write, &sink};

    /* No SA_RESTART: the binlog read returns at once and the loop sees the
     * flag. SIGHUP stops too, rather than ending without a save. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = cap_new(&c, &cfg, path, &lg, &stop_requested, err, sizeof err);
    if (rc) {
        DS_LOG(&lg, DS_LOG_ERROR, "cannot start: %s", err);
        ds__log_sink_close(&sink);
        return rc == DS_ECONFIG ? EX_CONFIG : 1;
    }
    rc = cap_run(c);
    cap_free(c);
    ds__log_sink_close(&sink);
    if (rc == DS_ECONFIG)
        return EX_CONFIG;
    return rc == 0 ? 0 : 1;
}
