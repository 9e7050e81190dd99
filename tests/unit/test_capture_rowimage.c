/* test_capture_rowimage.c: datasync-capture's TABLE_MAP parsing and row-image decoding on hand-made binlog bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "datasync.h"
#include "rowimage.h"
#include "tablemap.h"

#define ERRLEN 256
#define NCOLS 9

/* Appends bytes to a growing buffer. */
typedef struct buf {
    unsigned char b[512];
    size_t n;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof b->b);
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static void put1(buf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}

static void put_str(buf *b, const char *s)
{
    put1(b, (unsigned)strlen(s));
    put(b, s, strlen(s));
}

/* A field of the optional metadata: type, length, value. */
static void put_field(buf *b, unsigned type, const buf *v)
{
    put1(b, type);
    put1(b, (unsigned)v->n);
    put(b, v->b, v->n);
}

/*
 * app.t (id INT PRIMARY KEY, ti TINYINT, u BIGINT UNSIGNED,
 *        d DECIMAL(10,4), t TIME(2), dt DATETIME(3),
 *        e ENUM('red','green'), s SET('a','b','c'), v VARCHAR(10) utf8mb4)
 * as MariaDB logs it with binlog_row_metadata=FULL; names optional.
 */
static void table_map(buf *b, bool with_names)
{
    static const unsigned char types[NCOLS] = {3,  1,   8,   246, 19,
                                               18, 254, 254, 15};
    static const unsigned char meta[] = {10, 4, 2, 3, 0xf7, 1, 0xf8, 1, 40, 0};
    static const char *const names[NCOLS] = {"id", "ti", "u", "d", "t",
                                             "dt", "e",  "s", "v"};
    buf f = {0};

    memset(b, 0, sizeof *b);
    put(b, "\x01\0\0\0\0\0\x01\0", 8); /* table id 1, flags */
    put_str(b, "app");
    put1(b, 0);
    put_str(b, "t");
    put1(b, 0);
    put1(b, NCOLS);
    put(b, types, sizeof types);
    put1(b, sizeof meta);
    put(b, meta, sizeof meta);
    put(b, "\xfe\x01", 2); /* nullable: all but id */

    put1(&f, 0x20); /* SIGNEDNESS of id, ti, u, d: only u unsigned */
    put_field(b, 1, &f);
    f.n = 0;
    put1(&f, 45); /* DEFAULT_CHARSET: utf8mb4_general_ci */
    put_field(b, 2, &f);
    if (with_names) {
        f.n = 0;
        for (int i = 0; i < NCOLS; i++)
            put_str(&f, names[i]);
        put_field(b, 4, &f);
    }
    f.n = 0;
    put1(&f, 3);
    put_str(&f, "a");
    put_str(&f, "b");
    put_str(&f, "c");
    put_field(b, 5, &f); /* SET_STR_VALUE */
    f.n = 0;
    put1(&f, 2);
    put_str(&f, "red");
    put_str(&f, "green");
    put_field(b, 6, &f); /* ENUM_STR_VALUE */
    f.n = 0;
    put1(&f, 0);
    put_field(b, 8, &f); /* SIMPLE_PRIMARY_KEY: id */
}

static cap_table *parse_table(void)
{
    buf b;
    cap_table *t = NULL;
    char err[ERRLEN] = "";

    table_map(&b, true);
    assert_int_equal(cap_table_parse(&t, b.b, b.n, err, sizeof err), 0);
    assert_non_null(t);
    return t;
}

static void table_map_columns_and_key(void **state)
{
    (void)state;
    cap_table *t = parse_table();

    assert_string_equal(t->db, "app");
    assert_string_equal(t->name, "t");
    assert_int_equal(t->ncols, NCOLS);
    assert_int_equal(t->npk, 1);
    assert_int_equal(t->pk[0], 0);
    assert_string_equal(t->cols[8].name, "v");
    assert_false(t->cols[0].is_unsigned);
    assert_true(t->cols[2].is_unsigned);
    assert_int_equal(t->cols[6].real_type, CAP_T_ENUM);
    assert_int_equal(t->cols[7].real_type, CAP_T_SET);
    assert_int_equal(t->cols[8].collation, 45);
    assert_int_equal(t->cols[6].nnames, 2);
    assert_string_equal(t->cols[6].names[1], "green");
    cap_table_free(t);
}

