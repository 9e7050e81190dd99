/* itest.c: helpers for tests against the private RabbitMQ and MariaDB. */
#include "itest.h"
#include "support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Every timeout a helper applies to one server call. */
#define ITEST_IO_TIMEOUT_S 10

/* cmocka's fail_msg() wants a literal format; this formats first. Failing
 * longjmps out of the test, but cmocka does not declare _fail noreturn, so
 * callers still return a value after it. */
static void itest_failf(const char *fmt, ...) ITEST_PRINTF(1, 2);

static void itest_failf(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fail_msg("itest: %s", msg);
}

static void *itest_checked(void *p)
{
    if (p == NULL)
        itest_failf("out of memory");
    return p;
}

/* ------------------------------------------------------------ environment */

const char *itest_env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || *v == '\0') {
        itest_failf("%s is not set: run integration tests through tests/run.sh "
                    "(make test), which starts the services and sets it",
                    name);
        return "";
    }
    return v;
}

static int itest_env_port(const char *name)
{
    const char *v = itest_env(name);
    char *end;
    long port = strtol(v, &end, 10);

    if (*end != '\0' || port <= 0 || port > 65535)
        itest_failf("%s=%s is not a port", name, v);
    return (int)port;
}

const char *itest_rundir(void)
{
    return itest_env("DS_TEST_RUNDIR");
}

const char *itest_amqp_url(void)
{
    return itest_env("DS_TEST_AMQP_URL");
}

int itest_amqp_port(void)
{
    return itest_env_port("DS_TEST_AMQP_PORT");
}

const char *itest_mysql_host(void)
{
    return itest_env("DS_TEST_MYSQL_HOST");
}

int itest_mysql_port(void)
{
    return itest_env_port("DS_TEST_MYSQL_PORT");
}

const char *itest_mysql_socket(void)
{
    return itest_env("DS_TEST_MYSQL_SOCKET");
}

const char *itest_build_dir(void)
{
    return itest_env("DS_TEST_BUILD");
}

const char *itest_root(void)
{
    return itest_env("DS_TEST_ROOT");
}

char *itest_path(const char *fmt, ...)
{
    char *rel = NULL, *path = NULL;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&rel, fmt, ap);
    va_end(ap);
    if (n < 0)
        return itest_checked(NULL);
    n = asprintf(&path, "%s/%s", itest_rundir(), rel);
    free(rel);
    if (n < 0)
        return itest_checked(NULL);
    return path;
}

char *itest_mkdtemp(const char *name)
{
    char *path = itest_path("%s.XXXXXX", name);

    if (mkdtemp(path) == NULL)
        itest_failf("mkdtemp %s: %s", path, strerror(errno));
    return path;
}

/* --------------------------------------------------------------- services */

int itest_service(const char *which, const char *action)
{
    const char *script = itest_env("DS_TEST_SERVICES");
    long long t0 = ts_now_ms();
    int status;
    pid_t pid;

    printf("itest: services.sh %s %s\n", which, action);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "itest: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        execl(script, script, which, action, (char *)NULL);
        fprintf(stderr, "itest: exec %s: %s\n", script, strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "itest: waitpid: %s\n", strerror(errno));
            return -1;
        }
    }
    if (!WIFEXITED(status)) {
        fprintf(stderr, "itest: services.sh %s %s died of signal %d\n", which,
                action, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return -1;
    }
    printf("itest: services.sh %s %s: exit %d after %lld ms\n", which, action,
           WEXITSTATUS(status), ts_now_ms() - t0);
    fflush(stdout);
    return WEXITSTATUS(status);
}

/* ---------------------------------------------------------------- MariaDB */

MYSQL *itest_mysql_connect(const char *database)
{
    const char *host = itest_mysql_host();
    int port = itest_mysql_port();
    char err[512];
    /* 120 s for each read and write: a slow DDL on a loaded CI machine. */
    MYSQL *db = ts_mysql_open(host, port, database, ITEST_IO_TIMEOUT_S, 120, 0,
                              err, sizeof err);

    if (db == NULL)
        itest_failf("connect to MariaDB %s:%d%s%s: %s", host, port,
                    database ? " database " : "", database ? database : "",
                    err);
    return db;
}

static void itest_mysql_run(MYSQL *db, const char *sql)
{
    if (mysql_real_query(db, sql, strlen(sql)) != 0)
        itest_failf("MariaDB error %u (%s): %s\n  in: %s", mysql_errno(db),
                    mysql_sqlstate(db), mysql_error(db), sql);
}

