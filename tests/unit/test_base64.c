/* test_base64.c: RFC 4648 vectors, strictness, and round trips of random bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "datasync.h"

static void check_decode(const char *in, const char *want)
{
    unsigned char out[64];
    size_t n = 0;
    assert_true(ds__base64_decoded_max(strlen(in)) <= sizeof out);
    assert_int_equal(ds__base64_decode(in, strlen(in), out, &n), 0);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
}

static void rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const plain[] = {"",     "f",     "fo",    "foo",
                                        "foob", "fooba", "foobar"};
    static const char *const coded[] = {
        "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        char enc[16];
        size_t n = ds__base64_encode((const unsigned char *)plain[i],
                                     strlen(plain[i]), enc);
        assert_int_equal(n, ds__base64_encoded_len(strlen(plain[i])));
        assert_string_equal(enc, coded[i]);
        check_decode(coded[i], plain[i]);
    }
}

static void padding_is_optional(void **state)
{
    (void)state;
    check_decode("Zg", "f");
    check_decode("Zm8", "fo");
    check_decode("Zm9vYg", "foob");
}

static void rejects_bad_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Z",                   /* a lone sextet */
        "Zg=",                 /* short padding */
        "Zg===",               /* too much padding */
        "=Zg=",                /* padding first */
        "Zm9v Yg==",           /* whitespace */
        "Zm9v\nYg==",  "Zm-_", /* URL-safe alphabet */
        "Zh==",                /* non-zero trailing bits */
        "Zm9=",                /* non-zero trailing bits */
        "Zm8=Zm8=",            /* padding in the middle */
        "Zm9\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char out[32];
        size_t n = 0;
        assert_int_equal(ds__base64_decode(bad[i], strlen(bad[i]), out, &n),
                         DS_EINVAL);
    }
}

static void decodes_embedded_nul(void **state)
{
    (void)state;
    unsigned char out[8];
    size_t n = 0;
    assert_int_equal(ds__base64_decode("AAEA/w==", 8, out, &n), 0);
    assert_int_equal(n, 4);
    static const unsigned char want[] = {0, 1, 0, 255};
    assert_memory_equal(out, want, 4);
}

static void random_round_trips(void **state)
{
    (void)state;
    unsigned char in[300], back[300];
    char enc[401];
    srand(7);
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)rand() % sizeof in;
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)rand();
        size_t elen = ds__base64_encode(in, len, enc);
        assert_int_equal(elen, strlen(enc));
        size_t n = 0;
        assert_int_equal(ds__base64_decode(enc, elen, back, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(in, back, len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc4648_vectors),
        cmocka_unit_test(padding_is_optional),
        cmocka_unit_test(rejects_bad_input),
        cmocka_unit_test(decodes_embedded_nul),
        cmocka_unit_test(random_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
