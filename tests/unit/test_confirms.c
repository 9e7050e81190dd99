/* test_confirms.c: publisher-confirm bookkeeping settles each publish exactly once, in order, whatever order acks, nacks, returns and losses come in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "confirms.h"
#include "datasync.h"

#define MAX_SEEN 300000

/* What the settle callback saw, in order. */
typedef struct seen {
    size_t n;
    uint64_t seq[MAX_SEEN];
    uint64_t cookie[MAX_SEEN];
    ds_confirm_state state[MAX_SEEN];
} seen;

static void record(void *ctx, ds_confirm *e)
{
    seen *s = ctx;

    assert_true(s->n < MAX_SEEN);
    s->seq[s->n] = e->seq;
    s->cookie[s->n] = e->cookie;
    s->state[s->n] = e->state;
    s->n++;
}

/* Each test's confirms and what its callback saw. */
typedef struct fixture {
    ds_confirms c;
    seen *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);

    if (!f || !(f->s = calloc(1, sizeof *f->s))) {
        free(f);
        return -1;
    }
    ds__confirms_init(&f->c);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    ds__confirms_free(&f->c);
    free(f->s);
    free(f);
    return 0;
}

/* Adds n publishes with ids "m<seq>" and cookies seq * 10. */
static void add_n(ds_confirms *c, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        char id[32];
        uint64_t seq = c->next_seq;
        snprintf(id, sizeof id, "m%llu", (unsigned long long)seq);
        assert_int_equal(ds__confirms_add(c, id, NULL, seq * 10), seq);
    }
}

static void test_numbering_from_one(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    assert_int_equal(ds__confirms_add(c, "a", NULL, 7), 1);
    assert_int_equal(ds__confirms_add(c, NULL, NULL, 8), 2);
    assert_int_equal(c->unsettled, 2);
    assert_int_equal(ds__confirms_oldest(c)->seq, 1);
    assert_string_equal(ds__confirms_oldest(c)->id, "a");
    /* A new channel counts from 1 again. */
    ds__confirms_fail(c, NULL, NULL);
    ds__confirms_restart(c);
    assert_int_equal(ds__confirms_add(c, "b", NULL, 9), 1);
}

static void test_single_acks_out_of_order(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    seen *s = ((fixture *)*state)->s;
    add_n(c, 5);
    assert_int_equal(ds__confirms_answer(c, 3, false, true, record, s), 1);
    assert_int_equal(ds__confirms_answer(c, 5, false, true, record, s), 1);
    /* Settled 3 and 5 stay held behind the unanswered 1. */
    assert_int_equal(c->count, 5);
    assert_int_equal(c->unsettled, 3);
    assert_int_equal(ds__confirms_answer(c, 3, false, true, record, s), 0);
    assert_int_equal(ds__confirms_answer(c, 1, false, true, record, s), 1);
    assert_int_equal(c->count, 4); /* 2 is now the oldest held */
    assert_int_equal(ds__confirms_oldest(c)->seq, 2);
    assert_int_equal(s->n, 3);
    assert_int_equal(s->seq[0], 3);
    assert_int_equal(s->seq[1], 5);
    assert_int_equal(s->seq[2], 1);
    assert_int_equal(s->cookie[2], 10);
    /* A tag never published is ignored. */
    assert_int_equal(ds__confirms_answer(c, 99, false, true, record, s), 0);
}

static void test_multiple_ack_after_single(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    seen *s = ((fixture *)*state)->s;
    add_n(c, 10);
    ds__confirms_answer(c, 4, false, true, record, s);
    ds__confirms_answer(c, 7, false, false, record, s);
    /* ack multiple 8: 1-3, 5, 6 and 8, in order; 4 and 7 only once. */
    assert_int_equal(ds__confirms_answer(c, 8, true, true, record, s), 6);
    assert_int_equal(s->n, 8);
    const uint64_t want[] = {4, 7, 1, 2, 3, 5, 6, 8};
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(s->seq[i], want[i]);
    assert_int_equal(s->state[1], DS_CONFIRM_NACKED);
    assert_int_equal(s->state[2], DS_CONFIRM_ACKED);
    assert_int_equal(c->count, 2);
    assert_int_equal(c->unsettled, 2);
    /* An older multiple that comes late settles nothing twice. */
    assert_int_equal(ds__confirms_answer(c, 6, true, true, record, s), 0);
    /* A multiple past the last publish settles what is there. */
    assert_int_equal(ds__confirms_answer(c, 50, true, true, record, s), 2);
    assert_int_equal(c->count, 0);
    assert_null(ds__confirms_oldest(c));
}

static void test_nack_multiple(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    seen *s = ((fixture *)*state)->s;
    add_n(c, 6);
    ds__confirms_answer(c, 2, false, true, record, s);
    assert_int_equal(ds__confirms_answer(c, 5, true, false, record, s), 4);
    assert_int_equal(s->n, 5);
    assert_int_equal(s->state[0], DS_CONFIRM_ACKED);
    for (size_t i = 1; i < 5; i++)
        assert_int_equal(s->state[i], DS_CONFIRM_NACKED);
    assert_int_equal(s->seq[1], 1);
    assert_int_equal(s->seq[4], 5);
    assert_int_equal(c->unsettled, 1);
    assert_int_equal(ds__confirms_oldest(c)->seq, 6);
}

