/* test_cli.c: the datasync command run as a user runs it, against the private RabbitMQ and MariaDB: each command, its output and exit status. */
#include "itest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "error.h"
#include "event.h"

/* The exit codes of datasync(1). */
#define EXIT_USAGE 2
#define EXIT_CONFIG 3
#define EXIT_INPUT 4
#define EXIT_BROKER 5
#define EXIT_PARTIAL 6
#define EXIT_NOTFOUND 7
#define EXIT_WARN 8

/* ------------------------------------------------------------------------ */
/* Running the command                                                       */

typedef struct run {
    int status; /* exit status; 128 + signal if killed */
    char *out, *err;
} run;

/* When not 0, the command runs with this RLIMIT_FSIZE (and SIGXFSZ
 * ignored): a file it writes past that offset fails as on a full disk. */
static rlim_t child_file_limit;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;

    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* Runs $DS_TEST_BUILD/datasync with argv (NULL-terminated), standard input
 * from stdin_path (NULL: /dev/null), and collects its output. With
 * signal_after_ms > 0, sends SIGINT that long after the start. */
static void run_argv_signal(run *r, const char *stdin_path,
                            const char *const *argv, int signal_after_ms)
{
    char *bin = NULL, *out = itest_path("cli.stdout"),
         *err = itest_path("cli.stderr");
    const char *args[64];
    pid_t pid;
    int st, n = 0;

    assert_true(asprintf(&bin, "%s/datasync", itest_build_dir()) > 0);
    args[n++] = bin;
    for (; argv[n - 1] && n < 63; n++)
        args[n] = argv[n - 1];
    args[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || o < 0 || e < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 ||
            dup2(e, 2) < 0)
            _exit(126);
        if (child_file_limit) {
            struct rlimit lim = {child_file_limit, child_file_limit};
            signal(SIGXFSZ, SIG_IGN);
            if (setrlimit(RLIMIT_FSIZE, &lim) < 0)
                _exit(126);
        }
        execv(bin, (char *const *)args);
        _exit(127);
    }
    if (signal_after_ms > 0) {
        struct timespec ts = {signal_after_ms / 1000,
                              (long)(signal_after_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGINT);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r->out = slurp(out);
    r->err = slurp(err);
    /* What every failing assertion below needs to be understood. */
    printf("  $ datasync");
    for (int i = 1; args[i]; i++)
        printf(" %s", args[i]);
    printf("%s%s\n  exit %d\n", stdin_path ? " < " : "",
           stdin_path ? stdin_path : "", r->status);
    if (r->out[0])
        printf("  stdout: %.2000s\n", r->out);
    if (r->err[0])
        printf("  stderr: %.2000s\n", r->err);
    free(bin);
    free(out);
    free(err);
}

#define CLI(r, in, ...)                                                        \
    run_argv_signal((r), (in), (const char *const[]){__VA_ARGS__, NULL}, 0)
#define CLI_INTERRUPTED(r, ms, ...)                                            \
    run_argv_signal((r), NULL, (const char *const[]){__VA_ARGS__, NULL}, (ms))

static void expect(const run *r, int status, const char *out_has,
                   const char *err_has)
{
    assert_int_equal(r->status, status);
    if (out_has && !strstr(r->out, out_has))
        fail_msg("stdout lacks \"%s\"", out_has);
    if (err_has && !strstr(r->err, err_has))
        fail_msg("stderr lacks \"%s\"", err_has);
}

/* ------------------------------------------------------------------------ */
/* Each test's names and configuration                                       */

typedef struct env {
    char *dir;
    char exchange[64], dead_exchange[80];
    char node_a[64], node_b[64]; /* queue names follow: datasync.<node> */
    char qa[96], qa_dead[96], qb[96], qb_dead[96];
    char *conf; /* node.id = node_a */
    amqp_connection_state_t conn;
    pid_t consumer; /* a datasync-consumer still running, or 0 */
} env;

static env cur;
static int test_no;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* A configuration for node id with this test's exchange; extra is
 * appended (sections of its own). */
static char *write_conf(const char *name, const char *node_id,
                        const char *extra)
{
    char *path = NULL, *text = NULL;

    assert_true(asprintf(&path, "%s/%s", cur.dir, name) > 0);
    assert_true(asprintf(&text,
                         "; written by test_cli\n"
                         "[node]\nid = %s\n"
                         "[amqp]\nurl = %s\nexchange = %s\nheartbeat = 0\n"
                         "[producer]\nspool_dir = %s/spool-%s\n"
                         "confirm_timeout_ms = 3000\n"
                         "%s",
                         node_id, itest_amqp_url(), cur.exchange, cur.dir, name,
                         extra ? extra : "") > 0);
    write_file(path, text);
    free(text);
    return path;
}

static void drop_topology(void)
{
    itest_queue_delete(cur.conn, cur.qa);
    itest_queue_delete(cur.conn, cur.qa_dead);
    itest_queue_delete(cur.conn, cur.qb);
    itest_queue_delete(cur.conn, cur.qb_dead);
    itest_exchange_delete(cur.conn, cur.exchange);
    itest_exchange_delete(cur.conn, cur.dead_exchange);
}

static int setup(void **state)
{
    (void)state;
    memset(&cur, 0, sizeof cur);
    test_no++;
    cur.dir = itest_mkdtemp("cli");
    snprintf(cur.exchange, sizeof cur.exchange, "dscli%d", test_no);
    snprintf(cur.dead_exchange, sizeof cur.dead_exchange, "%s.dead",
             cur.exchange);
    snprintf(cur.node_a, sizeof cur.node_a, "cli%d-a", test_no);
    snprintf(cur.node_b, sizeof cur.node_b, "cli%d-b", test_no);
    snprintf(cur.qa, sizeof cur.qa, "datasync.%s", cur.node_a);
    snprintf(cur.qa_dead, sizeof cur.qa_dead, "datasync.%s.dead", cur.node_a);
    snprintf(cur.qb, sizeof cur.qb, "datasync.%s", cur.node_b);
    snprintf(cur.qb_dead, sizeof cur.qb_dead, "datasync.%s.dead", cur.node_b);
    cur.conn = itest_amqp_connect();
    drop_topology();
    cur.conf = write_conf("ds.conf", cur.node_a, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* A test that failed half-way leaves no consumer behind. */
    if (cur.consumer > 0) {
        kill(cur.consumer, SIGKILL);
        waitpid(cur.consumer, NULL, 0);
    }
    if (cur.conn) {
        drop_topology();
        itest_amqp_close(cur.conn);
    }
    free(cur.conf);
    free(cur.dir);
    memset(&cur, 0, sizeof cur);
    return 0;
}

/* setup for both nodes, which must work. */
static void setup_both(void)
{
    char nodes[160];
    run r;

    snprintf(nodes, sizeof nodes, "%s,%s", cur.node_a, cur.node_b);
    CLI(&r, NULL, "-c", cur.conf, "setup", "--nodes", nodes);
    expect(&r, 0, "ok", NULL);
    run_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Broker helpers                                                            */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* basic.get with ack, properties kept. */
static bool take(const char *queue, amqp_message_t *msg, int timeout_ms)
{
    for (int waited = 0;; waited += 20) {
        amqp_rpc_reply_t r = amqp_basic_get(cur.conn, ITEST_AMQP_CHANNEL,
                                            amqp_cstring_bytes(queue), 1);
        itest_amqp_check(r, "basic.get");
        if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
            itest_amqp_check(
                amqp_read_message(cur.conn, ITEST_AMQP_CHANNEL, msg, 0),
                "reading a message");
            return true;
        }
        if (waited >= timeout_ms)
            return false;
        sleep_ms(20);
    }
}

static char *bytes_str(amqp_bytes_t b)
{
    char *s = malloc(b.len + 1);

    assert_non_null(s);
    memcpy(s, b.bytes, b.len);
    s[b.len] = '\0';
    return s;
}

/* A UTF-8 header's value (malloc'd), or NULL. */
static char *header(const amqp_message_t *msg, const char *name)
{
    const amqp_basic_properties_t *p = &msg->properties;

    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len == strlen(name) &&
            memcmp(e->key.bytes, name, e->key.len) == 0 &&
            e->value.kind == AMQP_FIELD_KIND_UTF8)
            return bytes_str(e->value.value.bytes);
    }
    return NULL;
}