/* A map of app.<name> with three columns id, <c1>, <c2> (id the key, the
 * others nullable): its head, then the field (type, f) between, then
 * COLUMN_NAME and SIMPLE_PRIMARY_KEY. */
static void three_column_map(buf *b, const char *name,
                             const unsigned char types[3],
                             const unsigned char *meta, size_t nmeta,
                             unsigned field, const buf *f,
                             const char *const names[3])
{
    buf g = {0};

    put(b, "\x02\0\0\0\0\0\x01\0", 8);
    put_str(b, "app");
    put1(b, 0);
    put_str(b, name);
    put1(b, 0);
    put1(b, 3);
    put(b, types, 3);
    put1(b, (unsigned)nmeta);
    put(b, meta, nmeta);
    put1(b, 0x06);
    put_field(b, field, f);
    for (int i = 0; i < 3; i++)
        put_str(&g, names[i]);
    put_field(b, 4, &g);
    g.n = 0;
    put1(&g, 0);
    put_field(b, 8, &g);
}

/* app.y (id INT PRIMARY KEY, y YEAR, q INT): the server gives YEAR a bit
 * of SIGNEDNESS (set: YEAR is unsigned), so q's bit is the third. */
static void year_has_a_signedness_bit(void **state)
{
    static const unsigned char types[3] = {3, 13, 3};
    static const char *const names[3] = {"id", "y", "q"};
    buf b = {0}, f = {0};
    cap_table *t = NULL;
    char err[ERRLEN] = "";

    (void)state;
    put1(&f, 0x40); /* SIGNEDNESS: id signed, y unsigned, q signed */
    three_column_map(&b, "y", types, NULL, 0, 1, &f, names);
    assert_int_equal(cap_table_parse(&t, b.b, b.n, err, sizeof err), 0);
    assert_false(t->cols[0].is_unsigned);
    assert_false(t->cols[2].is_unsigned);
    cap_table_free(t);
}

/* app.g (id INT PRIMARY KEY, g GEOMETRY, c CHAR(5) latin1): the server
 * lists GEOMETRY among the character columns of DEFAULT_CHARSET (binary),
 * so c is the second of them. */
static void geometry_has_a_charset(void **state)
{
    static const unsigned char types[3] = {3, 255, 254};
    static const unsigned char meta[] = {4, 0xfe, 5};
    static const char *const names[3] = {"id", "g", "c"};
    buf b = {0}, f = {0};
    cap_table *t = NULL;
    char err[ERRLEN] = "";

    (void)state;
    put1(&f, 45); /* DEFAULT_CHARSET: utf8mb4, but g binary and c latin1 */
    put1(&f, 0);
    put1(&f, 63);
    put1(&f, 1);
    put1(&f, 8);
    three_column_map(&b, "g", types, meta, sizeof meta, 2, &f, names);
    assert_int_equal(cap_table_parse(&t, b.b, b.n, err, sizeof err), 0);
    assert_int_equal(t->cols[2].collation, 8);
    cap_table_free(t);
}

static void table_map_without_names_is_refused(void **state)
{
    (void)state;
    buf b;
    cap_table *t = NULL;
    char err[ERRLEN] = "";

    table_map(&b, false);
    assert_int_equal(cap_table_parse(&t, b.b, b.n, err, sizeof err), DS_EINVAL);
    assert_null(t);
    assert_non_null(strstr(err, "binlog_row_metadata=FULL"));
}

