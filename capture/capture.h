/* capture.h: datasync-capture's loop: binlog events in, change events out at each commit, the GTID saved once they are safe. */
#ifndef DS_CAPTURE_CAPTURE_H
#define DS_CAPTURE_CAPTURE_H

#include <signal.h>
#include <stddef.h>

#include "config.h"
#include "log.h"

typedef struct cap_capture cap_capture;

/*
 * Creates the capture: the producer (from the configuration file at path,
 * NULL for defaults; producer.mode is forced to async, the capture
 * flushes itself) and the start position (the state file, or the
 * server's current position on a first start, saved at once; a database
 * not up yet is waited for on a first start). Does not connect to the
 * binlog yet. stop is polled: set it to end cap_run. Returns 0 and *out;
 * DS_ECLOSED when stopped while waiting (a clean stop); or an error with
 * err.
 */
int cap_new(cap_capture **out, const ds_config *cfg, const char *path,
            const ds_logger *lg, volatile sig_atomic_t *stop, char *err,
            size_t errlen);

/*
 * Reads the binlog and emits until *stop is set, then flushes and saves
 * the position. Reconnects to a lost server with backoff. Returns 0 after
 * a stop, or an error (logged) that a restart would not cure by itself:
 * a purged position, a server not set up for capture, an emit that
 * failed.
 */
int cap_run(cap_capture *c);

/* Frees c (the producer flushes or spools what it holds); NULL: no-op. */
void cap_free(cap_capture *c);

#endif