/* A string entry of an AMQP table (arguments, headers). */
static void table_str(amqp_table_entry_t *e, const char *key, const char *value)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = amqp_cstring_bytes(value);
}

/* What the consumer does with a change it cannot apply: the body and
 * properties to the dead-letter exchange, with the reason. Waits for the
 * confirm. */
static void publish_dead(const char *queue, const char *body,
                         const char *reason)
{
    amqp_table_entry_t h[2];
    amqp_basic_properties_t props;
    int acked = 0;

    table_str(&h[0], "x-datasync-error", reason);
    table_str(&h[1], "x-datasync-node", cur.node_a);
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                   AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG |
                   AMQP_BASIC_TIMESTAMP_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.timestamp = (uint64_t)time(NULL);
    props.headers.num_entries = 2;
    props.headers.entries = h;
    assert_int_equal(amqp_basic_publish(cur.conn, ITEST_AMQP_PUBLISH_CHANNEL,
                                        amqp_cstring_bytes(cur.dead_exchange),
                                        amqp_cstring_bytes(queue), 1, 0, &props,
                                        amqp_cstring_bytes(body)),
                     AMQP_STATUS_OK);
    while (!acked) {
        struct timeval tv = {10, 0};
        amqp_frame_t f;

        assert_int_equal(amqp_simple_wait_frame_noblock(cur.conn, &f, &tv),
                         AMQP_STATUS_OK);
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        assert_int_not_equal(f.payload.method.id, AMQP_BASIC_RETURN_METHOD);
        assert_int_not_equal(f.payload.method.id, AMQP_BASIC_NACK_METHOD);
        acked = f.payload.method.id == AMQP_BASIC_ACK_METHOD;
    }
    amqp_maybe_release_buffers(cur.conn);
}

/* An event line with a fixed id and version. */
static char *event_line(int n, const char *origin, uint64_t hlc, const char *op,
                        const char *table, const char *row)
{
    char *s = NULL;

    if (strcmp(op, "delete") == 0)
        assert_true(asprintf(&s,
                             "{\"v\":1,\"id\":\"0190a0b0-c0d0-7e0f-8a1b-"
                             "%012d\",\"origin\":\"%s\",\"hlc\":%llu,\"ts\":"
                             "\"2024-06-01T00:00:00.000Z\",\"op\":\"delete\","
                             "\"table\":\"%s\",\"key\":{\"id\":%d}}",
                             n, origin, (unsigned long long)hlc, table,
                             n % 1000) > 0);
    else
        assert_true(asprintf(&s,
                             "{\"v\":1,\"id\":\"0190a0b0-c0d0-7e0f-8a1b-"
                             "%012d\",\"origin\":\"%s\",\"hlc\":%llu,\"ts\":"
                             "\"2024-06-01T00:00:00.000Z\",\"op\":\"%s\","
                             "\"table\":\"%s\",\"key\":{\"id\":%d},"
                             "\"data\":%s}",
                             n, origin, (unsigned long long)hlc, op, table,
                             n % 1000, row) > 0);
    return s;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ------------------------------------------------------------------------ */
/* Help, version, usage, configuration                                       */

static void test_help_everywhere(void **state)
{
    static const char *const cmds[][3] = {
        {"--help", NULL, NULL},      {"-h", NULL, NULL},
        {"setup", "--help", NULL},   {"publish", "--help", NULL},
        {"replay", "-h", NULL},      {"dlq", "--help", NULL},
        {"dlq", "list", "--help"},   {"dlq", "export", "--help"},
        {"dlq", "replay", "--help"}, {"dlq", "purge", "--help"},
        {"status", "--help", NULL},  {"help", "publish", NULL},
    };
    run r;

    (void)state;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        /* A broken configuration must not stand in the way of --help. */
        setenv("DATASYNC_CONFIG", "/nonexistent/datasync.conf", 1);
        CLI(&r, NULL, cmds[i][0], cmds[i][1], cmds[i][2]);
        unsetenv("DATASYNC_CONFIG");
        expect(&r, 0, "Usage: datasync", NULL);
        assert_string_equal(r.err, "");
        run_free(&r);
    }
    CLI(&r, NULL, "--help");
    /* The exit-code table is in the program's help. */
    expect(&r, 0, "Exit status:", NULL);
    assert_non_null(strstr(r.out, "  6  partial"));
    run_free(&r);
    CLI(&r, NULL, "--version");
    expect(&r, 0, "datasync ", NULL);
    run_free(&r);
}

static void test_usage_errors(void **state)
{
    run r;

    (void)state;
    CLI(&r, NULL, "-c", cur.conf);
    expect(&r, EXIT_USAGE, NULL, "no command");
    run_free(&r);
    CLI(&r, NULL, "-c", cur.conf, "frobnicate");
    expect(&r, EXIT_USAGE, NULL, "unknown command 'frobnicate'");
    run_free(&r);
    CLI(&r, NULL, "-c", cur.conf, "publish", "--bogus");
    expect(&r, EXIT_USAGE, NULL, "unknown option --bogus");
    run_free(&r);
    CLI(&r, NULL, "-c", cur.conf, "replay", "--rate", "fast", "-");
    expect(&r, EXIT_USAGE, NULL, "--rate");
    run_free(&r);
    CLI(&r, NULL, "-c", cur.conf, "setup", "--nodes", "a,b/c");
    expect(&r, EXIT_USAGE, NULL, "'b/c' is not a valid node name");
    run_free(&r);
    CLI(&r, NULL, "-c", cur.conf, "dlq", "list", "--yes");
    expect(&r, EXIT_USAGE, NULL, "--yes");
    run_free(&r);
}

static void test_broken_config(void **state)
{
    char *bad = NULL, *want = NULL;
    run r;

    (void)state;
    assert_true(asprintf(&bad, "%s/bad.conf", cur.dir) > 0);
    write_file(bad, "[amqp]\n; fine\nprefetch = lots\n");
    assert_true(asprintf(&want, "%s:3: amqp.prefetch", bad) > 0);
    CLI(&r, NULL, "-c", bad, "status");
    expect(&r, EXIT_CONFIG, NULL, want);
    run_free(&r);
    /* DATASYNC_CONFIG names it just as well, for every command. */
    setenv("DATASYNC_CONFIG", bad, 1);
    CLI(&r, NULL, "publish", "--op", "delete", "--table", "t", "--key",
        "{\"id\":1}");
    unsetenv("DATASYNC_CONFIG");
    expect(&r, EXIT_CONFIG, NULL, want);
    run_free(&r);
    CLI(&r, NULL, "-c", "/nonexistent/ds.conf", "setup");
    expect(&r, EXIT_CONFIG, NULL, "/nonexistent/ds.conf");
    run_free(&r);
    free(bad);
    free(want);
}

static void test_unreachable_broker_named_without_password(void **state)
{
    char *conf = NULL;
    run r;

    (void)state;
    assert_true(asprintf(&conf, "%s/down.conf", cur.dir) > 0);
    write_file(conf, "[node]\nid = x\n[amqp]\n"
                     "url = amqp://guest:s3cret@127.0.0.1:1/%2f\n");
    CLI(&r, NULL, "-c", conf, "status");
    expect(&r, EXIT_BROKER, NULL, "amqp://guest:***@127.0.0.1:1/%2f");
    assert_null(strstr(r.err, "s3cret"));
    run_free(&r);
    CLI(&r, NULL, "-c", conf, "dlq", "list");
    expect(&r, EXIT_BROKER, NULL, "127.0.0.1:1");
    run_free(&r);
    free(conf);
}

