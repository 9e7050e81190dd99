/* test_capture_unzip.c: the compressed parts of binlog events read back, and broken ones refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "error.h"
#include "unzip.h"

/* A part as the server writes it: header byte, length in lenlen bytes
 * big-endian, zlib stream. Returns its size. */
static size_t make_part(unsigned char *out, size_t cap, const void *data,
                        size_t len, int lenlen, int algorithm)
{
    uLongf zlen = (uLongf)(cap - 1 - (size_t)lenlen);

    out[0] = (unsigned char)(0x80 | (algorithm << 4) | lenlen);
    for (int i = 0; i < lenlen; i++)
        out[1 + i] = (unsigned char)(len >> (8 * (lenlen - 1 - i)));
    assert_int_equal(compress(out + 1 + lenlen, &zlen, data, (uLong)len), Z_OK);
    return 1 + (size_t)lenlen + zlen;
}

static void test_reads_back(void **state)
{
    unsigned char part[4096], *out;
    char text[3000], err[DS_ERRMSG_SIZE];
    size_t outlen;

    (void)state;
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 7);
    for (int lenlen = 2; lenlen <= 4; lenlen++) {
        size_t n = make_part(part, sizeof part, text, sizeof text, lenlen, 0);
        assert_int_equal(cap_unzip(part, n, &out, &outlen, err, sizeof err), 0);
        assert_int_equal(outlen, sizeof text);
        assert_memory_equal(out, text, sizeof text);
        free(out);
    }
}

static void test_refuses_broken_parts(void **state)
{
    unsigned char part[4096], *out;
    char text[100] = "a statement long enough to be compressed", err[256];
    size_t outlen, n;

    (void)state;
    /* Another algorithm. */
    n = make_part(part, sizeof part, text, sizeof text, 1, 1);
    assert_int_equal(cap_unzip(part, n, &out, &outlen, err, sizeof err),
                     DS_EINVAL);
    assert_non_null(strstr(err, "not zlib"));
    assert_null(out);
    /* A length that does not match what the stream holds. */
    n = make_part(part, sizeof part, text, sizeof text, 1, 0);
    part[1] = 99;
    assert_int_equal(cap_unzip(part, n, &out, &outlen, err, sizeof err),
                     DS_EINVAL);
    assert_non_null(strstr(err, "does not uncompress to its 99 bytes"));
    /* Cut short. */
    n = make_part(part, sizeof part, text, sizeof text, 1, 0);
    assert_int_equal(cap_unzip(part, n - 4, &out, &outlen, err, sizeof err),
                     DS_EINVAL);
    /* No length bytes, or a header alone. */
    part[0] = 0x80;
    assert_int_equal(cap_unzip(part, 5, &out, &outlen, err, sizeof err),
                     DS_EINVAL);
    assert_int_equal(cap_unzip(part, 0, &out, &outlen, err, sizeof err),
                     DS_EINVAL);
    /* More than CAP_UNZIP_MAX announced. */
    part[0] = 0x84;
    memset(part + 1, 0xff, 4);
    assert_int_equal(cap_unzip(part, 20, &out, &outlen, err, sizeof err),
                     DS_EINVAL);
    assert_non_null(strstr(err, "more than"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_back),
        cmocka_unit_test(test_refuses_broken_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
