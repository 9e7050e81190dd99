/* test_consumer_catalog.c: event checks against a table, the canonical key, safe names, and the MySQL error classes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../consumer/catalog.h"
#include "mysql_util.h"

/* users(id INT, region VARCHAR) PRIMARY KEY (region, id), name, avatar,
 * total DECIMAL, gen (generated). */
static dsc_column cols[6];
static int pk[] = {1, 0};
static int by_name[] = {3, 5, 0, 2, 1, 4}; /* avatar gen id name region total */
static dsc_table users;

static void col(int i, const char *name, dsc_col_kind kind, int pk_index,
                bool generated)
{
    char q[80];
    snprintf(q, sizeof q, "`%s`", name);
    cols[i].name = strdup(name);
    cols[i].quoted = strdup(q);
    cols[i].kind = kind;
    cols[i].nullable = pk_index < 0;
    cols[i].generated = generated;
    cols[i].pk_index = pk_index;
}

static int setup(void **state)
{
    (void)state;
    col(0, "id", DS_COL_INTEGER, 1, false);
    col(1, "region", DS_COL_TEXT, 0, false);
    col(2, "name", DS_COL_TEXT, -1, false);
    col(3, "avatar", DS_COL_BINARY, -1, false);
    col(4, "total", DS_COL_EXACT, -1, false);
    col(5, "gen", DS_COL_TEXT, -1, true);
    snprintf(users.name, sizeof users.name, "users");
    users.quoted = strdup("`users`");
    users.cols = cols;
    users.ncols = 6;
    users.pk = pk;
    users.npk = 2;
    users.by_name = by_name;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 6; i++) {
        free(cols[i].name);
        free(cols[i].quoted);
    }
    free(users.quoted);
    return 0;
}

static int check(const char *key, const char *data, char *pkout, char *err,
                 size_t errlen)
{
    ds_event ev;
    memset(&ev, 0, sizeof ev);
    ev.op = data ? DS_OP_UPDATE : DS_OP_DELETE;
    snprintf(ev.table, sizeof ev.table, "users");
    ev.key = json_tokener_parse(key);
    ev.data = data ? json_tokener_parse(data) : NULL;
    assert_non_null(ev.key);
    size_t len = 0;
    int rc = dsc_catalog_check(&users, &ev, pkout, &len, err, errlen);
    if (rc == 0)
        pkout[len] = '\0';
    json_object_put(ev.key);
    json_object_put(ev.data);
    return rc;
}

static void column_lookup_is_exact(void **state)
{
    (void)state;
    assert_int_equal(dsc_table_column(&users, "id"), 0);
    assert_int_equal(dsc_table_column(&users, "total"), 4);
    assert_int_equal(dsc_table_column(&users, "avatar"), 3);
    assert_int_equal(dsc_table_column(&users, "ID"), -1);
    assert_int_equal(dsc_table_column(&users, "id "), -1);
    assert_int_equal(dsc_table_column(&users, "n\xd0\xb0me"), -1);
    assert_int_equal(dsc_table_column(&users, ""), -1);
}

static void canonical_key_in_primary_key_order(void **state)
{
    (void)state;
    char pkbuf[DS_PK_MAX + 1], err[256];
    assert_int_equal(
        check("{\"id\":7,\"region\":\"eu/w\"}", NULL, pkbuf, err, sizeof err),
        0);
    assert_string_equal(pkbuf, "[\"eu/w\",7]");
    /* 7, "7", "007", "+7" name one row. */
    static const char *const sevens[] = {"\"7\"", "\"007\"", "\"+7\""};
    for (int i = 0; i < 3; i++) {
        char key[64];
        snprintf(key, sizeof key, "{\"region\":\"eu/w\",\"id\":%s}", sevens[i]);
        assert_int_equal(check(key, NULL, pkbuf, err, sizeof err), 0);
        assert_string_equal(pkbuf, "[\"eu/w\",7]");
    }
    assert_int_equal(check("{\"id\":-0,\"region\":\"\\u00e9\\\"\"}", NULL,
                           pkbuf, err, sizeof err),
                     0);
    assert_string_equal(pkbuf, "[\"\xc3\xa9\\\"\",0]");
    assert_int_equal(
        check("{\"id\":-12,\"region\":\"a\"}", NULL, pkbuf, err, sizeof err),
        0);
    assert_string_equal(pkbuf, "[\"a\",-12]");
}