void itest_mysql_exec(MYSQL *db, const char *fmt, ...)
{
    char *sql = NULL;
    MYSQL_RES *res;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&sql, fmt, ap);
    va_end(ap);
    if (n < 0)
        itest_failf("out of memory");
    /* On failure the message names the SQL, then longjmps: sql leaks, which
     * is fine in a test that is failing anyway. */
    itest_mysql_run(db, sql);
    res = mysql_store_result(db);
    if (res != NULL)
        mysql_free_result(res);
    else if (mysql_field_count(db) != 0)
        itest_failf("MariaDB error %u reading the result: %s\n  in: %s",
                    mysql_errno(db), mysql_error(db), sql);
    free(sql);
}

char *itest_mysql_scalar(MYSQL *db, const char *sql)
{
    MYSQL_RES *res;
    MYSQL_ROW row;
    unsigned long *len;
    char *v = NULL;

    itest_mysql_run(db, sql);
    res = mysql_store_result(db);
    if (res == NULL) {
        itest_failf("no result set (error %u: %s)\n  from: %s", mysql_errno(db),
                    mysql_error(db), sql);
        return NULL;
    }
    row = mysql_fetch_row(res);
    if (row != NULL && row[0] != NULL) {
        len = mysql_fetch_lengths(res);
        v = malloc(len[0] + 1);
        if (v != NULL) {
            memcpy(v, row[0], len[0]);
            v[len[0]] = '\0';
        }
    }
    mysql_free_result(res);
    if (row != NULL && row[0] != NULL)
        itest_checked(v);
    return v;
}

long long itest_mysql_count(MYSQL *db, const char *sql)
{
    char *v = itest_mysql_scalar(db, sql);
    char *end;
    long long n;

    if (v == NULL) {
        itest_failf("NULL or no row where a number was expected\n  from: %s",
                    sql);
        return -1;
    }
    n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0')
        itest_failf("'%s' is not an integer\n  from: %s", v, sql);
    free(v);
    return n;
}

void itest_create_database(const char *name)
{
    MYSQL *db = itest_mysql_connect(NULL);

    itest_mysql_exec(db, "DROP DATABASE IF EXISTS `%s`", name);
    itest_mysql_exec(db, "CREATE DATABASE `%s` CHARACTER SET utf8mb4", name);
    mysql_close(db);
}

/* --------------------------------------------------------------- RabbitMQ */

static void itest_bytes_text(char *out, size_t outlen, amqp_bytes_t b)
{
    snprintf(out, outlen, "%.*s", (int)b.len, (const char *)b.bytes);
}

void itest_amqp_check(amqp_rpc_reply_t r, const char *what)
{
    char text[512];

    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return;
    case AMQP_RESPONSE_NONE:
        itest_failf("%s: no RPC reply", what);
        return;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        itest_failf("%s: %s", what, amqp_error_string2(r.library_error));
        return;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            itest_bytes_text(text, sizeof text, m->reply_text);
            itest_failf("%s: broker closed the connection: %u %s", what,
                        m->reply_code, text);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            itest_bytes_text(text, sizeof text, m->reply_text);
            itest_failf("%s: broker closed the channel: %u %s", what,
                        m->reply_code, text);
        } else {
            itest_failf("%s: unexpected server method 0x%08x", what,
                        (unsigned)r.reply.id);
        }
        return;
    }
    itest_failf("%s: unknown reply type %d", what, (int)r.reply_type);
}

static void itest_amqp_status(int status, const char *what)
{
    if (status != AMQP_STATUS_OK)
        itest_failf("%s: %s", what, amqp_error_string2(status));
}

