/* detail.c: per-thread error details of the producer calls: thread-local slots keyed by producer, the one state the library keeps outside its handles. */
#include <stddef.h>

#include "detail.h"
#include "error.h"

/* Thread-local, not global: each thread sees only its own slots, and the
 * slots die with the thread (no destructor needed, nothing is allocated).
 * A per-producer buffer would be shared by every thread using it. */
typedef struct detail_slot {
    const void *owner;
    uint64_t token;
    uint64_t used; /* the thread's claim counter when last claimed */
    char text[DS_ERRMSG_SIZE];
} detail_slot;

static _Thread_local detail_slot slots[DS_DETAIL_SLOTS];
static _Thread_local uint64_t claims;

static detail_slot *find(const void *owner, uint64_t token)
{
    for (int i = 0; i < DS_DETAIL_SLOTS; i++)
        if (slots[i].owner == owner && slots[i].token == token)
            return &slots[i];
    return NULL;
}

char *ds__detail_claim(const void *owner, uint64_t token)
{
    detail_slot *s = find(owner, token);

    if (!s) {
        s = &slots[0];
        for (int i = 1; i < DS_DETAIL_SLOTS; i++)
            if (slots[i].used < s->used)
                s = &slots[i];
        s->owner = owner;
        s->token = token;
    }
    s->used = ++claims;
    s->text[0] = '\0';
    return s->text;
}

const char *ds__detail_get(const void *owner, uint64_t token)
{
    const detail_slot *s = owner ? find(owner, token) : NULL;
    return s ? s->text : "";
}
