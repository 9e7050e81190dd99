/* test_cli_input.c: the CLI's pure parts: exit codes, URL redaction, node lists, and the checking of input lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../cli/cli.h"

static cli_ctx ctx;

static int setup(void **state)
{
    (void)state;
    memset(&ctx, 0, sizeof ctx);
    ds__config_defaults(&ctx.cfg);
    ctx.cfg_loaded = true;
    ctx.cmd = "test";
    return 0;
}

static void test_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(cli_exit_code(0), CLI_EXIT_OK);
    assert_int_equal(cli_exit_code(DS_ECONFIG), CLI_EXIT_CONFIG);
    assert_int_equal(cli_exit_code(DS_EJSON), CLI_EXIT_INPUT);
    assert_int_equal(cli_exit_code(DS_ESCHEMA), CLI_EXIT_INPUT);
    assert_int_equal(cli_exit_code(DS_ETOOBIG), CLI_EXIT_INPUT);
    assert_int_equal(cli_exit_code(DS_EINVAL), CLI_EXIT_INPUT);
    assert_int_equal(cli_exit_code(DS_ECONNECT), CLI_EXIT_BROKER);
    assert_int_equal(cli_exit_code(DS_EAMQP), CLI_EXIT_BROKER);
    assert_int_equal(cli_exit_code(DS_ETIMEOUT), CLI_EXIT_BROKER);
    assert_int_equal(cli_exit_code(DS_EUNROUTABLE), CLI_EXIT_PARTIAL);
    assert_int_equal(cli_exit_code(DS_ENACK), CLI_EXIT_PARTIAL);
    assert_int_equal(cli_exit_code(DS_ENOTFOUND), CLI_EXIT_NOTFOUND);
    assert_int_equal(cli_exit_code(DS_EIO), CLI_EXIT_FAILURE);
    assert_int_equal(cli_exit_code(DS_ESPOOL), CLI_EXIT_FAILURE);
    assert_int_equal(cli_exit_code(-999), CLI_EXIT_FAILURE);
}

static void test_redact_urls(void **state)
{
    char out[512];

    (void)state;
    cli_redact_urls("amqp://guest:guest@h:5672/%2f  amqp://h2/%2f "
                    "amqp://u:p@ss@h3 amqp://solo@h4 amqps://a:b@[::1]:5671/v",
                    out, sizeof out);
    assert_string_equal(out, "amqp://guest:***@h:5672/%2f amqp://h2/%2f "
                             "amqp://u:***@h3 amqp://solo@h4 "
                             "amqps://a:***@[::1]:5671/v");
    cli_redact_urls("amqp://a:secret@h", out, 12);
    assert_null(strstr(out, "secret"));
    assert_true(strlen(out) < 12);
}

static void test_nodes(void **state)
{
    char **names;
    size_t n;

    (void)state;
    assert_int_equal(cli_nodes(&ctx, "a,b.c,d_e-f", &names, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(names[1], "b.c");
    cli_nodes_free(names, n);
    assert_int_equal(cli_nodes(&ctx, "a,,b", &names, &n), CLI_EXIT_USAGE);
    assert_int_equal(cli_nodes(&ctx, "a,a", &names, &n), CLI_EXIT_USAGE);
    assert_int_equal(cli_nodes(&ctx, "a b", &names, &n), CLI_EXIT_USAGE);
    /* No list: node.id, which must be set. */
    assert_int_equal(cli_nodes(&ctx, NULL, &names, &n), CLI_EXIT_USAGE);
    strcpy(ctx.cfg.node_id, "here");
    assert_int_equal(cli_nodes(&ctx, NULL, &names, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "here");
    cli_nodes_free(names, n);
}

static int parse(const char *line, unsigned kinds, cli_item *it, char *err,
                 size_t errlen)
{
    return cli_line_parse(line, strlen(line), kinds, &ctx.cfg, it, err, errlen);
}

#define BOTH (CLI_KIND_CHANGE | CLI_KIND_EVENT)

static const char event[] =
    "{\"v\":1,\"id\":\"0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7b\",\"origin\":"
    "\"node-b\",\"hlc\":12345,\"ts\":\"2024-06-01T00:00:00.000Z\",\"op\":"
    "\"delete\",\"table\":\"users\",\"key\":{\"id\":5}}";

