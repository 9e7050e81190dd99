/* test_event.c: the change event: every rule and its message, build, encode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "error.h"
#include "event.h"

/* The messages are part of what users see (logs, x-datasync-error), so the
 * tests pin them word for word. */
#define ID_MSG "id: must be a UUID (8-4-4-4-12 hex digits)"
#define ORIGIN_MSG "origin: must be a node id matching [A-Za-z0-9._-]{1,64}"
#define HLC_MSG "hlc: must be an integer >= 0"
#define TS_MSG                                                                 \
    "ts: must be an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS[.fraction]Z)"
#define OP_MSG "op: must be \"create\", \"update\" or \"delete\""
#define TABLE_MSG                                                              \
    "table: must be a table name matching [A-Za-z_][A-Za-z0-9_]{0,63}"
#define KEY_VALUE_MSG                                                          \
    "must be a string, number, boolean or {\"base64\": \"...\"}"
#define DATA_VALUE_MSG                                                         \
    "must be a string, number, boolean, null or {\"base64\": \"...\"}"

#define S16 "abcdefghijklmnop"
#define S64 S16 S16 S16 S16
#define E16                                                                    \
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"         \
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
#define E64 E16 E16 E16 E16 /* 64 characters, 128 bytes */

#define BASE_EVENT                                                             \
    "{\"v\":1,\"id\":\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b\","                \
    "\"origin\":\"node-a\",\"hlc\":112711119675260931,"                        \
    "\"ts\":\"2024-07-01T12:00:00.123Z\",\"op\":\"create\","                   \
    "\"table\":\"users\",\"key\":{\"id\":42},"                                 \
    "\"data\":{\"id\":42,\"name\":\"Ada\"}}"

static const char *const base_fields[][2] = {
    {"v", "1"},
    {"id", "\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b\""},
    {"origin", "\"node-a\""},
    {"hlc", "112711119675260931"},
    {"ts", "\"2024-07-01T12:00:00.123Z\""},
    {"op", "\"create\""},
    {"table", "\"users\""},
    {"key", "{\"id\":42}"},
    {"data", "{\"id\":42,\"name\":\"Ada\"}"},
};
#define N_BASE (sizeof(base_fields) / sizeof(base_fields[0]))

static void append_member(char *buf, size_t size, const char *name,
                          const char *value)
{
    size_t len = strlen(buf);

    if (!value[0])
        return;
    len += (size_t)snprintf(buf + len, size - len, "%s\"%s\":%s",
                            len > 1 ? "," : "", name, value);
    assert_true(len < size);
}

static int is_base_field(const char *name)
{
    for (size_t i = 0; i < N_BASE; i++)
        if (strcmp(base_fields[i][0], name) == 0)
            return 1;
    return 0;
}

/* BASE_EVENT with some fields changed: pairs of name and raw JSON value,
 * "" to drop the field, ending with NULL. A name not in the base event is
 * appended. The buffer is static: each body is used before the next is made,
 * and cmocka runs the tests one at a time. */
static const char *event_with(const char *field, ...)
{
    static char buf[8192];
    const char *names[8], *values[8];
    size_t n = 0;
    va_list ap;

    va_start(ap, field);
    for (const char *f = field; f; f = va_arg(ap, const char *)) {
        assert_true(n < 8);
        names[n] = f;
        values[n++] = va_arg(ap, const char *);
    }
    va_end(ap);

    strcpy(buf, "{");
    for (size_t i = 0; i < N_BASE; i++) {
        const char *value = base_fields[i][1];
        for (size_t j = 0; j < n; j++)
            if (strcmp(names[j], base_fields[i][0]) == 0)
                value = values[j];
        append_member(buf, sizeof(buf), base_fields[i][0], value);
    }
    for (size_t j = 0; j < n; j++)
        if (!is_base_field(names[j]))
            append_member(buf, sizeof(buf), names[j], values[j]);
    assert_true(strlen(buf) + 2 <= sizeof(buf));
    strcat(buf, "}");
    return buf;
}

static void check_result(const char *what, int rc, const char *err, int want_rc,
                         const char *want, int exact)
{
    if (rc != want_rc || (want && exact && strcmp(err, want) != 0) ||
        (want && !exact && !strstr(err, want)))
        fail_msg("%s\n  got:  %s \"%s\"\n  want: %s %s\"%s\"", what,
                 ds_err_name(rc), err, ds_err_name(want_rc),
                 exact ? "" : "containing ", want ? want : "");
}

