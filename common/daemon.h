/* daemon.h: what datasync-consumer and datasync-capture share at start-up: the command line, the configuration, the log sink, the signals. */
#ifndef DS_COMMON_DAEMON_H
#define DS_COMMON_DAEMON_H

#include <signal.h>
#include <stdio.h>

#include "config.h"
#include "log.h"
#include "logsink.h"

/* Go on: the start-up step did not end the program. */
#define DS_DAEMON_GO_ON (-1)

typedef struct ds_daemon {
    const char *prog;  /* "datasync-consumer": messages start with it */
    const char *path;  /* the configuration file, or NULL (defaults) */
    const char *where; /* path, or a phrase saying there is none */
    ds_config cfg;
    ds_log_sink sink;
    ds_logger lg; /* writes to sink once ds__daemon_open_log succeeded */
} ds_daemon;

/*
 * Reads the command line (-c/--config FILE, -h/--help, -V/--version; usage
 * prints the program's help), then the configuration ($DATASYNC_CONFIG
 * without -c), and checks node.id. Returns DS_DAEMON_GO_ON, or the exit
 * status to end with, having printed why: 0 after --help or --version, 2
 * on bad usage, EX_CONFIG for a bad configuration.
 */
int ds__daemon_start(ds_daemon *d, const char *prog, int argc, char **argv,
                     void (*usage)(FILE *out));

/* A configuration error found by the program itself: prints
 * "prog: WHERE: reason" and returns EX_CONFIG. */
int ds__daemon_config_error(const ds_daemon *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Opens the log sink of [log] (format, file) and points d->lg at it.
 * Returns DS_DAEMON_GO_ON or EX_CONFIG, having printed why. */
int ds__daemon_open_log(ds_daemon *d);

/* SIGTERM and SIGINT call on_stop, SIGHUP on_hangup, without SA_RESTART,
 * so a blocking wait returns at once and the loop sees its flag; SIGPIPE
 * is ignored (a broken socket is an error, not a death). */
void ds__daemon_signals(void (*on_stop)(int), void (*on_hangup)(int));

#endif
