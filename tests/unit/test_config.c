/* test_config.c: defaults, the example file, INI syntax, every config error
 * with its file:line text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define ERRLEN 512

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* Writes len bytes to a new file in /tmp; path receives its name. */
static void write_temp(char path[64], const char *text, size_t len)
{
    int fd;

    strcpy(path, "/tmp/ds_test_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Loads text (len bytes: it may hold NULs) over cfg from a temp file that is
 * removed again; path receives the file's name for expected messages. */
static int load_bytes(ds_config *cfg, const char *text, size_t len,
                      char path[64], char *err)
{
    int rc;

    write_temp(path, text, len);
    rc = ds__config_load(cfg, path, err, ERRLEN);
    unlink(path);
    return rc;
}

static int load_text(ds_config *cfg, const char *text, char *err)
{
    char path[64];

    return load_bytes(cfg, text, strlen(text), path, err);
}

static void assert_config_equal(const ds_config *a, const ds_config *b)
{
    assert_string_equal(a->node_id, b->node_id);
    assert_string_equal(a->amqp_url, b->amqp_url);
    assert_string_equal(a->amqp_url_written, b->amqp_url_written);
    assert_string_equal(a->amqp_password, b->amqp_password);
    assert_string_equal(a->amqp_exchange, b->amqp_exchange);
    assert_string_equal(a->amqp_routing_key, b->amqp_routing_key);
    assert_int_equal(a->amqp_queue_type, b->amqp_queue_type);
    assert_int_equal(a->amqp_prefetch, b->amqp_prefetch);
    assert_int_equal(a->amqp_heartbeat, b->amqp_heartbeat);
    assert_string_equal(a->mysql_host, b->mysql_host);
    assert_int_equal(a->mysql_port, b->mysql_port);
    assert_string_equal(a->mysql_socket, b->mysql_socket);
    assert_string_equal(a->mysql_user, b->mysql_user);
    assert_string_equal(a->mysql_password, b->mysql_password);
    assert_string_equal(a->mysql_database, b->mysql_database);
    assert_string_equal(a->apply_tables, b->apply_tables);
    assert_int_equal(a->apply_batch_max, b->apply_batch_max);
    assert_int_equal(a->apply_batch_wait_ms, b->apply_batch_wait_ms);
    assert_int_equal(a->apply_max_message_bytes, b->apply_max_message_bytes);
    assert_int_equal(a->apply_tombstone_retention_hours,
                     b->apply_tombstone_retention_hours);
    assert_int_equal(a->producer_mode, b->producer_mode);
    assert_string_equal(a->producer_spool_dir, b->producer_spool_dir);
    assert_int_equal(a->producer_confirm_timeout_ms,
                     b->producer_confirm_timeout_ms);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->log_format, b->log_format);
    assert_string_equal(a->log_file, b->log_file);
    assert_int_equal(a->capture_server_id, b->capture_server_id);
    assert_string_equal(a->capture_tables, b->capture_tables);
    assert_string_equal(a->capture_state_file, b->capture_state_file);
    assert_string_equal(a->metrics_listen, b->metrics_listen);
}

/* Loads text over the defaults and expects DS_ECONFIG with exactly
 * "PATH:line: reason", and the configuration left as it was. */
static void expect_error_bytes(const char *text, size_t len, int line,
                               const char *reason)
{
    ds_config cfg, before;
    char path[64], err[ERRLEN], want[ERRLEN];

    ds__config_defaults(&cfg);
    before = cfg;
    assert_int_equal(load_bytes(&cfg, text, len, path, err), DS_ECONFIG);
    snprintf(want, sizeof want, "%s:%d: %s", path, line, reason);
    assert_string_equal(err, want);
    assert_config_equal(&cfg, &before);
}

static void expect_error(const char *text, int line, const char *reason)
{
    expect_error_bytes(text, strlen(text), line, reason);
}

/* Expects ds__config_set to fail with code and exactly message, leaving cfg
 * as it was. */
static void expect_set_error(const char *key, const char *value, int code,
                             const char *message)
{
    ds_config cfg, before;
    char err[ERRLEN];

    ds__config_defaults(&cfg);
    before = cfg;
    assert_int_equal(ds__config_set(&cfg, key, value, err, sizeof err), code);
    assert_string_equal(err, message);
    assert_config_equal(&cfg, &before);
}

#define KNOWN                                                                  \
    "(known: [node] [amqp] [mysql] [apply] [producer] [log] [archive] "        \
    "[capture] [metrics])"

/* ------------------------------------------------------------------------ */
/* Defaults and the example file                                             */

static void defaults_are_documented(void **state)
{
    (void)state;
    ds_config c;

    memset(&c, 0x5a, sizeof c); /* every field must be written */
    ds__config_defaults(&c);
    assert_string_equal(c.node_id, "");
    assert_string_equal(c.node_clock_file, "/var/lib/datasync/clock");
    assert_string_equal(c.amqp_url, "amqp://guest:guest@127.0.0.1:5672/%2f");
    assert_string_equal(c.amqp_url_written, c.amqp_url);
    assert_string_equal(c.amqp_password, "");
    assert_string_equal(c.amqp_exchange, "datasync");
    assert_string_equal(c.amqp_routing_key, "data.sync");
    assert_int_equal(c.amqp_queue_type, DS_QUEUE_CLASSIC);
    assert_int_equal(c.amqp_prefetch, 500);
    assert_int_equal(c.amqp_heartbeat, 10);
    assert_string_equal(c.mysql_host, "127.0.0.1");
    assert_int_equal(c.mysql_port, 3306);
    assert_string_equal(c.mysql_socket, "");
    assert_string_equal(c.mysql_user, "root");
    assert_string_equal(c.mysql_password, "");
    assert_string_equal(c.mysql_database, "app");
    assert_string_equal(c.apply_tables, "");
    assert_int_equal(c.apply_batch_max, 200);
    assert_int_equal(c.apply_batch_wait_ms, 10);
    assert_int_equal(c.apply_max_message_bytes, 1048576);
    assert_int_equal(c.apply_tombstone_retention_hours, 168);
    assert_int_equal(c.producer_mode, DS_MODE_SYNC);
    assert_string_equal(c.producer_spool_dir, "/var/lib/datasync/spool");
    assert_int_equal(c.producer_confirm_timeout_ms, 5000);
    assert_int_equal(c.log_level, DS_LOG_INFO);
    assert_int_equal(c.log_format, DS_LOG_TEXT);
    assert_string_equal(c.log_file, "");
    assert_string_equal(c.metrics_listen, "");
}

/* The tests run from the top of the tree (make test); DS_SRCDIR may say
 * otherwise. */
static const char *example_path(void)
{
    static char path[1024];
    const char *dirs[] = {getenv("DS_SRCDIR"), ".", "..", "../.."};

    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (!dirs[i])
            continue;
        snprintf(path, sizeof path, "%s/datasync.conf.example", dirs[i]);
        if (access(path, R_OK) == 0)
            return path;
    }
    fail_msg("datasync.conf.example not found; set DS_SRCDIR");
    return NULL;
}

