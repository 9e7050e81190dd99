/* ids.h: UUIDv7 event ids and the hybrid logical clock. */
#ifndef DS_COMMON_IDS_H
#define DS_COMMON_IDS_H

#include <pthread.h>
#include <stdint.h>

/* Writes a new UUID version 7 (unix ms + random) as 36 chars plus NUL.
 * Returns 0, or DS_EIO if no randomness could be read. Any thread. */
int ds__uuid7(char out[37]);

/* Writes the UUID version 7 of unix_ms whose 74 bits after the version and
 * variant come from tail (10 bytes; the bits the layout takes are
 * dropped): ds__uuid7 with chosen bits, for an id that must come out the
 * same when a change is made again. */
void ds__uuid7_of(uint64_t unix_ms, const uint8_t tail[10], char out[37]);

struct ds_clockfile;

/* Hybrid logical clock: (unix_ms << 16) | counter, strictly increasing
 * for one clock even when the wall clock steps back; for all the clocks
 * sharing a counter (common/clockfile.h) when one is set. */
typedef struct ds_hlc {
    pthread_mutex_t lock;
    uint64_t last;
    struct ds_clockfile *shared; /* not owned; NULL: last alone */
} ds_hlc;

void ds__hlc_init(ds_hlc *c);
/* Takes every later value from shared (a counter, kept open by the caller
 * for the clock's life) instead of the clock's own last one. */
void ds__hlc_share(ds_hlc *c, struct ds_clockfile *shared);
void ds__hlc_destroy(ds_hlc *c);

/* The next value: max(now_ms << 16, last + 1, floor + 1). floor is the
 * highest version this server has applied (common/clockfile.h), 0 if
 * unknown. Any thread. */
uint64_t ds__hlc_next(ds_hlc *c, uint64_t floor);

/* Same rule with an explicit wall clock, for tests. */
uint64_t ds__hlc_next_at(ds_hlc *c, uint64_t now_ms, uint64_t floor);

/* The unix milliseconds an hlc value carries. */
static inline uint64_t ds__hlc_ms(uint64_t hlc)
{
    return hlc >> 16;
}

/* Formats unix_ms as RFC 3339 UTC with milliseconds ("...T..:..:...mmmZ"). */
void ds__rfc3339_ms(uint64_t unix_ms, char out[32]);

/* Current wall clock in unix milliseconds: for stamps people read. */
uint64_t ds__now_ms(void);

/* Milliseconds of a clock that never steps: for timeouts and deadlines. */
uint64_t ds__mono_ms(void);

#endif
