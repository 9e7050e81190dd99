/* test_smoke.c: proves the harness: private broker and database, restarts. */
#include "../lib/itest.h"

#include <stdlib.h>

#define SMOKE_EXCHANGE "ds.smoke"
#define SMOKE_KEY "smoke.test"

/* (a) A message published to a fresh exchange and queue comes back intact. */
static void test_amqp_roundtrip(void **state)
{
    const char *queue = "ds.smoke.roundtrip";
    const char *body = "{\"v\":1,\"smoke\":\"h\\u00e9llo \xc3\xa9\"}";
    amqp_connection_state_t conn = itest_amqp_connect();
    char *got;

    (void)state;
    itest_queue_delete(conn, queue);
    itest_queue_declare_bound(conn, queue, SMOKE_EXCHANGE, SMOKE_KEY);
    assert_int_equal(itest_queue_depth(conn, queue), 0);

    itest_amqp_publish(conn, SMOKE_EXCHANGE, SMOKE_KEY, body, false);
    assert_int_equal(itest_queue_depth(conn, queue), 1);
    got = itest_queue_get(conn, queue, 5000);
    assert_non_null(got);
    assert_string_equal(got, body);
    free(got);

    /* Acked: nothing is left, and an empty queue times out with NULL. */
    assert_null(itest_queue_get(conn, queue, 100));
    assert_int_equal(itest_queue_depth(conn, queue), 0);
    assert_true(itest_queue_exists(conn, queue));
    itest_queue_delete(conn, queue);
    assert_false(itest_queue_exists(conn, queue));
    /* Channel 1 was reopened after the 404: it still works. */
    itest_queue_declare_bound(conn, queue, SMOKE_EXCHANGE, SMOKE_KEY);
    itest_queue_delete(conn, queue);
    itest_amqp_close(conn);
}

/* (b) A committed row reads back, over TCP; the socket works too. */
static void test_mysql_roundtrip(void **state)
{
    MYSQL *db;
    char *v;

    (void)state;
    itest_create_database("ds_smoke");
    db = itest_mysql_connect("ds_smoke");
    itest_mysql_exec(db, "CREATE TABLE t (id INT PRIMARY KEY, name "
                         "VARCHAR(64) NOT NULL) ENGINE=InnoDB");
    itest_mysql_exec(db, "START TRANSACTION");
    itest_mysql_exec(db, "INSERT INTO t VALUES (%d, '%s')", 1, "h\xc3\xa9llo");
    itest_mysql_exec(db, "COMMIT");
    v = itest_mysql_scalar(db, "SELECT name FROM t WHERE id = 1");
    assert_non_null(v);
    assert_string_equal(v, "h\xc3\xa9llo");
    free(v);
    assert_null(itest_mysql_scalar(db, "SELECT name FROM t WHERE id = 2"));
    assert_null(itest_mysql_scalar(db, "SELECT NULL"));
    assert_int_equal(itest_mysql_count(db, "SELECT COUNT(*) FROM t"), 1);
    /* Durability is real: the harness must not relax it. */
    assert_int_equal(
        itest_mysql_count(db, "SELECT @@innodb_flush_log_at_trx_commit"), 1);
    mysql_close(db);

    db = mysql_init(NULL);
    assert_non_null(db);
    assert_non_null(mysql_real_connect(db, NULL, "root", "", "ds_smoke", 0,
                                       itest_mysql_socket(), 0));
    assert_int_equal(itest_mysql_count(db, "SELECT COUNT(*) FROM t"), 1);
    mysql_close(db);
}

