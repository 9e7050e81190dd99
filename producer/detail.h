/* detail.h: the detail of each thread's last failed call on a producer, kept per thread so that threads sharing a producer never read each other's. */
#ifndef DS_PRODUCER_DETAIL_H
#define DS_PRODUCER_DETAIL_H

#include <stdint.h>

/* Producers a thread keeps details for at once: a thread failing on more
 * forgets the one it failed on longest ago. */
#define DS_DETAIL_SLOTS 4

/* The calling thread's buffer (DS_ERRMSG_SIZE bytes) for the producer known
 * as (owner, token), claimed for it: write the failure's detail into it,
 * e.g. with ds__seterr. token tells apart a producer allocated where a
 * freed one was. Never NULL. */
char *ds__detail_claim(const void *owner, uint64_t token);

/* The calling thread's detail for (owner, token); "" if it has none. Valid
 * until this thread's next ds__detail_claim. */
const char *ds__detail_get(const void *owner, uint64_t token);

#endif
