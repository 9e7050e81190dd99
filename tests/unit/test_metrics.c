/* test_metrics.c: the consumer's metrics registry: counting a batch, the Prometheus text (HELP/TYPE, cumulative buckets, +Inf, _sum, _count, label escaping), lag, change latency and health. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ids.h"
#include "metrics.h"

/* The value of the sample line that starts with "series " in text; fails
 * when there is none. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    fail_msg("no sample '%s' in:\n%s", series, text);
    return -1;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

static char *render(dsc_metrics *m, uint64_t now_ms)
{
    size_t len = 0;
    char *text = dsc_metrics_render(m, now_ms, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_true(len > 0 && text[len - 1] == '\n');
    return text;
}

/* Every sample's family has one HELP and one TYPE line, before it. */
static void families_are_announced(void **state)
{
    (void)state;
    dsc_metrics *m = dsc_metrics_new("1.2.3", "node-a");
    dsc_metrics_queue_ready(m, 5);
    dsc_metrics_observe_batch(m, 1000);
    char *text = render(m, ds__now_ms());
    char *copy = strdup(text), *save = NULL;
    char helped[64][96], typed[64][96];
    int nh = 0, nt = 0, samples = 0;

    for (char *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char name[96], type[32];
        if (sscanf(line, "# HELP %95s", name) == 1) {
            for (int i = 0; i < nh; i++)
                assert_string_not_equal(helped[i], name);
            snprintf(helped[nh++], sizeof helped[0], "%s", name);
        } else if (sscanf(line, "# TYPE %95s %31s", name, type) == 2) {
            assert_string_equal(helped[nh - 1], name); /* HELP, then TYPE */
            assert_true(strcmp(type, "counter") == 0 ||
                        strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            if (strcmp(type, "counter") == 0)
                assert_non_null(strstr(name, "_total"));
            snprintf(typed[nt++], sizeof typed[0], "%s", name);
        } else {
            assert_true(line[0] != '#');
            /* The sample belongs to the family typed last. */
            const char *fam = typed[nt - 1];
            assert_memory_equal(line, fam, strlen(fam));
            samples++;
        }
    }
    assert_int_equal(nh, nt);
    assert_true(samples > nt);
    assert_true(has_line(text, "datasync_consumer_queue_messages_ready 5"));
    free(copy);
    free(text);
    dsc_metrics_free(m);
}

/* Buckets add up (each includes those below it), +Inf holds every batch,
 * _count equals it and _sum is the total in seconds. */
static void histogram_is_cumulative(void **state)
{
    (void)state;
    dsc_metrics *m = dsc_metrics_new("v", "n");
    const uint64_t us[] = {500, 3000, 3000, 200000, 100000000};
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++)
        dsc_metrics_observe_batch(m, us[i]);
    char *text = render(m, ds__now_ms());

    static const struct {
        const char *le;
        double count;
    } want[] = {{"0.001", 1}, {"0.0025", 1}, {"0.005", 3}, {"0.01", 3},
                {"0.025", 3}, {"0.05", 3},   {"0.1", 3},   {"0.25", 4},
                {"0.5", 4},   {"1", 4},      {"2.5", 4},   {"5", 4},
                {"10", 4},    {"30", 4},     {"+Inf", 5}};
    assert_int_equal(sizeof want / sizeof want[0], DSC_BATCH_BUCKETS + 1);
    double prev = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char series[128];
        snprintf(series, sizeof series,
                 "datasync_consumer_batch_duration_seconds_bucket{le=\"%s\"}",
                 want[i].le);
        double v = sample(text, series);
        if (v != want[i].count)
            fail_msg("%s: %g, want %g", series, v, want[i].count);
        assert_true(v >= prev);
        prev = v;
    }
    assert_true(
        sample(text, "datasync_consumer_batch_duration_seconds_count") == 5);
    double sum = sample(text, "datasync_consumer_batch_duration_seconds_sum");
    if (sum < 100.2064 || sum > 100.2066)
        fail_msg("_sum %f, want 100.2065", sum);
    assert_true(sample(text, "datasync_consumer_batches_total") == 5);
    /* Exactly on a bound counts in that bucket (le: less or equal). */
    dsc_metrics_observe_batch(m, 10000);
    free(text);
    text = render(m, ds__now_ms());
    assert_true(
        sample(
            text,
            "datasync_consumer_batch_duration_seconds_bucket{le=\"0.01\"}") ==
        4);
    free(text);
    dsc_metrics_free(m);
}