/* What a person types gets a usage error or is understood, not an input
 * error; a URL without a vhost says how to name the default one. */
static void test_operator_slips(void **state)
{
    char *conf = NULL, *url = NULL;
    run r;

    (void)state;
    CLI(&r, NULL, "-c", cur.conf, "publish", "--table", "users", "--key",
        "{\"id\":1}");
    expect(&r, EXIT_USAGE, NULL, "--op is required");
    run_free(&r);
    CLI(&r, NULL, "-c", cur.conf, "publish", "--op", "delete", "--key",
        "{\"id\":1}");
    expect(&r, EXIT_USAGE, NULL, "--table is required");
    run_free(&r);
    CLI(&r, NULL, "-c", cur.conf, "setup", "--nodes", cur.node_a);
    run_free(&r);
    CLI(&r, NULL, "-c", cur.conf, "publish", "--op", "DELETE", "--table",
        "users", "--key", "{\"id\":1}");
    expect(&r, 0, "published 1", NULL);
    run_free(&r);

    /* "amqp://guest:guest@host:port/" names the vhost "", not "/". */
    url = strdup(itest_amqp_url());
    assert_non_null(url);
    char *slash = strrchr(url, '/');
    assert_non_null(slash);
    slash[1] = '\0';
    assert_true(asprintf(&conf, "%s/novhost.conf", cur.dir) > 0);
    char *text = NULL;
    assert_true(asprintf(&text, "[amqp]\nurl = %s\n", url) > 0);
    write_file(conf, text);
    CLI(&r, NULL, "-c", conf, "status", "--nodes", cur.node_a);
    expect(&r, EXIT_BROKER, NULL, "end it with /%2f");
    run_free(&r);
    free(text);
    free(conf);
    free(url);
}

/* ------------------------------------------------------------------------ */
/* setup                                                                     */

static void test_setup_twice_creates_queues(void **state)
{
    char nodes[160];
    run r;

    (void)state;
    assert_false(itest_queue_exists(cur.conn, cur.qa));
    snprintf(nodes, sizeof nodes, "%s,%s", cur.node_a, cur.node_b);
    for (int i = 0; i < 2; i++) {
        CLI(&r, NULL, "-c", cur.conf, "setup", "--nodes", nodes);
        expect(&r, 0, cur.qb_dead, NULL);
        run_free(&r);
    }
    assert_true(itest_queue_exists(cur.conn, cur.qa));
    assert_true(itest_queue_exists(cur.conn, cur.qa_dead));
    assert_true(itest_queue_exists(cur.conn, cur.qb));
    assert_true(itest_queue_exists(cur.conn, cur.qb_dead));
    /* Without --nodes: node.id. */
    itest_queue_delete(cur.conn, cur.qa);
    CLI(&r, NULL, "-c", cur.conf, "setup");
    expect(&r, 0, cur.qa, NULL);
    assert_null(strstr(r.out, cur.qb));
    run_free(&r);
    assert_true(itest_queue_exists(cur.conn, cur.qa));
    /* Bound: a change to the exchange reaches both queues. */
    itest_amqp_publish(cur.conn, cur.exchange, "data.sync", "{}", true);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa), 1);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qb), 1);
}

static void test_setup_queue_type_conflict(void **state)
{
    char *quorum =
        write_conf("quorum.conf", cur.node_a, "[amqp]\nqueue_type = quorum\n");
    char nodes[160];
    run r;

    (void)state;
    CLI(&r, NULL, "-c", cur.conf, "setup", "--nodes", cur.node_a);
    expect(&r, 0, NULL, NULL);
    run_free(&r);
    /* node_a's queues are classic: a quorum setup must say so clearly and
     * still set up node_b. */
    snprintf(nodes, sizeof nodes, "%s,%s", cur.node_a, cur.node_b);
    CLI(&r, NULL, "-c", quorum, "setup", "--nodes", nodes);
    expect(&r, EXIT_BROKER, NULL, "already exists with other arguments");
    assert_non_null(strstr(r.err, cur.node_a));
    assert_non_null(strstr(r.err, "queue_type"));
    assert_null(strstr(r.err, "PRECONDITION_FAILED - inequivalent"));
    run_free(&r);
    assert_true(itest_queue_exists(cur.conn, cur.qb));
    free(quorum);
}

/* Declares queue as a release before single active consumers did: type,
 * and for a node queue its dead-lettering. */
static void declare_as_before(const char *queue, const char *type,
                              bool node_queue)
{
    amqp_table_entry_t args[3];
    amqp_table_t table = {node_queue ? 3 : 1, args};

    table_str(&args[0], "x-queue-type", type);
    table_str(&args[1], "x-dead-letter-exchange", cur.dead_exchange);
    table_str(&args[2], "x-dead-letter-routing-key", queue);
    amqp_queue_declare(cur.conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(queue),
                       0, 1, 0, 0, table);
    itest_amqp_check(amqp_get_rpc_reply(cur.conn), "queue.declare");
}

/* Queues of an earlier release, classic and quorum, lack the single active
 * consumer: setup takes them as they are, binds them, and says ok. */
static void test_setup_takes_queues_of_earlier_releases(void **state)
{
    char *quorum =
        write_conf("quorum.conf", cur.node_b, "[amqp]\nqueue_type = quorum\n");
    run r;

    (void)state;
    declare_as_before(cur.qa, "classic", true);
    declare_as_before(cur.qa_dead, "classic", false);
    declare_as_before(cur.qb, "quorum", true);
    declare_as_before(cur.qb_dead, "quorum", false);
    CLI(&r, NULL, "-c", cur.conf, "setup", "--nodes", cur.node_a);
    expect(&r, 0, cur.qa, NULL);
    run_free(&r);
    CLI(&r, NULL, "-c", quorum, "setup", "--nodes", cur.node_b);
    expect(&r, 0, cur.qb, NULL);
    run_free(&r);
    itest_amqp_publish(cur.conn, cur.exchange, "data.sync", "{}", true);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa), 1);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qb), 1);
    free(quorum);
}

/* ------------------------------------------------------------------------ */
/* publish                                                                   */

static void test_publish_one_change_has_every_field(void **state)
{
    char err[DS_ERRMSG_SIZE];
    amqp_message_t msg;
    char *body, *v;
    ds_event ev;
    run r;

    (void)state;
    setup_both();
    CLI(&r, NULL, "-c", cur.conf, "publish", "--op", "update", "--table",
        "users", "--key", "{\"id\":42}", "--data",
        "{\"id\":42,\"name\":\"h\\u00e9\",\"n\":1.50}");
    expect(&r, 0, "published 1, spooled 0, skipped 0", NULL);
    run_free(&r);

    assert_true(take(cur.qa, &msg, 5000));
    body = bytes_str(msg.body);
    assert_int_equal(ds__event_parse(&ev, body, strlen(body), err, sizeof err),
                     0);
    assert_true(ds__valid_uuid(ev.id));
    assert_string_equal(ev.origin, cur.node_a);
    assert_true(ev.hlc > 0);
    assert_int_equal(ev.op, DS_OP_UPDATE);
    assert_string_equal(ev.table, "users");
    assert_string_equal(json_object_to_json_string(ev.key), "{ \"id\": 42 }");
    assert_non_null(strstr(body, "\"n\":1.50"));
    assert_non_null(strstr(body, "\"ts\":\""));
    /* The properties the producer gives every change. */
    v = bytes_str(msg.properties.message_id);
    assert_string_equal(v, ev.id);
    free(v);
    v = bytes_str(msg.properties.content_type);
    assert_string_equal(v, "application/json");
    free(v);
    assert_int_equal(msg.properties.delivery_mode, AMQP_DELIVERY_PERSISTENT);
    v = header(&msg, "x-origin");
    assert_non_null(v);
    assert_string_equal(v, cur.node_a);
    free(v);
    ds__event_clear(&ev);
    amqp_destroy_message(&msg);
    free(body);
    /* Every node got it. */
    assert_int_equal(itest_queue_depth(cur.conn, cur.qb), 1);

    /* Invalid options are input errors, and nothing is sent. */
    CLI(&r, NULL, "-c", cur.conf, "publish", "--op", "create", "--table",
        "users", "--key", "{\"id\":1}");
    expect(&r, EXIT_INPUT, NULL, "data: required");
    run_free(&r);
    CLI(&r, NULL, "-c", cur.conf, "publish", "--op", "create", "--table",
        "users", "--key", "{}", "--data", "{\"id\":1}");
    expect(&r, EXIT_INPUT, NULL, "key:");
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa), 0);
}

