/* test_backoff.c: the reconnect backoff: bounds of its jitter, doubling to the
 * ceiling, and generators that differ between producers and after a fork. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backoff.h"

enum { STEPS = 12 };

static void delays_stay_within_a_quarter_and_double_to_the_ceiling(void **state)
{
    (void)state;
    ds_backoff b;
    uint64_t step = DS_BACKOFF_MIN_MS;

    ds__backoff_init(&b);
    for (int i = 0; i < 40; i++) {
        uint64_t d = ds__backoff_next(&b);
        if (d < step - step / 4 || d > step + step / 4)
            fail_msg("delay %d: %llu ms, outside %llu ms +-25%%", i,
                     (unsigned long long)d, (unsigned long long)step);
        step = step * 2 > DS_BACKOFF_MAX_MS ? DS_BACKOFF_MAX_MS : step * 2;
    }
    ds__backoff_reset(&b);
    uint64_t d = ds__backoff_next(&b);
    assert_true(d >= DS_BACKOFF_MIN_MS * 3 / 4 &&
                d <= DS_BACKOFF_MIN_MS * 5 / 4);
}

static void fill(ds_backoff *b, uint64_t out[STEPS])
{
    for (int i = 0; i < STEPS; i++) {
        /* At the ceiling each delay is its own draw from 5001 values. */
        b->step = DS_BACKOFF_MAX_MS;
        out[i] = ds__backoff_next(b);
    }
}

/* Two producers seeded at once, in one process, must not retry in step: with
 * rand() never seeded every process of a fleet drew the same sequence. */
static void two_backoffs_draw_different_sequences(void **state)
{
    (void)state;
    ds_backoff a, b;
    uint64_t sa[STEPS], sb[STEPS];

    ds__backoff_init(&a);
    ds__backoff_init(&b);
    assert_true(a.rng != b.rng);
    fill(&a, sa);
    fill(&b, sb);
    assert_memory_not_equal(sa, sb, sizeof sa);
    /* The draws spread: not one value repeated (a stuck generator). */
    int same = 0;
    for (int i = 1; i < STEPS; i++)
        same += sa[i] == sa[0];
    assert_true(same < STEPS - 1);
}

/* A forked child that reseeds draws apart from its parent. */
static void a_reseeded_child_draws_apart_from_its_parent(void **state)
{
    (void)state;
    ds_backoff b;
    uint64_t parent[STEPS], child[STEPS];
    int fds[2], status;
    pid_t pid;

    ds__backoff_init(&b);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ds__backoff_init(&b);
        fill(&b, child);
        _exit(write(fds[1], child, sizeof child) == (ssize_t)sizeof child ? 0
                                                                          : 1);
    }
    close(fds[1]);
    fill(&b, parent);
    assert_int_equal(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    close(fds[0]);
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_memory_not_equal(parent, child, sizeof parent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            delays_stay_within_a_quarter_and_double_to_the_ceiling),
        cmocka_unit_test(two_backoffs_draw_different_sequences),
        cmocka_unit_test(a_reseeded_child_draws_apart_from_its_parent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