static void test_lines(void **state)
{
    char err[DS_ERRMSG_SIZE];
    cli_item it;

    (void)state;
    /* A change: numbers come out exactly as written. */
    assert_int_equal(parse("{\"op\":\"update\",\"table\":\"t\",\"key\":{\"id\":"
                           "9223372036854775807},\"data\":{\"id\":"
                           "9223372036854775807,\"p\":1.50,\"s\":\"a/b\"}}",
                           BOTH, &it, err, sizeof err),
                     0);
    assert_int_equal(it.kind, CLI_KIND_CHANGE);
    assert_int_equal(it.ev.op, DS_OP_UPDATE);
    assert_string_equal(it.ev.table, "t");
    assert_string_equal(it.key_json, "{\"id\":9223372036854775807}");
    assert_string_equal(
        it.data_json, "{\"id\":9223372036854775807,\"p\":1.50,\"s\":\"a/b\"}");
    cli_item_clear(&it);

    /* A delete: data absent or null. */
    assert_int_equal(parse("{\"op\":\"delete\",\"table\":\"t\",\"key\":{\"k\":"
                           "\"x\"},\"data\":null}",
                           BOTH, &it, err, sizeof err),
                     0);
    assert_null(it.data_json);
    cli_item_clear(&it);

    /* A whole event, kept as it is. */
    assert_int_equal(parse(event, BOTH, &it, err, sizeof err), 0);
    assert_int_equal(it.kind, CLI_KIND_EVENT);
    assert_string_equal(it.ev.id, "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7b");
    assert_int_equal(it.ev.hlc, 12345);
    assert_string_equal(it.text, event);
    cli_item_clear(&it);
    assert_int_equal(parse(event, CLI_KIND_EVENT, &it, err, sizeof err), 0);
    cli_item_clear(&it);
}

static void expect_bad(const char *line, unsigned kinds, int code,
                       const char *reason)
{
    char err[DS_ERRMSG_SIZE];
    cli_item it;
    int rc = parse(line, kinds, &it, err, sizeof err);

    if (rc != code || !strstr(err, reason))
        fail_msg("%s: got %d '%s', expected %d '%s'", line, rc, err, code,
                 reason);
    assert_int_equal(it.kind, 0);
    assert_null(it.key_json);
}

static void test_bad_lines(void **state)
{
    (void)state;
    expect_bad("{\"op\":\"create\",\"table\":\"t\",\"key\":{\"id\":"
               "99999999999999999999},\"data\":{}}",
               BOTH, DS_EJSON, "64-bit range");
    expect_bad("not json", BOTH, DS_EJSON, "malformed JSON");
    expect_bad("[1,2]", BOTH, DS_ESCHEMA, "expected a JSON object");
    expect_bad("{\"op\":\"create\",\"table\":\"t\",\"key\":{\"id\":1},"
               "\"data\":{},\"x\":1}",
               BOTH, DS_ESCHEMA, "x: unknown field");
    expect_bad("{\"op\":\"upsert\",\"table\":\"t\",\"key\":{\"id\":1}}", BOTH,
               DS_EINVAL, "op: 'upsert'");
    expect_bad("{\"table\":\"t\",\"key\":{\"id\":1}}", BOTH, DS_ESCHEMA,
               "op: required");
    expect_bad("{\"op\":\"delete\",\"key\":{\"id\":1}}", BOTH, DS_ESCHEMA,
               "table: required");
    expect_bad("{\"op\":\"delete\",\"table\":\"t\"}", BOTH, DS_ESCHEMA,
               "key: required");
    expect_bad("{\"op\":\"delete\",\"table\":\"t\",\"key\":[1]}", BOTH,
               DS_ESCHEMA, "key: must be an object");
    expect_bad("{\"op\":\"delete\",\"table\":\"t\",\"key\":{}}", BOTH,
               DS_ESCHEMA, "key");
    expect_bad("{\"op\":\"create\",\"table\":\"t\",\"key\":{\"id\":1}}", BOTH,
               DS_ESCHEMA, "data: required");
    expect_bad("{\"op\":\"delete\",\"table\":\"bad-name\",\"key\":{\"id\":1}}",
               BOTH, DS_ESCHEMA, "table");
    /* An event that breaks the schema gets the event parser's reason. */
    expect_bad("{\"v\":2,\"op\":\"delete\"}", BOTH, DS_ESCHEMA, "v");
    /* replay takes events only, publish --op/--table changes only. */
    expect_bad("{\"op\":\"delete\",\"table\":\"t\",\"key\":{\"id\":1}}",
               CLI_KIND_EVENT, DS_ESCHEMA, "not a whole event");
    expect_bad(event, CLI_KIND_CHANGE, DS_ESCHEMA, "a whole event");
}