static const char *const good1 =
    "{\"op\":\"create\",\"table\":\"users\",\"key\":{\"id\":1},"
    "\"data\":{\"id\":1,\"name\":\"a\"}}\n";
static const char *const good2 = "{\"op\":\"delete\",\"table\":\"users\","
                                 "\"key\":{\"id\":2}}\n";

static char *mixed_input(void)
{
    char *path = NULL, *text = NULL,
         *event = event_line(7, "node-z", 99, "update", "users",
                             "{\"id\":7,\"name\":\"z\"}");

    /* Line 3 is blank, line 4 bad (a key with no member), line 5 an event. */
    assert_true(asprintf(&text,
                         "%s%s\n{\"op\":\"update\",\"table\":\"users\","
                         "\"key\":{},\"data\":{\"id\":3}}\n%s\n",
                         good1, good2, event) > 0);
    assert_true(asprintf(&path, "%s/mixed.jsonl", cur.dir) > 0);
    write_file(path, text);
    free(text);
    free(event);
    return path;
}

static void test_publish_bad_line_publishes_nothing(void **state)
{
    char *in = mixed_input();
    run r;

    (void)state;
    setup_both();
    CLI(&r, in, "-c", cur.conf, "publish", "-");
    expect(&r, EXIT_INPUT, NULL, "line 4: key");
    assert_null(strstr(r.err, "line 1:"));
    assert_null(strstr(r.err, "line 5:"));
    assert_non_null(strstr(r.err, "nothing published"));
    run_free(&r);
    /* The same from a file. */
    CLI(&r, NULL, "-c", cur.conf, "publish", in);
    expect(&r, EXIT_INPUT, NULL, "line 4: key");
    run_free(&r);
    sleep_ms(200);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa), 0);
    free(in);
}

static void test_publish_skip_invalid_publishes_the_rest(void **state)
{
    char *in = mixed_input();
    amqp_message_t msg;
    char *body;
    run r;

    (void)state;
    setup_both();
    CLI(&r, in, "-c", cur.conf, "publish", "--skip-invalid", "-");
    expect(&r, EXIT_PARTIAL, "published 3, spooled 0, skipped 1",
           "line 4: key");
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa), 3);
    /* In order; the event keeps its id, origin and version. */
    for (int i = 0; i < 3; i++) {
        assert_true(take(cur.qa, &msg, 1000));
        body = bytes_str(msg.body);
        if (i == 0)
            assert_non_null(strstr(body, "\"op\":\"create\""));
        if (i == 1)
            assert_non_null(strstr(body, "\"op\":\"delete\""));
        if (i == 2) {
            assert_non_null(strstr(
                body, "\"id\":\"0190a0b0-c0d0-7e0f-8a1b-000000000007\""));
            assert_non_null(strstr(body, "\"origin\":\"node-z\",\"hlc\":99,"));
        }
        free(body);
        amqp_destroy_message(&msg);
    }
    free(in);
}

/* ------------------------------------------------------------------------ */
/* replay                                                                    */

static char *events_file(const char *name, int n, const char *origin)
{
    char *path = NULL;
    FILE *f;

    assert_true(asprintf(&path, "%s/%s", cur.dir, name) > 0);
    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 1; i <= n; i++) {
        char row[64], *line;
        snprintf(row, sizeof row, "{\"id\":%d,\"name\":\"r%d\"}", i, i);
        line =
            event_line(i, origin, 1000u + (unsigned)i, "create", "users", row);
        fprintf(f, "%s\n", line);
        free(line);
    }
    assert_int_equal(fclose(f), 0);
    return path;
}

static void test_replay_to_one_node_keeps_ids(void **state)
{
    char *file = events_file("replay.jsonl", 50, "node-q");
    amqp_message_t msg;
    run r;

    (void)state;
    setup_both();
    CLI(&r, NULL, "-c", cur.conf, "replay", "--node", cur.node_b, file);
    expect(&r, 0, "confirmed 50", NULL);
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qb), 50);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa), 0);
    for (int i = 1; i <= 50; i++) {
        char want[128], *body, *id, *origin;

        assert_true(take(cur.qb, &msg, 1000));
        body = bytes_str(msg.body);
        snprintf(want, sizeof want,
                 "\"id\":\"0190a0b0-c0d0-7e0f-8a1b-%012d\",\"origin\":"
                 "\"node-q\",\"hlc\":%d,",
                 i, 1000 + i);
        assert_non_null(strstr(body, want));
        id = bytes_str(msg.properties.message_id);
        assert_non_null(strstr(want, id));
        origin = header(&msg, "x-origin");
        assert_non_null(origin);
        assert_string_equal(origin, "node-q");
        free(origin);
        free(id);
        free(body);
        amqp_destroy_message(&msg);
    }

    /* Rate-limited from standard input: 20 events at 40/s take >= 0.45 s. */
    {
        char *few = events_file("few.jsonl", 20, "node-q");
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CLI(&r, few, "-c", cur.conf, "replay", "--node", cur.node_b, "--rate",
            "40", "-");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        expect(&r, 0, "confirmed 20", NULL);
        run_free(&r);
        assert_true((t1.tv_sec - t0.tv_sec) * 1000 +
                        (t1.tv_nsec - t0.tv_nsec) / 1000000 >=
                    450);
        assert_int_equal(itest_queue_depth(cur.conn, cur.qb), 20);
        free(few);
    }

    /* Without --node: through the exchange to every node. */
    CLI(&r, NULL, "-c", cur.conf, "replay", file);
    expect(&r, 0, "published 50, spooled 0, skipped 0", NULL);
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa), 50);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qb), 70);

    /* A queue that does not exist: named, and nothing sent. */
    CLI(&r, NULL, "-c", cur.conf, "replay", "--node", "nobody-here", file);
    expect(&r, EXIT_NOTFOUND, NULL, "datasync.nobody-here");
    run_free(&r);
    free(file);
}

/* SIGINT stops the sending, not the waiting: what went out is confirmed
 * and counted, and the count matches the queue. */
static void test_replay_interrupted_is_summarised(void **state)
{
    char *file = events_file("slow.jsonl", 400, "node-q");
    unsigned long confirmed = 0;
    const char *at;
    run r;

    (void)state;
    setup_both();
    CLI_INTERRUPTED(&r, 800, "-c", cur.conf, "replay", "--node", cur.node_b,
                    "--rate", "100", file);
    expect(&r, 130, "confirmed ", "interrupted");
    at = strstr(r.out, "confirmed ");
    assert_int_equal(sscanf(at, "confirmed %lu", &confirmed), 1);
    assert_true(confirmed > 0 && confirmed < 400);
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qb), (long)confirmed);
    free(file);
}