/* Label values escape backslash, double quote and newline; nothing else. */
static void label_values_are_escaped(void **state)
{
    (void)state;
    dsc_metrics *m = dsc_metrics_new("1.0\"beta\\2\nx", "n{o}de=a,b");
    char *text = render(m, ds__now_ms());
    if (!has_line(text, "datasync_build_info{version=\"1.0\\\"beta\\\\2\\nx\","
                        "node=\"n{o}de=a,b\"} 1"))
        fail_msg("build_info not escaped as expected:\n%s", text);
    free(text);
    dsc_metrics_free(m);
}

static void change_done(dsc_change *ch, dsc_decision d, const char *ts)
{
    memset(ch, 0, sizeof *ch);
    ch->state = DS_CHANGE_DONE;
    ch->decision = d;
    snprintf(ch->ev.ts, sizeof ch->ev.ts, "%s", ts);
}

static void change_poison(dsc_change *ch, int code)
{
    memset(ch, 0, sizeof *ch);
    dsc_change_poison(ch, code, "%s", "test");
}

/* A batch counts by outcome; dead letters by class, and only once they
 * went out; markers not at all. The lag runs from the batch's last ts
 * until the queue is drained. */
static void batch_counts_and_lag(void **state)
{
    (void)state;
    dsc_metrics *m = dsc_metrics_new("v", "n");
    dsc_change ch[10];
    change_done(&ch[0], DS_DECIDE_APPLY, "2030-01-01T00:00:00Z");
    change_done(&ch[1], DS_DECIDE_APPLY, "2030-01-01T00:00:01Z");
    change_done(&ch[2], DS_DECIDE_SUPERSEDED, "2030-01-01T00:00:02Z");
    change_done(&ch[3], DS_DECIDE_RECORD_ONLY, "2030-01-01T00:00:03Z");
    change_poison(&ch[4], DS_EJSON);
    change_poison(&ch[5], DS_ETABLE);
    change_poison(&ch[6], DS_ECONSTRAINT);
    change_poison(&ch[7], DS_EJSON);
    memset(&ch[8], 0, sizeof ch[8]);
    ch[8].marker = true;
    ch[8].state = DS_CHANGE_DONE;
    change_done(&ch[9], DS_DECIDE_APPLY, "2030-01-01T00:00:10.250Z");
    const uint64_t t10 = 1893456010250ull; /* 2030-01-01T00:00:10.250Z */

    dsc_metrics_batch_begin(m, ch, 10);
    dsc_metrics_batch_done(m, ch, 10, false);
    char *text = render(m, t10 + 1500);
    assert_true(sample(text, "datasync_consumer_changes_applied_total") == 3);
    assert_true(sample(text, "datasync_consumer_changes_ignored_total") == 1);
    assert_true(sample(text, "datasync_consumer_changes_recorded_total") == 1);
    assert_true(sample(text, "datasync_consumer_dead_lettered_total{reason="
                             "\"malformed\"}") == 0);
    assert_true(sample(text, "datasync_consumer_lag_seconds") == 1.5);
    free(text);

    dsc_metrics_batch_begin(m, ch, 10);
    dsc_metrics_batch_done(m, ch, 10, true);
    text = render(m, t10 - 5000); /* a ts ahead of the clock: 0, not < 0 */
    assert_true(sample(text, "datasync_consumer_changes_applied_total") == 6);
    assert_true(sample(text, "datasync_consumer_dead_lettered_total{reason="
                             "\"malformed\"}") == 2);
    assert_true(sample(text, "datasync_consumer_dead_lettered_total{reason="
                             "\"table\"}") == 1);
    assert_true(sample(text, "datasync_consumer_dead_lettered_total{reason="
                             "\"constraint\"}") == 1);
    assert_true(sample(text, "datasync_consumer_dead_lettered_total{reason="
                             "\"column\"}") == 0);
    assert_true(sample(text, "datasync_consumer_batches_total") == 2);
    assert_true(sample(text, "datasync_consumer_lag_seconds") == 0);
    free(text);

    dsc_metrics_caught_up(m);
    text = render(m, t10 + 60000);
    assert_true(sample(text, "datasync_consumer_lag_seconds") == 0);
    free(text);
    /* Caught up, then a batch begins and cannot commit: the lag grows
     * from its first change's ts. */
    dsc_metrics_batch_begin(m, ch, 10);
    text = render(m, 1893456000000ull + 42000);
    assert_true(sample(text, "datasync_consumer_lag_seconds") == 42);
    free(text);
    dsc_metrics_free(m);
}