/* Every key, in the order of datasync.conf.example. */
static const char *const all_keys[] = {
    "node.id",
    "node.clock_file",
    "amqp.url",
    "amqp.password_file",
    "amqp.exchange",
    "amqp.routing_key",
    "amqp.queue_type",
    "amqp.prefetch",
    "amqp.heartbeat",
    "amqp.ca_file",
    "amqp.cert_file",
    "amqp.key_file",
    "amqp.verify_peer",
    "mysql.host",
    "mysql.port",
    "mysql.socket",
    "mysql.user",
    "mysql.password",
    "mysql.password_file",
    "mysql.database",
    "apply.tables",
    "apply.batch_max",
    "apply.batch_wait_ms",
    "apply.max_message_bytes",
    "apply.tombstone_retention_hours",
    "producer.mode",
    "producer.spool_dir",
    "producer.confirm_timeout_ms",
    "log.level",
    "log.format",
    "log.file",
    "archive.enabled",
    "archive.max_age",
    "archive.max_bytes",
    "capture.server_id",
    "capture.tables",
    "capture.state_file",
    "capture.start",
    "metrics.listen",
};

#define N_KEYS (sizeof all_keys / sizeof all_keys[0])

static void example_loads_and_shows_the_defaults(void **state)
{
    (void)state;
    ds_config cfg, defaults;
    char err[ERRLEN] = "";

    ds__config_defaults(&defaults);
    /* Start from something else, so the file must set every key. */
    ds__config_defaults(&cfg);
    assert_int_equal(ds__config_set(&cfg, "amqp.prefetch", "1", err, ERRLEN),
                     0);
    assert_int_equal(ds__config_set(&cfg, "mysql.user", "x", err, ERRLEN), 0);
    assert_int_equal(ds__config_load(&cfg, example_path(), err, ERRLEN), 0);
    assert_string_equal(err, "");
    assert_config_equal(&cfg, &defaults);
}

static void example_has_every_key_in_order_with_a_comment(void **state)
{
    (void)state;
    FILE *f = fopen(example_path(), "r");
    char line[512], section[64] = "", key[128];
    size_t next = 0;
    int commented = 0;

    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        char name[64];

        if (line[0] == ';') {
            commented = 1;
            continue;
        }
        if (sscanf(line, "[%63[^]]]", section) == 1)
            continue;
        if (sscanf(line, "%63[a-z_] =", name) == 1) {
            snprintf(key, sizeof key, "%s.%s", section, name);
            assert_true(next < N_KEYS);
            assert_string_equal(key, all_keys[next]);
            assert_true(commented); /* a comment right above the key */
            next++;
        }
        commented = 0;
    }
    fclose(f);
    assert_int_equal(next, N_KEYS);
}

/* ------------------------------------------------------------------------ */
/* Syntax                                                                    */

static void inline_comments_and_layout(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN] = "";

    ds__config_defaults(&cfg);
    assert_int_equal(
        load_text(&cfg,
                  "; a comment\n"
                  "# another\n"
                  "\n"
                  "[node]\n"
                  "id = node-a                       ; required\n"
                  "  [amqp]   ; a section's comment\n"
                  "queue_type = quorum              ; or classic\n"
                  "prefetch = 42\t; after a tab\n"
                  "exchange = a;b\n"
                  "routing_key = x # not a comment\n"
                  "[mysql]\n"
                  "    host = db.example\n" /* indented keys are keys */
                  "    port = 3307\n"
                  "user: me\n" /* inih's other delimiter */
                  "[log]\n"
                  "level = WARN\n",
                  err),
        0);
    assert_string_equal(err, "");
    assert_string_equal(cfg.node_id, "node-a");
    assert_int_equal(cfg.amqp_queue_type, DS_QUEUE_QUORUM);
    assert_int_equal(cfg.amqp_prefetch, 42);
    assert_string_equal(cfg.amqp_exchange, "a;b");
    assert_string_equal(cfg.amqp_routing_key, "x # not a comment");
    assert_string_equal(cfg.mysql_host, "db.example");
    assert_int_equal(cfg.mysql_port, 3307);
    assert_string_equal(cfg.mysql_user, "me");
    assert_int_equal(cfg.log_level, DS_LOG_WARN);
}

static void empty_values(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN] = "";

    ds__config_defaults(&cfg);
    assert_int_equal(ds__config_set(&cfg, "mysql.password", "s", err, ERRLEN),
                     0);
    assert_int_equal(ds__config_set(&cfg, "node.id", "n", err, ERRLEN), 0);
    assert_int_equal(ds__config_set(&cfg, "apply.tables", "t", err, ERRLEN), 0);
    assert_int_equal(load_text(&cfg,
                               "[node]\nid =\n"
                               "[mysql]\npassword =\nsocket =   ; none\n"
                               "[apply]\ntables =\n",
                               err),
                     0);
    assert_string_equal(cfg.node_id, "");
    assert_string_equal(cfg.mysql_password, "");
    assert_string_equal(cfg.mysql_socket, "");
    assert_string_equal(cfg.apply_tables, "");
}

