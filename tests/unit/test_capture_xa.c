/* test_capture_xa.c: prepared XA transactions held by xid until their outcome, and the position they pin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "xa.h"

/* A GTID event body as MariaDB writes it for an XA group: seq, domain,
 * flags, a commit id when flags say so, format id, lengths, gtrid, bqual.
 * Returns its length. */
static size_t gtid_body(unsigned char *b, unsigned char flags,
                        const char *gtrid, const char *bqual)
{
    size_t at = 0, g = strlen(gtrid), q = strlen(bqual);

    memset(b, 0, 13);
    b[0] = 7;      /* seq */
    b[12] = flags; /* after seq 8 and domain 4 */
    at = 13 + ((flags & 0x02) ? 8 : 0);
    memset(b + 13, 0xee, at - 13);
    b[at] = 1; /* format id 1, little-endian */
    b[at + 1] = b[at + 2] = b[at + 3] = 0;
    b[at + 4] = (unsigned char)g;
    b[at + 5] = (unsigned char)q;
    memcpy(b + at + 6, gtrid, g);
    memcpy(b + at + 6 + g, bqual, q);
    return at + 6 + g + q;
}

static void add_change(cap_txn *tx, const char *key)
{
    tx->changes = realloc(tx->changes, (tx->n + 1) * sizeof *tx->changes);
    assert_non_null(tx->changes);
    cap_change *c = &tx->changes[tx->n++];
    memset(c, 0, sizeof *c);
    c->op = DS_OP_CREATE;
    strcpy(c->table, "t");
    c->key = strdup(key);
    c->data = strdup(key);
    tx->cap = tx->n;
}

static void test_xid_read_from_the_gtid_event(void **state)
{
    unsigned char b[200];
    cap_xid a, b2, c;

    (void)state;
    size_t n = gtid_body(b, CAP_GTID_PREPARED_XA, "a1", "");
    assert_int_equal(cap_xid_from_gtid(b, n, &a), 0);
    assert_int_equal(a.len, 6 + 2);
    assert_memory_equal(a.b + 6, "a1", 2);
    /* With a group commit id the xid sits 8 bytes later: the same xid. */
    n = gtid_body(b, CAP_GTID_COMPLETED_XA | 0x02, "a1", "");
    assert_int_equal(cap_xid_from_gtid(b, n, &b2), 0);
    assert_int_equal(b2.len, a.len);
    assert_memory_equal(b2.b, a.b, a.len);
    /* gtrid and bqual are told apart by their lengths. */
    n = gtid_body(b, CAP_GTID_PREPARED_XA, "a", "1");
    assert_int_equal(cap_xid_from_gtid(b, n, &c), 0);
    assert_false(c.len == a.len && memcmp(c.b, a.b, a.len) == 0);
    /* Cut short, or lengths beyond 64: refused. */
    n = gtid_body(b, CAP_GTID_PREPARED_XA, "abc", "de");
    assert_int_equal(cap_xid_from_gtid(b, n - 1, &c), DS_EINVAL);
    assert_int_equal(cap_xid_from_gtid(b, 12, &c), DS_EINVAL);
    b[13 + 4] = 65;
    assert_int_equal(cap_xid_from_gtid(b, sizeof b, &c), DS_EINVAL);
}

static void test_held_until_the_outcome_and_pinning_the_position(void **state)
{
    unsigned char b[200];
    cap_xid x1, x2, x3;
    cap_xa_list l = {0};
    cap_txn tx = {0}, out = {0};

    (void)state;
    assert_int_equal(cap_xid_from_gtid(b, gtid_body(b, 0x40, "x1", ""), &x1),
                     0);
    assert_int_equal(cap_xid_from_gtid(b, gtid_body(b, 0x40, "x2", ""), &x2),
                     0);
    assert_int_equal(cap_xid_from_gtid(b, gtid_body(b, 0x40, "x3", ""), &x3),
                     0);
    assert_null(cap_xa_pin(&l));

    add_change(&tx, "{\"id\":1}");
    add_change(&tx, "{\"id\":2}");
    assert_int_equal(cap_xa_hold(&l, &x1, &tx, "0-1-9", 9), 0);
    assert_int_equal(tx.n, 0); /* moved, not copied */
    assert_null(tx.changes);
    add_change(&tx, "{\"id\":3}");
    assert_int_equal(cap_xa_hold(&l, &x2, &tx, "0-1-11", 11), 0);
    assert_string_equal(cap_xa_pin(&l)->resume, "0-1-9");
    assert_int_equal(cap_xa_pin(&l)->resume_clk, 9);

    /* An xid never held: nothing taken. */
    assert_false(cap_xa_take(&l, &x3, &out));
    assert_int_equal(out.n, 0);

    /* The second one's outcome first: the oldest still pins. */
    assert_true(cap_xa_take(&l, &x2, &out));
    assert_int_equal(out.n, 1);
    assert_string_equal(out.changes[0].key, "{\"id\":3}");
    assert_string_equal(cap_xa_pin(&l)->resume, "0-1-9");
    assert_int_equal(cap_xa_pin(&l)->resume_clk, 9);
    assert_false(cap_xa_take(&l, &x2, &out)); /* once only */

    assert_true(cap_xa_take(&l, &x1, &out));
    assert_int_equal(out.n, 2);
    assert_string_equal(out.changes[1].key, "{\"id\":2}");
    assert_null(cap_xa_pin(&l));

    /* Freed with what it holds. */
    add_change(&tx, "{\"id\":4}");
    assert_int_equal(cap_xa_hold(&l, &x3, &tx, "0-1-20", 20), 0);
    cap_xa_free(&l);
    cap_txn_free(&out);
    cap_txn_free(&tx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xid_read_from_the_gtid_event),
        cmocka_unit_test(test_held_until_the_outcome_and_pinning_the_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
