/* cluster.c: a three-server datasync cluster on the private services, for the consumer's integration tests. */
#include "cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ids.h"
#include "support.h"

/* The schema every server has: the same tables, and x, which no change may
 * touch. */
static void tc_create_schema(const char *dbname)
{
    itest_create_database(dbname);
    MYSQL *db = itest_mysql_connect(dbname);
    itest_mysql_exec(db, "CREATE TABLE kv (k INT PRIMARY KEY, v VARCHAR(64), "
                         "n BIGINT) ENGINE=InnoDB");
    itest_mysql_exec(
        db, "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(20) NOT "
            "NULL, email VARCHAR(64) UNIQUE, balance DECIMAL(30,10), avatar "
            "VARBINARY(64), active TINYINT(1), born DATE, note TEXT) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4");
    itest_mysql_exec(db, "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id "
                         "INT NOT NULL, total DECIMAL(10,2), FOREIGN KEY "
                         "(user_id) REFERENCES users(id)) ENGINE=InnoDB");
    itest_mysql_exec(db, "CREATE TABLE tags (k1 VARCHAR(16), k2 INT, v "
                         "VARCHAR(16), PRIMARY KEY (k1, k2)) ENGINE=InnoDB");
    itest_mysql_exec(db, "CREATE TABLE x (id INT PRIMARY KEY) ENGINE=InnoDB");
    itest_mysql_exec(db, "INSERT INTO x VALUES (1), (2)");
    mysql_close(db);
}

static void tc_write_conf(tc_cluster *cl, int i, const char *extra)
{
    FILE *f = fopen(cl->conf[i], "w");
    char *clock = itest_path("%s.clock", cl->node[i]);
    assert_non_null(f);
    /* Each server's own clock file, as on separate machines. */
    fprintf(f,
            "[node]\nid = %s\nclock_file = %s\n"
            "[amqp]\nurl = %s\nexchange = %s\nprefetch = 200\nheartbeat = 5\n"
            "[mysql]\nhost = %s\nport = %d\nuser = root\ndatabase = %s\n"
            "[apply]\ntables = kv users orders tags\nbatch_max = 50\n"
            "batch_wait_ms = 20\nmax_message_bytes = 4096\n"
            "[log]\nlevel = info\n%s",
            cl->node[i], clock, itest_amqp_url(), cl->exchange,
            itest_mysql_host(), itest_mysql_port(), cl->db[i],
            extra ? extra : "");
    fclose(f);
    free(clock);
}

long tc_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

bool tc_log_has(const char *path, long offset, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    bool found = false;
    if (!f)
        return false;
    fseek(f, offset, SEEK_SET);
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

void tc_start(tc_cluster *cl, int i)
{
    long offset = tc_file_size(cl->log[i]);
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/datasync-consumer", itest_build_dir());
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *out = freopen(cl->log[i], "a", stdout);
        if (!out || dup2(fileno(stdout), 2) < 0)
            _exit(126);
        execl(bin, bin, "-c", cl->conf[i], (char *)NULL);
        _exit(127);
    }
    cl->pid[i] = pid;
    for (long long end = ts_now_ms() + 20000; ts_now_ms() < end;) {
        if (tc_log_has(cl->log[i], offset, "datasync-consumer 0."))
            return;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            cl->pid[i] = 0;
            fail_msg("consumer %s exited at start-up; see %s", cl->node[i],
                     cl->log[i]);
        }
        ts_sleep_ms(50);
    }
    fail_msg("consumer %s did not start in 20 s; see %s", cl->node[i],
             cl->log[i]);
}

int tc_stop(tc_cluster *cl, int i, int sig, int timeout_ms)
{
    int status, rc = -1000;
    if (cl->pid[i] <= 0)
        return 0;
    kill(cl->pid[i], sig);
    for (long long end = ts_now_ms() + timeout_ms; ts_now_ms() < end;) {
        if (waitpid(cl->pid[i], &status, WNOHANG) == cl->pid[i]) {
            cl->pid[i] = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        }
        ts_sleep_ms(20);
    }
    kill(cl->pid[i], SIGKILL);
    waitpid(cl->pid[i], &status, 0);
    cl->pid[i] = 0;
    return rc;
}