static void parse_case(const char *body, size_t len, int want_rc,
                       const char *want, int exact)
{
    char err[DS_ERRMSG_SIZE] = "", what[1024];
    ds_event ev;
    int rc = ds__event_parse(&ev, body, len, err, sizeof(err));

    /* body need not be terminated */
    snprintf(what, sizeof(what), "%.*s", (int)len, body);
    check_result(what, rc, err, want_rc, want, exact);
    if (rc == 0) {
        assert_non_null(ev.key);
    } else {
        /* "ev is left cleared on error" */
        assert_null(ev.key);
        assert_null(ev.data);
        assert_int_equal(ev.op, 0);
        assert_string_equal(ev.table, "");
    }
    ds__event_clear(&ev);
}

static void expect_ok(const char *body)
{
    parse_case(body, strlen(body), 0, NULL, 1);
}

static void expect_schema(const char *body, const char *msg)
{
    parse_case(body, strlen(body), DS_ESCHEMA, msg, 1);
}

static void expect_json(const char *body, const char *msg)
{
    parse_case(body, strlen(body), DS_EJSON, msg, 1);
}

/* ------------------------------------------------------------------------ */

static void base_event_is_valid(void **state)
{
    (void)state;
    assert_string_equal(event_with(NULL), BASE_EVENT);
    expect_ok(BASE_EVENT);
}

static void field_v(void **state)
{
    (void)state;
    expect_schema(event_with("v", "2", NULL), "v: must be the integer 1");
    expect_schema(event_with("v", "0", NULL), "v: must be the integer 1");
    expect_schema(event_with("v", "\"1\"", NULL), "v: must be the integer 1");
    expect_schema(event_with("v", "1.0", NULL), "v: must be the integer 1");
    expect_schema(event_with("v", "true", NULL), "v: must be the integer 1");
    expect_schema(event_with("v", "null", NULL), "v: must be the integer 1");
    expect_schema(event_with("v", "", NULL), "v: required field is missing");
}

static void field_id(void **state)
{
    (void)state;
    expect_ok(
        event_with("id", "\"0190A5B2-7C3D-7E4F-8A1B-2C3D4E5F6A7B\"", NULL));
    expect_ok(
        event_with("id", "\"f47ac10b-58cc-4372-a567-0e02b2c3d479\"", NULL));
    expect_schema(
        event_with("id", "\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7\"", NULL),
        ID_MSG);
    expect_schema(
        event_with("id", "\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7bb\"", NULL),
        ID_MSG);
    expect_schema(
        event_with("id", "\"0190a5b2x7c3d-7e4f-8a1b-2c3d4e5f6a7b\"", NULL),
        ID_MSG);
    expect_schema(
        event_with("id", "\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7g\"", NULL),
        ID_MSG);
    expect_schema(
        event_with("id", "\"{0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a}\"", NULL),
        ID_MSG);
    expect_schema(event_with("id", "42", NULL), ID_MSG);
    expect_schema(event_with("id", "", NULL), "id: required field is missing");
}

static void field_origin(void **state)
{
    (void)state;
    expect_ok(event_with("origin", "\"eu-west.db_01\"", NULL));
    expect_ok(event_with("origin", "\"" S64 "\"", NULL));
    expect_schema(event_with("origin", "\"" S64 "x\"", NULL), ORIGIN_MSG);
    expect_schema(event_with("origin", "\"\"", NULL), ORIGIN_MSG);
    expect_schema(event_with("origin", "\"node a\"", NULL), ORIGIN_MSG);
    expect_schema(event_with("origin", "\"node/a\"", NULL), ORIGIN_MSG);
    expect_schema(event_with("origin", "\"node-a\\n\"", NULL), ORIGIN_MSG);
    expect_schema(event_with("origin", "\"node\\u0000\"", NULL), ORIGIN_MSG);
    expect_schema(event_with("origin", "\"n\\u00f6de\"", NULL), ORIGIN_MSG);
    expect_schema(event_with("origin", "7", NULL), ORIGIN_MSG);
}

static void field_hlc(void **state)
{
    (void)state;
    expect_ok(event_with("hlc", "0", NULL));
    expect_ok(event_with("hlc", "9223372036854775807", NULL));
    expect_ok(event_with("hlc", "18446744073709551615", NULL));
    expect_schema(event_with("hlc", "-1", NULL), HLC_MSG);
    expect_schema(event_with("hlc", "-9223372036854775808", NULL), HLC_MSG);
    expect_schema(event_with("hlc", "1.5", NULL), HLC_MSG);
    expect_schema(event_with("hlc", "5.0", NULL), HLC_MSG);
    expect_schema(event_with("hlc", "1e3", NULL), HLC_MSG);
    expect_schema(event_with("hlc", "\"5\"", NULL), HLC_MSG);
    expect_schema(event_with("hlc", "true", NULL), HLC_MSG);
    expect_schema(event_with("hlc", "null", NULL), HLC_MSG);
    expect_schema(event_with("hlc", "", NULL),
                  "hlc: required field is missing");
    /* json-c would clamp this to UINT64_MAX without a word. */
    expect_json(event_with("hlc", "18446744073709551616", NULL),
                "malformed JSON at offset 75: integer out of the 64-bit range");
}