static void test_replay_takes_only_whole_events(void **state)
{
    char *path = NULL;
    run r;

    (void)state;
    setup_both();
    assert_true(asprintf(&path, "%s/changes.jsonl", cur.dir) > 0);
    write_file(path, good1);
    CLI(&r, NULL, "-c", cur.conf, "replay", "--node", cur.node_a, path);
    expect(&r, EXIT_INPUT, NULL, "line 1: not a whole event");
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa), 0);
    free(path);
}

/* ------------------------------------------------------------------------ */
/* dlq                                                                       */

static void fill_dead_letters(int n)
{
    for (int i = 1; i <= n; i++) {
        char row[64], reason[64], *line;
        snprintf(row, sizeof row, "{\"id\":%d,\"name\":\"d%d\"}", 500 + i, i);
        snprintf(reason, sizeof reason, "unknown column 'col%d'", i);
        line = event_line(500 + i, "node-q", 5000u + (unsigned)i, "create",
                          "orders", row);
        publish_dead(cur.qa, line, reason);
        free(line);
    }
}

static void test_dlq_list_export_keep_dead_letters(void **state)
{
    json_object *list, *first, *v;
    char *file = NULL, *text;
    run r;

    (void)state;
    setup_both();
    fill_dead_letters(3);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 3);

    CLI(&r, NULL, "-c", cur.conf, "dlq", "list", "--node", cur.node_a);
    expect(&r, 0, "0190a0b0-c0d0-7e0f-8a1b-000000000501", NULL);
    assert_non_null(strstr(r.out, "unknown column 'col3'"));
    assert_non_null(strstr(r.out, "orders"));
    assert_non_null(strstr(r.out, "create"));
    assert_int_equal(count_lines(r.out), 4); /* a header and 3 rows */
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 3);

    /* node.id is the default node. */
    CLI(&r, NULL, "-c", cur.conf, "dlq", "list", "--json");
    expect(&r, 0, NULL, NULL);
    list = json_tokener_parse(r.out);
    assert_non_null(list);
    assert_int_equal(json_object_array_length(list), 3);
    first = json_object_array_get_idx(list, 0);
    assert_true(json_object_object_get_ex(first, "reason", &v));
    assert_string_equal(json_object_get_string(v), "unknown column 'col1'");
    assert_true(json_object_object_get_ex(first, "table", &v));
    assert_string_equal(json_object_get_string(v), "orders");
    assert_true(json_object_object_get_ex(first, "when", &v));
    assert_non_null(strchr(json_object_get_string(v), 'T'));
    json_object_put(list);
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 3);

    assert_true(asprintf(&file, "%s/dead.jsonl", cur.dir) > 0);
    CLI(&r, NULL, "-c", cur.conf, "dlq", "export", "--node", cur.node_a, file);
    expect(&r, 0, NULL, "3 dead letters");
    run_free(&r);
    text = slurp(file);
    assert_int_equal(count_lines(text), 3);
    for (int i = 1; i <= 3; i++) {
        char *line = NULL, row[64];
        snprintf(row, sizeof row, "{\"id\":%d,\"name\":\"d%d\"}", 500 + i, i);
        line = event_line(500 + i, "node-q", 5000u + (unsigned)i, "create",
                          "orders", row);
        assert_non_null(strstr(text, line));
        free(line);
    }
    free(text);
    /* To standard output too. */
    CLI(&r, NULL, "-c", cur.conf, "dlq", "export", "--node", cur.node_a);
    expect(&r, 0, "\"table\":\"orders\"", NULL);
    assert_int_equal(count_lines(r.out), 3);
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 3);
    free(file);
}

/* A pretty-printed dead letter is exported on one line, values intact; one
 * that is not JSON and spans lines is skipped with a warning. */
static void test_dlq_export_multiline_bodies(void **state)
{
    char *text;
    run r;

    (void)state;
    setup_both();
    publish_dead(cur.qa, "{\n  \"v\": 1,\r\n  \"n\": 18446744073709551615\n}",
                 "pretty");
    publish_dead(cur.qa, "not\njson", "garbage");
    /* Breaks inside a string (json-c reads them as they are): they are
     * the value's, and stay so, escaped. */
    publish_dead(cur.qa, "{\"v\": 1,\n \"s\": \"two\nlines\r\tand\x01\"}",
                 "raw-breaks");
    CLI(&r, NULL, "-c", cur.conf, "dlq", "export", "--node", cur.node_a);
    expect(&r, EXIT_PARTIAL, NULL, "not exported");
    text = r.out;
    assert_int_equal(count_lines(text), 2);
    assert_non_null(
        strstr(text, "{   \"v\": 1,    \"n\": 18446744073709551615 }"));
    if (!strstr(text, "{\"v\": 1,  \"s\": \"two\\nlines\\r\\tand\\u0001\"}\n"))
        fail_msg("the string's breaks are not kept escaped");
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 3);
}

static void test_dlq_replay_removes_only_after_confirm(void **state)
{
    amqp_message_t msg;
    char *v;
    run r;

    (void)state;
    setup_both();
    fill_dead_letters(4);
    CLI(&r, NULL, "-c", cur.conf, "dlq", "replay", "--node", cur.node_a);
    expect(&r, 0, "4 dead letters republished", NULL);
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 0);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa), 4);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qb), 0);
    assert_true(take(cur.qa, &msg, 1000));
    v = bytes_str(msg.body);
    assert_non_null(strstr(v, "0190a0b0-c0d0-7e0f-8a1b-000000000501"));
    free(v);
    /* The reason of its death is not carried back. */
    assert_null(header(&msg, "x-datasync-error"));
    assert_int_equal(msg.properties.delivery_mode, AMQP_DELIVERY_PERSISTENT);
    amqp_destroy_message(&msg);

    /* The node's queue is gone: nothing is taken from the dead letters. */
    fill_dead_letters(2);
    itest_queue_delete(cur.conn, cur.qa);
    CLI(&r, NULL, "-c", cur.conf, "dlq", "replay", "--node", cur.node_a);
    expect(&r, EXIT_NOTFOUND, NULL, cur.qa);
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 2);
}

static void test_dlq_purge_needs_yes(void **state)
{
    run r;

    (void)state;
    setup_both();
    fill_dead_letters(2);
    CLI(&r, NULL, "-c", cur.conf, "dlq", "purge", "--node", cur.node_a);
    expect(&r, EXIT_USAGE, NULL, "without --yes");
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 2);
    CLI(&r, NULL, "-c", cur.conf, "dlq", "purge", "--node", cur.node_a,
        "--yes");
    expect(&r, 0, "2 dead letters deleted", NULL);
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 0);

    /* --from: only the letters of an export; one that died since stays. */
    {
        char *file = NULL, *line;
        fill_dead_letters(2);
        assert_true(asprintf(&file, "%s/dead.jsonl", cur.dir) > 0);
        CLI(&r, NULL, "-c", cur.conf, "dlq", "export", "--node", cur.node_a,
            file);
        expect(&r, 0, NULL, "2 dead letters");
        run_free(&r);
        line = event_line(777, "node-q", 7000u, "delete", "orders",
                          "{\"id\":777}");
        publish_dead(cur.qa, line, "died after the export");
        free(line);
        /* One of the exported changes, replayed, died again: same id. */
        fill_dead_letters(1);
        CLI(&r, NULL, "-c", cur.conf, "dlq", "purge", "--node", cur.node_a,
            "--from", file, "--yes");
        expect(&r, 0, "2 dead letters of", NULL);
        assert_non_null(strstr(r.out, ", 2 kept"));
        run_free(&r);
        assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 2);
        CLI(&r, NULL, "-c", cur.conf, "dlq", "list", "--node", cur.node_a);
        expect(&r, 0, "0190a0b0-c0d0-7e0f-8a1b-000000000777", NULL);
        run_free(&r);
        CLI(&r, NULL, "-c", cur.conf, "dlq", "list", "--from", file);
        expect(&r, EXIT_USAGE, NULL, "unknown option --from");
        run_free(&r);
        free(file);
    }
    /* An unknown node's dead-letter queue is named. */
    CLI(&r, NULL, "-c", cur.conf, "dlq", "list", "--node", "nobody-here");
    expect(&r, EXIT_NOTFOUND, NULL, "datasync.nobody-here.dead");
    run_free(&r);
}