static const char *text(json_object *v)
{
    return json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static void row_values_as_mysql_prints_them(void **state)
{
    (void)state;
    cap_table *t = parse_table();
    cap_charsets cs;
    static const unsigned char present[2] = {0xff, 0x01};
    buf r = {0};
    json_object *vals[NCOLS];
    bool have[NCOLS];
    char err[ERRLEN] = "";

    memset(&cs, 0, sizeof cs);
    cs.cls[45] = CAP_CS_UTF8;
    /* Row 1: no NULL. */
    put(&r, "\0\0", 2);
    put(&r, "\xfb\xff\xff\xff", 4);                 /* id -5 */
    put(&r, "\x80", 1);                             /* ti -128 */
    put(&r, "\xff\xff\xff\xff\xff\xff\xff\xff", 8); /* u 2^64-1 */
    put(&r, "\x7f\xfb\x2d\xe9\xd1", 5);             /* d -1234.5678 */
    put(&r, "\x7f\xff\xff\xff", 4);                 /* t -00:00:00.01 */
    put(&r, "\x99\xb2\xba\x10\x83\x11\xd0", 7);     /* dt */
    put(&r, "\x02", 1);                             /* e green */
    put(&r, "\x05", 1);                             /* s a,c */
    put(&r, "\x03h\xc3\xa9", 4);                    /* v "hé" */
    /* Row 2: id 7, the rest NULL. */
    put(&r, "\xfe\x01", 2);
    put(&r, "\x07\0\0\0", 4);

    const unsigned char *p = r.b, *end = r.b + r.n;
    assert_int_equal(
        cap_row_decode(t, &cs, present, &p, end, vals, have, err, sizeof err),
        0);
    static const char *const want[NCOLS] = {
        "-5",         "-128",         "18446744073709551615",
        "-1234.5678", "-00:00:00.01", "2024-02-29 01:02:03.456",
        "green",      "a,c",          "h\xc3\xa9"};
    for (int i = 0; i < NCOLS; i++) {
        assert_true(have[i]);
        assert_non_null(vals[i]);
        assert_string_equal(text(vals[i]), want[i]);
        json_object_put(vals[i]);
    }
    assert_int_equal(
        cap_row_decode(t, &cs, present, &p, end, vals, have, err, sizeof err),
        0);
    assert_ptr_equal(p, end);
    assert_string_equal(text(vals[0]), "7");
    json_object_put(vals[0]);
    for (int i = 1; i < NCOLS; i++) {
        assert_true(have[i]);
        assert_null(vals[i]);
    }
    cap_table_free(t);
}

static void positive_time_and_cut_image(void **state)
{
    (void)state;
    cap_table *t = parse_table();
    static const unsigned char present[2] = {0x11, 0x00}; /* id, t */
    unsigned char row[] = {0, 1, 0, 0, 0, 0x80, 0xc8, 0xb8, 0x4e};
    json_object *vals[NCOLS];
    bool have[NCOLS];
    char err[ERRLEN] = "";
    const unsigned char *p = row;

    assert_int_equal(cap_row_decode(t, NULL, present, &p, row + sizeof row,
                                    vals, have, err, sizeof err),
                     0);
    assert_false(have[1]);
    assert_string_equal(text(vals[4]), "12:34:56.78");
    json_object_put(vals[0]);
    json_object_put(vals[4]);
    p = row;
    assert_int_equal(cap_row_decode(t, NULL, present, &p, row + sizeof row - 1,
                                    vals, have, err, sizeof err),
                     DS_EINVAL);
    for (int i = 0; i < NCOLS; i++)
        assert_null(vals[i]);
    cap_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_map_columns_and_key),
        cmocka_unit_test(table_map_without_names_is_refused),
        cmocka_unit_test(year_has_a_signedness_bit),
        cmocka_unit_test(geometry_has_a_charset),
        cmocka_unit_test(row_values_as_mysql_prints_them),
        cmocka_unit_test(positive_time_and_cut_image),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