static void test_return_before_ack(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    seen *s = ((fixture *)*state)->s;
    add_n(c, 3);
    assert_true(ds__confirms_returned(c, "m2"));
    /* Still unsettled: its ack follows. */
    assert_int_equal(c->unsettled, 3);
    ds__confirms_answer(c, 3, true, true, record, s);
    assert_int_equal(s->n, 3);
    assert_int_equal(s->state[0], DS_CONFIRM_ACKED);
    assert_int_equal(s->state[1], DS_CONFIRM_UNROUTABLE);
    assert_int_equal(s->state[2], DS_CONFIRM_ACKED);
}

static void test_return_matches_oldest(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    seen *s = ((fixture *)*state)->s;
    ds__confirms_add(c, "same", NULL, 1);
    ds__confirms_add(c, "same", NULL, 2);
    ds__confirms_add(c, "other", NULL, 3);
    /* Two returns of one id mark both, oldest first. */
    assert_true(ds__confirms_returned(c, "same"));
    assert_true(ds__confirms_returned(c, "same"));
    assert_false(ds__confirms_returned(c, "same"));
    /* Without an id: the oldest still plain pending one. */
    assert_true(ds__confirms_returned(c, NULL));
    assert_false(ds__confirms_returned(c, ""));
    ds__confirms_answer(c, 3, true, true, record, s);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(s->state[i], DS_CONFIRM_UNROUTABLE);
}

static void test_return_unknown_id(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    seen *s = ((fixture *)*state)->s;
    add_n(c, 2);
    assert_false(ds__confirms_returned(c, "nobody"));
    /* A return for a settled publish matches nothing either. */
    ds__confirms_answer(c, 1, false, true, record, s);
    assert_false(ds__confirms_returned(c, "m1"));
    ds__confirms_answer(c, 2, false, true, record, s);
    assert_int_equal(s->state[0], DS_CONFIRM_ACKED);
    assert_int_equal(s->state[1], DS_CONFIRM_ACKED);
    /* Nothing held: nothing to match. */
    assert_false(ds__confirms_returned(c, NULL));
}

static void test_return_then_nack(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    seen *s = ((fixture *)*state)->s;
    add_n(c, 1);
    assert_true(ds__confirms_returned(c, "m1"));
    ds__confirms_answer(c, 1, false, false, record, s);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->state[0], DS_CONFIRM_NACKED);
}

static void test_loss_with_pending(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    seen *s = ((fixture *)*state)->s;
    add_n(c, 6);
    ds__confirms_answer(c, 2, false, true, record, s);
    ds__confirms_answer(c, 4, false, false, record, s);
    ds__confirms_returned(c, "m5");
    assert_int_equal(ds__confirms_fail(c, record, s), 4);
    assert_int_equal(s->n, 6);
    const uint64_t want[] = {2, 4, 1, 3, 5, 6};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(s->seq[i], want[i]);
    for (size_t i = 2; i < 6; i++)
        assert_int_equal(s->state[i], DS_CONFIRM_LOST);
    assert_int_equal(c->count, 0);
    assert_int_equal(c->unsettled, 0);
    /* The channel may live on: late answers are ignored and numbering
     * goes on. */
    assert_int_equal(ds__confirms_answer(c, 6, true, true, record, s), 0);
    assert_int_equal(ds__confirms_add(c, NULL, NULL, 0), 7);
    assert_int_equal(ds__confirms_answer(c, 7, false, true, record, s), 1);
    assert_int_equal(s->n, 7);
    assert_int_equal(ds__confirms_fail(c, record, s), 0);
}

/* Many publishes through a ring that wraps and grows while answers come
 * in chunks: every one settled once, in order. */
static void test_large_counts(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    seen *s = ((fixture *)*state)->s;
    const uint64_t total = 250000;
    uint64_t acked = 0;
    assert_int_equal(ds__confirms_reserve(c, 1000), 0);
    assert_true(c->cap >= 1000);
    while (acked < total) {
        uint64_t burst = 1 + (c->next_seq * 7919) % 3000;
        if (c->next_seq <= total)
            add_n(c, c->next_seq + burst - 1 <= total
                         ? burst
                         : total - c->next_seq + 1);
        /* Ack a few single tags ahead, then a multiple up to the middle. */
        uint64_t last = c->next_seq - 1;
        uint64_t mid = acked + (last - acked + 1) / 2;
        if (last > acked + 2)
            ds__confirms_answer(c, last - 1, false, true, record, s);
        ds__confirms_answer(c, mid > acked ? mid : last, true, true, record, s);
        acked = mid > acked ? mid : last;
        if (c->next_seq > total && acked < total) {
            ds__confirms_answer(c, total, true, true, record, s);
            acked = total;
        }
    }
    assert_int_equal(s->n, total);
    assert_int_equal(c->count, 0);
    assert_int_equal(c->unsettled, 0);
    /* Each seq exactly once. */
    unsigned char *once = calloc(total + 1, 1);
    assert_non_null(once);
    for (size_t i = 0; i < s->n; i++) {
        assert_true(s->seq[i] >= 1 && s->seq[i] <= total);
        assert_int_equal(once[s->seq[i]], 0);
        once[s->seq[i]] = 1;
        assert_int_equal(s->cookie[i], s->seq[i] * 10);
    }
    free(once);
}

static void test_long_id_truncated(void **state)
{
    ds_confirms *c = &((fixture *)*state)->c;
    char id[200];

    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    ds__confirms_add(c, id, NULL, 0);
    assert_int_equal(strlen(ds__confirms_oldest(c)->id), 63);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_numbering_from_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_single_acks_out_of_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_multiple_ack_after_single, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nack_multiple, setup, teardown),
        cmocka_unit_test_setup_teardown(test_return_before_ack, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_return_matches_oldest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_return_unknown_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_return_then_nack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_with_pending, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_large_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_id_truncated, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
