/* base64.c: strict standard base64 decoding and encoding. */
#include <stdint.h>

#include "base64.h"
#include "datasync.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int value_of(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int ds__base64_decode(const char *in, size_t len, unsigned char *out,
                      size_t *outlen)
{
    size_t n = 0, pad = 0;
    uint32_t acc = 0;
    int bits = 0;

    /* Padding: only as the last one or two characters of a whole quantum. */
    if (len > 0 && in[len - 1] == '=') {
        pad = (len > 1 && in[len - 2] == '=') ? 2 : 1;
        if (len % 4 != 0)
            return DS_EINVAL;
        len -= pad;
    }
    if (len % 4 == 1)
        return DS_EINVAL; /* 6 bits cannot make a byte */
    if (pad && len % 4 != 4 - pad)
        return DS_EINVAL;

    for (size_t i = 0; i < len; i++) {
        int v = value_of((unsigned char)in[i]);
        if (v < 0)
            return DS_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return DS_EINVAL; /* non-canonical: trailing bits must be zero */
    *outlen = n;
    return 0;
}

size_t ds__base64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0, i = 0;

    for (; i + 2 < len; i += 3) {
        uint32_t v =
            (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}