static void later_lines_override_and_lists_are_kept(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN] = "";

    ds__config_defaults(&cfg);
    assert_int_equal(load_text(&cfg,
                               "[amqp]\n"
                               "prefetch = 1\n"
                               "url = amqp://a:b@h1:5672/%2f  amqps://h2/v\n"
                               "[apply]\n"
                               "tables = users\torders _x9\n"
                               "max_message_bytes = 134217728\n"
                               "[amqp]\n"
                               "prefetch = 2\n",
                               err),
                     0);
    assert_int_equal(cfg.amqp_prefetch, 2);
    assert_string_equal(cfg.amqp_url, "amqp://a:b@h1:5672/%2f  amqps://h2/v");
    assert_string_equal(cfg.apply_tables, "users\torders _x9");
    assert_int_equal(cfg.apply_max_message_bytes, 134217728L);
}

/* A list key written on several lines adds up; any other key repeated
 * takes its last value; the sum is bounded. */
static void list_keys_add_up_over_lines(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN] = "", line[200], *text;
    size_t at = 0;

    ds__config_defaults(&cfg);
    assert_int_equal(load_text(&cfg,
                               "[amqp]\n"
                               "url = amqp://a:b@h1:5672/%2f\n"
                               "url = amqp://a:b@h2:5672/%2f\n"
                               "exchange = one\n"
                               "exchange = two\n"
                               "[apply]\n"
                               "tables = users orders\n"
                               "tables = invoices\n",
                               err),
                     0);
    assert_string_equal(cfg.amqp_url,
                        "amqp://a:b@h1:5672/%2f amqp://a:b@h2:5672/%2f");
    assert_string_equal(cfg.amqp_exchange, "two");
    assert_string_equal(cfg.apply_tables, "users orders invoices");

    /* Lines of 25 names (149 bytes each): the 28th passes 4095 in all,
     * on line 29 of the file. */
    text = malloc(64 + 30 * (sizeof line + 10));
    assert_non_null(text);
    at += (size_t)sprintf(text, "[apply]\n");
    for (int i = 0; i < 30; i++) {
        size_t n = 0;
        for (int j = 0; j < 25; j++)
            n += (size_t)sprintf(line + n, "%st%04d", j ? " " : "", i * 25 + j);
        at += (size_t)sprintf(text + at, "tables = %s\n", line);
    }
    expect_error(text, 29,
                 "apply.tables: value too long (max 4095 bytes in all)");
    free(text);
}

static void crlf_and_bom(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN] = "";

    ds__config_defaults(&cfg);
    assert_int_equal(load_text(&cfg,
                               "\xEF\xBB\xBF[amqp]\r\n"
                               "prefetch = 7\r\n"
                               "exchange = ex\r\n",
                               err),
                     0);
    assert_int_equal(cfg.amqp_prefetch, 7);
    assert_string_equal(cfg.amqp_exchange, "ex");
}

static void bounds_are_inclusive(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN] = "";

    ds__config_defaults(&cfg);
    assert_int_equal(load_text(&cfg,
                               "[amqp]\nprefetch = 65535\nheartbeat = 0\n"
                               "[mysql]\nport = 1\n"
                               "[apply]\nbatch_max = 10000\nbatch_wait_ms = 0\n"
                               "max_message_bytes = 1024\n"
                               "tombstone_retention_hours = 87600\n"
                               "[producer]\nconfirm_timeout_ms = 100\n",
                               err),
                     0);
    assert_int_equal(cfg.amqp_prefetch, 65535);
    assert_int_equal(cfg.amqp_heartbeat, 0);
    assert_int_equal(cfg.mysql_port, 1);
    assert_int_equal(cfg.apply_batch_max, 10000);
    assert_int_equal(cfg.apply_batch_wait_ms, 0);
    assert_int_equal(cfg.apply_max_message_bytes, 1024);
    assert_int_equal(cfg.apply_tombstone_retention_hours, 87600);
    assert_int_equal(cfg.producer_confirm_timeout_ms, 100);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

static void error_unknown_section_and_key(void **state)
{
    (void)state;
    expect_error("[amqp]\nprefetch = 5\n[bogus]\n", 3,
                 "unknown section [bogus] " KNOWN);
    /* A known section with no key under it is still checked. */
    expect_error("[Amqp]\n", 1, "unknown section [Amqp] " KNOWN);
    expect_error("[]\n", 1, "unknown section [] " KNOWN);
    expect_error("[amqp]\nprefech = 5\n", 2,
                 "unknown key 'prefech' in [amqp] (did you mean 'prefetch'?)");
    expect_error("[apply]\nbatch_amx = 5\n", 2,
                 "unknown key 'batch_amx' in [apply] (did you mean "
                 "'batch_max'?)");
    expect_error("[mysql]\nprefetch = 5\n", 2,
                 "unknown key 'prefetch' in [mysql]");
    expect_error("prefetch = 5\n", 1, "key 'prefetch' before any [section]");
}

static void error_bad_integers(void **state)
{
    (void)state;
    expect_error("[amqp]\nprefetch = 12x\n", 2,
                 "amqp.prefetch: '12x' is not an integer (1..65535)");
    expect_error("[amqp]\nprefetch = 0x10\n", 2,
                 "amqp.prefetch: '0x10' is not an integer (1..65535)");
    expect_error("[amqp]\nprefetch = 1.5\n", 2,
                 "amqp.prefetch: '1.5' is not an integer (1..65535)");
    expect_error("[amqp]\nprefetch =\n", 2,
                 "amqp.prefetch: '' is not an integer (1..65535)");
    expect_error("[amqp]\nprefetch = - 1\n", 2,
                 "amqp.prefetch: '- 1' is not an integer (1..65535)");
    expect_error("[apply]\nmax_message_bytes = 99999999999999999999999\n", 2,
                 "apply.max_message_bytes: 99999999999999999999999 is out of "
                 "bounds (1024..134217728)");
    /* Overflows an int but not a long long: still caught by the bounds. */
    expect_error("[mysql]\nport = 4294967297\n", 2,
                 "mysql.port: 4294967297 is out of bounds (1..65535)");
}

