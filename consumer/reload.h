/* reload.h: SIGHUP: the configuration file read again; what can change safely applied at once, the rest kept for a restart. */
#ifndef DS_CONSUMER_RELOAD_H
#define DS_CONSUMER_RELOAD_H

#include "config.h"
#include "http.h"
#include "log.h"
#include "logsink.h"

/* The running settings a reload may change, all owned by main(). */
typedef struct dsc_settings {
    const char *path; /* the configuration file; NULL: none (defaults) */
    ds_config *cfg;   /* the running configuration, changed in place */
    ds_logger *lg;    /* its level follows log.level */
    ds_log_sink *sink;
    /* The consumer's endpoint and what it serves, set by
     * dsc_consumer_set_reload: metrics.listen moves it. */
    dsc_http **http;
    dsc_metrics *metrics;
} dsc_settings;

/*
 * Reopens the log file (a rotation moved it away), then reads the
 * configuration file again and compares it with the running one. Applied
 * at once: log.level, log.format, log.file, apply.batch_max,
 * apply.batch_wait_ms (the caller sizes its batch to the new maximum before
 * the next one) and metrics.listen (the endpoint moves, starts or stops; one
 * that cannot listen on the new address stays where it was). Every other key that differs is logged at WARN ("reload:
 * KEY changed; restart to apply") and keeps its running value. A file that
 * cannot be read or has a bad line is logged at ERROR and changes nothing.
 * Call between batches, on the thread that logs through st->lg. Returns 0,
 * or the DS_E code of the bad file.
 */
int dsc_reload(dsc_settings *st);

#endif
