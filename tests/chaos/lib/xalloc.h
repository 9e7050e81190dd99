/* xalloc.h: allocation for the chaos checker, which has nothing to do without memory: it says so and exits 2 (could not check). */
#ifndef DS_TESTS_CHAOS_XALLOC_H
#define DS_TESTS_CHAOS_XALLOC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fprintf(stderr, "chaos_check: out of memory\n");
        exit(2);
    }
    return p;
}

/* NULL stays NULL. */
static inline char *xstrdup(const char *s)
{
    return s ? strcpy(xrealloc(NULL, strlen(s) + 1), s) : NULL;
}

#endif