static void field_ts(void **state)
{
    static const char *const good[] = {
        "2024-07-01T12:00:00Z",           "2024-12-31T23:59:59Z",
        "2024-02-29T23:59:60.123456789Z", "0000-01-01T00:00:00.0Z",
        "2023-04-30T00:00:00Z",
    };
    static const char *const bad[] = {
        "2024-07-01 12:00:00Z",
        "2024-07-01T12:00:00",
        "2024-07-01T12:00:00+00:00",
        "2024-07-01T12:00:00z",
        "2024-07-01t12:00:00Z",
        "2024-7-01T12:00:00Z",
        "2024-07-01T12:00Z",
        "24-07-01T12:00:00Z",
        "2024-00-01T12:00:00Z",
        "2024-13-01T12:00:00Z",
        "2024-07-00T12:00:00Z",
        "2024-07-32T12:00:00Z",
        "2024-04-31T12:00:00Z",
        "2024-02-30T12:00:00Z",
        "2024-07-01T24:00:00Z",
        "2024-07-01T12:60:00Z",
        "2024-07-01T12:00:61Z",
        "2024-07-01T12:00:00.Z",
        "2024-07-01T12:00:00.1234567890Z",
        "2024-07-01T12:00:00,5Z",
        "2024-07-01T12:00:00.5aZ",
        "2024-07-01T12:00:00Z ",
        "",
    };
    char value[64];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(value, sizeof(value), "\"%s\"", good[i]);
        expect_ok(event_with("ts", value, NULL));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(value, sizeof(value), "\"%s\"", bad[i]);
        expect_schema(event_with("ts", value, NULL), TS_MSG);
    }
    expect_schema(event_with("ts", "1719835200", NULL), TS_MSG);
    expect_schema(event_with("ts", "", NULL), "ts: required field is missing");
}

static void field_op(void **state)
{
    (void)state;
    expect_ok(event_with("op", "\"update\"", NULL));
    expect_schema(event_with("op", "\"upsert\"", NULL), OP_MSG);
    expect_schema(event_with("op", "\"CREATE\"", NULL), OP_MSG);
    expect_schema(event_with("op", "\"\"", NULL), OP_MSG);
    expect_schema(event_with("op", "1", NULL), OP_MSG);
    expect_schema(event_with("op", "", NULL), "op: required field is missing");
}

static void field_table(void **state)
{
    (void)state;
    expect_ok(event_with("table", "\"_t\"", NULL));
    expect_ok(event_with("table", "\"Order_Items2\"", NULL));
    expect_ok(event_with("table", "\"_" S16 "\"", NULL));
    expect_ok(event_with("table", "\"" S64 "\"", NULL));
    expect_schema(event_with("table", "\"" S64 "x\"", NULL), TABLE_MSG);
    expect_schema(event_with("table", "\"1users\"", NULL), TABLE_MSG);
    expect_schema(event_with("table", "\"users-x\"", NULL), TABLE_MSG);
    expect_schema(event_with("table", "\"app.users\"", NULL), TABLE_MSG);
    expect_schema(event_with("table", "\"\"", NULL), TABLE_MSG);
    expect_schema(event_with("table", "\"users\\n\"", NULL), TABLE_MSG);
    expect_schema(event_with("table", "[\"users\"]", NULL), TABLE_MSG);
    expect_schema(event_with("table", "", NULL),
                  "table: required field is missing");
}

static void field_key(void **state)
{
    (void)state;
    expect_ok(event_with("key", "{\"order_id\":1,\"line\":2}", NULL));
    expect_ok(
        event_with("key", "{\"code\":\"AB\",\"on\":true,\"x\":1.5}", NULL));
    expect_ok(event_with(
        "key", "{\"sha1\":{\"base64\":\"2jmj7l5rSw0yVb/vlWAYkK/YBwk=\"}}",
        NULL));
    expect_ok(event_with("key", "{\"" S64 "\":1}", NULL));
    expect_ok(event_with("key", "{\"" E64 "\":1}", NULL));
    expect_schema(event_with("key", "{}", NULL),
                  "key: must have at least one member");
    expect_schema(event_with("key", "[42]", NULL), "key: must be an object");
    expect_schema(event_with("key", "42", NULL), "key: must be an object");
    expect_schema(event_with("key", "null", NULL), "key: must be an object");
    expect_schema(event_with("key", "{\"id\":null}", NULL),
                  "key.id: must not be null");
    expect_schema(event_with("key", "{\"id\":[42]}", NULL),
                  "key.id: " KEY_VALUE_MSG);
    expect_schema(event_with("key", "{\"id\":{\"a\":1}}", NULL),
                  "key.id: " KEY_VALUE_MSG);
    expect_schema(event_with("key", "{\"\":42}", NULL),
                  "key: member name must not be empty");
    expect_schema(event_with("key", "{\"" S64 "x\":42}", NULL),
                  "key." S64 "x: member name must be at most 64 characters");
    expect_schema(event_with("key", "{\"" E64 "x\":42}", NULL),
                  "key." E64 "x: member name must be at most 64 characters");
    expect_schema(event_with("key", "", NULL),
                  "key: required field is missing");
}