void tc_amqp_open(tc_cluster *cl)
{
    cl->amqp = itest_amqp_connect();
    amqp_channel_open(cl->amqp, TC_PUB_CHANNEL);
    itest_amqp_check(amqp_get_rpc_reply(cl->amqp), "channel.open 3");
    amqp_confirm_select(cl->amqp, TC_PUB_CHANNEL);
    itest_amqp_check(amqp_get_rpc_reply(cl->amqp), "confirm.select 3");
    cl->pub_seq = 0;
}

void tc_setup(tc_cluster *cl, const char *prefix, const char *extra_conf)
{
    memset(cl, 0, sizeof *cl);
    snprintf(cl->exchange, sizeof cl->exchange, "%s", prefix);
    tc_amqp_open(cl);
    for (int i = 0; i < TC_NODES; i++) {
        snprintf(cl->node[i], sizeof cl->node[i], "%s-%c", prefix, 'a' + i);
        snprintf(cl->queue[i], sizeof cl->queue[i], "datasync.%s", cl->node[i]);
        snprintf(cl->dead[i], sizeof cl->dead[i], "datasync.%s.dead",
                 cl->node[i]);
        snprintf(cl->db[i], sizeof cl->db[i], "%s_%c", prefix, 'a' + i);
        cl->conf[i] = itest_path("%s.conf", cl->node[i]);
        cl->log[i] = itest_path("%s.log", cl->node[i]);
        itest_queue_delete(cl->amqp, cl->queue[i]);
        itest_queue_delete(cl->amqp, cl->dead[i]);
        tc_create_schema(cl->db[i]);
        tc_write_conf(cl, i, extra_conf);
    }
    for (int i = 0; i < TC_NODES; i++)
        tc_start(cl, i);
}

void tc_teardown(tc_cluster *cl)
{
    for (int i = 0; i < TC_NODES; i++) {
        tc_stop(cl, i, SIGTERM, 5000);
        free(cl->conf[i]);
        free(cl->log[i]);
    }
    itest_amqp_close(cl->amqp);
}

char *tc_event(const char *op, const char *table, const char *key,
               const char *data, const char *origin, uint64_t hlc)
{
    char id[37];
    assert_int_equal(ds__uuid7(id), 0);
    size_t cap = strlen(table) + strlen(key) + (data ? strlen(data) : 0) + 512;
    char *s = malloc(cap);
    assert_non_null(s);
    snprintf(s, cap,
             "{\"v\":1,\"id\":\"%s\",\"origin\":\"%s\",\"hlc\":%" PRIu64
             ",\"ts\":\"2026-01-01T00:00:00.000Z\",\"op\":\"%s\","
             "\"table\":\"%s\",\"key\":%s%s%s}",
             id, origin, hlc, op, table, key, data ? ",\"data\":" : "",
             data ? data : "");
    return s;
}

/* Publishes n bodies (persistent, mandatory) to exchange with routing key,
 * then waits for the broker's confirms of them all. */
static void tc_publish_many(tc_cluster *cl, const char *exchange,
                            const char *rk, char *const *bodies, size_t n)
{
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    for (size_t i = 0; i < n; i++) {
        amqp_bytes_t body = {strlen(bodies[i]), bodies[i]};
        int st = amqp_basic_publish(cl->amqp, TC_PUB_CHANNEL,
                                    amqp_cstring_bytes(exchange),
                                    amqp_cstring_bytes(rk), 1, 0, &props, body);
        if (st != AMQP_STATUS_OK)
            fail_msg("publish: %s", amqp_error_string2(st));
        cl->pub_seq++;
    }
    uint64_t acked = 0;
    long long end = ts_now_ms() + 30000;
    while (acked < cl->pub_seq) {
        amqp_frame_t f;
        struct timeval tv = {1, 0};
        if (ts_now_ms() > end)
            fail_msg("no confirm for %" PRIu64 " publishes",
                     cl->pub_seq - acked);
        int st = amqp_simple_wait_frame_noblock(cl->amqp, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT)
            continue;
        if (st != AMQP_STATUS_OK)
            fail_msg("waiting for confirms: %s", amqp_error_string2(st));
        if (f.frame_type != AMQP_FRAME_METHOD || f.channel != TC_PUB_CHANNEL)
            continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->delivery_tag > acked)
                acked = a->delivery_tag;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            fail_msg("the broker nacked a publish");
        } else if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            fail_msg("a publish to %s/%s was unroutable", exchange, rk);
        }
    }
    amqp_maybe_release_buffers(cl->amqp);
}

