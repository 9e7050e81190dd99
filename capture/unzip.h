/* unzip.h: the zlib-compressed parts of MariaDB's compressed binlog events (log_bin_compress). */
#ifndef DS_CAPTURE_UNZIP_H
#define DS_CAPTURE_UNZIP_H

#include <stddef.h>

/* The most a compressed part may grow to: a row event's rows, a query. */
#define CAP_UNZIP_MAX (1024UL * 1024 * 1024)

/*
 * Uncompresses one compressed part as the server writes it: a byte whose
 * low 3 bits give the size (1..4) of the uncompressed length and whose bits
 * 4..6 the algorithm (0: zlib), that length big-endian, then the zlib
 * stream. Returns 0 with *out (malloc'd, *outlen bytes), or DS_EINVAL (a
 * part that does not read back to its length, an unknown algorithm, more
 * than CAP_UNZIP_MAX) or DS_ENOMEM, with err.
 */
int cap_unzip(const unsigned char *src, size_t len, unsigned char **out,
              size_t *outlen, char *err, size_t errlen);

#endif
