/* bench_util.h: what the benchmarks share: dying cleanly, time, environment knobs, MariaDB queries, child processes with a log. */
#ifndef DS_BENCH_UTIL_H
#define DS_BENCH_UTIL_H

#include <stdint.h>
#include <sys/types.h>

#include <mysql.h>

/* Names the benchmark in messages; cleanup (may be NULL) runs before a
 * bench_die exits: it stops what the benchmark started. */
void bench_init(const char *name, void (*cleanup)(void));

/* Prints "name: what: why", runs the cleanup, exits 1. */
_Noreturn void bench_die(const char *what, const char *why);

/* CLOCK_MONOTONIC in microseconds. */
uint64_t bench_now_us(void);

/* The integer in environment variable name, def when unset or empty, and
 * def (said on stderr) when outside lo..hi or not a number. */
int bench_env_int(const char *name, int def, int lo, int hi);

/* root without password over TCP, utf8mb4, a 30 s read timeout; dies when
 * it cannot connect. */
MYSQL *bench_db_connect(const char *host, int port);

/* Runs one statement, discarding a result; dies with the server's message. */
void bench_sql(MYSQL *db, const char *text);

/* The number a one-value query returns; -1 when it fails (a table that is
 * not there yet) or gives no row. */
long long bench_scalar(MYSQL *db, const char *text);

/* Starts argv[0] (looked up in PATH) with argv, its stdout and stderr
 * appended to logf; returns its pid, or dies. */
pid_t bench_spawn(const char *logf, const char *const argv[]);

/* GET /metrics from a datasync-consumer on 127.0.0.1:port, as a
 * Prometheus server would; returns the response (headers and body, NUL
 * terminated, in a buffer of the caller's thread that the next call
 * reuses) when it answered 200, else NULL (the first scrapes may come
 * before the endpoint listens: not an error). */
const char *bench_scrape_metrics(int port);

/* The value of the sample named name (a full series name, labels
 * included, as the exposition writes it) in a scrape; -1 when absent. */
double bench_metric(const char *scrape, const char *name);

/* The median of v[0..n) (the mean of the middle two when n is even); v is
 * left as it was. 0 when n is 0. */
double bench_median(const double *v, int n);

/* CPU seconds (user + system) process pid has used so far, from
 * /proc/PID/stat; 0 when it cannot be read. What a run costs each process
 * is steadier than its rate on a shared machine. */
double bench_proc_cpu_s(long pid);

/* The pid in pid file dir/file (the services' run directory), or 0. */
long bench_pidfile(const char *dir, const char *file);

#endif