amqp_connection_state_t itest_amqp_connect(void)
{
    struct timeval tv = {ITEST_IO_TIMEOUT_S, 0};
    struct amqp_connection_info ci;
    amqp_connection_state_t conn;
    amqp_socket_t *sock;
    char *url = itest_checked(strdup(itest_amqp_url()));
    int st;

    amqp_default_connection_info(&ci);
    st = amqp_parse_url(url, &ci);
    if (st != AMQP_STATUS_OK)
        itest_failf("bad DS_TEST_AMQP_URL %s", itest_amqp_url());
    conn = itest_checked(amqp_new_connection());
    sock = amqp_tcp_socket_new(conn);
    if (sock == NULL)
        itest_failf("amqp_tcp_socket_new failed");
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &tv);
    st = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
    if (st != AMQP_STATUS_OK) {
        amqp_destroy_connection(conn);
        itest_failf("connect to RabbitMQ %s:%d: %s", ci.host, ci.port,
                    amqp_error_string2(st));
        free(url);
        return NULL;
    }
    itest_amqp_check(amqp_login(conn, ci.vhost, 0, 131072, 0,
                                AMQP_SASL_METHOD_PLAIN, ci.user, ci.password),
                     "login");
    free(url);
    amqp_channel_open(conn, ITEST_AMQP_CHANNEL);
    itest_amqp_check(amqp_get_rpc_reply(conn), "channel.open 1");
    amqp_channel_open(conn, ITEST_AMQP_PUBLISH_CHANNEL);
    itest_amqp_check(amqp_get_rpc_reply(conn), "channel.open 2");
    amqp_confirm_select(conn, ITEST_AMQP_PUBLISH_CHANNEL);
    itest_amqp_check(amqp_get_rpc_reply(conn), "confirm.select");
    return conn;
}

void itest_amqp_close(amqp_connection_state_t conn)
{
    if (conn == NULL)
        return;
    /* connection.close alone closes every channel, also one the broker
     * already closed (closing that again would wait for a close-ok that
     * never comes). Errors are expected after a stop or kill. */
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

void itest_queue_declare_bound(amqp_connection_state_t conn, const char *queue,
                               const char *exchange, const char *routing_key)
{
    amqp_table_entry_t type = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8,
                  .value = {.bytes = amqp_cstring_bytes("classic")}}};
    amqp_table_t args = {1, &type};

    amqp_exchange_declare(
        conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(exchange),
        amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
    itest_amqp_check(amqp_get_rpc_reply(conn), "exchange.declare");
    amqp_queue_declare(conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(queue), 0,
                       1, 0, 0, args);
    itest_amqp_check(amqp_get_rpc_reply(conn), "queue.declare");
    amqp_queue_bind(conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(queue),
                    amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(routing_key), amqp_empty_table);
    itest_amqp_check(amqp_get_rpc_reply(conn), "queue.bind");
}

void itest_queue_purge(amqp_connection_state_t conn, const char *queue)
{
    amqp_queue_purge(conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(queue));
    itest_amqp_check(amqp_get_rpc_reply(conn), "queue.purge");
}

void itest_queue_delete(amqp_connection_state_t conn, const char *queue)
{
    amqp_queue_delete(conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(queue), 0,
                      0);
    itest_amqp_check(amqp_get_rpc_reply(conn), "queue.delete");
}

void itest_exchange_delete(amqp_connection_state_t conn, const char *exchange)
{
    amqp_exchange_delete(conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(exchange),
                         0);
    itest_amqp_check(amqp_get_rpc_reply(conn), "exchange.delete");
}

