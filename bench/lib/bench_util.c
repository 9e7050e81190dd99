/* bench_util.c: what the benchmarks share: dying cleanly, time, environment knobs, MariaDB queries, child processes with a log. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

/* One benchmark per process: its name and cleanup are the process's. */
static const char *bench_name = "bench";
static void (*bench_cleanup)(void);

void bench_init(const char *name, void (*cleanup)(void))
{
    bench_name = name;
    bench_cleanup = cleanup;
}

void bench_die(const char *what, const char *why)
{
    fprintf(stderr, "%s: %s: %s\n", bench_name, what, why);
    if (bench_cleanup)
        bench_cleanup();
    exit(1);
}

uint64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int bench_env_int(const char *name, int def, int lo, int hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        fprintf(stderr, "%s: %s=%s out of range %d..%d, using %d\n", bench_name,
                name, v, lo, hi, def);
        return def;
    }
    return (int)n;
}

MYSQL *bench_db_connect(const char *host, int port)
{
    MYSQL *db = mysql_init(NULL);
    unsigned int timeout = 30;
    if (!db)
        bench_die("mysql", "out of memory");
    mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_options(db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(db, host, "root", "", NULL, (unsigned int)port,
                            NULL, 0))
        bench_die("mysql connect", mysql_error(db));
    return db;
}

void bench_sql(MYSQL *db, const char *text)
{
    if (mysql_query(db, text))
        bench_die(text, mysql_error(db));
    MYSQL_RES *res = mysql_store_result(db);
    if (res)
        mysql_free_result(res);
}

long long bench_scalar(MYSQL *db, const char *text)
{
    long long v = -1;
    if (mysql_query(db, text))
        return -1;
    MYSQL_RES *res = mysql_store_result(db);
    if (!res)
        return -1;
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row && row[0])
        v = strtoll(row[0], NULL, 10);
    mysql_free_result(res);
    return v;
}

pid_t bench_spawn(const char *logf, const char *const argv[])
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork", strerror(errno));
    if (pid == 0) {
        FILE *out = freopen(logf, "a", stdout);
        if (!out || dup2(fileno(stdout), 2) < 0)
            _exit(126);
        /* execvp's char *const[] is historical: it writes nothing. */
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

const char *bench_scrape_metrics(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    static _Thread_local char buf[65536];
    size_t got = 0;
    ssize_t n;
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: "
                       "close\r\n\r\n";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) !=
            (ssize_t)sizeof req - 1) {
        close(fd);
        return NULL;
    }
    while (got < sizeof buf - 1 &&
           (n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
        got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? buf : NULL;
}

double bench_metric(const char *scrape, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = scrape; p && *p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, name, len) == 0 && p[len] == ' ')
            return strtod(p + len + 1, NULL);
    }
    return -1;
}

double bench_proc_cpu_s(long pid)
{
    char path[64], buf[1024];
    unsigned long long ut = 0, st = 0;

    if (pid <= 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields 14 and 15, counted after the command's closing parenthesis
     * (the command may hold spaces). */
    const char *p = strrchr(buf, ')');
    if (!p || sscanf(p + 2,
                     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
                     "%llu",
                     &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long bench_pidfile(const char *dir, const char *file)
{
    char path[1024];
    long pid = 0;

    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return pid;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

double bench_median(const double *v, int n)
{
    if (n <= 0)
        return 0;
    double *s = malloc((size_t)n * sizeof *s);
    if (!s)
        bench_die("median", "out of memory");
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}
