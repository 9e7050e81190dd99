/* ids.c: UUIDv7 event ids and the hybrid logical clock that orders a producer's changes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "clockfile.h"
#include "datasync.h"
#include "ids.h"

uint64_t ds__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ds__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ds__uuid7_of(uint64_t unix_ms, const uint8_t tail[10], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];

    /* RFC 9562 layout: 48-bit big-endian unix ms, version 7, variant 10,
     * the remaining 74 bits from tail. */
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(unix_ms >> (40 - 8 * i));
    memcpy(b + 6, tail, 10);
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0x0f];
    }
    *p = '\0';
}

int ds__uuid7(char out[37])
{
    uint8_t tail[10];
    size_t got = 0;

    while (got < sizeof tail) {
        ssize_t n = getrandom(tail + got, sizeof tail - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return DS_EIO;
        }
        got += (size_t)n;
    }
    ds__uuid7_of(ds__now_ms(), tail, out);
    return 0;
}

void ds__hlc_init(ds_hlc *c)
{
    pthread_mutex_init(&c->lock, NULL);
    c->last = 0;
    c->shared = NULL;
}

void ds__hlc_share(ds_hlc *c, struct ds_clockfile *shared)
{
    c->shared = shared;
}

void ds__hlc_destroy(ds_hlc *c)
{
    pthread_mutex_destroy(&c->lock);
}

uint64_t ds__hlc_next_at(ds_hlc *c, uint64_t now_ms, uint64_t floor)
{
    uint64_t candidate = now_ms << 16, next;

    /* When the wall clock steps back, or more than 65536 changes fall in one
     * millisecond, the counter carries on from the last value: the clock
     * runs ahead of wall time briefly but never repeats or goes back. A
     * floor above both (another server's clock runs ahead) is passed the
     * same way. */
    if (floor >= candidate)
        candidate = floor + 1;
    if (c->shared)
        return ds__clockfile_next(c->shared, candidate);
    pthread_mutex_lock(&c->lock);
    next = candidate > c->last ? candidate : c->last + 1;
    c->last = next;
    pthread_mutex_unlock(&c->lock);
    return next;
}

uint64_t ds__hlc_next(ds_hlc *c, uint64_t floor)
{
    return ds__hlc_next_at(c, ds__now_ms(), floor);
}

void ds__rfc3339_ms(uint64_t unix_ms, char out[32])
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    char base[24];

    gmtime_r(&secs, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03uZ", base, (unsigned)(unix_ms % 1000));
}