static void test_size_limit(void **state)
{
    char err[DS_ERRMSG_SIZE], data[2048];
    cli_item it;

    (void)state;
    ctx.cfg.apply_max_message_bytes = 1024;
    snprintf(data, sizeof data, "{\"id\":1,\"big\":\"%0900d\"}", 0);
    assert_int_equal(cli_change_build("create", "t", "{\"id\":1}", data,
                                      &ctx.cfg, &it, err, sizeof err),
                     DS_ETOOBIG);
    assert_non_null(strstr(err, "apply.max_message_bytes"));
    /* The envelope counts: 900 bytes of data alone would fit. */
    snprintf(data, sizeof data, "{\"id\":1,\"big\":\"%0700d\"}", 0);
    assert_int_equal(cli_change_build("create", "t", "{\"id\":1}", data,
                                      &ctx.cfg, &it, err, sizeof err),
                     0);
    cli_item_clear(&it);
}

struct seen {
    size_t lines[8];
    int kinds[8];
    size_t n;
};

static int collect(cli_item *it, void *ctx_)
{
    struct seen *s = ctx_;

    s->lines[s->n] = it->line;
    s->kinds[s->n++] = it->kind;
    return 0;
}

/* Line numbers are the file's, blank lines and CRLF included; the second
 * pass skips what the first found bad. */
static void test_input_passes(void **state)
{
    char path[] = "/tmp/test_cli_input.XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    struct seen s = {0};
    cli_input in;

    (void)state;
    assert_non_null(f);
    fprintf(f,
            "{\"op\":\"delete\",\"table\":\"t\",\"key\":{\"id\":1}}\r\n"
            "\n"
            "   \t\n"
            "{\"op\":\"delete\",\"table\":\"t\"}\n"
            "%s",
            event); /* no final newline */
    assert_int_equal(fclose(f), 0);
    assert_int_equal(
        cli_input_open(&in, &ctx, path, CLI_KIND_CHANGE | CLI_KIND_EVENT), 0);
    assert_int_equal(cli_input_check(&in), 0);
    assert_int_equal(in.valid, 2);
    assert_int_equal(in.invalid, 1);
    assert_int_equal(cli_input_each(&in, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.lines[0], 1);
    assert_int_equal(s.kinds[0], CLI_KIND_CHANGE);
    assert_int_equal(s.lines[1], 5);
    assert_int_equal(s.kinds[1], CLI_KIND_EVENT);
    cli_input_close(&in);

    /* Through a pipe (kept in a temporary file for the second pass). */
    {
        int p[2];
        FILE *saved;
        struct seen s2 = {0};

        assert_int_equal(pipe(p), 0);
        assert_true(write(p[1], event, strlen(event)) > 0);
        assert_true(write(p[1], "\n", 1) == 1);
        close(p[1]);
        saved = stdin;
        stdin = fdopen(p[0], "r");
        assert_int_equal(cli_input_open(&in, &ctx, "-", CLI_KIND_EVENT), 0);
        assert_int_equal(cli_input_check(&in), 0);
        assert_int_equal(in.valid, 1);
        assert_int_equal(cli_input_each(&in, collect, &s2), 0);
        assert_int_equal(s2.n, 1);
        assert_int_equal(s2.lines[0], 1);
        cli_input_close(&in);
        fclose(stdin);
        stdin = saved;
    }
    unlink(path);
}

/* The file changes between the two passes: a line checked valid that no
 * longer parses stops the publish with an error, never dropped in silence;
 * a line found bad stays skipped even if it now parses. */
static void test_input_changed_between_passes(void **state)
{
    char path[] = "/tmp/test_cli_input.XXXXXX";
    FILE *f;
    struct seen s = {0};
    cli_input in;

    (void)state;
    f = fdopen(mkstemp(path), "w");
    assert_non_null(f);
    fputs("{\"op\":\"delete\",\"table\":\"t\"}\n"
          "{\"op\":\"delete\",\"table\":\"t\",\"key\":{\"id\":2}}\n"
          "{\"op\":\"delete\",\"table\":\"t\",\"key\":{\"id\":3}}\n",
          f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(cli_input_open(&in, &ctx, path, CLI_KIND_CHANGE), 0);
    assert_int_equal(cli_input_check(&in), 0);
    assert_int_equal(in.valid, 2);
    assert_int_equal(in.invalid, 1);
    /* Rewritten in place, same length: line 1 now parses, line 3 not. */
    f = fopen(path, "r+");
    assert_non_null(f);
    fprintf(f, "{\"op\":\"delete\",\"key\":{},\"table\":\"t\"}\n"
               "{\"op\":\"delete\",\"table\":\"t\",\"key\":{\"id\":2}}\n"
               "{\"op\":\"delete\",\"table\":\"t\",\"kex\":{\"id\":3}}\n");
    assert_int_equal(fclose(f), 0);
    assert_int_equal(cli_input_each(&in, collect, &s), CLI_EXIT_INPUT);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.lines[0], 2);
    cli_input_close(&in);
    unlink(path);
}

/* --since/--until: RFC 3339 in its forms, ages, and what is refused. */
static void test_parse_time(void **state)
{
    const int64_t now = 1764547200000; /* 2025-12-01T00:00:00Z */
    static const struct {
        const char *in;
        int64_t want;
    } good[] = {
        {"2025-12-01T00:00:00Z", 1764547200000},
        {"2025-12-01t00:00:00z", 1764547200000},
        {"2025-12-01 00:00:00Z", 1764547200000},
        {"2025-12-01", 1764547200000},
        {"2025-12-01T01:30:00+01:30", 1764547200000},
        {"2025-11-30T22:00:00-02:00", 1764547200000},
        {"2025-12-01T00:00Z", 1764547200000},
        {"2025-12-01T00:00:00.250Z", 1764547200250},
        {"2024-02-29T12:00:00Z", 1709208000000},
        {"-90s", 1764547200000 - 90000},
        {"-30m", 1764547200000 - 1800000},
        {"-2h", 1764547200000 - 7200000},
        {"-7d", 1764547200000 - 7 * 86400000LL},
        {"-1w", 1764547200000 - 7 * 86400000LL},
    };
    static const char *const bad[] = {
        "",
        "now",
        "2h",
        "-2",
        "-h",
        "-2y",
        "-2hh",
        "2025-13-01",
        "2025-02-30",
        "2025-02-29",
        "2025-1-01",
        "2025-12-01T25:00:00Z",
        "2025-12-01T10:00:00",
        "2025-12-01T10:00:00+1:00",
        "2025-12-01X",
        "1969-12-31",
        "-9999999999h",
    };
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t got = -1;
        if (cli_parse_time(good[i].in, now, &got) != 0)
            fail_msg("'%s' was refused", good[i].in);
        if (got != good[i].want)
            fail_msg("'%s': got %lld, want %lld", good[i].in, (long long)got,
                     (long long)good[i].want);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t got;
        if (cli_parse_time(bad[i], now, &got) == 0)
            fail_msg("'%s' was accepted as %lld", bad[i], (long long)got);
    }
}