static void bad_keys(void **state)
{
    (void)state;
    char pkbuf[DS_PK_MAX + 1], err[256];
    assert_int_equal(check("{\"id\":7}", NULL, pkbuf, err, sizeof err),
                     DS_ESCHEMA);
    assert_non_null(strstr(err, "missing primary-key column 'region'"));
    assert_int_equal(check("{\"id\":7,\"region\":\"a\",\"name\":\"x\"}", NULL,
                           pkbuf, err, sizeof err),
                     DS_ESCHEMA);
    assert_non_null(strstr(err, "not a primary-key column"));
    assert_int_equal(check("{\"id\":7,\"region\":\"a\",\"nope\":1}", NULL,
                           pkbuf, err, sizeof err),
                     DS_ECOLUMN);
    assert_int_equal(
        check("{\"id\":\"7x\",\"region\":\"a\"}", NULL, pkbuf, err, sizeof err),
        DS_ESCHEMA);
    assert_int_equal(
        check("{\"id\":1.5,\"region\":\"a\"}", NULL, pkbuf, err, sizeof err),
        DS_ESCHEMA);
    assert_int_equal(
        check("{\"id\":\"123456789012345678901\",\"region\":\"a\"}", NULL,
              pkbuf, err, sizeof err),
        DS_ESCHEMA);
    assert_int_equal(
        check("{\"id\":1,\"region\":[1]}", NULL, pkbuf, err, sizeof err),
        DS_ESCHEMA);
    /* Longer than datasync_versions.pk holds. */
    char *key = malloc(DS_PK_MAX + 64);
    assert_non_null(key);
    int n = snprintf(key, DS_PK_MAX + 64, "{\"id\":1,\"region\":\"");
    memset(key + n, 'r', DS_PK_MAX);
    strcpy(key + n + DS_PK_MAX, "\"}");
    assert_int_equal(check(key, NULL, pkbuf, err, sizeof err), DS_ESCHEMA);
    free(key);
}

static void data_checks(void **state)
{
    (void)state;
    char pkbuf[DS_PK_MAX + 1], err[256];
    const char *key = "{\"id\":7,\"region\":\"a\"}";
    assert_int_equal(check(key,
                           "{\"id\":\"07\",\"region\":\"a\",\"name\":null,"
                           "\"avatar\":{\"base64\":\"AAE=\"},\"total\":"
                           "\"1.10\",\"gen\":\"ignored\"}",
                           pkbuf, err, sizeof err),
                     0);
    assert_int_equal(check(key, "{\"id\":8}", pkbuf, err, sizeof err),
                     DS_ESCHEMA);
    assert_non_null(strstr(err, "data.id: differs from the key"));
    assert_int_equal(
        check(key, "{\"name`; DROP TABLE x\":1}", pkbuf, err, sizeof err),
        DS_ECOLUMN);
    assert_non_null(strstr(err, "name`; DROP TABLE x"));
    assert_int_equal(
        check(key, "{\"avatar\":{\"base64\":\"A\"}}", pkbuf, err, sizeof err),
        DS_ESCHEMA);
    assert_int_equal(
        check(key, "{\"avatar\":{\"b64\":\"AA==\"}}", pkbuf, err, sizeof err),
        DS_ESCHEMA);
    assert_int_equal(check(key, "{\"name\":[\"a\"]}", pkbuf, err, sizeof err),
                     DS_ESCHEMA);
}

static void safe_names(void **state)
{
    (void)state;
    char out[300];
    dsc_catalog_safe_name("plain_name", out, sizeof out);
    assert_string_equal(out, "plain_name");
    dsc_catalog_safe_name("a'b\\c\n\xd1\x95", out, sizeof out);
    assert_string_equal(out, "a\\x27b\\x5cc\\x0a\\xd1\\x95");
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    dsc_catalog_safe_name(longname, out, sizeof out);
    assert_int_equal(strlen(out), 67);
    assert_string_equal(out + 64, "...");
    dsc_catalog_safe_name(longname, out, 10);
    assert_true(strlen(out) < 10);
}

