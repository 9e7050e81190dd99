/* itest.h: helpers for tests against the private RabbitMQ and MariaDB. */
#ifndef DS_TESTS_ITEST_H
#define DS_TESTS_ITEST_H

/*
 * Every integration test is a cmocka program in tests/integration/, built to
 * $(BUILD)/itests/ and run by tests/run.sh (make test) with the services up
 * and this environment set (see tests/lib/services.sh):
 *
 *   DS_TEST_RUNDIR        the run's scratch directory (kept on failure)
 *   DS_TEST_AMQP_URL      amqp://guest:guest@127.0.0.1:PORT/%2f
 *   DS_TEST_AMQP_PORT     DS_TEST_MYSQL_HOST (127.0.0.1)  DS_TEST_MYSQL_PORT
 *   DS_TEST_MYSQL_SOCKET  DS_TEST_MYSQL_USER (root, empty password)
 *   DS_TEST_SERVICES      tests/lib/services.sh, for itest_service()
 *   DS_TEST_BUILD         the build directory     DS_TEST_ROOT  the repo root
 *
 * Both servers are shared by every test program of a run, and the runner
 * starts them again after a program that left one down: use your own
 * database, exchange and queue names.
 *
 * Helpers are meant to be called inside cmocka tests, setups and teardowns.
 * A helper that fails prints why (with the server's message) and fails the
 * current test through cmocka; it never returns an error to check. Nothing
 * here is thread-safe: call it from the test's own thread.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>

#include <mysql.h>

#include "amqp_compat.h"

#if defined(__GNUC__)
#define ITEST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ITEST_PRINTF(f, a)
#endif

/* ----- environment (fails the test if the variable is missing) ----- */

/* The value of the environment variable name; fails when unset or empty. */
const char *itest_env(const char *name);
const char *itest_rundir(void);
const char *itest_amqp_url(void);
int itest_amqp_port(void);
const char *itest_mysql_host(void);
int itest_mysql_port(void);
const char *itest_mysql_socket(void);
const char *itest_build_dir(void);
const char *itest_root(void);

/* A malloc'd path "$DS_TEST_RUNDIR/<printf(fmt, ...)>" (not created). */
char *itest_path(const char *fmt, ...) ITEST_PRINTF(1, 2);

/* A fresh, empty directory "$DS_TEST_RUNDIR/<name>.XXXXXX"; malloc'd path. */
char *itest_mkdtemp(const char *name);

/* ----- services ----- */

/*
 * Runs `$DS_TEST_SERVICES which action` (which: "rabbit" or "maria";
 * action: start, stop, kill, restart, status) and returns its exit status
 * (-1 if it could not be run or died of a signal). Does not fail the test:
 * assert on the result. Connections to the service do not survive stop,
 * kill or restart: close them first, connect again afterwards.
 */
int itest_service(const char *which, const char *action);

/* ----- MariaDB (root, no password, TCP 127.0.0.1:DS_TEST_MYSQL_PORT) ----- */

/* Connects, with database selected when not NULL. Close with mysql_close(). */
MYSQL *itest_mysql_connect(const char *database);

/* Runs one statement built by printf; fails the test with the server's
 * message and the SQL on error. A result set, if any, is discarded. */
void itest_mysql_exec(MYSQL *db, const char *fmt, ...) ITEST_PRINTF(2, 3);

/* The first column of the first row of sql, malloc'd; NULL for SQL NULL or
 * when there is no row. Fails the test on error. */
char *itest_mysql_scalar(MYSQL *db, const char *sql);

/* itest_mysql_scalar as a number; fails on NULL, no row or not a number. */
long long itest_mysql_count(MYSQL *db, const char *sql);

/* DROP DATABASE IF EXISTS + CREATE DATABASE (utf8mb4) name. */
void itest_create_database(const char *name);

/* ----- RabbitMQ (rabbitmq-c, DS_TEST_AMQP_URL) ----- */

/* Channel 1 is open for the caller's own calls (basic.get, queue.*).
 * itest_amqp_publish uses channel 2, in confirm mode. */
#define ITEST_AMQP_CHANNEL 1
#define ITEST_AMQP_PUBLISH_CHANNEL 2

/* Connects and logs in with a 10 s timeout on every call; channels 1 and 2
 * open. Close with itest_amqp_close(). */
amqp_connection_state_t itest_amqp_connect(void);

/* Closes gracefully if the broker still answers, and frees. NULL is a no-op;
 * a connection to a broker that was stopped or killed is fine. */
void itest_amqp_close(amqp_connection_state_t conn);

/* Fails the test if r is not a normal reply, naming what and the broker's
 * reply code and text. */
void itest_amqp_check(amqp_rpc_reply_t r, const char *what);

/* Declares a durable topic exchange, a durable classic queue, binds them. */
void itest_queue_declare_bound(amqp_connection_state_t conn, const char *queue,
                               const char *exchange, const char *routing_key);

void itest_queue_purge(amqp_connection_state_t conn, const char *queue);

/* Deletes the queue (a missing queue is not an error: RabbitMQ says ok). */
void itest_queue_delete(amqp_connection_state_t conn, const char *queue);

/* Deletes the exchange (a missing one is fine). */
void itest_exchange_delete(amqp_connection_state_t conn, const char *exchange);

/* Publishes body (content type application/json) with mandatory set and
 * waits for the broker's confirm, so the message is stored (on disk when
 * persistent and the queue is durable) when this returns. Fails the test on
 * a nack, an unroutable message (basic.return) or no confirm within 10 s. */
void itest_amqp_publish(amqp_connection_state_t conn, const char *exchange,
                        const char *routing_key, const char *body,
                        bool persistent);

/* basic.get on the queue every 20 ms until a message comes or timeout_ms
 * passes; acks it and returns its body, malloc'd and NUL-terminated, or NULL
 * on timeout. */
char *itest_queue_get(amqp_connection_state_t conn, const char *queue,
                      int timeout_ms);

/* Messages ready in the queue (passive declare); fails if it does not exist. */
long itest_queue_depth(amqp_connection_state_t conn, const char *queue);

/* Whether the queue exists (a 404 closes channel 1; it is reopened). */
bool itest_queue_exists(amqp_connection_state_t conn, const char *queue);

#endif