/* Each applied change's latency, now minus its ts, lands in its bucket;
 * recorded and ignored changes are not counted, and a ts ahead of this
 * clock counts 0. The ts are placed in the middle of their buckets, far
 * from any bound, so the test's own time does not matter. */
static void change_latency_is_counted_per_applied_change(void **state)
{
    (void)state;
    dsc_metrics *m = dsc_metrics_new("v", "n");
    const uint64_t now = ds__now_ms();
    char ts[4][32];
    ds__rfc3339_ms(now - 35, ts[0]);      /* (0.02, 0.05] */
    ds__rfc3339_ms(now - 3500, ts[1]);    /* (2.5, 5] */
    ds__rfc3339_ms(now + 60000, ts[2]);   /* ahead: 0 */
    ds__rfc3339_ms(now - 7200000, ts[3]); /* 2 h: above 3600 */
    dsc_change ch[6];
    change_done(&ch[0], DS_DECIDE_APPLY, ts[0]);
    change_done(&ch[1], DS_DECIDE_APPLY, ts[1]);
    change_done(&ch[2], DS_DECIDE_APPLY, ts[2]);
    change_done(&ch[3], DS_DECIDE_APPLY, ts[3]);
    change_done(&ch[4], DS_DECIDE_RECORD_ONLY, ts[1]);
    change_done(&ch[5], DS_DECIDE_SUPERSEDED, ts[1]);
    dsc_metrics_batch_begin(m, ch, 6);
    dsc_metrics_batch_done(m, ch, 6, false);

    char *text = render(m, now);
    const char *h = "datasync_consumer_change_latency_seconds";
    char series[128];
    const struct {
        const char *le;
        double want;
    } cum[] = {{"0.005", 1}, {"0.02", 1}, {"0.05", 2}, {"2.5", 2},
               {"5", 3},     {"3600", 3}, {"+Inf", 4}};
    for (size_t i = 0; i < sizeof cum / sizeof cum[0]; i++) {
        snprintf(series, sizeof series, "%s_bucket{le=\"%s\"}", h, cum[i].le);
        if (sample(text, series) != cum[i].want)
            fail_msg("%s is %g, want %g", series, sample(text, series),
                     cum[i].want);
    }
    snprintf(series, sizeof series, "%s_count", h);
    assert_true(sample(text, series) == 4);
    snprintf(series, sizeof series, "%s_sum", h);
    double sum = sample(text, series); /* 0.035 + 3.5 + 0 + 7200, + drift */
    assert_true(sum >= 7203.535 && sum < 7203.535 + 4 * 0.015);
    free(text);
    dsc_metrics_free(m);
}