static void field_data(void **state)
{
    (void)state;
    expect_ok(event_with("data", "{}", NULL));
    expect_ok(event_with("data", "{\"id\":42,\"email\":null}", NULL));
    expect_ok(event_with("data",
                         "{\"total\":\"1234567890123.45\",\"n\":-0.5,"
                         "\"big\":-9223372036854775808,\"ok\":false}",
                         NULL));
    expect_ok(event_with("op", "\"update\"", "data", "{\"id\":42}", NULL));
    expect_schema(event_with("data", "", NULL),
                  "data: required for create and update");
    expect_schema(event_with("op", "\"update\"", "data", "", NULL),
                  "data: required for create and update");
    expect_schema(event_with("data", "null", NULL), "data: must be an object");
    expect_schema(event_with("data", "[]", NULL), "data: must be an object");
    expect_schema(event_with("data", "\"row\"", NULL),
                  "data: must be an object");
    expect_schema(event_with("data", "{\"id\":42,\"meta\":{\"a\":1}}", NULL),
                  "data.meta: " DATA_VALUE_MSG);
    expect_schema(event_with("data", "{\"tags\":[\"a\"]}", NULL),
                  "data.tags: " DATA_VALUE_MSG);
    expect_schema(event_with("data", "{\"meta\":{}}", NULL),
                  "data.meta: " DATA_VALUE_MSG);
    expect_schema(event_with("data", "{\"\":1}", NULL),
                  "data: member name must not be empty");
    expect_schema(event_with("data", "{\"" S64 "x\":1}", NULL),
                  "data." S64 "x: member name must be at most 64 characters");
}

static void binary_values(void **state)
{
    static const char *const good[] = {
        "", "QQ==", "QUI=", "QUJD", "+/+/", "2jmj7l5rSw0yVb/vlWAYkK/YBwk="};
    static const char *const bad[] = {"QQ",   "QQ=",     "Q===",  "====",
                                      "QR==", "QUJ=",    "Q Q=",  "QU=I",
                                      "-_-_", "QUJD\\n", "QUJD=", "\\u0000AAA"};
    char value[128];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(value, sizeof(value), "{\"photo\":{\"base64\":\"%s\"}}",
                 good[i]);
        expect_ok(event_with("data", value, NULL));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(value, sizeof(value), "{\"photo\":{\"base64\":\"%s\"}}",
                 bad[i]);
        expect_schema(event_with("data", value, NULL),
                      "data.photo: base64 value is not valid base64");
    }
    expect_schema(
        event_with("data", "{\"photo\":{\"base64\":\"QQ==\",\"mime\":\"x\"}}",
                   NULL),
        "data.photo: binary value must have \"base64\" as its only member");
    expect_schema(event_with("data", "{\"photo\":{\"base64\":12}}", NULL),
                  "data.photo: base64 value must be a string");
    expect_schema(event_with("data", "{\"photo\":{\"base64\":null}}", NULL),
                  "data.photo: base64 value must be a string");
}

/* What the event accepts as base64 must decode where it is applied. */
static void binary_values_decode(void **state)
{
    static const char *const texts[] = {
        "", "QQ==", "QUI=", "QUJD", "+/+/", "2jmj7l5rSw0yVb/vlWAYkK/YBwk="};
    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        unsigned char out[64];
        size_t n;
        assert_int_equal(ds__base64_decode(texts[i], strlen(texts[i]), out, &n),
                         0);
    }
}

static void delete_data(void **state)
{
    (void)state;
    expect_ok(event_with("op", "\"delete\"", "data", "", NULL));
    expect_ok(event_with("op", "\"delete\"", "data", "null", NULL));
    expect_schema(event_with("op", "\"delete\"", NULL),
                  "data: must be absent or null for delete");
    expect_schema(event_with("op", "\"delete\"", "data", "{}", NULL),
                  "data: must be absent or null for delete");
    expect_schema(event_with("op", "\"delete\"", "data", "false", NULL),
                  "data: must be absent or null for delete");
}

static void unknown_fields(void **state)
{
    (void)state;
    expect_schema(event_with("foo", "1", NULL), "unknown field \"foo\"");
    expect_schema(event_with("V", "1", NULL), "unknown field \"V\"");
    expect_schema(event_with("", "1", NULL), "unknown field \"\"");
}