static void error_out_of_bounds(void **state)
{
    (void)state;
    expect_error("[amqp]\nprefetch = 0\n", 2,
                 "amqp.prefetch: 0 is out of bounds (1..65535)");
    expect_error("[amqp]\nprefetch = 65536\n", 2,
                 "amqp.prefetch: 65536 is out of bounds (1..65535)");
    expect_error("[amqp]\nheartbeat = -1\n", 2,
                 "amqp.heartbeat: -1 is out of bounds (0..3600)");
    expect_error("[amqp]\nheartbeat = 3601\n", 2,
                 "amqp.heartbeat: 3601 is out of bounds (0..3600)");
    expect_error("[mysql]\nport = 0\n", 2,
                 "mysql.port: 0 is out of bounds (1..65535)");
    expect_error("[apply]\nbatch_max = 10001\n", 2,
                 "apply.batch_max: 10001 is out of bounds (1..10000)");
    expect_error("[apply]\nbatch_wait_ms = 60001\n", 2,
                 "apply.batch_wait_ms: 60001 is out of bounds (0..60000)");
    expect_error("[apply]\nmax_message_bytes = 1023\n", 2,
                 "apply.max_message_bytes: 1023 is out of bounds "
                 "(1024..134217728)");
    expect_error("[apply]\nmax_message_bytes = 134217729\n", 2,
                 "apply.max_message_bytes: 134217729 is out of bounds "
                 "(1024..134217728)");
    expect_error("[apply]\ntombstone_retention_hours = 0\n", 2,
                 "apply.tombstone_retention_hours: 0 is out of bounds "
                 "(1..87600)");
    expect_error("[producer]\nconfirm_timeout_ms = 99\n", 2,
                 "producer.confirm_timeout_ms: 99 is out of bounds "
                 "(100..600000)");
    expect_error("[producer]\nconfirm_timeout_ms = 600001\n", 2,
                 "producer.confirm_timeout_ms: 600001 is out of bounds "
                 "(100..600000)");
}

static void error_bad_enums(void **state)
{
    (void)state;
    expect_error("[amqp]\nqueue_type = stream\n", 2,
                 "amqp.queue_type: 'stream' is not one of: classic, quorum");
    expect_error("[producer]\nmode = lazy\n", 2,
                 "producer.mode: 'lazy' is not one of: sync, async");
    expect_error("[log]\nlevel = verbose\n", 2,
                 "log.level: 'verbose' is not one of: debug, info, warn, "
                 "error");
    expect_error("[log]\nlevel =\n", 2,
                 "log.level: '' is not one of: debug, info, warn, error");
    expect_error("[capture]\nstart = now\n", 2,
                 "capture.start: 'now' is not one of: current, snapshot");
}

static void error_bad_strings(void **state)
{
    (void)state;
    char text[256], want[256];

    snprintf(text, sizeof text, "[mysql]\ndatabase = %065d\n", 0);
    expect_error(text, 2, "mysql.database: value too long (65 bytes, max 64)");
    snprintf(text, sizeof text, "[node]\nid = %065d\n", 0);
    expect_error(text, 2, "node.id: value too long (65 bytes, max 64)");
    expect_error("[node]\nid = node a\n", 2,
                 "node.id: 'node a' is not a valid node id "
                 "([A-Za-z0-9._-]{1,64})");
    expect_error("[node]\nid = nöde\n", 2,
                 "node.id: 'nöde' is not a valid node id "
                 "([A-Za-z0-9._-]{1,64})");
    expect_error("[apply]\ntables = users 1orders\n", 2,
                 "apply.tables: '1orders' is not a valid table name "
                 "([A-Za-z_][A-Za-z0-9_]{0,63})");
    expect_error("[apply]\ntables = app.users\n", 2,
                 "apply.tables: 'app.users' is not a valid table name "
                 "([A-Za-z_][A-Za-z0-9_]{0,63})");
    /* 65 bytes, quoted cut to 64. */
    snprintf(text, sizeof text, "[apply]\ntables = a t%064d\n", 0);
    snprintf(want, sizeof want,
             "apply.tables: 't%063d' is not a valid table name "
             "([A-Za-z_][A-Za-z0-9_]{0,63})",
             0);
    expect_error(text, 2, want);
    /* 64 bytes is a valid name. */
    snprintf(text, sizeof text, "[apply]\ntables = t%063d\n", 0);
    {
        ds_config cfg;
        char err[ERRLEN] = "";
        ds__config_defaults(&cfg);
        assert_int_equal(load_text(&cfg, text, err), 0);
    }
    expect_error("[amqp]\nurl = amqp://a http://b\n", 2,
                 "amqp.url: 'http://b' is not an amqp:// or amqps:// URL");
    expect_error("[amqp]\nurl =\n", 2, "amqp.url: at least one URL is needed");
    expect_error("[amqp]\nexchange =\n", 2, "amqp.exchange: must not be empty");
    expect_error("[producer]\nspool_dir = ; none\n", 2,
                 "producer.spool_dir: must not be empty");
}

static void error_syntax(void **state)
{
    (void)state;
    expect_error("[amqp]\nprefetch 5\n", 2, "expected 'key = value'");
    expect_error("[amqp]\nprefetch ; = 5\n", 2, "expected 'key = value'");
    expect_error("[amqp\nprefetch = 5\n", 1, "missing ']' in section header");
    expect_error("[amqp ; ]\n", 1, "missing ']' in section header");
    expect_error("[amqp] x\n", 1, "unexpected text after ']'");
    expect_error("[amqp]\n= 5\n", 2, "missing key before '='");
}

/* Lines have no length limit of their own: a value is bounded only by its
 * key (inih cut lines at 199 bytes, so one URL with a long password could
 * not be written at all). */
