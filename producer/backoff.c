/* backoff.c: the producer's reconnect backoff, jittered from a per-producer generator seeded by the kernel. */
#include <errno.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"

/* splitmix64 (Steele, Lea, Flood 2014): a full-period 64-bit sequence from
 * any seed, and a good finaliser for the fallback seed below. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t ds__seed64(void)
{
    uint64_t seed = 0, mix;
    struct timespec mono, wall;

    /* GRND_NONBLOCK: early in boot the pool may not be ready, and a
     * producer must never wait for it; the fallback is good enough to
     * spread retries. */
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &wall);
    mix = (uint64_t)wall.tv_sec * 1000000000ULL + (uint64_t)wall.tv_nsec;
    mix ^= ((uint64_t)mono.tv_nsec << 32) ^ (uint64_t)getpid();
    mix ^= (uint64_t)(uintptr_t)&seed; /* differs per thread stack */
    return splitmix64(&mix);
}

void ds__backoff_init(ds_backoff *b)
{
    b->rng = ds__seed64();
    b->step = DS_BACKOFF_MIN_MS;
}

void ds__backoff_reset(ds_backoff *b)
{
    b->step = DS_BACKOFF_MIN_MS;
}

uint64_t ds__backoff_next(ds_backoff *b)
{
    uint64_t ms = b->step, quarter = ms / 4;

    b->step = ms * 2 > DS_BACKOFF_MAX_MS ? DS_BACKOFF_MAX_MS : ms * 2;
    if (quarter == 0)
        return ms;
    return ms - quarter + splitmix64(&b->rng) % (2 * quarter + 1);
}