/* A node queue that takes 5 messages and nacks the rest (reject-publish),
 * standing in for a broker that refuses messages. */
static void declare_small_queue(const char *queue)
{
    amqp_table_entry_t args[2];
    amqp_table_t table = {2, args};

    args[0].key = amqp_cstring_bytes("x-max-length");
    args[0].value.kind = AMQP_FIELD_KIND_I64;
    args[0].value.value.i64 = 5;
    table_str(&args[1], "x-overflow", "reject-publish");
    amqp_queue_declare(cur.conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(queue),
                       0, 1, 0, 0, table);
    itest_amqp_check(amqp_get_rpc_reply(cur.conn), "queue.declare");
}

static void test_not_confirmed_is_partial(void **state)
{
    char *file = events_file("ten.jsonl", 10, "node-q");
    run r;

    (void)state;
    setup_both();
    itest_queue_delete(cur.conn, cur.qa);
    declare_small_queue(cur.qa);

    /* replay --node: the refused events are named, and the exit says so. */
    CLI(&r, NULL, "-c", cur.conf, "replay", "--node", cur.node_a, file);
    expect(&r, EXIT_PARTIAL, "confirmed 5, nacked 5", "line 6: event");
    assert_non_null(strstr(r.err, "line 10: event"));
    assert_null(strstr(r.err, "line 5: event"));
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa), 5);

    /* dlq replay into the full queue: every dead letter stays. */
    fill_dead_letters(3);
    CLI(&r, NULL, "-c", cur.conf, "dlq", "replay", "--node", cur.node_a);
    expect(&r, EXIT_PARTIAL, "0 dead letters republished", "stays in");
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 3);
    /* Room for two: two leave the dead-letter queue, one stays. */
    itest_queue_purge(cur.conn, cur.qa);
    for (int i = 0; i < 3; i++)
        itest_amqp_publish(cur.conn, "", cur.qa, "{}", true);
    CLI(&r, NULL, "-c", cur.conf, "dlq", "replay", "--node", cur.node_a);
    expect(&r, EXIT_PARTIAL, "2 dead letters republished", NULL);
    assert_non_null(strstr(r.out, "1 kept"));
    run_free(&r);
    assert_int_equal(itest_queue_depth(cur.conn, cur.qa_dead), 1);
    free(file);
}

/* ------------------------------------------------------------------------ */
/* status                                                                    */

static void test_status_depths_and_consumers(void **state)
{
    amqp_connection_state_t other;
    json_object *root, *nodes, *n0, *n1, *v;
    char nodes_arg[160];
    run r;

    (void)state;
    setup_both();
    snprintf(nodes_arg, sizeof nodes_arg, "%s,%s", cur.node_a, cur.node_b);
    itest_amqp_publish(cur.conn, cur.exchange, "data.sync", "{}", true);
    itest_amqp_publish(cur.conn, cur.exchange, "data.sync", "{}", true);
    fill_dead_letters(1);
    /* Someone consumes node_b's queue (and takes its two messages). */
    other = itest_amqp_connect();
    amqp_basic_consume(other, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(cur.qb),
                       amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    itest_amqp_check(amqp_get_rpc_reply(other), "basic.consume");

    CLI(&r, NULL, "-c", cur.conf, "status", "--nodes", nodes_arg);
    expect(&r, EXIT_WARN, "n/a (needs the management API)", NULL);
    assert_non_null(strstr(r.out, cur.qa));
    assert_non_null(strstr(r.err, "no consumer on"));
    assert_non_null(strstr(r.err, cur.node_a));
    assert_null(strstr(r.err, cur.node_b));
    run_free(&r);
    /* Nothing to say about node_b: a check that passes. */
    CLI(&r, NULL, "-c", cur.conf, "status", "--nodes", cur.node_b);
    expect(&r, 0, NULL, NULL);
    run_free(&r);

    CLI(&r, NULL, "-c", cur.conf, "status", "--nodes", nodes_arg, "--json");
    expect(&r, EXIT_WARN, NULL, NULL);
    root = json_tokener_parse(r.out);
    assert_non_null(root);
    assert_true(json_object_object_get_ex(root, "nodes", &nodes));
    n0 = json_object_array_get_idx(nodes, 0);
    n1 = json_object_array_get_idx(nodes, 1);
    assert_true(json_object_object_get_ex(n0, "ready", &v));
    assert_int_equal(json_object_get_int(v), 2);
    assert_true(json_object_object_get_ex(n0, "consumers", &v));
    assert_int_equal(json_object_get_int(v), 0);
    assert_true(json_object_object_get_ex(n0, "dead_letters", &v));
    assert_int_equal(json_object_get_int(v), 1);
    assert_true(json_object_object_get_ex(n0, "unacked", &v));
    assert_null(v);
    assert_true(json_object_object_get_ex(n0, "warning", &v));
    assert_non_null(strstr(json_object_get_string(v), "no consumer"));
    assert_true(json_object_object_get_ex(n1, "consumers", &v));
    assert_int_equal(json_object_get_int(v), 1);
    assert_true(json_object_object_get_ex(n1, "warning", &v));
    assert_null(v);
    json_object_put(root);
    run_free(&r);
    itest_amqp_close(other);

    /* A node that was never set up. */
    CLI(&r, NULL, "-c", cur.conf, "status", "--nodes", "nobody-here");
    expect(&r, EXIT_NOTFOUND, NULL, "datasync.nobody-here");
    run_free(&r);
}

/* A configuration whose broker is never there (port 1), spooling to
 * spool: its path. */
static char *down_conf(const char *spool)
{
    char *text = NULL, *path = NULL;

    assert_true(asprintf(&text,
                         "[node]\nid = %s\n[amqp]\nurl = "
                         "amqp://guest:guest@127.0.0.1:1/%%2f\nexchange = %s\n"
                         "[producer]\nspool_dir = %s\nconfirm_timeout_ms = "
                         "500\n",
                         cur.node_a, cur.exchange, spool) > 0);
    assert_true(asprintf(&path, "%s/down.conf", cur.dir) > 0);
    write_file(path, text);
    free(text);
    return path;
}

/* An application that cannot reach the broker leaves its changes in the
 * spool: status on that server says how much waits, and why. */
static void test_status_shows_the_spool(void **state)
{
    char *down = NULL, *up = NULL, *text = NULL, *spool = NULL;
    run r;

    (void)state;
    setup_both();
    assert_true(asprintf(&spool, "%s/spool-shared", cur.dir) > 0);
    down = down_conf(spool);
    CLI(&r, NULL, "-c", down, "publish", "--op", "delete", "--table", "users",
        "--key", "{\"id\":1}");
    expect(&r, EXIT_PARTIAL, "spooled 1", NULL);
    run_free(&r);

    assert_true(asprintf(&text,
                         "[node]\nid = %s\n[amqp]\nurl = %s\nexchange = %s\n"
                         "[producer]\nspool_dir = %s\n",
                         cur.node_b, itest_amqp_url(), cur.exchange,
                         spool) > 0);
    assert_true(asprintf(&up, "%s/up.conf", cur.dir) > 0);
    write_file(up, text);
    CLI(&r, NULL, "-c", up, "status", "--nodes", cur.node_b, "--json");
    expect(&r, EXIT_WARN, "\"spool\"", "bytes of changes not yet published");
    assert_non_null(strstr(r.err, "cannot connect to 127.0.0.1:1"));
    run_free(&r);
    free(text);
    free(up);
    free(down);
    free(spool);
}

/* The largest file in dir: the spool's head segment. */
static off_t largest_file(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    off_t max = 0;

    assert_non_null(d);
    while ((de = readdir(d))) {
        struct stat sb;
        char *path = NULL;
        assert_true(asprintf(&path, "%s/%s", dir, de->d_name) > 0);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > max)
            max = sb.st_size;
        free(path);
    }
    closedir(d);
    return max;
}

