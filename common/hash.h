/* hash.h: FNV-1a, the one non-cryptographic hash of the tree, for hash tables and caches. */
#ifndef DS_COMMON_HASH_H
#define DS_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Where a 64-bit FNV-1a hash starts (the offset basis). */
#define DS_FNV1A_INIT UINT64_C(14695981039346656037)

/* Continues the 64-bit FNV-1a hash h over len bytes at data: start with
 * DS_FNV1A_INIT, feed several pieces in turn. Pure; any thread. */
static inline uint64_t ds__fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * UINT64_C(1099511628211);
    return h;
}

#endif
