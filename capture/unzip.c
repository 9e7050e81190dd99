/* unzip.c: the zlib-compressed parts of MariaDB's compressed binlog events (log_bin_compress). */
#include <stdlib.h>
#include <zlib.h>

#include "error.h"
#include "unzip.h"

int cap_unzip(const unsigned char *src, size_t len, unsigned char **out,
              size_t *outlen, char *err, size_t errlen)
{
    size_t lenlen, want = 0;

    *out = NULL;
    *outlen = 0;
    if (len < 1)
        return ds__seterr(err, errlen, DS_EINVAL, "empty compressed part");
    lenlen = src[0] & 0x07;
    if (((src[0] >> 4) & 0x07) != 0)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "compressed with algorithm %d, not zlib",
                          (src[0] >> 4) & 0x07);
    if (lenlen < 1 || lenlen > 4 || len < 1 + lenlen)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "a compressed part with a %zu-byte length", lenlen);
    for (size_t i = 1; i <= lenlen; i++)
        want = want << 8 | src[i];
    if (want > CAP_UNZIP_MAX)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "a compressed part of %zu bytes uncompressed, more "
                          "than %lu",
                          want, CAP_UNZIP_MAX);
    /* One byte more than needed: an empty part still gets a buffer. */
    unsigned char *buf = malloc(want + 1);
    if (!buf)
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    uLongf got = (uLongf)want;
    int zrc =
        uncompress(buf, &got, src + 1 + lenlen, (uLong)(len - 1 - lenlen));
    if (zrc != Z_OK || got != want) {
        free(buf);
        return ds__seterr(err, errlen, DS_EINVAL,
                          "a compressed part does not uncompress to its "
                          "%zu bytes (zlib: %s)",
                          want, zrc == Z_OK ? "short" : zError(zrc));
    }
    *out = buf;
    *outlen = want;
    return 0;
}
