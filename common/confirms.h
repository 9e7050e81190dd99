/* confirms.h: publisher-confirm bookkeeping: the publishes of one confirm-mode channel in sequence order, each settled exactly once by ack, nack, return or loss. */
#ifndef DS_CONFIRMS_H
#define DS_CONFIRMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where one publish stands. PENDING and RETURNED are unsettled; the others
 * are final and reached exactly once. */
typedef enum {
    DS_CONFIRM_PENDING,    /* published, not answered yet */
    DS_CONFIRM_RETURNED,   /* basic.return seen; its ack is still to come */
    DS_CONFIRM_ACKED,      /* confirmed: it reached a queue */
    DS_CONFIRM_UNROUTABLE, /* returned, then acked: it reached no queue */
    DS_CONFIRM_NACKED,     /* refused by the broker */
    DS_CONFIRM_LOST        /* never answered: timeout or connection loss */
} ds_confirm_state;

/* One publish. id, ptr and cookie are the caller's, never looked into but
 * for id matching a basic.return. */
typedef struct ds_confirm {
    uint64_t seq; /* its delivery tag on the channel */
    void *ptr;
    uint64_t cookie;
    char id[64]; /* message_id ("" for none), to match a basic.return */
    ds_confirm_state state;
} ds_confirm;

/* Told of each publish as it settles (e->state is final). It must not add
 * to, answer or fail the same ds_confirms. */
typedef void (*ds_confirm_fn)(void *ctx, ds_confirm *e);

/*
 * The publishes of one channel, oldest first. Sequence numbers are
 * consecutive from 1 per channel, as the broker counts them, so a delivery
 * tag finds its entry directly. Settled entries behind an unsettled older
 * one stay held (count) until everything before them settles. No lock: its
 * owner's lock or thread guards it.
 */
typedef struct ds_confirms {
    ds_confirm *ring;
    size_t cap, head, count; /* held entries, the oldest at head */
    size_t unsettled;        /* held entries still PENDING or RETURNED */
    uint64_t next_seq;       /* the next publish's sequence number */
} ds_confirms;

/* Zeroes c; the first publish is seq 1. Allocates nothing. */
void ds__confirms_init(ds_confirms *c);

/* Frees c's entries without settling them; c may be initialised again. */
void ds__confirms_free(ds_confirms *c);

/* A new channel in confirm mode: numbering starts at 1 again. Entries still
 * held are dropped unsettled (call ds__confirms_fail first to hear them). */
void ds__confirms_restart(ds_confirms *c);

/* Makes room for n entries held at once, so that adding them cannot fail.
 * Returns 0 or DS_ENOMEM. */
int ds__confirms_reserve(ds_confirms *c, size_t n);

/* Records the next publish on the channel (call it for every publish, in
 * order, or the numbering drifts from the broker's). id may be NULL; it is
 * copied (truncated to 63 bytes). Returns its sequence number, or 0 when
 * out of memory (nothing recorded). */
uint64_t ds__confirms_add(ds_confirms *c, const char *id, void *ptr,
                          uint64_t cookie);

/* A basic.ack (ack true) or basic.nack for seq, or for every publish up to
 * seq when multiple. Each entry it settles goes to fn (may be NULL) in
 * sequence order; an answer for nothing held is ignored. Returns how many
 * it settled. */
size_t ds__confirms_answer(ds_confirms *c, uint64_t seq, bool multiple,
                           bool ack, ds_confirm_fn fn, void *ctx);

/* A basic.return: marks the oldest PENDING entry with that message_id (any
 * PENDING entry when id is NULL or "") so that its ack settles it
 * UNROUTABLE. Returns false when no entry matches. */
bool ds__confirms_returned(ds_confirms *c, const char *id);

/* The channel is gone or gave up: settles every unsettled entry LOST, in
 * order, through fn (may be NULL), and empties c. Numbering goes on (the
 * channel may still be open): ds__confirms_restart starts it again. Returns
 * how many it settled. */
size_t ds__confirms_fail(ds_confirms *c, ds_confirm_fn fn, void *ctx);

/* A settled entry's verdict as a code: 0 (ACKED), DS_ENACK, DS_EUNROUTABLE,
 * or lost for one LOST (the reason it went unanswered). */
int ds__confirm_result(const ds_confirm *e, int lost);

/* The oldest unsettled entry, or NULL: the one that waited longest. */
ds_confirm *ds__confirms_oldest(ds_confirms *c);

#endif