static void long_lines(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN] = "", *text, password[301], want[2048];
    size_t at = 0;

    /* One line of 2000 bytes: "url = " and URLs of 54 bytes and more. */
    text = malloc(4096);
    assert_non_null(text);
    at += (size_t)sprintf(text, "[amqp]\n");
    at += (size_t)sprintf(text + at, "url =");
    for (int i = 0; at - 7 < 1990 - 60; i++)
        at += (size_t)sprintf(text + at, " amqp://user:pw@broker%04d:5672/%%2f",
                              i);
    while (at - 7 < 1999)
        text[at++] = ' '; /* trailing blanks count in the line, not the value */
    text[at++] = '\n';
    text[at] = '\0';
    assert_int_equal(strchr(text + 7, '\n') - (text + 7), 1999);
    ds__config_defaults(&cfg);
    assert_int_equal(load_text(&cfg, text, err), 0);
    assert_string_equal(err, "");
    assert_true(strlen(cfg.amqp_url) > 1900);
    assert_true(
        strncmp(cfg.amqp_url, "amqp://user:pw@broker0000:5672/%2f ", 35) == 0);
    assert_string_equal(cfg.amqp_url, cfg.amqp_url_written);

    /* One URL whose password alone is 300 bytes. */
    memset(password, 'p', 300);
    password[300] = '\0';
    snprintf(text, 4096, "[amqp]\nurl = amqp://app:%s@rabbit:5672/%%2f\n",
             password);
    snprintf(want, sizeof want, "amqp://app:%s@rabbit:5672/%%2f", password);
    ds__config_defaults(&cfg);
    assert_int_equal(load_text(&cfg, text, err), 0);
    assert_string_equal(cfg.amqp_url, want);

    /* Longer than the key holds: the key's bound, on its line. */
    at = (size_t)sprintf(text, "[node]\nid = a\n[amqp]\nurl = amqp://");
    memset(text + at, 'h', 2100);
    strcpy(text + at + 2100, "\n");
    expect_error(text, 4, "amqp.url: value too long (2107 bytes, max 2047)");
    free(text);
}

/* Sets key to value, which must succeed. */
static void set_ok(ds_config *cfg, const char *key, const char *value)
{
    char err[ERRLEN] = "";

    assert_int_equal(ds__config_set(cfg, key, value, err, ERRLEN), 0);
    assert_string_equal(err, "");
}

/* A temp file holding text; path receives its name (the caller unlinks). */
static void password_file(char path[64], const char *text)
{
    write_temp(path, text, strlen(text));
}

static void password_files(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN] = "", amqp[64], mysql[64], text[512];

    /* First line only, its line end dropped (LF or CRLF); blanks and ';'
     * are part of a password read from a file. */
    password_file(amqp, "s3cr;t @:/%\r\nsecond line\n");
    password_file(mysql, " db pass ; x\n");
    snprintf(text, sizeof text,
             "[amqp]\n"
             "password_file = %s\n"
             "url = amqp://app@h1:5672/%%2f amqp://other:own@h2/%%2f\n"
             "url = amqp://h3/%%2f\tamqp://app@h4\n"
             "[mysql]\n"
             "password = overridden\n"
             "password_file = %s ; a comment\n",
             amqp, mysql);
    ds__config_defaults(&cfg);
    assert_int_equal(load_text(&cfg, text, err), 0);
    assert_string_equal(err, "");
    assert_string_equal(cfg.amqp_password, "s3cr;t @:/%");
    /* Into URLs naming a user without a password, percent-encoded; a URL
     * with its own password or without a user is taken as written. */
    assert_string_equal(cfg.amqp_url,
                        "amqp://app:s3cr%3Bt%20%40%3A%2F%25@h1:5672/%2f "
                        "amqp://other:own@h2/%2f amqp://h3/%2f\t"
                        "amqp://app:s3cr%3Bt%20%40%3A%2F%25@h4");
    assert_string_equal(cfg.amqp_url_written,
                        "amqp://app@h1:5672/%2f amqp://other:own@h2/%2f "
                        "amqp://h3/%2f\tamqp://app@h4");
    assert_string_equal(cfg.mysql_password, " db pass ; x");

    /* The later of password and password_file wins; the URLs follow a later
     * amqp.url and a later password file alike. */
    set_ok(&cfg, "mysql.password", "typed");
    assert_string_equal(cfg.mysql_password, "typed");
    set_ok(&cfg, "amqp.url", "amqp://u@h/v");
    assert_string_equal(cfg.amqp_url, "amqp://u:s3cr%3Bt%20%40%3A%2F%25@h/v");
    unlink(amqp);
    password_file(amqp, "plain");
    set_ok(&cfg, "amqp.password_file", amqp);
    assert_string_equal(cfg.amqp_url, "amqp://u:plain@h/v");
    /* Empty: no file, the URLs as written. */
    set_ok(&cfg, "amqp.password_file", "");
    assert_string_equal(cfg.amqp_url, "amqp://u@h/v");
    assert_string_equal(cfg.amqp_password, "");

    /* An empty file is an empty password. */
    unlink(mysql);
    password_file(mysql, "");
    set_ok(&cfg, "mysql.password_file", mysql);
    assert_string_equal(cfg.mysql_password, "");
    unlink(amqp);
    unlink(mysql);
}

static void password_file_errors(void **state)
{
    (void)state;
    char path[64], text[512], want[512], big[400];

    expect_error("[mysql]\nuser = x\npassword_file = /nonexistent/db.pw\n", 3,
                 "mysql.password_file: /nonexistent/db.pw: No such file or "
                 "directory");
    expect_error("[amqp]\npassword_file = /nonexistent/amqp.pw\n", 2,
                 "amqp.password_file: /nonexistent/amqp.pw: No such file or "
                 "directory");
    expect_error("[mysql]\npassword_file = /tmp\n", 2,
                 "mysql.password_file: /tmp: Is a directory");
    expect_set_error("mysql.password_file", "/nonexistent/db.pw", DS_ECONFIG,
                     "mysql.password_file: /nonexistent/db.pw: No such file "
                     "or directory");

    memset(big, 'x', 256);
    big[256] = '\0';
    password_file(path, big);
    snprintf(text, sizeof text, "[mysql]\npassword_file = %s\n", path);
    snprintf(want, sizeof want,
             "mysql.password_file: %s: first line longer than 255 bytes", path);
    expect_error(text, 2, want);
    unlink(path);

    password_file(path, "a\x01"
                        "b\n");
    snprintf(text, sizeof text, "[amqp]\npassword_file = %s\n", path);
    snprintf(want, sizeof want,
             "amqp.password_file: %s: control character 0x01 in it", path);
    expect_error(text, 2, want);
    unlink(path);

    /* A password that makes the URL list too long for the connections':
     * 32 bytes written, and 3 times ':' and 255 '/' written %2F. */
    memset(big, '/', 255);
    big[255] = '\0';
    password_file(path, big);
    snprintf(text, sizeof text,
             "[amqp]\nurl = amqp://u@a amqp://u@b amqp://u@c\n"
             "password_file = %s\n",
             path);
    expect_error(text, 3,
                 "amqp.password_file: the URLs with amqp.password_file's "
                 "password are too long (2330 bytes, max 2047)");
    unlink(path);
}

