/* test_logsink.c: the programs' log lines: JSON escaping, text and JSON lines with their fields, reopening after a rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "logsink.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static void escaped(const char *in, const char *want)
{
    char out[256];
    size_t n = ds__json_escape(out, sizeof out, in);

    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

/* A fresh directory of this test; path receives "<dir>/name". */
static void temp_path(char *path, size_t len, const char *name)
{
    static char dir[64];

    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/ds_test_logsink_XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        assert_non_null(mkdtemp(dir));
    }
    snprintf(path, len, "%s/%s", dir, name);
}

/* The file's lines, at most max, each without its newline; returns the
 * count. */
static int read_lines(const char *path, char lines[][2048], int max)
{
    FILE *f = fopen(path, "r");
    int n = 0;

    if (!f)
        return 0;
    while (n < max && fgets(lines[n], sizeof lines[0], f)) {
        size_t len = strlen(lines[n]);
        assert_true(len > 0 && lines[n][len - 1] == '\n');
        lines[n][len - 1] = '\0';
        n++;
    }
    fclose(f);
    return n;
}

/* Parses one JSON line strictly (UTF-8 checked); the caller puts it. */
static json_object *parse_line(const char *text)
{
    json_tokener *tok = json_tokener_new();
    json_object *o;

    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, text, (int)strlen(text));
    if (!o)
        fail_msg("not JSON (%s): %s",
                 json_tokener_error_desc(json_tokener_get_error(tok)), text);
    assert_int_equal(json_tokener_get_parse_end(tok), strlen(text));
    json_tokener_free(tok);
    assert_true(json_object_is_type(o, json_type_object));
    return o;
}

static const char *str_field(json_object *o, const char *name)
{
    json_object *v;

    if (!json_object_object_get_ex(o, name, &v))
        fail_msg("no field %s in %s", name, json_object_to_json_string(o));
    assert_true(json_object_is_type(v, json_type_string));
    return json_object_get_string(v);
}

static int64_t int_field(json_object *o, const char *name)
{
    json_object *v;

    if (!json_object_object_get_ex(o, name, &v))
        fail_msg("no field %s in %s", name, json_object_to_json_string(o));
    assert_true(json_object_is_type(v, json_type_int));
    return json_object_get_int64(v);
}

/* ------------------------------------------------------------------------ */
/* Escaping                                                                  */

static void json_escape_cases(void **state)
{
    (void)state;
    escaped("plain text", "plain text");
    escaped("a \"quoted\" \\ back", "a \\\"quoted\\\" \\\\ back");
    escaped("new\nline\ttab\rcr", "new\\nline\\ttab\\rcr");
    escaped("\x01\x1f\x7f", "\\u0001\\u001f\\u007f");
    /* Valid UTF-8 passes as it is: é, ☃, 😀. */
    escaped("h\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80", "h\xc3\xa9 \xe2\x98\x83 "
                                                       "\xf0\x9f\x98\x80");
    /* What is not UTF-8 becomes U+FFFD, byte by byte. */
    escaped("a\xff"
            "b",
            "a\\ufffdb");
    escaped("\xe2\x98", "\\ufffd\\ufffd");            /* cut short */
    escaped("\xc0\xaf", "\\ufffd\\ufffd");            /* overlong '/' */
    escaped("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"); /* a surrogate */
    escaped("\xf4\x90\x80\x80",
            "\\ufffd\\ufffd\\ufffd\\ufffd"); /* > U+10FFFF */
    escaped("", "");
}

static void json_escape_never_overruns(void **state)
{
    (void)state;
    char out[8];

    memset(out, 'x', sizeof out);
    /* "\"" takes two bytes; a character never goes in half. */
    assert_int_equal(ds__json_escape(out, 6, "ab\"\"\""), 4);
    assert_string_equal(out, "ab\\\"");
    assert_int_equal(out[6], 'x');
    assert_int_equal(ds__json_escape(out, 4, "\x01"), 0);
    assert_string_equal(out, "");
    assert_int_equal(ds__json_escape(out, 5, "\xe2\x98\x83\xe2\x98\x83"), 3);
    assert_string_equal(out, "\xe2\x98\x83");
    assert_int_equal(ds__json_escape(out, 0, "abc"), 0);
}

/* ------------------------------------------------------------------------ */
/* Lines                                                                     */