/* Changes neither the broker nor the spool took are lost: publish counts
 * them as lost, not as spooled, and fails. */
static void test_publish_tells_lost_changes(void **state)
{
    char *down = NULL, *spool = NULL;
    char *many = events_file("many.jsonl", 100, cur.node_a);
    char *few = NULL;
    FILE *f;
    run r;

    (void)state;
    assert_true(asprintf(&spool, "%s/spool-full", cur.dir) > 0);
    down = down_conf(spool);
    CLI(&r, NULL, "-c", down, "publish", many);
    expect(&r, EXIT_PARTIAL, "published 0, spooled 100", "kept in the spool");
    run_free(&r);

    /* The spool's files may not grow: the next changes have nowhere to go. */
    assert_true(asprintf(&few, "%s/few.jsonl", cur.dir) > 0);
    f = fopen(few, "w");
    assert_non_null(f);
    for (int i = 1; i <= 3; i++)
        fprintf(f,
                "{\"op\":\"delete\",\"table\":\"users\",\"key\":{\"id\":"
                "%d}}\n",
                i);
    assert_int_equal(fclose(f), 0);
    child_file_limit = (rlim_t)largest_file(spool);
    assert_true(child_file_limit > 4096); /* above the command's own output */
    CLI(&r, NULL, "-c", down, "publish", few);
    child_file_limit = 0;
    expect(&r, 1, "published 0, spooled 0, skipped 0, lost 3",
           "3 changes were lost");
    if (strstr(r.err, "kept in the spool"))
        fail_msg("lost changes are said to be kept in the spool");
    run_free(&r);

    /* One change, sync: the same. */
    child_file_limit = (rlim_t)largest_file(spool);
    CLI(&r, NULL, "-c", down, "publish", "--op", "delete", "--table", "users",
        "--key", "{\"id\":1}");
    child_file_limit = 0;
    expect(&r, 1, "published 0, spooled 0, skipped 0, lost 1", "change lost: ");
    if (strstr(r.out, "spooled 1") || strstr(r.err, "kept in the spool"))
        fail_msg("a lost change is said to be spooled");
    run_free(&r);

    free(down);
    free(spool);
    free(many);
    free(few);
}

/* ------------------------------------------------------------------------ */
/* End to end, with datasync-consumer                                        */

static char *consumer_bin(void)
{
    char *bin = NULL;

    assert_true(asprintf(&bin, "%s/datasync-consumer", itest_build_dir()) > 0);
    return bin;
}

/* Skips (never fails) only when the consumer is not built. */
static bool consumer_missing(void)
{
    char *bin = consumer_bin();
    bool missing = access(bin, X_OK) != 0;

    if (missing)
        printf("  SKIP: %s is not built: the end-to-end test needs "
               "datasync-consumer\n",
               bin);
    free(bin);
    return missing;
}

static pid_t consumer_start(const char *conf)
{
    char *bin = consumer_bin(), *log = itest_path("consumer-%d.log", test_no);
    pid_t pid;

    fflush(stdout);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        execl(bin, bin, "-c", conf, (char *)NULL);
        _exit(127);
    }
    printf("  consumer %d started, log %s\n", (int)pid, log);
    cur.consumer = pid;
    free(bin);
    free(log);
    return pid;
}

static void consumer_stop(pid_t pid)
{
    int st = 0;

    kill(pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            cur.consumer = 0;
            assert_true(WIFEXITED(st));
            assert_int_equal(WEXITSTATUS(st), 0);
            return;
        }
        sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    cur.consumer = 0;
    fail_msg("datasync-consumer did not stop within 15 s of SIGTERM");
}

/* Waits until the consumer of queue is attached (it declares the topology,
 * so the queue may not exist yet either). */
