/* attempt.h: one batch attempt on a thread of its own, so the loop gathers and decodes the next batch while this one writes and commits. */
#ifndef DS_CONSUMER_ATTEMPT_H
#define DS_CONSUMER_ATTEMPT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "apply.h"
#include "error.h"

/*
 * The pipeline of two: while the applier's thread runs one
 * dsc_applier_batch (database work only: it touches the applier, its
 * connection, the batch's changes and the clock file), the loop's thread
 * keeps the broker connection, reads the next batch's frames and decodes
 * them against the catalogue, which neither side changes meanwhile. The
 * loop joins before it acks the batch, dead-letters from it, or uses the
 * database in any other way: everything that can fail and be retried
 * (backoff, reconnect, catalogue reload) happens after the join, on the
 * loop's thread, as without the pipeline.
 */
typedef struct dsc_attempt {
    dsc_applier *ap;
    dsc_change *changes;
    size_t n;
    /* The attempt's outcome, as dsc_applier_batch returns it: read after
     * dsc_attempt_join. */
    int rc;
    dsc_apply_retry retry;
    char err[DS_ERRMSG_SIZE];
    /* One applier thread for the consumer's life, not one per batch: a
     * thread's start and the client library's per-thread set-up cost more
     * than a small batch's statements. */
    pthread_mutex_t lock; /* guards handed, done and quit */
    pthread_cond_t wake;  /* signalled when a batch is handed over, or quit */
    pthread_cond_t ended; /* signalled when done is set */
    bool handed;          /* a batch waits for the applier's thread */
    bool done;            /* set by the applier's thread as a batch ends */
    bool quit;            /* the applier's thread is to end */
    bool running;         /* started and not joined */
    bool sync_ok;         /* lock, wake and ended are initialised */
    bool thread_ok;       /* the applier's thread runs */
    pthread_t thread;
} dsc_attempt;

/* Hands one dsc_applier_batch(ap, changes, n) to the applier's thread,
 * started at the first call. ap, its connection and changes belong to that
 * thread until dsc_attempt_join. Returns 0, or -1 when no thread could be
 * started (nothing runs: apply on the calling thread instead). */
int dsc_attempt_start(dsc_attempt *a, dsc_applier *ap, dsc_change *changes,
                      size_t n);

/* Whether the started attempt has ended (then dsc_attempt_join does not
 * wait); waits up to ms for it first. True when none runs. */
bool dsc_attempt_wait(dsc_attempt *a, int ms);

/* Waits for the attempt's end; a->rc, a->retry and a->err are then its
 * outcome. A no-op when none runs. */
void dsc_attempt_join(dsc_attempt *a);

/* Joins a running attempt, ends the applier's thread and frees what a
 * holds (a zeroed a is fine). */
void dsc_attempt_free(dsc_attempt *a);

#endif