static void error_binary_garbage(void **state)
{
    (void)state;
    static const char elf[] = "\x7f"
                              "ELF\x02\x01\x01\x00\x00\x00";
    static const char nul[] = "[amqp]\nexchange = a\0b\n";

    expect_error_bytes(elf, sizeof elf - 1, 1,
                       "control character 0x7f (not a text file?)");
    expect_error_bytes(nul, sizeof nul - 1, 2,
                       "control character 0x00 (not a text file?)");
    expect_error("[amqp]\nprefetch = 5\n\x01\x02zz\n", 3,
                 "control character 0x01 (not a text file?)");
    expect_error("[amqp]\nexchange = a\rb\n", 2,
                 "control character 0x0d (not a text file?)");
    /* Bytes above 0x7f are text (UTF-8) but still no "key = value". */
    expect_error("[amqp]\n\xff\xfe\xfd\n", 2, "expected 'key = value'");
}

static void first_bad_line_wins(void **state)
{
    (void)state;
    /* Line 2 is bad; line 4 would be too and must not be reported. */
    expect_error("[amqp]\nprefetch = 0\n[bogus]\nnot a key\n", 2,
                 "amqp.prefetch: 0 is out of bounds (1..65535)");
    expect_error("[amqp]\nno equals\nprefetch = 0\n", 2,
                 "expected 'key = value'");
    /* Good lines before the bad one are not applied either (see
     * expect_error: the configuration stays as it was). */
    expect_error("[amqp]\nprefetch = 7\n[mysql]\nport = x\n", 4,
                 "mysql.port: 'x' is not an integer (1..65535)");
}

static void error_io(void **state)
{
    (void)state;
    ds_config cfg, before;
    char err[ERRLEN];

    ds__config_defaults(&cfg);
    before = cfg;
    assert_int_equal(
        ds__config_load(&cfg, "/nonexistent/datasync.conf", err, ERRLEN),
        DS_EIO);
    assert_string_equal(
        err, "/nonexistent/datasync.conf: No such file or directory");
    assert_int_equal(ds__config_load(&cfg, "/tmp", err, ERRLEN), DS_EIO);
    assert_string_equal(err, "/tmp: Is a directory");
    assert_config_equal(&cfg, &before);
    assert_int_equal(ds__config_load(&cfg, NULL, err, ERRLEN), DS_EINVAL);
    /* No room for a message is fine too. */
    assert_int_equal(ds__config_load(&cfg, "/nonexistent", NULL, 0), DS_EIO);
}

static void error_message_is_truncated_safely(void **state)
{
    (void)state;
    ds_config cfg;
    char err[16];
    char path[64];

    ds__config_defaults(&cfg);
    write_temp(path, "[bogus]\n", 8);
    memset(err, 'x', sizeof err);
    assert_int_equal(ds__config_load(&cfg, path, err, sizeof err), DS_ECONFIG);
    unlink(path);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_memory_equal(err, path, sizeof err - 1);
}

/* ------------------------------------------------------------------------ */
/* ds__config_set                                                            */

static void set_good_keys(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN] = "";
    char url[2048];

    ds__config_defaults(&cfg);
    assert_int_equal(ds__config_set(&cfg, "amqp.prefetch", "7", err, ERRLEN),
                     0);
    assert_int_equal(cfg.amqp_prefetch, 7);
    assert_int_equal(
        ds__config_set(&cfg, "amqp.queue_type", "QUORUM", err, ERRLEN), 0);
    assert_int_equal(cfg.amqp_queue_type, DS_QUEUE_QUORUM);
    assert_int_equal(
        ds__config_set(&cfg, "producer.mode", "async", err, ERRLEN), 0);
    assert_int_equal(cfg.producer_mode, DS_MODE_ASYNC);
    assert_false(cfg.capture_snapshot);
    assert_int_equal(
        ds__config_set(&cfg, "capture.start", "snapshot", err, ERRLEN), 0);
    assert_true(cfg.capture_snapshot);
    assert_int_equal(ds__config_set(&cfg, "log.level", "debug", err, ERRLEN),
                     0);
    assert_int_equal(cfg.log_level, DS_LOG_DEBUG);
    assert_int_equal(ds__config_set(&cfg, "log.format", "JSON", err, ERRLEN),
                     0);
    assert_int_equal(cfg.log_format, DS_LOG_JSON);
    assert_int_equal(
        ds__config_set(&cfg, "log.file", "/var/log/ds.log", err, ERRLEN), 0);
    assert_string_equal(cfg.log_file, "/var/log/ds.log");
    assert_int_equal(ds__config_set(&cfg, "apply.max_message_bytes",
                                    "134217728", err, ERRLEN),
                     0);
    assert_int_equal(cfg.apply_max_message_bytes, 134217728L);
    assert_int_equal(
        ds__config_set(&cfg, "mysql.password", " a ;b# ", err, ERRLEN), 0);
    assert_string_equal(cfg.mysql_password, " a ;b# "); /* taken as is */
    assert_int_equal(ds__config_set(&cfg, "node.id", "node-b.2_x", err, ERRLEN),
                     0);
    assert_string_equal(cfg.node_id, "node-b.2_x");
    assert_true(cfg.archive_enabled); /* the default */
    const char *const off[] = {"false", "off", "no", "OFF"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        cfg.archive_enabled = true;
        assert_int_equal(
            ds__config_set(&cfg, "archive.enabled", off[i], err, ERRLEN), 0);
        assert_false(cfg.archive_enabled);
    }
    assert_int_equal(
        ds__config_set(&cfg, "archive.enabled", "yes", err, ERRLEN), 0);
    assert_true(cfg.archive_enabled);
    assert_int_equal(
        ds__config_set(&cfg, "archive.max_age", "12h", err, ERRLEN), 0);
    assert_string_equal(cfg.archive_max_age, "12h");
    assert_int_equal(
        ds__config_set(&cfg, "archive.max_bytes", "5000000000", err, ERRLEN),
        0);
    assert_int_equal(cfg.archive_max_bytes, 5000000000L);

    /* The longest URL list the field holds, longer than a file line. */
    memset(url, 'h', sizeof url - 1);
    memcpy(url, "amqp://", 7);
    url[sizeof url - 1] = '\0';
    assert_int_equal(ds__config_set(&cfg, "amqp.url", url, err, ERRLEN), 0);
    assert_string_equal(cfg.amqp_url, url);
    assert_string_equal(err, "");
}