void tc_publish_all(tc_cluster *cl, char *const *bodies, size_t n)
{
    tc_publish_many(cl, cl->exchange, "data.sync", bodies, n);
}

void tc_publish_to(tc_cluster *cl, int i, char *const *bodies, size_t n)
{
    tc_publish_many(cl, "", cl->queue[i], bodies, n);
}

void tc_free_all(char **bodies, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(bodies[i]);
}

char *tc_dump(const char *dbname, const char *sql)
{
    char err[512];
    MYSQL *db = ts_mysql_open(itest_mysql_host(), itest_mysql_port(), dbname, 3,
                              3, 0, err, sizeof err);
    if (!db)
        return NULL;
    if (mysql_query(db, sql) != 0) {
        mysql_close(db);
        return NULL;
    }
    MYSQL_RES *res = mysql_store_result(db);
    size_t cap = 1024, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    MYSQL_ROW row;
    unsigned int nf = res ? mysql_num_fields(res) : 0;
    while (res && (row = mysql_fetch_row(res))) {
        unsigned long *lens = mysql_fetch_lengths(res);
        for (unsigned int f = 0; f < nf; f++) {
            size_t need = len + (row[f] ? lens[f] : 4) + 3;
            if (need > cap) {
                while (cap < need)
                    cap *= 2;
                out = realloc(out, cap);
                assert_non_null(out);
            }
            if (f)
                out[len++] = '|';
            if (row[f]) {
                memcpy(out + len, row[f], lens[f]);
                len += lens[f];
            } else {
                memcpy(out + len, "NULL", 4);
                len += 4;
            }
        }
        out[len++] = '\n';
        out[len] = '\0';
    }
    if (res)
        mysql_free_result(res);
    mysql_close(db);
    return out;
}

void tc_wait_dump(tc_cluster *cl, int i, const char *sql, const char *want,
                  int timeout_ms)
{
    char *got = NULL;
    for (long long end = ts_now_ms() + timeout_ms;;) {
        free(got);
        got = tc_dump(cl->db[i], sql);
        if (got && strcmp(got, want) == 0) {
            free(got);
            return;
        }
        if (ts_now_ms() > end)
            break;
        ts_sleep_ms(100);
    }
    print_error("node %s: %s\n--- want\n%s--- got\n%s---\n", cl->node[i], sql,
                want, got ? got : "(unreachable)\n");
    free(got);
    fail_msg("node %s did not converge in %d ms (log %s)", cl->node[i],
             timeout_ms, cl->log[i]);
}

bool tc_dead_get(tc_cluster *cl, int i, char **body, char **reason,
                 int timeout_ms)
{
    for (long long end = ts_now_ms() + timeout_ms;;) {
        amqp_rpc_reply_t r =
            amqp_basic_get(cl->amqp, ITEST_AMQP_CHANNEL,
                           amqp_cstring_bytes(cl->dead[i]), 1 /* no_ack */);
        itest_amqp_check(r, "basic.get");
        if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
            amqp_message_t msg;
            itest_amqp_check(
                amqp_read_message(cl->amqp, ITEST_AMQP_CHANNEL, &msg, 0),
                "read dead letter");
            *body = strndup(msg.body.bytes, msg.body.len);
            const amqp_bytes_t *why =
                ts_amqp_header(&msg.properties, "x-datasync-error");
            *reason = why ? strndup(why->bytes, why->len)
                          : strdup("(no x-datasync-error)");
            amqp_destroy_message(&msg);
            amqp_maybe_release_buffers(cl->amqp);
            return true;
        }
        amqp_maybe_release_buffers(cl->amqp);
        if (ts_now_ms() > end)
            return false;
        ts_sleep_ms(50);
    }
}

long tc_queue_total(const char *queue)
{
    char cmd[1024], line[512];
    long total = -1;
    snprintf(cmd, sizeof cmd,
             "%s rabbit ctl list_queues -q --no-table-headers name messages "
             "2>/dev/null",
             itest_env("DS_TEST_SERVICES"));
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    while (fgets(line, sizeof line, p)) {
        char name[256];
        long n;
        if (sscanf(line, "%255s %ld", name, &n) == 2 &&
            strcmp(name, queue) == 0)
            total = n;
    }
    pclose(p);
    return total;
}
