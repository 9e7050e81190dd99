/* confirms.c: publisher-confirm bookkeeping shared by the producer, the consumer's dead letters and the CLI: a ring of publishes in sequence order. */
#include <stdlib.h>
#include <string.h>

#include "confirms.h"
#include "error.h"

/* Room for this many publishes at first; the ring doubles when full. */
#define DS_CONFIRMS_MIN_CAP 64

void ds__confirms_init(ds_confirms *c)
{
    memset(c, 0, sizeof *c);
    c->next_seq = 1;
}

void ds__confirms_free(ds_confirms *c)
{
    free(c->ring);
    ds__confirms_init(c);
}

void ds__confirms_restart(ds_confirms *c)
{
    c->head = c->count = c->unsettled = 0;
    c->next_seq = 1;
}

static ds_confirm *at(const ds_confirms *c, size_t i)
{
    return &c->ring[(c->head + i) % c->cap];
}

static bool unsettled(const ds_confirm *e)
{
    return e->state == DS_CONFIRM_PENDING || e->state == DS_CONFIRM_RETURNED;
}

/* Unwraps the ring into one of at least min entries, doubling. */
static int grow(ds_confirms *c, size_t min)
{
    size_t cap = c->cap ? c->cap : DS_CONFIRMS_MIN_CAP;
    ds_confirm *ring;

    while (cap < min && cap <= SIZE_MAX / 2)
        cap *= 2;
    if (cap < min || cap > SIZE_MAX / sizeof *ring)
        return -1;
    ring = malloc(cap * sizeof *ring);
    if (!ring)
        return -1;
    for (size_t i = 0; i < c->count; i++)
        ring[i] = *at(c, i);
    free(c->ring);
    c->ring = ring;
    c->cap = cap;
    c->head = 0;
    return 0;
}

int ds__confirms_reserve(ds_confirms *c, size_t n)
{
    return n <= c->cap || grow(c, n) == 0 ? 0 : DS_ENOMEM;
}

uint64_t ds__confirms_add(ds_confirms *c, const char *id, void *ptr,
                          uint64_t cookie)
{
    ds_confirm *e;
    size_t len = id ? strlen(id) : 0;

    if (c->count == c->cap && grow(c, c->cap + 1) < 0)
        return 0;
    e = at(c, c->count++);
    e->seq = c->next_seq++;
    e->ptr = ptr;
    e->cookie = cookie;
    if (len >= sizeof e->id)
        len = sizeof e->id - 1;
    memcpy(e->id, id ? id : "", len);
    e->id[len] = '\0';
    e->state = DS_CONFIRM_PENDING;
    c->unsettled++;
    return e->seq;
}

/* Lets go of the settled entries at the head. */
static void shrink(ds_confirms *c)
{
    while (c->count > 0 && !unsettled(at(c, 0))) {
        c->head = (c->head + 1) % c->cap;
        c->count--;
    }
    if (c->count == 0)
        c->head = 0;
}

size_t ds__confirms_answer(ds_confirms *c, uint64_t seq, bool multiple,
                           bool ack, ds_confirm_fn fn, void *ctx)
{
    uint64_t first;
    size_t lo, hi, n = 0;

    if (c->count == 0)
        return 0;
    first = at(c, 0)->seq;
    if (seq < first)
        return 0; /* settled and let go already */
    if (seq - first >= c->count) {
        if (!multiple)
            return 0; /* never published on this channel */
        hi = c->count - 1;
    } else {
        hi = (size_t)(seq - first);
    }
    lo = multiple ? 0 : hi;
    for (size_t i = lo; i <= hi; i++) {
        ds_confirm *e = at(c, i);

        if (!unsettled(e))
            continue;
        e->state = !ack                              ? DS_CONFIRM_NACKED
                   : e->state == DS_CONFIRM_RETURNED ? DS_CONFIRM_UNROUTABLE
                                                     : DS_CONFIRM_ACKED;
        c->unsettled--;
        n++;
        if (fn)
            fn(ctx, e);
    }
    shrink(c);
    return n;
}

bool ds__confirms_returned(ds_confirms *c, const char *id)
{
    bool any = !id || !id[0];

    /* Returns come in publish order: the oldest match is the one. */
    for (size_t i = 0; i < c->count; i++) {
        ds_confirm *e = at(c, i);

        if (e->state == DS_CONFIRM_PENDING && (any || strcmp(e->id, id) == 0)) {
            e->state = DS_CONFIRM_RETURNED;
            return true;
        }
    }
    return false;
}

size_t ds__confirms_fail(ds_confirms *c, ds_confirm_fn fn, void *ctx)
{
    size_t n = 0;

    for (size_t i = 0; i < c->count; i++) {
        ds_confirm *e = at(c, i);

        if (!unsettled(e))
            continue;
        e->state = DS_CONFIRM_LOST;
        c->unsettled--;
        n++;
        if (fn)
            fn(ctx, e);
    }
    c->head = c->count = 0;
    return n;
}

int ds__confirm_result(const ds_confirm *e, int lost)
{
    switch (e->state) {
    case DS_CONFIRM_ACKED:
        return 0;
    case DS_CONFIRM_NACKED:
        return DS_ENACK;
    case DS_CONFIRM_UNROUTABLE:
        return DS_EUNROUTABLE;
    default:
        return lost;
    }
}

ds_confirm *ds__confirms_oldest(ds_confirms *c)
{
    for (size_t i = 0; i < c->count; i++)
        if (unsettled(at(c, i)))
            return at(c, i);
    return NULL;
}
