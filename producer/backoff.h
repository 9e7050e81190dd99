/* backoff.h: reconnect delays that double up to a ceiling, jittered by a generator of the producer's own so a fleet never retries in step. */
#ifndef DS_PRODUCER_BACKOFF_H
#define DS_PRODUCER_BACKOFF_H

#include <stdint.h>

#define DS_BACKOFF_MIN_MS 100
#define DS_BACKOFF_MAX_MS 10000

/* One producer's backoff. Its owner's lock guards it. */
typedef struct ds_backoff {
    uint64_t rng;  /* splitmix64 state, seeded by ds__seed64 */
    uint64_t step; /* the next delay before jitter, ms */
} ds_backoff;

/* 64 bits from the kernel's generator (getrandom), or when it has none to
 * give, a mix of the clocks, the process id and an address: distinct per
 * process and per call either way. Any thread. */
uint64_t ds__seed64(void);

/* Seeds b afresh (ds__seed64) and starts at DS_BACKOFF_MIN_MS. A forked
 * child calls it again, or it would retry in step with its parent. */
void ds__backoff_init(ds_backoff *b);

/* After a success: the next failure waits DS_BACKOFF_MIN_MS again. */
void ds__backoff_reset(ds_backoff *b);

/* The delay before the next attempt: the current step ±25%, drawn from b's
 * own generator; the step then doubles, up to DS_BACKOFF_MAX_MS. */
uint64_t ds__backoff_next(ds_backoff *b);

#endif
