/* main.c: datasync-consumer's command line, configuration and signals. */
#include <signal.h>
#include <stdio.h>

#include "consumer.h"
#include "daemon.h"
#include "error.h"

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
            "Exit status: 0 after a clean stop (also while it waits for the\n"
            "database or the broker at start-up), 1 when the start-up is\n"
            "refused (a table, a queue, the broker's login), 2 on bad usage,\n"
            "78 on a bad configuration (a supervisor should not restart it).\n"
            "See datasync-consumer(8).\n");
}

int main(int argc, char **argv)
{
    char err[DS_ERRMSG_SIZE];
    ds_daemon d;
    dsc_consumer *c = NULL;

    int rc = ds__daemon_start(&d, "datasync-consumer", argc, argv, usage);
    if (rc != DS_DAEMON_GO_ON)
        return rc;
    /* Every change would be dead-lettered as "table not applied here". */
    if (d.cfg.apply_tables[0] == '\0')
        return ds__daemon_config_error(
            &d, "apply.tables is empty: list the tables this server applies "
                "in the [apply] section");
    if ((rc = ds__daemon_open_log(&d)) != DS_DAEMON_GO_ON)
        return rc;
    dsc_settings settings = {d.path, &d.cfg, &d.lg, &d.sink, NULL, NULL};
    ds__daemon_signals(on_stop_signal, on_hangup);

    rc = dsc_consumer_new(&c, &d.cfg, &d.lg, &stop_requested, &hangups, err,
                          sizeof err);
    if (rc == DS_ECLOSED) {
        DS_LOG(&d.lg, DS_LOG_INFO, "%s", err);
        ds__log_sink_close(&d.sink);
        return 0;
    }
    if (rc) {
        DS_LOG(&d.lg, DS_LOG_ERROR, "cannot start: %s", err);
        ds__log_sink_close(&d.sink);
        return 1;
    }
    dsc_consumer_set_reload(c, &settings);
    rc = dsc_consumer_run(c);
    dsc_consumer_free(c);
    ds__log_sink_close(&d.sink);
    return rc == 0 ? 0 : 1;
}
