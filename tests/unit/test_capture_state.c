/* test_capture_state.c: the capture's state file (position and clock) and the versions a transaction's changes get, the same each time it is read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "state.h"
#include "txn.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_state_round_trip_and_earlier_files(void **state)
{
    char dir[] = "/tmp/test_capture_state.XXXXXX", path[256], pos[CAP_GTID_MAX];
    char err[DS_ERRMSG_SIZE];
    uint64_t hlc = 1;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/state", dir);
    assert_int_equal(
        cap_state_read(path, pos, sizeof pos, &hlc, err, sizeof err),
        DS_ENOTFOUND);

    assert_int_equal(cap_state_write(path, "0-1-42,1-2-7",
                                     117093590311632896ULL, err, sizeof err),
                     0);
    assert_int_equal(
        cap_state_read(path, pos, sizeof pos, &hlc, err, sizeof err), 0);
    assert_string_equal(pos, "0-1-42,1-2-7");
    assert_true(hlc == 117093590311632896ULL);

    /* An earlier release's file: the position only; no clock yet. */
    write_file(path, "0-1-5\n");
    assert_int_equal(
        cap_state_read(path, pos, sizeof pos, &hlc, err, sizeof err), 0);
    assert_string_equal(pos, "0-1-5");
    assert_true(hlc == 0);
    write_file(path, "0-1-6"); /* no newline at all */
    assert_int_equal(
        cap_state_read(path, pos, sizeof pos, &hlc, err, sizeof err), 0);
    assert_string_equal(pos, "0-1-6");

    /* Anything else is refused, naming the file. */
    write_file(path, "0-1-5\nhlc x\n");
    assert_int_equal(
        cap_state_read(path, pos, sizeof pos, &hlc, err, sizeof err),
        DS_EINVAL);
    assert_non_null(strstr(err, "hlc N"));
    write_file(path, "0-1-5\nhlc 12 13\n");
    assert_int_equal(
        cap_state_read(path, pos, sizeof pos, &hlc, err, sizeof err),
        DS_EINVAL);
    write_file(path, "0-1-5'; DROP\nhlc 1\n");
    assert_int_equal(
        cap_state_read(path, pos, sizeof pos, &hlc, err, sizeof err),
        DS_EINVAL);
    assert_non_null(strstr(err, "not a GTID position"));

    unlink(path);
    rmdir(dir);
}

static void add_change(cap_txn *tx)
{
    tx->changes = realloc(tx->changes, (tx->n + 1) * sizeof *tx->changes);
    assert_non_null(tx->changes);
    memset(&tx->changes[tx->n], 0, sizeof *tx->changes);
    tx->changes[tx->n].op = DS_OP_CREATE;
    tx->n++;
    tx->cap = tx->n;
}

static void test_versions_the_same_each_time(void **state)
{
    cap_txn a = {0}, b = {0};
    const uint64_t when = 1764672000000ULL; /* ms */

    (void)state;
    for (int i = 0; i < 3; i++) {
        add_change(&a);
        add_change(&b);
    }
    /* Behind the commit's time: the versions start at it. */
    uint64_t clk = cap_txn_stamp(&a, 5, when, "node-a", "0-1-7");
    assert_true(a.changes[0].hlc == when << 16);
    assert_true(a.changes[1].hlc == (when << 16) + 1);
    assert_true(a.changes[2].hlc == (when << 16) + 2);
    assert_true(clk == (when << 16) + 2);
    /* The same transaction from the same clock: the same versions. */
    assert_true(cap_txn_stamp(&b, 5, when, "node-a", "0-1-7") == clk);
    for (int i = 0; i < 3; i++) {
        assert_true(a.changes[i].hlc == b.changes[i].hlc);
        assert_string_equal(a.changes[i].id, b.changes[i].id);
        assert_int_equal(strlen(a.changes[i].id), 36);
        assert_int_equal(a.changes[i].id[14], '7'); /* version 7 */
    }
    /* Each change its own id; another transaction, or another origin,
     * other ids. */
    assert_string_not_equal(a.changes[0].id, a.changes[1].id);
    cap_txn c = {0}, d = {0};
    add_change(&c);
    add_change(&d);
    cap_txn_stamp(&c, 5, when, "node-a", "0-1-70");
    cap_txn_stamp(&d, 5, when, "node-b", "0-1-7");
    assert_string_not_equal(c.changes[0].id, a.changes[0].id);
    assert_string_not_equal(d.changes[0].id, a.changes[0].id);
    cap_txn_free(&c);
    cap_txn_free(&d);

    /* Ahead of it (a version seen in the binlog was higher): above that. */
    a.changes[0].hlc = a.changes[1].hlc = a.changes[2].hlc = 0;
    uint64_t ahead = (when + 5000) << 16;
    assert_true(cap_txn_stamp(&a, ahead, when, "node-a", "0-1-8") == ahead + 3);
    assert_true(a.changes[0].hlc == ahead + 1);

    /* Stamped once: an XA transaction's versions stay those of its
     * prepare. */
    add_change(&a);
    assert_true(cap_txn_stamp(&a, ahead + 100, when, "node-a", "0-1-9") ==
                ahead + 101);
    assert_true(a.changes[0].hlc == ahead + 1);
    assert_true(a.changes[3].hlc == ahead + 101);

    cap_txn_free(&a);
    cap_txn_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_round_trip_and_earlier_files),
        cmocka_unit_test(test_versions_the_same_each_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