static void set_bad_keys_and_values(void **state)
{
    (void)state;
    char url[2050], exchange[249];

    expect_set_error("amqp.nope", "1", DS_ECONFIG, "amqp.nope: unknown key");
    expect_set_error("amqp.hearbeat", "1", DS_ECONFIG,
                     "amqp.hearbeat: unknown key (did you mean 'heartbeat'?)");
    expect_set_error("amqp.", "1", DS_ECONFIG, "amqp.: unknown key");
    expect_set_error("nope.prefetch", "1", DS_ECONFIG,
                     "nope.prefetch: unknown section [nope] " KNOWN);
    expect_set_error("prefetch", "1", DS_ECONFIG,
                     "prefetch: expected section.key, e.g. amqp.url");
    expect_set_error("amqp.prefetch", "0", DS_ECONFIG,
                     "amqp.prefetch: 0 is out of bounds (1..65535)");
    expect_set_error("amqp.prefetch", " 5", DS_ECONFIG,
                     "amqp.prefetch: ' 5' is not an integer (1..65535)");
    expect_set_error("amqp.queue_type", "stream", DS_ECONFIG,
                     "amqp.queue_type: 'stream' is not one of: classic, "
                     "quorum");
    expect_set_error("archive.enabled", "maybe", DS_ECONFIG,
                     "archive.enabled: 'maybe' is not one of: false, true, "
                     "off, on, no, yes");
    expect_set_error("archive.max_age", "7", DS_ECONFIG,
                     "archive.max_age: '7' is not an age such as 7D, 12h or "
                     "30m (units Y, M, D, h, m, s)");
    expect_set_error("archive.max_age", "0D", DS_ECONFIG,
                     "archive.max_age: '0D' is not an age such as 7D, 12h or "
                     "30m (units Y, M, D, h, m, s)");
    expect_set_error("archive.max_age", "7d", DS_ECONFIG,
                     "archive.max_age: '7d' is not an age such as 7D, 12h or "
                     "30m (units Y, M, D, h, m, s)");
    expect_set_error("archive.max_bytes", "-1", DS_ECONFIG,
                     "archive.max_bytes: -1 is out of bounds "
                     "(0..9223372036854775807)");
    expect_set_error("amqp.url", "amqp://a\nb", DS_ECONFIG,
                     "amqp.url: control character 0x0a in value");

    memset(exchange, 'e', sizeof exchange - 1);
    exchange[sizeof exchange - 1] = '\0';
    expect_set_error("amqp.exchange", exchange, DS_ECONFIG,
                     "amqp.exchange: value too long (248 bytes, max 247)");
    memset(url, 'h', sizeof url - 1);
    memcpy(url, "amqp://", 7);
    url[2048] = '\0';
    expect_set_error("amqp.url", url, DS_ECONFIG,
                     "amqp.url: value too long (2048 bytes, max 2047)");

    expect_set_error("amqp.prefetch", NULL, DS_EINVAL,
                     "amqp.prefetch: missing value");
    expect_set_error(NULL, "1", DS_EINVAL, "(null): missing key");
}

/* metrics.listen: off when empty, else HOST:PORT as the endpoint binds it. */
static void metrics_listen_addresses(void **state)
{
    (void)state;
    static const struct {
        const char *value, *host;
        int port;
    } good[] = {{"127.0.0.1:9464", "127.0.0.1", 9464},
                {"[::1]:1", "::1", 1},
                {":65535", "", 65535},
                {"metrics.example:9464", "metrics.example", 9464}};
    static const char *const bad[] = {
        "9464",      "127.0.0.1", "::1:9464",    "[::1]9464",
        "[::1:9464", "host:0",    "host:65536",  "host:94a",
        "host:",     "a:b:9464",  "host:123456", "[]x:1"};
    ds_config cfg;
    char err[ERRLEN], host[256], want[ERRLEN];
    int port;

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ds__config_defaults(&cfg);
        assert_int_equal(
            ds__config_set(&cfg, "metrics.listen", good[i].value, err, ERRLEN),
            0);
        assert_string_equal(cfg.metrics_listen, good[i].value);
        assert_int_equal(
            ds__config_split_listen(good[i].value, host, &port, err, ERRLEN),
            0);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(want, sizeof want,
                 "metrics.listen: '%s' is not HOST:PORT (127.0.0.1:9464, "
                 "[::1]:9464, or :9464 for every interface; port 1..65535)",
                 bad[i]);
        expect_set_error("metrics.listen", bad[i], DS_ECONFIG, want);
    }
    ds__config_defaults(&cfg);
    assert_int_equal(ds__config_set(&cfg, "metrics.listen", "", err, ERRLEN),
                     0);
    assert_string_equal(cfg.metrics_listen, "");
}

/* ------------------------------------------------------------------------ */
/* Path and word lists                                                       */