static void mysql_error_classes(void **state)
{
    (void)state;
    static const unsigned transient[] = {1205, 1213, 2006, 2013, 2002, 2003,
                                         1040, 1053, 1290, 1021, 1142, 1927,
                                         1461, 1197, 1705, 1689};
    static const unsigned permanent[] = {1048, 1062, 1264, 1265, 1366,
                                         1406, 1292, 1364, 1644, 4025};
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
        assert_int_equal(ds__mysql_classify(transient[i]), DS_MYSQL_TRANSIENT);
    for (size_t i = 0; i < sizeof permanent / sizeof *permanent; i++)
        assert_int_equal(ds__mysql_classify(permanent[i]), DS_MYSQL_PERMANENT);
    assert_int_equal(ds__mysql_classify(1452), DS_MYSQL_FOREIGN_KEY);
    assert_int_equal(ds__mysql_classify(1451), DS_MYSQL_FOREIGN_KEY);
    assert_int_equal(ds__mysql_classify(1054), DS_MYSQL_SCHEMA);
    assert_int_equal(ds__mysql_classify(1146), DS_MYSQL_SCHEMA);
    /* Client errors not listed: the connection, so retry. */
    assert_int_equal(ds__mysql_classify(2055), DS_MYSQL_TRANSIENT);
    assert_string_equal(ds__mysql_class_name(DS_MYSQL_FOREIGN_KEY),
                        "foreign-key");
}

/* The code a dead letter's reason names for a change the server refused:
 * the constraints a row breaks, and everything else as a MySQL error. */
static void mysql_refusal_codes(void **state)
{
    (void)state;
    static const unsigned constraint[] = {1048, 1062, 1586, 1216, 1217,
                                          1451, 1452, 3819, 4025};
    static const unsigned other[] = {0,    1054, 1146, 1264, 1265,
                                     1366, 1406, 1644, 2006};
    for (size_t i = 0; i < sizeof constraint / sizeof *constraint; i++)
        assert_int_equal(ds__mysql_refusal_code(constraint[i]), DS_ECONSTRAINT);
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        assert_int_equal(ds__mysql_refusal_code(other[i]), DS_EMYSQL);
}

static void value_tables_by_server(void **state)
{
    (void)state;
    /* What mysql_get_server_info and _version give for each. */
    assert_true(
        ds__mysql_has_value_tables("10.11.19-MariaDB-0+deb12u1", 101119));
    assert_true(ds__mysql_has_value_tables("5.5.5-10.3.3-MariaDB", 100303));
    assert_true(ds__mysql_has_value_tables("11.4.2-MariaDB-log", 110402));
    assert_false(ds__mysql_has_value_tables("10.3.2-MariaDB", 100302));
    assert_false(ds__mysql_has_value_tables("10.2.44-MariaDB", 100244));
    assert_false(ds__mysql_has_value_tables("8.0.36", 80036));
    assert_false(ds__mysql_has_value_tables(NULL, 0));
}

static void quote_identifiers(void **state)
{
    (void)state;
    char buf[32];
    size_t len = 0;
    assert_int_equal(ds__mysql_quote_ident(buf, sizeof buf, &len, "a`b"), 0);
    assert_string_equal(buf, "`a``b`");
    len = 0;
    assert_int_equal(ds__mysql_quote_ident(buf, 8, &len, "abcdefgh"),
                     DS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(column_lookup_is_exact),
        cmocka_unit_test(canonical_key_in_primary_key_order),
        cmocka_unit_test(bad_keys),
        cmocka_unit_test(data_checks),
        cmocka_unit_test(safe_names),
        cmocka_unit_test(mysql_error_classes),
        cmocka_unit_test(mysql_refusal_codes),
        cmocka_unit_test(value_tables_by_server),
        cmocka_unit_test(quote_identifiers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
