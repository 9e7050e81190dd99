/* metrics.h: the consumer's counters and gauges, set by the apply loop, rendered in Prometheus's text format and judged for /health by the HTTP thread. */
#ifndef DS_CONSUMER_METRICS_H
#define DS_CONSUMER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apply.h"

/*
 * Threads: one writer, the apply loop, calls every dsc_metrics_* setter;
 * any number of readers (the HTTP thread) call dsc_metrics_render and
 * dsc_metrics_health at the same time. Counters and gauges are C11 atomics
 * written with relaxed order, once per batch: a scrape may see one batch's
 * counters half updated, never a torn value, and the loop never waits for
 * a reader. Only the reasons of a lost connection, set on that rare path,
 * sit behind a mutex.
 */

typedef enum { DSC_PEER_BROKER = 0, DSC_PEER_DATABASE, DSC_PEERS } dsc_peer;

/* Why a change was dead-lettered, by its error code: the label reason of
 * datasync_consumer_dead_lettered_total. */
typedef enum {
    DSC_DEAD_MALFORMED = 0, /* DS_EJSON: not JSON */
    DSC_DEAD_SCHEMA,        /* DS_ESCHEMA: not a change event, or a value
                               the column's type cannot take */
    DSC_DEAD_TOO_BIG,       /* DS_ETOOBIG: over apply.max_message_bytes */
    DSC_DEAD_TABLE,         /* DS_ETABLE: not in apply.tables */
    DSC_DEAD_COLUMN,        /* DS_ECOLUMN: no such column */
    DSC_DEAD_CONSTRAINT,    /* DS_ECONSTRAINT: unique, foreign key, NOT NULL,
                               check */
    DSC_DEAD_VALUE,         /* DS_EMYSQL: a value the server refused (out of
                               range, too long, truncated) */
    DSC_DEAD_OTHER,
    DSC_DEAD_CLASSES
} dsc_dead_class;

/* Upper bounds (seconds) of the batch duration histogram's buckets, +Inf
 * aside. */
#define DSC_BATCH_BUCKETS 14
extern const double dsc_batch_bucket_bounds[DSC_BATCH_BUCKETS];

/* Upper bounds (seconds) of the change latency histogram's buckets, +Inf
 * aside: from a change's ts to the commit that applied it here. */
#define DSC_LATENCY_BUCKETS 14
extern const double dsc_latency_bucket_bounds[DSC_LATENCY_BUCKETS];

typedef struct dsc_metrics dsc_metrics;

/* A registry, every counter 0, nothing connected, no batch yet. version
 * and node label datasync_build_info (copied; any bytes, escaped when
 * rendered). NULL when out of memory. */
dsc_metrics *dsc_metrics_new(const char *version, const char *node);

/* Frees m. NULL is a no-op. No reader may be running. */
void dsc_metrics_free(dsc_metrics *m);

/* The class of a dead letter's error code. */
dsc_dead_class dsc_dead_class_of(int code);

/* The label value of a class: "malformed", "schema", "too_big", ... */
const char *dsc_dead_class_name(dsc_dead_class c);

/* ----- the apply loop ----- */

/* The consumer took a batch of n changes (decoded): starts its clock, and,
 * when it had caught up, the lag from the first change's ts. */
void dsc_metrics_batch_begin(dsc_metrics *m, const dsc_change *changes,
                             size_t n);

/* The batch begun last committed: counts its changes by outcome (applied,
 * recorded, ignored, and, when dead_lettered, the poison by class), its
 * duration, each applied change's latency (now minus its ts; 0 for a ts
 * ahead of this clock), and the ts of its last change for the lag. */
void dsc_metrics_batch_done(dsc_metrics *m, const dsc_change *changes, size_t n,
                            bool dead_lettered);

/* One committed batch that took us microseconds: batches_total and the
 * duration histogram (dsc_metrics_batch_done calls it; tests too). */
void dsc_metrics_observe_batch(dsc_metrics *m, uint64_t us);

/* A batch rolled back on a database error, to be tried again: counted, and
 * /health fails until a batch commits. */
void dsc_metrics_commit_retry(dsc_metrics *m);

/* Nothing was delivered for a while: the queue is drained, the lag is 0. */
void dsc_metrics_caught_up(dsc_metrics *m);

/* A connection came up (reconnected: not the first one) or went down
 * (why: one line, copied; may be NULL). */
void dsc_metrics_connected(dsc_metrics *m, dsc_peer peer, bool reconnected);
void dsc_metrics_disconnected(dsc_metrics *m, dsc_peer peer, const char *why);

/* Messages ready in the node's queue, from the periodic check; < 0:
 * unknown (the sample is left out). */
void dsc_metrics_queue_ready(dsc_metrics *m, long ready);

/* Start-up is over (consuming) / the consumer is stopping: /health says
 * so until then / from then on. */
void dsc_metrics_started(dsc_metrics *m);
void dsc_metrics_stopping(dsc_metrics *m);

/* ----- readers (any thread) ----- */

/*
 * The metrics in Prometheus's text exposition format 0.0.4, at wall clock
 * now_ms (for the lag): a malloc'd, NUL-terminated text (length in *len),
 * or NULL when out of memory. Counters end in _total, durations are
 * seconds; every family has its HELP and TYPE lines.
 */
char *dsc_metrics_render(dsc_metrics *m, uint64_t now_ms, size_t *len);

/* 200 when started, not stopping, connected to the broker and the database
 * and the last batch committed (or none yet); else 503. reason gets "ok" or
 * one line saying why not. */
int dsc_metrics_health(dsc_metrics *m, char *reason, size_t len);

#endif