/* (c) A persistent message in a durable queue survives a broker restart. */
static void test_rabbit_restart_keeps_messages(void **state)
{
    const char *queue = "ds.smoke.durable";
    const char *body = "{\"persistent\":true}";
    amqp_connection_state_t conn = itest_amqp_connect();
    char *got;

    (void)state;
    itest_queue_delete(conn, queue);
    itest_queue_declare_bound(conn, queue, SMOKE_EXCHANGE, SMOKE_KEY);
    itest_amqp_publish(conn, SMOKE_EXCHANGE, SMOKE_KEY, body, true);
    assert_int_equal(itest_queue_depth(conn, queue), 1);
    itest_amqp_close(conn);

    assert_int_equal(itest_service("rabbit", "restart"), 0);
    assert_int_equal(itest_service("rabbit", "status"), 0);

    conn = itest_amqp_connect();
    assert_int_equal(itest_queue_depth(conn, queue), 1);
    got = itest_queue_get(conn, queue, 5000);
    assert_non_null(got);
    assert_string_equal(got, body);
    free(got);
    itest_queue_delete(conn, queue);
    itest_amqp_close(conn);
}

/* (c) A confirmed persistent message survives kill -9 of the broker. */
static void test_rabbit_kill_keeps_confirmed(void **state)
{
    const char *queue = "ds.smoke.killed";
    const char *body = "{\"confirmed\":true}";
    amqp_connection_state_t conn = itest_amqp_connect();
    char *got;

    (void)state;
    itest_queue_delete(conn, queue);
    itest_queue_declare_bound(conn, queue, SMOKE_EXCHANGE, SMOKE_KEY);
    itest_amqp_publish(conn, SMOKE_EXCHANGE, SMOKE_KEY, body, true);

    /* The open connection sees the broker die. */
    assert_int_equal(itest_service("rabbit", "kill"), 0);
    assert_int_equal(itest_service("rabbit", "status"), 3);
    itest_amqp_close(conn);
    assert_int_equal(itest_service("rabbit", "start"), 0);

    conn = itest_amqp_connect();
    got = itest_queue_get(conn, queue, 5000);
    assert_non_null(got);
    assert_string_equal(got, body);
    free(got);
    itest_queue_delete(conn, queue);
    itest_exchange_delete(conn, SMOKE_EXCHANGE);
    itest_amqp_close(conn);
}

/* (c) A committed row survives kill -9 of MariaDB, and a graceful restart. */
static void test_maria_kill_keeps_commits(void **state)
{
    MYSQL *db;
    char *v;

    (void)state;
    itest_create_database("ds_smoke_kill");
    db = itest_mysql_connect("ds_smoke_kill");
    itest_mysql_exec(db, "CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL)");
    itest_mysql_exec(db, "START TRANSACTION");
    itest_mysql_exec(db, "INSERT INTO t VALUES (1, 42)");
    itest_mysql_exec(db, "COMMIT");
    /* Uncommitted work must vanish with the kill. */
    itest_mysql_exec(db, "START TRANSACTION");
    itest_mysql_exec(db, "INSERT INTO t VALUES (2, 43)");

    assert_int_equal(itest_service("maria", "kill"), 0);
    assert_int_equal(itest_service("maria", "status"), 3);
    mysql_close(db);
    assert_int_equal(itest_service("maria", "start"), 0);

    db = itest_mysql_connect("ds_smoke_kill");
    v = itest_mysql_scalar(db, "SELECT n FROM t WHERE id = 1");
    assert_non_null(v);
    assert_string_equal(v, "42");
    free(v);
    assert_int_equal(itest_mysql_count(db, "SELECT COUNT(*) FROM t"), 1);
    mysql_close(db);

    assert_int_equal(itest_service("maria", "restart"), 0);
    db = itest_mysql_connect("ds_smoke_kill");
    assert_int_equal(itest_mysql_count(db, "SELECT n FROM t WHERE id = 1"), 42);
    itest_mysql_exec(db, "DROP DATABASE ds_smoke_kill");
    mysql_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amqp_roundtrip),
        cmocka_unit_test(test_mysql_roundtrip),
        cmocka_unit_test(test_rabbit_restart_keeps_messages),
        cmocka_unit_test(test_rabbit_kill_keeps_confirmed),
        cmocka_unit_test(test_maria_kill_keeps_commits),
    };

    return cmocka_run_group_tests_name("smoke", tests, NULL, NULL);
}
