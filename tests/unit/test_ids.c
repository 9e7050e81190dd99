/* test_ids.c: UUIDv7 layout and uniqueness, HLC monotonicity under clock steps and threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "ids.h"

static void uuid7_has_version_variant_and_time(void **state)
{
    (void)state;
    char id[37];
    uint64_t before = ds__now_ms();
    assert_int_equal(ds__uuid7(id), 0);
    uint64_t after = ds__now_ms();

    assert_int_equal(strlen(id), 36);
    assert_true(ds__valid_uuid(id));
    assert_int_equal(id[14], '7');
    assert_true(strchr("89ab", id[19]) != NULL);
    char ms_hex[13] = {0};
    memcpy(ms_hex, id, 8);
    memcpy(ms_hex + 8, id + 9, 4);
    uint64_t ms = strtoull(ms_hex, NULL, 16);
    assert_in_range(ms, before, after);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void uuid7_unique(void **state)
{
    (void)state;
    enum { N = 20000 };
    char(*ids)[37] = calloc(N, sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < N; i++)
        assert_int_equal(ds__uuid7(ids[i]), 0);
    qsort(ids, N, sizeof *ids, cmp_str);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void hlc_increases_when_clock_steps_back(void **state)
{
    (void)state;
    ds_hlc c;
    ds__hlc_init(&c);
    uint64_t a = ds__hlc_next_at(&c, 1000, 0);
    assert_int_equal(a, (uint64_t)1000 << 16);
    uint64_t b = ds__hlc_next_at(&c, 1000, 0);
    assert_int_equal(b, a + 1);
    uint64_t back = ds__hlc_next_at(&c, 400, 0); /* wall clock stepped back */
    assert_int_equal(back, b + 1);
    uint64_t fwd = ds__hlc_next_at(&c, 2000, 0);
    assert_int_equal(fwd, (uint64_t)2000 << 16);
    assert_int_equal(ds__hlc_ms(fwd), 2000);
    ds__hlc_destroy(&c);
}

enum { THREADS = 8, PER_THREAD = 20000 };

struct hlc_worker {
    ds_hlc *clock;
    uint64_t values[PER_THREAD];
};

static void *hlc_worker_run(void *arg)
{
    struct hlc_worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++)
        w->values[i] = ds__hlc_next(w->clock, 0);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void hlc_unique_across_threads(void **state)
{
    (void)state;
    ds_hlc c;
    pthread_t th[THREADS];
    struct hlc_worker *w = calloc(THREADS, sizeof *w);
    assert_non_null(w);
    ds__hlc_init(&c);
    for (int i = 0; i < THREADS; i++) {
        w[i].clock = &c;
        assert_int_equal(pthread_create(&th[i], NULL, hlc_worker_run, &w[i]),
                         0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    uint64_t *all = malloc(sizeof(uint64_t) * THREADS * PER_THREAD);
    assert_non_null(all);
    for (int i = 0; i < THREADS; i++) {
        for (int j = 1; j < PER_THREAD; j++) /* increasing per thread */
            assert_true(w[i].values[j] > w[i].values[j - 1]);
        memcpy(all + (size_t)i * PER_THREAD, w[i].values, sizeof w[i].values);
    }
    qsort(all, THREADS * PER_THREAD, sizeof *all, cmp_u64);
    for (size_t k = 1; k < (size_t)THREADS * PER_THREAD; k++)
        assert_true(all[k] > all[k - 1]);
    free(all);
    free(w);
    ds__hlc_destroy(&c);
}

/* The clock never stamps at or below the floor: the highest version the
 * server applied, even when another server's clock runs ahead. */
static void hlc_passes_the_floor(void **state)
{
    (void)state;
    ds_hlc c;
    ds__hlc_init(&c);
    uint64_t ahead = ((uint64_t)5000 << 16) + 7; /* another server's change */
    assert_int_equal(ds__hlc_next_at(&c, 1000, ahead), ahead + 1);
    assert_int_equal(ds__hlc_next_at(&c, 1000, ahead), ahead + 2);
    /* A floor behind the wall clock changes nothing. */
    assert_int_equal(ds__hlc_next_at(&c, 9000, ahead), (uint64_t)9000 << 16);
    ds__hlc_destroy(&c);
}

static void rfc3339_formats_utc_millis(void **state)
{
    (void)state;
    char ts[32];
    ds__rfc3339_ms(1700000000123ULL, ts);
    assert_string_equal(ts, "2023-11-14T22:13:20.123Z");
    ds__rfc3339_ms(5, ts);
    assert_string_equal(ts, "1970-01-01T00:00:00.005Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uuid7_has_version_variant_and_time),
        cmocka_unit_test(uuid7_unique),
        cmocka_unit_test(hlc_increases_when_clock_steps_back),
        cmocka_unit_test(hlc_unique_across_threads),
        cmocka_unit_test(hlc_passes_the_floor),
        cmocka_unit_test(rfc3339_formats_utc_millis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
