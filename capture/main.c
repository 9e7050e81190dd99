/* main.c: datasync-capture's command line, configuration and signals. */
#include <signal.h>
#include <stdio.h>
#include <sysexits.h>

#include "capture.h"
#include "daemon.h"
#include "error.h"

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
    char err[DS_ERRMSG_SIZE];
    ds_daemon d;
    cap_capture *c = NULL;

    int rc = ds__daemon_start(&d, "datasync-capture", argc, argv, usage);
    if (rc != DS_DAEMON_GO_ON)
        return rc;
    if (d.cfg.capture_server_id == 0)
        return ds__daemon_config_error(
            &d, "capture.server_id is required: set server_id in the "
                "[capture] section (unique among the server's replicas)");
    if (d.cfg.capture_tables[0] == '\0' && d.cfg.apply_tables[0] == '\0')
        return ds__daemon_config_error(
            &d, "no table to capture: set tables in the [capture] or the "
                "[apply] section");
    if ((rc = ds__daemon_open_log(&d)) != DS_DAEMON_GO_ON)
        return rc;
    /* SIGHUP stops too, rather than ending without a save. */
    ds__daemon_signals(on_stop_signal, on_stop_signal);

    rc = cap_new(&c, &d.cfg, d.path, &d.lg, &stop_requested, err, sizeof err);
    if (rc == DS_ECLOSED) {
        DS_LOG(&d.lg, DS_LOG_INFO, "%s", err);
        ds__log_sink_close(&d.sink);
        return 0;
    }
    if (rc) {
        DS_LOG(&d.lg, DS_LOG_ERROR, "cannot start: %s", err);
        ds__log_sink_close(&d.sink);
        return rc == DS_ECONFIG ? EX_CONFIG : 1;
    }
    rc = cap_run(c);
    cap_free(c);
    ds__log_sink_close(&d.sink);
    if (rc == DS_ECONFIG)
        return EX_CONFIG;
    return rc == 0 ? 0 : 1;
}
