/* test_capture_statement.c: which statements in the binlog change rows of a captured table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "statement.h"

static const char tables[] = "users  orders\tline_items";

static bool changes(const char *q, char *table)
{
    return cap_statement_changes(q, strlen(q), "shop", "shop", tables, table,
                                 65);
}

static void row_changes_of_captured_tables(void **state)
{
    static const char *const stmts[] = {
        "INSERT INTO users VALUES (1)",
        "insert low_priority ignore into `users` (id) values (2)",
        "REPLACE INTO shop.orders SET id = 3",
        "UPDATE `shop`.`orders` SET total = 0",
        "  /* app */ DELETE FROM line_items WHERE id = 4",
        "DELETE l FROM line_items l JOIN x ON x.id = l.id",
        "TRUNCATE TABLE USERS",
        "truncate orders",
        "INSERT INTO archive SELECT * FROM users",
        "LOAD DATA INFILE '/tmp/x' INTO TABLE orders",
        "INSERT /*!50000 INTO users */ VALUES (5)",
        "-- a note\nUPDATE users SET a = 1",
        "SET STATEMENT max_statement_time = 1 FOR UPDATE users SET a = 1",
        "ALTER TABLE orders TRUNCATE PARTITION p0",
        "alter table shop.orders drop partition p1, p2",
        "ALTER TABLE orders EXCHANGE PARTITION p0 WITH TABLE old_orders",
        /* ANSI_QUOTES: a name; otherwise a string, but erring on true */
        "UPDATE \"users\" SET a = 1",
        "INSERT INTO audit VALUES (\"orders\")",
    };
    char table[65];

    (void)state;
    for (size_t i = 0; i < sizeof stmts / sizeof *stmts; i++) {
        table[0] = '\0';
        if (!changes(stmts[i], table))
            fail_msg("not seen as a change of a captured table: %s", stmts[i]);
    }
    assert_true(changes("UPDATE `shop`.`orders` SET total = 0", table));
    assert_string_equal(table, "orders");
}

static void other_statements(void **state)
{
    static const char *const stmts[] = {
        "BEGIN",
        "COMMIT",
        "ALTER TABLE users ADD COLUMN x INT",
        "CREATE TABLE orders2 LIKE orders",
        "DROP TABLE users",
        "INSERT INTO audit VALUES ('users', 'it''s \"orders\"')",
        "UPDATE audit SET note = 'delete from users' WHERE id = 1",
        "TRUNCATE TABLE cache",
        "DELETE FROM `users_old`",
        "UPDATE /* users */ audit SET n = 1",
        "SET STATEMENT max_statement_time = 1 FOR SELECT * FROM users",
        "SET @users = 1",
        "ALTER TABLE orders ADD PARTITION (PARTITION p9 VALUES LESS THAN (9))",
        "ALTER TABLE orders DROP COLUMN x",
        "INSERT INTO `a``users` VALUES (1)",
        "",
    };
    char table[65];

    (void)state;
    for (size_t i = 0; i < sizeof stmts / sizeof *stmts; i++)
        if (changes(stmts[i], table))
            fail_msg("seen as a change of %s: %s", table, stmts[i]);
}

/* Not NUL-terminated, cut anywhere: never read past qlen. */
static void cut_statements(void **state)
{
    static const char q[] = "UPDATE 'unterminated `users";
    char table[65];

    (void)state;
    for (size_t n = 0; n <= strlen(q); n++)
        assert_false(cap_statement_changes(q, n, "shop", "shop", tables, table,
                                           sizeof table));
    assert_false(cap_statement_changes("UPDATE /* users", 15, "shop", "shop",
                                       tables, table, sizeof table));
    assert_true(cap_statement_changes("DELETE FROM usersX", 17, "shop", "shop",
                                      tables, table, sizeof table));
}

/* Only the captured database's tables: another database on the same
 * server may have tables of the same names. */
static void other_databases(void **state)
{
    static const struct {
        const char *q, *default_db;
        bool changes;
    } cases[] = {
        {"TRUNCATE TABLE `users`", "other", false},
        {"TRUNCATE TABLE `users`", "", false},
        {"TRUNCATE TABLE shop.users", "other", true},
        {"TRUNCATE TABLE SHOP.users", "other", true},
        {"TRUNCATE TABLE `shop` . `users`", "", true},
        {"DELETE FROM other.users", "shop", false},
        {"INSERT INTO other.users SELECT * FROM users", "shop", true},
        {"UPDATE users u SET u.orders = 1", "shop", true},
        {"UPDATE `shop`.", "shop", false},
    };
    char table[65];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (cap_statement_changes(cases[i].q, strlen(cases[i].q),
                                  cases[i].default_db, "shop", tables, table,
                                  sizeof table) != cases[i].changes)
            fail_msg("%s (in %s): not %s", cases[i].q, cases[i].default_db,
                     cases[i].changes ? "seen" : "passed by");
}

static void savepoints(void **state)
{
    static const struct {
        const char *q;
        cap_savepoint_op op;
        const char *name;
    } cases[] = {
        {"SAVEPOINT `a`", CAP_SP_SET, "a"},
        {"savepoint sp_1", CAP_SP_SET, "sp_1"},
        {"ROLLBACK TO `a`", CAP_SP_ROLLBACK, "a"},
        {"ROLLBACK TO SAVEPOINT `we``ird`", CAP_SP_ROLLBACK, "we`ird"},
        {"rollback  to b ", CAP_SP_ROLLBACK, "b"},
        {"RELEASE SAVEPOINT `a`", CAP_SP_RELEASE, "a"},
        {"SAVEPOINT \"ansi\"\"q\"", CAP_SP_SET, "ansi\"q"},
        {"ROLLBACK TO \"ansi\"", CAP_SP_ROLLBACK, "ansi"},
        {"ROLLBACK", CAP_SP_NONE, NULL},
        {"ROLLBACK TO", CAP_SP_NONE, NULL},
        {"SAVEPOINTS a", CAP_SP_NONE, NULL},
        {"SAVEPOINT a b", CAP_SP_NONE, NULL},
        {"RELEASE a", CAP_SP_NONE, NULL},
        {"UPDATE t SET a = 1", CAP_SP_NONE, NULL},
    };
    char name[65];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cap_savepoint_op op = cap_statement_savepoint(
            cases[i].q, strlen(cases[i].q), name, sizeof name);
        if (op != cases[i].op)
            fail_msg("%s: op %d, want %d", cases[i].q, op, cases[i].op);
        if (cases[i].name && strcmp(name, cases[i].name) != 0)
            fail_msg("%s: name '%s', want '%s'", cases[i].q, name,
                     cases[i].name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(row_changes_of_captured_tables),
        cmocka_unit_test(other_statements),
        cmocka_unit_test(cut_statements),
        cmocka_unit_test(other_databases),
        cmocka_unit_test(savepoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