static void wait_consumer(pid_t pid, const char *queue)
{
    for (int i = 0; i < 300; i++) {
        amqp_queue_declare_ok_t *ok;
        int st;

        if (waitpid(pid, &st, WNOHANG) == pid) {
            cur.consumer = 0;
            fail_msg("datasync-consumer exited (status %d) before consuming",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        }
        if (itest_queue_exists(cur.conn, queue)) {
            ok = amqp_queue_declare(cur.conn, ITEST_AMQP_CHANNEL,
                                    amqp_cstring_bytes(queue), 1, 0, 0, 0,
                                    amqp_empty_table);
            itest_amqp_check(amqp_get_rpc_reply(cur.conn), "queue.declare");
            if (ok->consumer_count > 0)
                return;
        }
        sleep_ms(50);
    }
    fail_msg("no consumer on %s after 15 s", queue);
}

static void wait_depth(const char *queue, long depth)
{
    for (int i = 0; i < 300; i++) {
        if (itest_queue_depth(cur.conn, queue) == depth)
            return;
        sleep_ms(50);
    }
    fail_msg("%s does not hold %ld messages after 15 s (it holds %ld)", queue,
             depth, itest_queue_depth(cur.conn, queue));
}

/* Waits until sql returns want (NULL: no row or SQL NULL). */
static void wait_scalar(MYSQL *db, const char *sql, const char *want)
{
    char *got = NULL;

    for (int i = 0; i < 300; i++) {
        free(got);
        got = itest_mysql_scalar(db, sql);
        if ((!got && !want) || (got && want && strcmp(got, want) == 0)) {
            free(got);
            return;
        }
        sleep_ms(50);
    }
    fail_msg("%s gives %s after 15 s, expected %s", sql, got ? got : "NULL",
             want ? want : "NULL");
}

static char *consumer_conf(const char *name, const char *node,
                           const char *database, const char *tables)
{
    char extra[1024];

    snprintf(extra, sizeof extra,
             "[mysql]\nhost = 127.0.0.1\nport = %d\nuser = root\n"
             "database = %s\n[apply]\ntables = %s\nbatch_wait_ms = 5\n"
             "[log]\nlevel = debug\n",
             itest_mysql_port(), database, tables);
    return write_conf(name, node, extra);
}

static void test_e2e_dead_letter_fixed_then_replayed_converges(void **state)
{
    const char *db_name = "dscli_e2e_dead";
    char *consumer, *file = NULL;
    MYSQL *db;
    pid_t pid;
    run r;

    (void)state;
    if (consumer_missing()) {
        skip();
        return;
    }
    itest_create_database(db_name);
    db = itest_mysql_connect(db_name);
    itest_mysql_exec(db, "CREATE TABLE users (id INT PRIMARY KEY, "
                         "name VARCHAR(64) NOT NULL) ENGINE=InnoDB");
    consumer = consumer_conf("consumer.conf", cur.node_a, db_name, "users");
    /* The CLI's changes come from another server: the consumer applies
     * them (its own it would only record). */
    free(cur.conf);
    cur.conf = write_conf("cli.conf", "cli-source", NULL);
    setup_both();
    pid = consumer_start(consumer);
    wait_consumer(pid, cur.qa);

    /* A column the table does not have yet: dead-lettered. */
    CLI(&r, NULL, "-c", cur.conf, "publish", "--op", "create", "--table",
        "users", "--key", "{\"id\":1}", "--data",
        "{\"id\":1,\"name\":\"ann\",\"email\":\"ann@example.org\"}");
    expect(&r, 0, "published 1", NULL);
    run_free(&r);
    wait_depth(cur.qa_dead, 1);
    CLI(&r, NULL, "-c", cur.conf, "dlq", "list", "--node", cur.node_a);
    expect(&r, 0, "users", NULL);
    run_free(&r);

    /* Fixed, exported, replayed to that node alone: it converges. */
    itest_mysql_exec(db, "ALTER TABLE users ADD COLUMN email VARCHAR(64)");
    assert_true(asprintf(&file, "%s/dead.jsonl", cur.dir) > 0);
    CLI(&r, NULL, "-c", cur.conf, "dlq", "export", "--node", cur.node_a, file);
    expect(&r, 0, NULL, "1 dead letter ");
    run_free(&r);
    CLI(&r, NULL, "-c", cur.conf, "replay", "--node", cur.node_a, file);
    expect(&r, 0, "confirmed 1", NULL);
    run_free(&r);
    wait_scalar(db, "SELECT email FROM users WHERE id = 1", "ann@example.org");
    CLI(&r, NULL, "-c", cur.conf, "dlq", "purge", "--node", cur.node_a,
        "--yes");
    expect(&r, 0, "1 dead letter deleted", NULL);
    run_free(&r);

    /* The same through dlq replay. */
    CLI(&r, NULL, "-c", cur.conf, "publish", "--op", "update", "--table",
        "users", "--key", "{\"id\":1}", "--data",
        "{\"id\":1,\"name\":\"ann\",\"email\":\"ann@example.org\","
        "\"phone\":\"555\"}");
    expect(&r, 0, "published 1", NULL);
    run_free(&r);
    wait_depth(cur.qa_dead, 1);
    itest_mysql_exec(db, "ALTER TABLE users ADD COLUMN phone VARCHAR(16)");
    CLI(&r, NULL, "-c", cur.conf, "dlq", "replay", "--node", cur.node_a);
    expect(&r, 0, "1 dead letter republished", NULL);
    run_free(&r);
    wait_scalar(db, "SELECT phone FROM users WHERE id = 1", "555");
    wait_depth(cur.qa_dead, 0);

    consumer_stop(pid);
    mysql_close(db);
    free(consumer);
    free(file);
}

/* Every row of items, in key order, as one string. */
static char *snapshot(MYSQL *db)
{
    return itest_mysql_scalar(
        db, "SELECT GROUP_CONCAT(CONCAT_WS(':', id, name, IFNULL(qty, 'null')) "
            "ORDER BY id SEPARATOR ',') FROM items WHERE id < 900");
}

static void test_e2e_replay_twice_leaves_identical_rows(void **state)
{
    const char *db_name = "dscli_e2e_twice";
    char *consumer, *file = NULL, *s1 = NULL, *s2 = NULL, *sentinel = NULL;
    MYSQL *db;
    FILE *f;
    pid_t pid;
    run r;

    (void)state;
    if (consumer_missing()) {
        skip();
        return;
    }
    itest_create_database(db_name);
    db = itest_mysql_connect(db_name);
    itest_mysql_exec(db, "CREATE TABLE items (id INT PRIMARY KEY, "
                         "name VARCHAR(64) NOT NULL, qty INT) ENGINE=InnoDB");
    consumer = consumer_conf("consumer.conf", cur.node_b, db_name, "items");
    setup_both();
    pid = consumer_start(consumer);
    wait_consumer(pid, cur.qb);

    /* Creates, updates, deletes, from two other servers, out of order. */
    assert_true(asprintf(&file, "%s/history.jsonl", cur.dir) > 0);
    f = fopen(file, "w");
    assert_non_null(f);
    for (int i = 1; i <= 30; i++) {
        char row[96], *line;
        snprintf(row, sizeof row, "{\"id\":%d,\"name\":\"n%d\",\"qty\":%d}", i,
                 i, i);
        line = event_line(i, "origin-x", 10000u + (unsigned)i, "create",
                          "items", row);
        fprintf(f, "%s\n", line);
        free(line);
    }
    for (int i = 1; i <= 30; i += 3) {
        char row[96], *line;
        snprintf(row, sizeof row, "{\"id\":%d,\"name\":\"u%d\",\"qty\":null}",
                 i, i);
        /* Older than the create for odd ids: superseded. */
        line = event_line(1000 + i, "origin-y",
                          (i % 2 ? 5000u : 20000u) + (unsigned)i, "update",
                          "items", row);
        fprintf(f, "%s\n", line);
        free(line);
    }
    for (int i = 2; i <= 30; i += 7) {
        char *line = event_line(2000 + i, "origin-y", 30000u + (unsigned)i,
                                "delete", "items", NULL);
        fprintf(f, "%s\n", line);
        free(line);
    }
    assert_int_equal(fclose(f), 0);

    assert_true(asprintf(&sentinel, "%s/sentinel.jsonl", cur.dir) > 0);
    for (int round = 0; round < 2; round++) {
        char *line, row[64], sql[96], want[16];

        CLI(&r, NULL, "-c", cur.conf, "replay", "--node", cur.node_b, file);
        expect(&r, 0, "confirmed 45", NULL);
        run_free(&r);
        /* One queue, in order: once a later change is applied, every
         * replayed one was handled. */
        snprintf(row, sizeof row, "{\"id\":%d,\"name\":\"s\",\"qty\":1}",
                 900 + round);
        line = event_line(900 + round, "origin-s", 90000u + (unsigned)round,
                          "create", "items", row);
        write_file(sentinel, line);
        free(line);
        CLI(&r, NULL, "-c", cur.conf, "replay", "--node", cur.node_b, sentinel);
        expect(&r, 0, "confirmed 1", NULL);
        run_free(&r);
        snprintf(sql, sizeof sql, "SELECT name FROM items WHERE id = %d",
                 900 + round);
        snprintf(want, sizeof want, "s");
        wait_scalar(db, sql, want);
        if (round == 0) {
            /* A write of this server's own, which no replayed change may
             * undo: the second replay must write nothing at all. */
            itest_mysql_exec(db, "UPDATE items SET qty = 777 WHERE id = 3");
            s1 = snapshot(db);
        } else {
            s2 = snapshot(db);
        }
    }
    assert_non_null(s1);
    assert_non_null(s2);
    printf("  rows after one replay:  %s\n  rows after two replays: %s\n", s1,
           s2);
    assert_string_equal(s1, s2);
    /* And they are what the versions say: id 4 updated (newer), id 1 not
     * (its update was older), id 2 deleted. */
    assert_non_null(strstr(s1, "4:u4:null"));
    assert_non_null(strstr(s1, "1:n1:1,3:n3:777,"));
    assert_null(strstr(s1, ",2:"));
    assert_int_equal(itest_queue_depth(cur.conn, cur.qb_dead), 0);

    consumer_stop(pid);
    mysql_close(db);
    free(consumer);
    free(file);
    free(sentinel);
    free(s1);
    free(s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_help_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_slips, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_unreachable_broker_named_without_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setup_twice_creates_queues, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_setup_queue_type_conflict, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_setup_takes_queues_of_earlier_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_one_change_has_every_field,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_bad_line_publishes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_publish_skip_invalid_publishes_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_to_one_node_keeps_ids,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_interrupted_is_summarised,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_takes_only_whole_events,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlq_list_export_keep_dead_letters,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlq_export_multiline_bodies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_dlq_replay_removes_only_after_confirm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlq_purge_needs_yes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_not_confirmed_is_partial, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_publish_tells_lost_changes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_status_shows_the_spool, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_status_depths_and_consumers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_e2e_dead_letter_fixed_then_replayed_converges, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_e2e_replay_twice_leaves_identical_rows, setup, teardown),
    };

    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