void itest_amqp_publish(amqp_connection_state_t conn, const char *exchange,
                        const char *routing_key, const char *body,
                        bool persistent)
{
    const amqp_channel_t ch = ITEST_AMQP_PUBLISH_CHANNEL;
    long long deadline = ts_now_ms() + ITEST_IO_TIMEOUT_S * 1000;
    amqp_basic_properties_t props;
    char returned[600] = "";
    char text[512];

    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode =
        persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;
    itest_amqp_status(amqp_basic_publish(conn, ch, amqp_cstring_bytes(exchange),
                                         amqp_cstring_bytes(routing_key), 1, 0,
                                         &props, amqp_cstring_bytes(body)),
                      "basic.publish");

    /* One publish at a time, so the next ack or nack on the channel is ours;
     * an unroutable message comes back (basic.return) before its ack. */
    for (;;) {
        long long left = deadline - ts_now_ms();
        struct timeval tv = {0, 0};
        amqp_frame_t frame;
        int st;

        if (left > 0) {
            tv.tv_sec = left / 1000;
            tv.tv_usec = (left % 1000) * 1000;
        }
        st = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
        if (st == AMQP_STATUS_TIMEOUT)
            itest_failf(
                "no publisher confirm within %d s (exchange %s, key %s)",
                ITEST_IO_TIMEOUT_S, exchange, routing_key);
        itest_amqp_status(st, "waiting for the publisher confirm");
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (frame.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD:
            if (frame.channel != ch)
                continue;
            amqp_maybe_release_buffers(conn);
            if (returned[0] != '\0')
                itest_failf("message to exchange %s, key %s was returned: %s",
                            exchange, routing_key, returned);
            return;
        case AMQP_BASIC_NACK_METHOD:
            itest_failf("broker nacked the message to exchange %s, key %s",
                        exchange, routing_key);
            return;
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_basic_return_t *r = frame.payload.method.decoded;
            amqp_message_t msg;
            itest_bytes_text(text, sizeof text, r->reply_text);
            snprintf(returned, sizeof returned, "%u %s", r->reply_code, text);
            itest_amqp_check(amqp_read_message(conn, frame.channel, &msg, 0),
                             "reading a returned message");
            amqp_destroy_message(&msg);
            continue;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
            amqp_channel_close_t *m = frame.payload.method.decoded;
            itest_bytes_text(text, sizeof text, m->reply_text);
            itest_failf(
                "publish to exchange %s: broker closed channel %u: %u %s",
                exchange, frame.channel, m->reply_code, text);
            return;
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
            amqp_connection_close_t *m = frame.payload.method.decoded;
            itest_bytes_text(text, sizeof text, m->reply_text);
            itest_failf("publish to exchange %s: broker closed the connection: "
                        "%u %s",
                        exchange, m->reply_code, text);
            return;
        }
        default:
            continue;
        }
    }
}

char *itest_queue_get(amqp_connection_state_t conn, const char *queue,
                      int timeout_ms)
{
    long long deadline = ts_now_ms() + timeout_ms;

    for (;;) {
        amqp_rpc_reply_t r = amqp_basic_get(conn, ITEST_AMQP_CHANNEL,
                                            amqp_cstring_bytes(queue), 0);
        itest_amqp_check(r, "basic.get");
        if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
            amqp_basic_get_ok_t *ok = r.reply.decoded;
            uint64_t tag = ok->delivery_tag;
            amqp_message_t msg;
            char *body;

            itest_amqp_check(
                amqp_read_message(conn, ITEST_AMQP_CHANNEL, &msg, 0),
                "reading the message of basic.get");
            body = malloc(msg.body.len + 1);
            if (body != NULL) {
                memcpy(body, msg.body.bytes, msg.body.len);
                body[msg.body.len] = '\0';
            }
            amqp_destroy_message(&msg);
            itest_checked(body);
            itest_amqp_status(amqp_basic_ack(conn, ITEST_AMQP_CHANNEL, tag, 0),
                              "basic.ack");
            amqp_maybe_release_buffers(conn);
            return body;
        }
        amqp_maybe_release_buffers(conn);
        if (ts_now_ms() >= deadline)
            return NULL;
        ts_sleep_ms(20);
    }
}

long itest_queue_depth(amqp_connection_state_t conn, const char *queue)
{
    amqp_queue_declare_ok_t *ok;

    ok = amqp_queue_declare(conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(queue),
                            1, 0, 0, 0, amqp_empty_table);
    if (ok == NULL) {
        itest_amqp_check(amqp_get_rpc_reply(conn), "queue.declare (passive)");
        return -1;
    }
    return (long)ok->message_count;
}

bool itest_queue_exists(amqp_connection_state_t conn, const char *queue)
{
    amqp_channel_close_ok_t close_ok = {0};
    amqp_rpc_reply_t r;

    if (amqp_queue_declare(conn, ITEST_AMQP_CHANNEL, amqp_cstring_bytes(queue),
                           1, 0, 0, 0, amqp_empty_table) != NULL)
        return true;
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
        r.reply.id != AMQP_CHANNEL_CLOSE_METHOD ||
        ((amqp_channel_close_t *)r.reply.decoded)->reply_code !=
            AMQP_NOT_FOUND) {
        itest_amqp_check(r, "queue.declare (passive)");
        return false;
    }
    /* The broker closed channel 1 with 404: confirm and reopen it. */
    itest_amqp_status(amqp_send_method(conn, ITEST_AMQP_CHANNEL,
                                       AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok),
                      "channel.close-ok");
    amqp_channel_open(conn, ITEST_AMQP_CHANNEL);
    itest_amqp_check(amqp_get_rpc_reply(conn), "channel.open 1");
    amqp_maybe_release_buffers(conn);
    return false;
}
