/* test_log.c: level filtering, DS_LOG skipping its arguments, level names, the
 * stderr sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

typedef struct capture {
    int n;
    ds_log_level levels[8];
    char messages[8][1100];
    void *userdata;
} capture;

static void capture_fn(void *userdata, ds_log_level level, const char *message)
{
    capture *c = userdata;

    assert_true(c->n < 8);
    c->levels[c->n] = level;
    snprintf(c->messages[c->n], sizeof c->messages[0], "%s", message);
    c->n++;
}

static void levels_below_the_threshold_are_dropped(void **state)
{
    (void)state;
    capture c = {0};
    ds_logger lg = {DS_LOG_WARN, capture_fn, &c};

    DS_LOG(&lg, DS_LOG_DEBUG, "debug %d", 1);
    DS_LOG(&lg, DS_LOG_INFO, "info %d", 2);
    DS_LOG(&lg, DS_LOG_WARN, "warn %d", 3);
    DS_LOG(&lg, DS_LOG_ERROR, "error %s", "four");
    assert_int_equal(c.n, 2);
    assert_int_equal(c.levels[0], DS_LOG_WARN);
    assert_string_equal(c.messages[0], "warn 3");
    assert_int_equal(c.levels[1], DS_LOG_ERROR);
    assert_string_equal(c.messages[1], "error four");

    /* ds__log itself filters too, for callers that skip the macro. */
    ds__log(&lg, DS_LOG_INFO, "direct %d", 5);
    assert_int_equal(c.n, 2);
    ds__log(&lg, DS_LOG_ERROR, "direct %d", 6);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.messages[2], "direct 6");

    lg.level = DS_LOG_DEBUG;
    DS_LOG(&lg, DS_LOG_DEBUG, "now %s", "shown");
    assert_int_equal(c.n, 4);
    assert_int_equal(c.levels[3], DS_LOG_DEBUG);
    assert_string_equal(c.messages[3], "now shown");
}

static void filtered_arguments_are_not_evaluated(void **state)
{
    (void)state;
    capture c = {0};
    ds_logger lg = {DS_LOG_INFO, capture_fn, &c};
    ds_logger off = {DS_LOG_DEBUG, NULL, NULL};
    int counter = 0;

    DS_LOG(&lg, DS_LOG_DEBUG, "%d", ++counter);
    assert_int_equal(counter, 0);
    assert_int_equal(c.n, 0);
    /* No callback: logging is off whatever the level. */
    DS_LOG(&off, DS_LOG_ERROR, "%d", ++counter);
    assert_int_equal(counter, 0);

    DS_LOG(&lg, DS_LOG_INFO, "%d", ++counter);
    assert_int_equal(counter, 1);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.messages[0], "1");
}

static void long_messages_are_cut_not_overrun(void **state)
{
    (void)state;
    capture c = {0};
    ds_logger lg = {DS_LOG_DEBUG, capture_fn, &c};
    char big[2000];

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    DS_LOG(&lg, DS_LOG_INFO, "%s", big);
    assert_int_equal(c.n, 1);
    assert_int_equal(strlen(c.messages[0]), 1023);
}

static void level_names_parse_and_print(void **state)
{
    (void)state;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    ds_log_level level;

    for (int i = 0; i < 4; i++) {
        level = (ds_log_level)-1;
        assert_int_equal(ds__log_level_parse(names[i], &level), 0);
        assert_int_equal(level, i);
        assert_string_equal(ds__log_level_name((ds_log_level)i), names[i]);
    }
    assert_int_equal(ds__log_level_parse("WARN", &level), 0);
    assert_int_equal(level, DS_LOG_WARN);

    level = DS_LOG_INFO;
    assert_int_equal(ds__log_level_parse("warning", &level), DS_EINVAL);
    assert_int_equal(ds__log_level_parse("", &level), DS_EINVAL);
    assert_int_equal(ds__log_level_parse("info ", &level), DS_EINVAL);
    assert_int_equal(level, DS_LOG_INFO); /* untouched on failure */
    assert_string_equal(ds__log_level_name((ds_log_level)7), "?");
    assert_string_equal(ds__log_level_name((ds_log_level)-1), "?");
}

/* Runs the stderr sink with fd 2 pointed at a temp file; returns its text. */
static void stderr_line(void *userdata, ds_log_level level, const char *msg,
                        char *out, size_t len)
{
    char path[] = "/tmp/ds_test_log_XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(2);
    FILE *f;
    size_t n;

    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    assert_true(dup2(fd, 2) >= 0);
    ds__log_stderr(userdata, level, msg);
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    close(fd);

    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
    unlink(path);
}

static void stderr_sink_writes_one_stamped_line(void **state)
{
    (void)state;
    char line[256];
    char prog[] = "prog"; /* userdata is void *, not const */
    regex_t re;

    assert_int_equal(
        regcomp(&re,
                "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\."
                "[0-9]{3}Z warn  prog: hello\n$",
                REG_EXTENDED | REG_NOSUB),
        0);
    stderr_line(prog, DS_LOG_WARN, "hello", line, sizeof line);
    assert_int_equal(regexec(&re, line, 0, NULL, 0), 0);
    regfree(&re);

    assert_int_equal(regcomp(&re, "Z error hello\n$", REG_EXTENDED | REG_NOSUB),
                     0);
    stderr_line(NULL, DS_LOG_ERROR, "hello", line, sizeof line);
    assert_int_equal(regexec(&re, line, 0, NULL, 0), 0);
    regfree(&re);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(levels_below_the_threshold_are_dropped),
        cmocka_unit_test(filtered_arguments_are_not_evaluated),
        cmocka_unit_test(long_messages_are_cut_not_overrun),
        cmocka_unit_test(level_names_parse_and_print),
        cmocka_unit_test(stderr_sink_writes_one_stamped_line),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
