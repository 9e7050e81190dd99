/* base64.h: standard base64 (RFC 4648, section 4), for binary column values written {"base64": "..."}. */
#ifndef DS_COMMON_BASE64_H
#define DS_COMMON_BASE64_H

#include <stddef.h>

/* Bytes needed to decode len characters (an upper bound). */
static inline size_t ds__base64_decoded_max(size_t len)
{
    return (len + 3) / 4 * 3;
}

/* Characters ds__base64_encode writes for len bytes, without the NUL. */
static inline size_t ds__base64_encoded_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

/*
 * Decodes len characters of standard base64 into out, which has room for
 * ds__base64_decoded_max(len) bytes; *outlen gets the byte count. Padding
 * is optional but, when present, must be right; whitespace, the URL-safe
 * alphabet and non-zero trailing bits are rejected, so every byte string
 * has exactly one accepted spelling. Returns 0 or DS_EINVAL. Any thread.
 */
int ds__base64_decode(const char *in, size_t len, unsigned char *out,
                      size_t *outlen);

/* Encodes len bytes with padding into out, which has room for
 * ds__base64_encoded_len(len) + 1 characters; NUL-terminates. Returns the
 * length written. Any thread. */
size_t ds__base64_encode(const unsigned char *in, size_t len, char *out);

#endif