static void body_not_an_object(void **state)
{
    (void)state;
    expect_schema("[]", "event: must be a JSON object");
    expect_schema("[" BASE_EVENT "]", "event: must be a JSON object");
    expect_schema("null", "event: must be a JSON object");
    expect_schema("42", "event: must be a JSON object");
    expect_schema("\"event\"", "event: must be a JSON object");
    expect_schema(" true ", "event: must be a JSON object");
}

static void malformed_json(void **state)
{
    (void)state;
    expect_json("", "malformed JSON at offset 0: unexpected end of data");
    expect_json("   ", "malformed JSON at offset 3: unexpected end of data");
    expect_json("{", "malformed JSON at offset 1: unexpected end of data");
    expect_json("{\"v\":1,}",
                "malformed JSON at offset 7: unexpected character");
    expect_json("{\"v\" 1}",
                "malformed JSON at offset 5: object property name separator "
                "':' expected");
    expect_json("{\"v\":tru}", "malformed JSON at offset 8: boolean expected");
    expect_json("{\"v\":True}",
                "malformed JSON at offset 5: unexpected character");
    expect_json("{'v':1}", "malformed JSON at offset 1: unexpected character");
    expect_json("{\"v\":NaN}",
                "malformed JSON at offset 5: unexpected character");
    expect_json("{\"v\":-Infinity}",
                "malformed JSON at offset 5: number expected");
    expect_json("{\"v\":1.}", "malformed JSON at offset 5: number expected");
    expect_json("{\"v\":.5}",
                "malformed JSON at offset 5: unexpected character");
    expect_json("{\"v\":01}", "malformed JSON at offset 5: number expected");
    expect_json("{\"v\":-01}", "malformed JSON at offset 5: number expected");
    expect_json("{\"v\":1.5.2}", "malformed JSON at offset 5: number expected");
    expect_json("{\"v\":\"a\tb\"}",
                "malformed JSON at offset 7: control character in string");
    expect_json("{\"v\":\"\\x\"}",
                "malformed JSON at offset 7: invalid string sequence");
    expect_json("{\"v\":\"\xff\"}",
                "malformed JSON at offset 6: invalid utf-8 string");
    expect_json("/* c */ {}",
                "malformed JSON at offset 0: unexpected character");
    expect_json("{\"v\\u0000x\":1}",
                "malformed JSON at offset 1: member name contains \\u0000");
    expect_json("{\"v\":-9223372036854775809}",
                "malformed JSON at offset 5: integer out of the 64-bit range");
    /* The escape is fine inside a value: json-c keeps the length. */
    expect_ok(event_with("data", "{\"bio\":\"a\\u0000b\"}", NULL));
}

static void trailing_garbage(void **state)
{
    char body[4096];

    (void)state;
    expect_ok(BASE_EVENT " \n\t\r");
    expect_ok(" \n" BASE_EVENT);
    snprintf(body, sizeof(body), "%s x", BASE_EVENT);
    parse_case(body, strlen(body), DS_EJSON, "malformed JSON at offset", 0);
    parse_case(BASE_EVENT "{}", strlen(BASE_EVENT "{}"), DS_EJSON,
               "unexpected character", 0);
    parse_case(BASE_EVENT "\0", sizeof(BASE_EVENT "\0") - 1, DS_EJSON,
               "unexpected character", 0);
}

static void length_is_honoured(void **state)
{
    size_t len = strlen(BASE_EVENT);
    char *exact = malloc(len); /* no terminator: a read past len is a bug */
    char more[4096], want[128];

    (void)state;
    assert_non_null(exact);
    memcpy(exact, BASE_EVENT, len);
    parse_case(exact, len, 0, NULL, 1);
    free(exact);

    snprintf(more, sizeof(more), "%sGARBAGE", BASE_EVENT);
    parse_case(more, len, 0, NULL, 1);
    snprintf(want, sizeof(want),
             "malformed JSON at offset %zu: unexpected end of data", len - 1);
    parse_case(more, len - 1, DS_EJSON, want, 1);
}

static void error_buffer_is_bounded(void **state)
{
    char err[8];
    ds_event ev;

    (void)state;
    memset(err, 'x', sizeof(err));
    assert_int_equal(ds__event_parse(&ev, "[]", 2, err, sizeof(err)),
                     DS_ESCHEMA);
    assert_string_equal(err, "event: ");
    assert_int_equal(ds__event_parse(&ev, "[]", 2, NULL, 0), DS_ESCHEMA);
}

/* ------------------------------------------------------------------------ */

static void same_event(const ds_event *a, const ds_event *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->origin, b->origin);
    assert_true(a->hlc == b->hlc);
    assert_string_equal(a->ts, b->ts);
    assert_int_equal(a->op, b->op);
    assert_string_equal(a->table, b->table);
    assert_true(json_object_equal(a->key, b->key));
    assert_true((a->data == NULL) == (b->data == NULL));
    if (a->data)
        assert_true(json_object_equal(a->data, b->data));
}