/* Every cut of a time, its NUL the last byte before an unreadable page: a
 * read past the end faults. */
static void test_parse_time_reads_no_further(void **state)
{
    static const char *const fulls[] = {"2025-12-01T01:30:00.250+01:30",
                                        "-12h"};
    long page = sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    (void)state;
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + page, (size_t)page, PROT_NONE), 0);
    for (size_t f = 0; f < sizeof fulls / sizeof *fulls; f++) {
        const char *full = fulls[f];
        for (size_t n = 0; n <= strlen(full); n++) {
            char *s = map + page - (n + 1);
            int64_t got;
            memcpy(s, full, n);
            s[n] = '\0';
            /* The date alone is a time too. */
            bool whole = n == strlen(full) || (f == 0 && n == 10);
            if ((cli_parse_time(s, 0, &got) == 0) != whole)
                fail_msg("'%s' was %s", s, whole ? "refused" : "accepted");
        }
    }
    munmap(map, (size_t)page * 2);
}

static void test_thousands(void **state)
{
    char buf[32];

    (void)state;
    assert_string_equal(cli_thousands(0, buf, sizeof buf), "0");
    assert_string_equal(cli_thousands(999, buf, sizeof buf), "999");
    assert_string_equal(cli_thousands(12000, buf, sizeof buf), "12,000");
    assert_string_equal(cli_thousands(1234567, buf, sizeof buf), "1,234,567");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_exit_codes, setup),
        cmocka_unit_test_setup(test_redact_urls, setup),
        cmocka_unit_test_setup(test_nodes, setup),
        cmocka_unit_test_setup(test_lines, setup),
        cmocka_unit_test_setup(test_bad_lines, setup),
        cmocka_unit_test_setup(test_size_limit, setup),
        cmocka_unit_test_setup(test_input_passes, setup),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_parse_time_reads_no_further),
        cmocka_unit_test(test_input_changed_between_passes),
        cmocka_unit_test(test_thousands),
    };

    return cmocka_run_group_tests_name("cli_input", tests, NULL, NULL);
}
