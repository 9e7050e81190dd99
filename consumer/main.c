/* main.c: datasync-consumer's command line, configuration and signals. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "consumer.h"
#include "error.h"
#include "log.h"

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
            "Exit status: 0 after a clean stop, 1 on a bad configuration or\n"
            "a start-up error, 2 on bad usage. See datasync-consumer(8).\n");
}

int main(int argc, char **argv)
{
    const char *given = NULL;
    char err[DS_ERRMSG_SIZE];
    ds_config cfg;
    dsc_consumer *c = NULL;
    struct sigaction sa;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("datasync-consumer %s\n", ds_version());
            return 0;
        }
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) &&
            i + 1 < argc) {
            given = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            given = a + 9;
        } else {
            fprintf(stderr, "datasync-consumer: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    ds__config_defaults(&cfg);
    const char *path = ds__config_path(given);
    if (path && ds__config_load(&cfg, path, err, sizeof err) != 0) {
        fprintf(stderr, "datasync-consumer: %s\n", err);
        return 1;
    }
    if (cfg.node_id[0] == '\0') {
        fprintf(stderr,
                "datasync-consumer: %s: node.id is required: set id in the "
                "[node] section\n",
                path ? path : "no configuration file (-c or DATASYNC_CONFIG)");
        return 1;
    }

    ds_logger lg = {cfg.log_level, ds__log_stderr, (void *)"datasync-consumer"};

    /* No SA_RESTART: a blocking wait returns at once and the loop sees the
     * flag. Broken pipes are errors on the socket, not a death. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = dsc_consumer_new(&c, &cfg, &lg, &stop_requested, err, sizeof err);
    if (rc) {
        DS_LOG(&lg, DS_LOG_ERROR, "cannot start: %s", err);
        return 1;
    }
    rc = dsc_consumer_run(c);
    dsc_consumer_free(c);
    return rc == 0 ? 0 : 1;
}