static void dead_classes(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
    } want[] = {{DS_EJSON, "malformed"}, {DS_ESCHEMA, "schema"},
                {DS_ETOOBIG, "too_big"}, {DS_ETABLE, "table"},
                {DS_ECOLUMN, "column"},  {DS_ECONSTRAINT, "constraint"},
                {DS_EMYSQL, "value"},    {DS_ENOMEM, "other"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_string_equal(
            dsc_dead_class_name(dsc_dead_class_of(want[i].code)), want[i].name);
}

/* /health: 503 with the reason until started and connected; a rolled back
 * batch fails it until a batch commits; stopping fails it for good. */
static void health_follows_the_state(void **state)
{
    (void)state;
    dsc_metrics *m = dsc_metrics_new("v", "n");
    char why[300];

    assert_int_equal(dsc_metrics_health(m, why, sizeof why), 503);
    assert_string_equal(why, "starting: broker not connected");
    dsc_metrics_disconnected(m, DSC_PEER_DATABASE, "mysql: [2002] refused\nx");
    dsc_metrics_connected(m, DSC_PEER_BROKER, false);
    assert_int_equal(dsc_metrics_health(m, why, sizeof why), 503);
    assert_string_equal(why, "starting: database not connected: mysql: [2002] "
                             "refused");
    dsc_metrics_connected(m, DSC_PEER_DATABASE, false);
    assert_int_equal(dsc_metrics_health(m, why, sizeof why), 503);
    assert_string_equal(why, "starting");
    dsc_metrics_started(m);
    assert_int_equal(dsc_metrics_health(m, why, sizeof why), 200);
    assert_string_equal(why, "ok");

    dsc_metrics_commit_retry(m);
    assert_int_equal(dsc_metrics_health(m, why, sizeof why), 503);
    assert_non_null(strstr(why, "rolled back"));
    dsc_metrics_observe_batch(m, 10);
    assert_int_equal(dsc_metrics_health(m, why, sizeof why), 503);
    dsc_change none;
    memset(&none, 0, sizeof none);
    dsc_metrics_batch_begin(m, &none, 0);
    dsc_metrics_batch_done(m, &none, 0, true);
    assert_int_equal(dsc_metrics_health(m, why, sizeof why), 200);

    dsc_metrics_disconnected(m, DSC_PEER_BROKER, "connection reset");
    assert_int_equal(dsc_metrics_health(m, why, sizeof why), 503);
    assert_string_equal(why, "broker not connected: connection reset");
    dsc_metrics_connected(m, DSC_PEER_BROKER, true);
    char *text = render(m, ds__now_ms());
    assert_true(
        sample(text, "datasync_consumer_reconnects_total{peer=\"broker\"}") ==
        1);
    assert_true(sample(text, "datasync_consumer_commit_retries_total") == 1);
    assert_true(sample(text, "datasync_consumer_healthy") == 1);
    free(text);

    dsc_metrics_stopping(m);
    assert_int_equal(dsc_metrics_health(m, why, sizeof why), 503);
    assert_string_equal(why, "stopping");
    dsc_metrics_free(m);
}

/* Unknown queue depth: the sample is left out, not shown as 0 or -1. */
static void unknown_queue_depth_is_left_out(void **state)
{
    (void)state;
    dsc_metrics *m = dsc_metrics_new("v", "n");
    char *text = render(m, ds__now_ms());
    assert_null(strstr(text, "queue_messages_ready"));
    assert_null(strstr(text, "last_commit_timestamp"));
    free(text);
    dsc_metrics_queue_ready(m, 0);
    text = render(m, ds__now_ms());
    assert_true(sample(text, "datasync_consumer_queue_messages_ready") == 0);
    free(text);
    dsc_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(families_are_announced),
        cmocka_unit_test(histogram_is_cumulative),
        cmocka_unit_test(label_values_are_escaped),
        cmocka_unit_test(batch_counts_and_lag),
        cmocka_unit_test(change_latency_is_counted_per_applied_change),
        cmocka_unit_test(dead_classes),
        cmocka_unit_test(health_follows_the_state),
        cmocka_unit_test(unknown_queue_depth_is_left_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
