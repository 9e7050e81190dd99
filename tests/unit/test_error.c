/* test_error.c: every error code has a distinct name and a text; unknown codes;
 * the version string. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

typedef struct code {
    int code;
    const char *name;
} code;

/* The list as datasync.h spells it, to check the functions against. */
static const code codes[] = {
#define XX(name, value, text) {value, #name},
    DS_ERRNO_MAP(XX)
#undef XX
};

#define N_CODES (sizeof codes / sizeof codes[0])

static void every_code_has_its_name_and_a_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        const char *text = ds_strerror(codes[i].code);

        assert_true(codes[i].code < 0);
        assert_string_equal(ds_err_name(codes[i].code), codes[i].name);
        assert_non_null(text);
        assert_true(text[0] != '\0');
        assert_string_not_equal(text, "unknown error");
        assert_string_not_equal(text, ds_strerror(0));
    }
}

static void codes_names_and_texts_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        for (size_t j = i + 1; j < N_CODES; j++) {
            assert_int_not_equal(codes[i].code, codes[j].code);
            assert_string_not_equal(ds_err_name(codes[i].code),
                                    ds_err_name(codes[j].code));
            assert_string_not_equal(ds_strerror(codes[i].code),
                                    ds_strerror(codes[j].code));
        }
    }
}

/* Codes are only appended: -1 .. -N with no gap, so a new one is -(N+1). */
static void codes_are_dense(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++)
        assert_int_equal(codes[i].code, -(int)(i + 1));
    assert_int_equal(DS_EINVAL, -1);
    assert_int_equal(DS_ECLOSED, -21);
}

static void success(void **state)
{
    (void)state;
    assert_int_equal(DS_OK, 0);
    assert_string_equal(ds_err_name(0), "OK");
    assert_string_equal(ds_strerror(0), "success");
}

static void unknown_codes(void **state)
{
    (void)state;
    const int unknown[] = {1, 42, -(int)N_CODES - 1, -1000, INT_MIN, INT_MAX};

    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(ds_strerror(unknown[i]), "unknown error");
        assert_string_equal(ds_err_name(unknown[i]), "UNKNOWN");
    }
}

static void version_matches_the_macros(void **state)
{
    (void)state;
    char want[64];

    snprintf(want, sizeof want, "%d.%d.%d", DS_VERSION_MAJOR, DS_VERSION_MINOR,
             DS_VERSION_PATCH);
    assert_string_equal(ds_version(), want);
}

static void seterr_formats_truncates_and_returns_the_code(void **state)
{
    (void)state;
    char buf[8];

    assert_int_equal(ds__seterr(buf, sizeof buf, DS_EIO, "%s:%d", "abc", 12),
                     DS_EIO);
    assert_string_equal(buf, "abc:12");
    assert_int_equal(
        ds__seterr(buf, sizeof buf, DS_ECONFIG, "%s", "0123456789"),
        DS_ECONFIG);
    assert_string_equal(buf, "0123456"); /* cut, always terminated */
    assert_int_equal(ds__seterr(NULL, 0, DS_ENOMEM, "%d", 1), DS_ENOMEM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_its_name_and_a_text),
        cmocka_unit_test(codes_names_and_texts_are_distinct),
        cmocka_unit_test(codes_are_dense),
        cmocka_unit_test(success),
        cmocka_unit_test(unknown_codes),
        cmocka_unit_test(version_matches_the_macros),
        cmocka_unit_test(seterr_formats_truncates_and_returns_the_code),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