static void round_trip(const char *body)
{
    char err[DS_ERRMSG_SIZE] = "";
    ds_event first, second;
    size_t len = 0;
    char *text;

    check_result(body,
                 ds__event_parse(&first, body, strlen(body), err, sizeof(err)),
                 err, 0, NULL, 1);
    text = ds__event_encode(&first, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    check_result(text, ds__event_parse(&second, text, len, err, sizeof(err)),
                 err, 0, NULL, 1);
    same_event(&first, &second);
    free(text);
    ds__event_clear(&first);
    ds__event_clear(&second);
}

static void round_trips(void **state)
{
    (void)state;
    round_trip(BASE_EVENT);
    round_trip(event_with("op", "\"delete\"", "data", "", NULL));
    round_trip(event_with("op", "\"delete\"", "data", "null", NULL));
    round_trip(event_with("hlc", "18446744073709551615", NULL));
    round_trip(event_with(
        "key", "{\"order_id\":1001,\"line\":2}", "data",
        "{\"name\":\"Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac \\u00e9 \\\"q\\\" "
        "\\\\\","
        "\"photo\":{\"base64\":\"iVBORw0KGgo/+A==\"},\"price\":\"9.90\","
        "\"ratio\":0.25,\"none\":null,\"on\":true,\"line\\ttab\":1}",
        NULL));
}

static void encode_is_compact_and_ordered(void **state)
{
    char err[DS_ERRMSG_SIZE] = "";
    ds_event ev;
    char *text;
    /* Fields scrambled, spaces everywhere: the encoding puts them back. */
    const char *body =
        "{ \"data\" : {\"id\": 42, \"name\": \"Ada\"}, \"key\": {\"id\": 42},"
        " \"table\": \"users\", \"op\": \"create\","
        " \"ts\": \"2024-07-01T12:00:00.123Z\", \"hlc\": 112711119675260931,"
        " \"origin\": \"node-a\","
        " \"id\": \"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b\", \"v\": 1 }";

    (void)state;
    check_result(body,
                 ds__event_parse(&ev, body, strlen(body), err, sizeof(err)),
                 err, 0, NULL, 1);
    text = ds__event_encode(&ev, NULL);
    assert_non_null(text);
    assert_string_equal(text, BASE_EVENT);
    free(text);
    ds__event_clear(&ev);
}

static void encode_delete_omits_data(void **state)
{
    const char *body = event_with("op", "\"delete\"", "data", "null", NULL);
    char err[DS_ERRMSG_SIZE] = "";
    ds_event ev;
    char *text;

    (void)state;
    check_result(body,
                 ds__event_parse(&ev, body, strlen(body), err, sizeof(err)),
                 err, 0, NULL, 1);
    assert_null(ev.data);
    text = ds__event_encode(&ev, NULL);
    assert_non_null(text);
    assert_string_equal(
        text, "{\"v\":1,\"id\":\"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b\","
              "\"origin\":\"node-a\",\"hlc\":112711119675260931,"
              "\"ts\":\"2024-07-01T12:00:00.123Z\",\"op\":\"delete\","
              "\"table\":\"users\",\"key\":{\"id\":42}}");
    free(text);
    ds__event_clear(&ev);
}

static void encode_keeps_values_as_written(void **state)
{
    const char *body =
        event_with("data",
                   "{\"photo\":{\"base64\":\"ab/+\"},\"price\":1.50,\"e\":1e2,"
                   "\"u\":\"\xc3\xa9\"}",
                   NULL);
    char err[DS_ERRMSG_SIZE] = "";
    ds_event ev;
    char *text;

    (void)state;
    check_result(body,
                 ds__event_parse(&ev, body, strlen(body), err, sizeof(err)),
                 err, 0, NULL, 1);
    text = ds__event_encode(&ev, NULL);
    assert_non_null(text);
    /* Slashes unescaped (base64 is full of them), numbers as written,
     * UTF-8 as is. */
    assert_non_null(strstr(text, "\"data\":{\"photo\":{\"base64\":\"ab/+\"},"
                                 "\"price\":1.50,\"e\":1e2,"
                                 "\"u\":\"\xc3\xa9\"}}"));
    free(text);
    ds__event_clear(&ev);
}

static void encode_refuses_incomplete_events(void **state)
{
    ds_event ev;

    (void)state;
    memset(&ev, 0, sizeof(ev));
    assert_null(ds__event_encode(&ev, NULL)); /* no op, no key */
    ev.op = DS_OP_CREATE;
    ev.key = json_object_new_object();
    assert_null(ds__event_encode(&ev, NULL)); /* create without data */
    ds__event_clear(&ev);
}

static void from_json_takes_references(void **state)
{
    char err[DS_ERRMSG_SIZE] = "";
    json_object *root = json_tokener_parse(BASE_EVENT);
    json_object *id;
    ds_event ev;

    (void)state;
    assert_non_null(root);
    assert_int_equal(ds__event_from_json(&ev, root, err, sizeof(err)), 0);
    json_object_put(root);
    assert_true(json_object_object_get_ex(ev.key, "id", &id));
    assert_int_equal(json_object_get_int(id), 42);
    ds__event_clear(&ev);
    ds__event_clear(&ev); /* clearing twice is harmless */

    assert_int_equal(ds__event_from_json(&ev, NULL, err, sizeof(err)),
                     DS_ESCHEMA);
    assert_string_equal(err, "event: must be a JSON object");
}

static void from_json_rejects_non_finite(void **state)
{
    char err[DS_ERRMSG_SIZE] = "";
    json_object *root = json_tokener_parse(BASE_EVENT);
    json_object *data;
    ds_event ev;

    (void)state;
    assert_true(json_object_object_get_ex(root, "data", &data));
    json_object_object_add(data, "ratio", json_object_new_double(NAN));
    assert_int_equal(ds__event_from_json(&ev, root, err, sizeof(err)),
                     DS_ESCHEMA);
    assert_string_equal(err, "data.ratio: must be a finite number");
    assert_null(ev.key);
    json_object_put(root);

    /* 1e400 is valid JSON text but not a double. */
    expect_schema(event_with("data", "{\"ratio\":1e400}", NULL),
                  "data.ratio: must be a finite number");
}

/* ------------------------------------------------------------------------ */

static void build_case(ds_op op, const char *table, const char *key,
                       const char *data, int want_rc, const char *want)
{
    char err[DS_ERRMSG_SIZE] = "";
    char what[512];
    ds_event ev;
    int rc;

    /* The producer hands in an uninitialised event. */
    memset(&ev, 0xA5, sizeof(ev));
    rc = ds__event_build(&ev, op, table, key, data, err, sizeof(err));
    snprintf(what, sizeof(what), "build(%d, %s, %s, %s)", (int)op,
             table ? table : "NULL", key ? key : "NULL", data ? data : "NULL");
    check_result(what, rc, err, want_rc, want, 1);
    if (rc < 0) {
        assert_null(ev.key);
        assert_null(ev.data);
    }
    ds__event_clear(&ev);
}

static void build_rejects_bad_input(void **state)
{
    (void)state;
    build_case(0, "users", "{\"id\":1}", "{}", DS_EINVAL,
               "op: must be DS_OP_CREATE, DS_OP_UPDATE or DS_OP_DELETE");
    build_case((ds_op)7, "users", "{\"id\":1}", "{}", DS_EINVAL,
               "op: must be DS_OP_CREATE, DS_OP_UPDATE or DS_OP_DELETE");
    build_case(DS_OP_CREATE, NULL, "{\"id\":1}", "{}", DS_EINVAL,
               "table: must not be NULL");
    build_case(DS_OP_CREATE, "users", NULL, "{}", DS_EINVAL,
               "key: must not be NULL");
    build_case(DS_OP_CREATE, "1users", "{\"id\":1}", "{}", DS_ESCHEMA,
               TABLE_MSG);
    build_case(DS_OP_CREATE, "", "{\"id\":1}", "{}", DS_ESCHEMA, TABLE_MSG);
    build_case(DS_OP_CREATE, S64 "x", "{\"id\":1}", "{}", DS_ESCHEMA,
               TABLE_MSG);
    build_case(DS_OP_CREATE, "users", "[1]", "{}", DS_ESCHEMA,
               "key: must be an object");
    build_case(DS_OP_CREATE, "users", "42", "{}", DS_ESCHEMA,
               "key: must be an object");
    build_case(DS_OP_CREATE, "users", "{}", "{}", DS_ESCHEMA,
               "key: must have at least one member");
    build_case(DS_OP_CREATE, "users", "{\"id\":null}", "{}", DS_ESCHEMA,
               "key.id: must not be null");
    build_case(DS_OP_CREATE, "users", "{\"id\":", "{}", DS_EJSON,
               "key: malformed JSON at offset 6: unexpected end of data");
    build_case(DS_OP_CREATE, "users", "{\"id\":1} x", "{}", DS_EJSON,
               "key: malformed JSON at offset 9: unexpected character");
    build_case(DS_OP_CREATE, "users", "", "{}", DS_EJSON,
               "key: malformed JSON at offset 0: unexpected end of data");
    build_case(DS_OP_DELETE, "users", "{\"id\":1}", "{}", DS_ESCHEMA,
               "data: must be NULL for delete");
    build_case(DS_OP_DELETE, "users", "{\"id\":1}", "null", DS_ESCHEMA,
               "data: must be NULL for delete");
    build_case(DS_OP_CREATE, "users", "{\"id\":1}", NULL, DS_ESCHEMA,
               "data: required for create and update");
    build_case(DS_OP_UPDATE, "users", "{\"id\":1}", NULL, DS_ESCHEMA,
               "data: required for create and update");
    build_case(DS_OP_UPDATE, "users", "{\"id\":1}", "null", DS_ESCHEMA,
               "data: must be an object");
    build_case(DS_OP_UPDATE, "users", "{\"id\":1}", "{\"id\":1,}", DS_EJSON,
               "data: malformed JSON at offset 8: unexpected character");
    build_case(DS_OP_UPDATE, "users", "{\"id\":1}", "{\"tags\":[1]}",
               DS_ESCHEMA, "data.tags: " DATA_VALUE_MSG);
    build_case(DS_OP_UPDATE, "users", "{\"id\":1}",
               "{\"photo\":{\"base64\":\"QR==\"}}", DS_ESCHEMA,
               "data.photo: base64 value is not valid base64");
}

static void build_fills_the_row_part(void **state)
{
    char err[DS_ERRMSG_SIZE] = "";
    ds_event ev;
    char *text;

    (void)state;
    memset(&ev, 0, sizeof(ev));
    strcpy(ev.id, "0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b");
    assert_int_equal(ds__event_build(&ev, DS_OP_CREATE, "users", "{\"id\":42}",
                                     "{\"id\":42,\"name\":\"Ada\"}", err,
                                     sizeof(err)),
                     0);
    assert_int_equal(ev.op, DS_OP_CREATE);
    assert_string_equal(ev.table, "users");
    assert_string_equal(ev.id, "0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b");
    strcpy(ev.origin, "node-a");
    ev.hlc = 112711119675260931ULL;
    strcpy(ev.ts, "2024-07-01T12:00:00.123Z");
    text = ds__event_encode(&ev, NULL);
    assert_non_null(text);
    assert_string_equal(text, BASE_EVENT);
    free(text);
    ds__event_clear(&ev);

    assert_int_equal(ds__event_build(&ev, DS_OP_DELETE, "users", "{\"id\":42}",
                                     NULL, err, sizeof(err)),
                     0);
    assert_null(ev.data);
    ds__event_clear(&ev);
}

static void syntax_helpers(void **state)
{
    ds_op op;

    (void)state;
    assert_true(ds__valid_table_name("users"));
    assert_false(ds__valid_table_name("9lives"));
    assert_false(ds__valid_table_name(NULL));
    assert_true(ds__valid_origin("node-a.eu_1"));
    assert_false(ds__valid_origin(""));
    assert_false(ds__valid_origin(NULL));
    assert_true(ds__valid_uuid("0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b"));
    assert_false(ds__valid_uuid("0190a5b27c3d7e4f8a1b2c3d4e5f6a7b"));
    assert_false(ds__valid_uuid(NULL));

    assert_string_equal(ds__op_name(DS_OP_CREATE), "create");
    assert_string_equal(ds__op_name(DS_OP_UPDATE), "update");
    assert_string_equal(ds__op_name(DS_OP_DELETE), "delete");
    assert_null(ds__op_name((ds_op)0));
    assert_int_equal(ds__op_parse("delete", &op), 0);
    assert_int_equal(op, DS_OP_DELETE);
    assert_int_equal(ds__op_parse("Delete", &op), DS_EINVAL);
    assert_int_equal(ds__op_parse(NULL, &op), DS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base_event_is_valid),
        cmocka_unit_test(field_v),
        cmocka_unit_test(field_id),
        cmocka_unit_test(field_origin),
        cmocka_unit_test(field_hlc),
        cmocka_unit_test(field_ts),
        cmocka_unit_test(field_op),
        cmocka_unit_test(field_table),
        cmocka_unit_test(field_key),
        cmocka_unit_test(field_data),
        cmocka_unit_test(binary_values),
        cmocka_unit_test(binary_values_decode),
        cmocka_unit_test(delete_data),
        cmocka_unit_test(unknown_fields),
        cmocka_unit_test(body_not_an_object),
        cmocka_unit_test(malformed_json),
        cmocka_unit_test(trailing_garbage),
        cmocka_unit_test(length_is_honoured),
        cmocka_unit_test(error_buffer_is_bounded),
        cmocka_unit_test(round_trips),
        cmocka_unit_test(encode_is_compact_and_ordered),
        cmocka_unit_test(encode_delete_omits_data),
        cmocka_unit_test(encode_keeps_values_as_written),
        cmocka_unit_test(encode_refuses_incomplete_events),
        cmocka_unit_test(from_json_takes_references),
        cmocka_unit_test(from_json_rejects_non_finite),
        cmocka_unit_test(build_rejects_bad_input),
        cmocka_unit_test(build_fills_the_row_part),
        cmocka_unit_test(syntax_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