static void path_from_environment(void **state)
{
    (void)state;
    assert_int_equal(unsetenv("DATASYNC_CONFIG"), 0);
    assert_null(ds__config_path(NULL));
    assert_string_equal(ds__config_path("/etc/given.conf"), "/etc/given.conf");

    assert_int_equal(setenv("DATASYNC_CONFIG", "/etc/env.conf", 1), 0);
    assert_string_equal(ds__config_path(NULL), "/etc/env.conf");
    assert_string_equal(ds__config_path("/etc/given.conf"), "/etc/given.conf");

    assert_int_equal(setenv("DATASYNC_CONFIG", "", 1), 0);
    assert_null(ds__config_path(NULL));
    assert_int_equal(unsetenv("DATASYNC_CONFIG"), 0);
}

typedef struct words {
    int n;
    int stop_at; /* return 42 on this word (1-based), 0: never */
    char got[8][32];
} words;

static int collect(const char *word, size_t len, void *ctx)
{
    words *w = ctx;

    assert_true(len > 0 && len < sizeof w->got[0]);
    assert_true(w->n < 8);
    memcpy(w->got[w->n], word, len);
    w->got[w->n][len] = '\0';
    w->n++;
    return w->n == w->stop_at ? 42 : 0;
}

static void each_word(void **state)
{
    (void)state;
    const char list[] = "  users\torders \t _x9  ";
    words w = {0};

    assert_int_equal(ds__config_each_word(list, collect, &w), 0);
    assert_int_equal(w.n, 3);
    assert_string_equal(w.got[0], "users");
    assert_string_equal(w.got[1], "orders");
    assert_string_equal(w.got[2], "_x9");
    assert_string_equal(list, "  users\torders \t _x9  "); /* untouched */

    memset(&w, 0, sizeof w);
    assert_int_equal(ds__config_each_word("one", collect, &w), 0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.got[0], "one");

    memset(&w, 0, sizeof w);
    assert_int_equal(ds__config_each_word("", collect, &w), 0);
    assert_int_equal(ds__config_each_word(" \t ", collect, &w), 0);
    assert_int_equal(ds__config_each_word(NULL, collect, &w), 0);
    assert_int_equal(w.n, 0);

    memset(&w, 0, sizeof w);
    w.stop_at = 2;
    assert_int_equal(ds__config_each_word("a b c", collect, &w), 42);
    assert_int_equal(w.n, 2);
}

/* ------------------------------------------------------------------------ */
/* ds__config_each_change                                                    */

typedef struct named {
    char keys[8][64];
    int n;
} named;

static void note_key(const char *key, void *ctx)
{
    named *nm = ctx;

    assert_true(nm->n < 8);
    snprintf(nm->keys[nm->n++], sizeof nm->keys[0], "%s", key);
}

static void each_change_names_the_keys_that_differ(void **state)
{
    (void)state;
    ds_config a, b;
    char err[ERRLEN];
    named nm = {.n = 0};

    ds__config_defaults(&a);
    b = a;
    assert_int_equal(ds__config_each_change(&a, &b, note_key, &nm), 0);

    /* Same strings with different bytes past their ends: no change. */
    assert_int_equal(ds__config_set(&a, "node.clock_file", "", err, ERRLEN), 0);
    assert_int_equal(
        ds__config_set(&b, "node.clock_file", "/x/y/z/w/v/u/t", err, ERRLEN),
        0);
    assert_int_equal(ds__config_set(&b, "node.clock_file", "", err, ERRLEN), 0);
    assert_int_equal(ds__config_each_change(&a, &b, note_key, &nm), 0);

    assert_int_equal(ds__config_set(&b, "log.level", "debug", err, ERRLEN), 0);
    assert_int_equal(ds__config_set(&b, "log.format", "json", err, ERRLEN), 0);
    assert_int_equal(
        ds__config_set(&b, "amqp.queue_type", "quorum", err, ERRLEN), 0);
    assert_int_equal(ds__config_set(&b, "apply.batch_max", "7", err, ERRLEN),
                     0);
    assert_int_equal(ds__config_set(&b, "mysql.password", "pw", err, ERRLEN),
                     0);
    assert_int_equal(ds__config_set(&b, "archive.enabled", "no", err, ERRLEN),
                     0);
    assert_int_equal(ds__config_each_change(&a, &b, note_key, &nm), 6);
    /* In the table's order; the password once, by its first key. */
    assert_string_equal(nm.keys[0], "amqp.queue_type");
    assert_string_equal(nm.keys[1], "mysql.password");
    assert_string_equal(nm.keys[2], "apply.batch_max");
    assert_string_equal(nm.keys[3], "log.level");
    assert_string_equal(nm.keys[4], "log.format");
    assert_string_equal(nm.keys[5], "archive.enabled");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_documented),
        cmocka_unit_test(example_loads_and_shows_the_defaults),
        cmocka_unit_test(example_has_every_key_in_order_with_a_comment),
        cmocka_unit_test(inline_comments_and_layout),
        cmocka_unit_test(empty_values),
        cmocka_unit_test(later_lines_override_and_lists_are_kept),
        cmocka_unit_test(list_keys_add_up_over_lines),
        cmocka_unit_test(crlf_and_bom),
        cmocka_unit_test(bounds_are_inclusive),
        cmocka_unit_test(error_unknown_section_and_key),
        cmocka_unit_test(error_bad_integers),
        cmocka_unit_test(error_out_of_bounds),
        cmocka_unit_test(error_bad_enums),
        cmocka_unit_test(error_bad_strings),
        cmocka_unit_test(error_syntax),
        cmocka_unit_test(long_lines),
        cmocka_unit_test(password_files),
        cmocka_unit_test(password_file_errors),
        cmocka_unit_test(error_binary_garbage),
        cmocka_unit_test(first_bad_line_wins),
        cmocka_unit_test(error_io),
        cmocka_unit_test(error_message_is_truncated_safely),
        cmocka_unit_test(set_good_keys),
        cmocka_unit_test(set_bad_keys_and_values),
        cmocka_unit_test(metrics_listen_addresses),
        cmocka_unit_test(path_from_environment),
        cmocka_unit_test(each_word),
        cmocka_unit_test(each_change_names_the_keys_that_differ),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
