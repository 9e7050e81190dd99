/* test_consumer_large.c: a batch larger than the database's max_allowed_packet is written all the same, and a change larger than it is dead-lettered: never a consumer stuck. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "support.h"

static tc_cluster cl;
static char *old_packet; /* the server's max_allowed_packet before */

enum { PACKET = 1 << 20 }; /* the test's max_allowed_packet, 1 MiB */

static void set_packet(const char *value)
{
    MYSQL *db = itest_mysql_connect(NULL);
    itest_mysql_exec(db, "SET GLOBAL max_allowed_packet = %s", value);
    mysql_close(db);
}

/* The consumers connect after the server's limit is lowered: a session
 * takes max_allowed_packet when it starts. */
static int setup(void **state)
{
    (void)state;
    MYSQL *db = itest_mysql_connect(NULL);
    old_packet = itest_mysql_scalar(db, "SELECT @@global.max_allowed_packet");
    mysql_close(db);
    char packet[32];
    snprintf(packet, sizeof packet, "%d", PACKET);
    set_packet(packet);
    tc_setup(&cl, "dsl", "[apply]\nmax_message_bytes = 2097152\n");
    /* kv, written in multi-row statements (users, with a second unique
     * index, is written row by row), with room for large values; the
     * consumers read the catalogue again as they start. */
    for (int i = 0; i < TC_NODES; i++) {
        assert_int_equal(tc_stop(&cl, i, SIGTERM, 10000), 0);
        MYSQL *node_db = itest_mysql_connect(cl.db[i]);
        itest_mysql_exec(node_db, "ALTER TABLE kv MODIFY v MEDIUMTEXT");
        mysql_close(node_db);
        tc_start(&cl, i);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tc_teardown(&cl);
    set_packet(old_packet);
    free(old_packet);
    return 0;
}

/* A kv row whose v is len bytes of one letter. */
static char *big_row(int k, size_t len, uint64_t hlc)
{
    char key[32], *data = malloc(len + 128);
    assert_non_null(data);
    snprintf(key, sizeof key, "{\"k\":%d}", k);
    int n = snprintf(data, 128, "{\"k\":%d,\"n\":%d,\"v\":\"", k, k);
    memset(data + n, 'a' + k % 26, len);
    strcpy(data + n + len, "\"}");
    char *body = tc_event("create", "kv", key, data, "zl-1", hlc);
    free(data);
    return body;
}

/* 50 rows of 60,000 bytes: a batch of 3 MB against a 1 MiB packet. The
 * server refuses the multi-row statement (1153) and closes the connection;
 * every consumer writes the batch again row by row, and dead-letters none. */
static void a_batch_over_max_allowed_packet_is_written(void **state)
{
    (void)state;
    enum { ROWS = 50, NOTE = 60000 };
    char *bodies[ROWS];
    for (int i = 0; i < ROWS; i++)
        bodies[i] = big_row(i + 1, NOTE, 1000 + (uint64_t)i);
    tc_publish_all(&cl, bodies, ROWS);
    tc_free_all(bodies, ROWS);

    char want[64];
    snprintf(want, sizeof want, "%d|%d\n", ROWS, ROWS * NOTE);
    for (int i = 0; i < TC_NODES; i++) {
        tc_wait_dump(&cl, i,
                     "SELECT COUNT(*), SUM(LENGTH(v)) FROM kv WHERE k "
                     "BETWEEN 1 AND 50",
                     want, 30000);
        char *dead = NULL, *reason = NULL;
        if (tc_dead_get(&cl, i, &dead, &reason, 200))
            fail_msg("%s dead-lettered a row that fits: %s", cl.node[i],
                     reason);
    }
}

/* A change larger than the packet (the column would hold it, the message
 * limit allows it) cannot be sent in any statement: it is dead-lettered,
 * naming max_allowed_packet, and the change after it is applied. */
static void a_change_no_statement_can_carry_is_dead_lettered(void **state)
{
    (void)state;
    char *bodies[2] = {big_row(100, PACKET + 100000, 5000),
                       big_row(101, 100, 5001)};
    tc_publish_all(&cl, bodies, 2);
    tc_free_all(bodies, 2);
    for (int i = 0; i < TC_NODES; i++) {
        tc_wait_dump(&cl, i, "SELECT k FROM kv WHERE k >= 100", "101\n", 30000);
        char *dead = NULL, *reason = NULL;
        if (!tc_dead_get(&cl, i, &dead, &reason, 10000))
            fail_msg("%s: no dead letter for the oversized change", cl.node[i]);
        printf("%s: dead letter: %s\n", cl.node[i], reason);
        assert_non_null(strstr(reason, "max_allowed_packet"));
        assert_non_null(strstr(dead, "\"k\":100"));
        free(dead);
        free(reason);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_batch_over_max_allowed_packet_is_written),
        cmocka_unit_test(a_change_no_statement_can_carry_is_dead_lettered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
