/* error.h: the bounded error-message setter every handle uses. */
#ifndef DS_COMMON_ERROR_H
#define DS_COMMON_ERROR_H

#include <stddef.h>

#include "datasync.h"

/* Size of every per-handle error message buffer. */
#define DS_ERRMSG_SIZE 512

/* Formats a message into buf (truncated to len, always terminated) and
 * returns code, so a failure path reads `return ds__seterr(...)`. */
int ds__seterr(char *buf, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