static void json_lines_carry_the_fields(void **state)
{
    (void)state;
    char path[256], err[DS_ERRMSG_SIZE], lines[8][2048];
    ds_log_sink s;
    regex_t re;

    temp_path(path, sizeof path, "json.log");
    assert_int_equal(ds__log_sink_open(&s, "datasync-consumer", "node-a",
                                       DS_LOG_JSON, path, err, sizeof err),
                     0);
    ds__log_sink_write(&s, DS_LOG_INFO,
                       "stats: applied 5, recorded 0, dead-lettered 2, in "
                       "flight 3, queue depth -1");
    ds__log_sink_write(&s, DS_LOG_WARN,
                       "broker: \"conn\" lost\n\\ \x01 \xff h\xc3\xa9");
    ds__log_sink_write(&s, DS_LOG_ERROR, "no event here: applied 5");
    ds__log_sink_write(&s, DS_LOG_DEBUG,
                       "batch: messages 50, retrying in 3 ms");
    ds__log_sink_write(&s, DS_LOG_INFO, "stats: time 5, msg 6, level 7");
    ds__log_sink_close(&s);

    assert_int_equal(read_lines(path, lines, 8), 5);
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                             "[0-9]{2}\\.[0-9]{3}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);

    json_object *o = parse_line(lines[0]);
    assert_int_equal(regexec(&re, str_field(o, "time"), 0, NULL, 0), 0);
    assert_string_equal(str_field(o, "level"), "info");
    assert_string_equal(str_field(o, "program"), "datasync-consumer");
    assert_string_equal(str_field(o, "node"), "node-a");
    assert_string_equal(str_field(o, "event"), "stats");
    assert_string_equal(str_field(o, "msg"),
                        "stats: applied 5, recorded 0, dead-lettered 2, in "
                        "flight 3, queue depth -1");
    assert_int_equal(int_field(o, "applied"), 5);
    assert_int_equal(int_field(o, "recorded"), 0);
    assert_int_equal(int_field(o, "dead_lettered"), 2);
    assert_int_equal(int_field(o, "in_flight"), 3);
    assert_int_equal(int_field(o, "queue_depth"), -1);
    assert_int_equal(json_object_object_length(o), 11);
    json_object_put(o);

    o = parse_line(lines[1]);
    assert_string_equal(str_field(o, "level"), "warn");
    assert_string_equal(str_field(o, "event"), "broker");
    assert_string_equal(
        str_field(o, "msg"),
        "broker: \"conn\" lost\n\\ \x01 \xef\xbf\xbd h\xc3\xa9");
    assert_int_equal(json_object_object_length(o), 6);
    json_object_put(o);

    /* No leading word, or not only counters: the text alone. */
    o = parse_line(lines[2]);
    assert_string_equal(str_field(o, "level"), "error");
    assert_false(json_object_object_get_ex(o, "event", NULL));
    assert_false(json_object_object_get_ex(o, "applied", NULL));
    json_object_put(o);
    o = parse_line(lines[3]);
    assert_string_equal(str_field(o, "level"), "debug");
    assert_string_equal(str_field(o, "event"), "batch");
    assert_false(json_object_object_get_ex(o, "messages", NULL));
    json_object_put(o);

    /* A counter never replaces a field of the line itself. */
    o = parse_line(lines[4]);
    assert_string_equal(str_field(o, "level"), "info");
    assert_int_equal(regexec(&re, str_field(o, "time"), 0, NULL, 0), 0);
    assert_string_equal(str_field(o, "msg"), "stats: time 5, msg 6, level 7");
    assert_int_equal(json_object_object_length(o), 6);
    json_object_put(o);
    regfree(&re);
    unlink(path);
}

static void text_lines_and_format_switch(void **state)
{
    (void)state;
    char path[256], err[DS_ERRMSG_SIZE], lines[4][2048];
    ds_log_sink s;
    regex_t re;

    temp_path(path, sizeof path, "text.log");
    assert_int_equal(ds__log_sink_open(&s, "datasync-capture", "", DS_LOG_TEXT,
                                       path, err, sizeof err),
                     0);
    ds__log_sink_write(&s, DS_LOG_WARN, "hello");
    ds__log_sink_set_format(&s, DS_LOG_JSON);
    ds__log_sink_write(&s, DS_LOG_INFO, "then json");
    ds__log_sink_close(&s);

    assert_int_equal(read_lines(path, lines, 4), 2);
    assert_int_equal(
        regcomp(&re,
                "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z "
                "warn  datasync-capture: hello$",
                REG_EXTENDED | REG_NOSUB),
        0);
    assert_int_equal(regexec(&re, lines[0], 0, NULL, 0), 0);
    regfree(&re);
    json_object *o = parse_line(lines[1]);
    assert_string_equal(str_field(o, "msg"), "then json");
    /* No node configured: no node field. */
    assert_false(json_object_object_get_ex(o, "node", NULL));
    json_object_put(o);
    unlink(path);
}

/* logrotate: the file is renamed, SIGHUP reopens the path: old lines stay
 * in the renamed file, new ones go to a new file. */
static void reopen_after_rename(void **state)
{
    (void)state;
    char path[256], rotated[256], err[DS_ERRMSG_SIZE], lines[4][2048];
    ds_log_sink s;

    temp_path(path, sizeof path, "rot.log");
    temp_path(rotated, sizeof rotated, "rot.log.1");
    assert_int_equal(
        ds__log_sink_open(&s, "p", "n", DS_LOG_TEXT, path, err, sizeof err), 0);
    ds__log_sink_write(&s, DS_LOG_INFO, "before");
    assert_int_equal(rename(path, rotated), 0);
    ds__log_sink_write(&s, DS_LOG_INFO, "still the old file");
    assert_int_equal(ds__log_sink_reopen(&s, path, err, sizeof err), 0);
    ds__log_sink_write(&s, DS_LOG_INFO, "after");

    /* A path that cannot be opened: an error, the sink stays where it
     * was. */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.log", path);
    assert_int_equal(ds__log_sink_reopen(&s, bad, err, sizeof err), DS_EIO);
    assert_non_null(strstr(err, "no/such/dir/x.log: "));
    ds__log_sink_write(&s, DS_LOG_INFO, "after a failed reopen");
    ds__log_sink_close(&s);

    assert_int_equal(read_lines(rotated, lines, 4), 2);
    assert_non_null(strstr(lines[0], ": before"));
    assert_non_null(strstr(lines[1], ": still the old file"));
    assert_int_equal(read_lines(path, lines, 4), 2);
    assert_non_null(strstr(lines[0], ": after"));
    assert_non_null(strstr(lines[1], ": after a failed reopen"));
    unlink(path);
    unlink(rotated);

    /* Opening a file that cannot be created fails the same way. */
    assert_int_equal(
        ds__log_sink_open(&s, "p", "n", DS_LOG_TEXT, bad, err, sizeof err),
        DS_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_escape_cases),
        cmocka_unit_test(json_escape_never_overruns),
        cmocka_unit_test(json_lines_carry_the_fields),
        cmocka_unit_test(text_lines_and_format_switch),
        cmocka_unit_test(reopen_after_rename),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
