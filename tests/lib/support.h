/* support.h: what the integration tests and the chaos tools share outside cmocka: clocks, log lines, options, a MariaDB connection, a message header, a spool's backlog. */
#ifndef DS_TESTS_SUPPORT_H
#define DS_TESTS_SUPPORT_H

/*
 * Nothing here fails a test or exits: every function returns what it found
 * and the caller decides. No global state; any thread.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <mysql.h>

#include "amqp_compat.h"

#if defined(__GNUC__)
#define TS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TS_PRINTF(f, a)
#endif

/* ----- time ----- */

/* Milliseconds of CLOCK_MONOTONIC. */
long long ts_now_ms(void);

/* Milliseconds since the epoch (CLOCK_REALTIME). */
unsigned long long ts_wall_ms(void);

/* Sleeps ms milliseconds, through interrupting signals. */
void ts_sleep_ms(int ms);

/* ----- network ----- */

/* A TCP port free on 127.0.0.1 now (the kernel's pick), or -1. */
int ts_loopback_port(void);

/* ----- log lines ----- */

/* One line "2026-01-02 03:04:05.678 <who>: <message>" (UTC) to stderr,
 * flushed, so that the lines of several processes interleave whole. */
void ts_say(const char *who, const char *fmt, ...) TS_PRINTF(2, 3);

/* ----- command line ----- */

/*
 * One option of ts_opts_parse's table; every option takes a value. A name
 * of one letter is the short option -x, any other the long one --name.
 * value gets the last value given; or, with list set, every value goes to
 * list[*count] (at most max of them).
 */
typedef struct ts_opt {
    const char *name;
    const char **value;
    const char **list;
    int *count;
    int max;
} ts_opt;

#define TS_OPT(name, value)                                                    \
    {                                                                          \
        (name), (value), NULL, NULL, 0                                         \
    }
#define TS_OPT_LIST(name, list, count, max)                                    \
    {                                                                          \
        (name), NULL, (list), (count), (max)                                   \
    }
#define TS_OPT_END                                                             \
    {                                                                          \
        NULL, NULL, NULL, NULL, 0                                              \
    }

/* Parses argv by opts (ended by an entry with a NULL name). Returns 0, or
 * -1 on an unknown option, a missing value, a list given more than max
 * values, or a positional argument. Values point into argv. */
int ts_opts_parse(int argc, char **argv, const ts_opt *opts);

/* ----- MariaDB ----- */

/*
 * Connects as root with no password over TCP to host:port, database
 * database (NULL: none selected), in utf8mb4, allowing connect_s seconds to
 * connect and io_s to each read and write; flags as mysql_real_connect's.
 * Returns the connection (close with mysql_close), or NULL with the
 * server's message in err.
 */
MYSQL *ts_mysql_open(const char *host, int port, const char *database,
                     unsigned int connect_s, unsigned int io_s,
                     unsigned long flags, char *err, size_t errlen);

/* ----- RabbitMQ ----- */

/* The value of the string (longstr) header name of a message's properties,
 * borrowed from them; NULL when the message has no such header. */
const amqp_bytes_t *ts_amqp_header(const amqp_basic_properties_t *props,
                                   const char *name);

/* ----- the producer's spool ----- */

/* Bytes of the spool in dir not yet confirmed: spool.log's size past the
 * offset in spool.head (producer/spool.h: 8 bytes little-endian, then a
 * crc). 0 when there is no spool. */
long long ts_spool_backlog(const char *dir);

#endif
