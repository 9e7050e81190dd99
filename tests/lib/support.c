/* support.c: what the integration tests and the chaos tools share outside cmocka: clocks, log lines, options, a MariaDB connection, a message header, a spool's backlog. */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* More options than any tool of the tree takes. */
#define TS_MAX_OPTS 32

long long ts_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned long long ts_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000 +
           (unsigned long long)(ts.tv_nsec / 1000000);
}

void ts_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int ts_loopback_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

void ts_say(const char *who, const char *fmt, ...)
{
    char stamp[40], line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - n, ".%03ld", ts.tv_nsec / 1000000);
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s: %s\n", stamp, who, line);
    fflush(stderr);
}

/* The entry of opts that getopt_long's return value c stands for. */
static const ts_opt *ts_opt_found(const ts_opt *opts, int c)
{
    if (c >= 256)
        return &opts[c - 256];
    for (const ts_opt *o = opts; o->name; o++)
        if (o->name[0] == c && o->name[1] == '\0')
            return o;
    return NULL;
}

int ts_opts_parse(int argc, char **argv, const ts_opt *opts)
{
    struct option longopts[TS_MAX_OPTS + 1];
    char shortopts[2 * TS_MAX_OPTS + 1];
    int n = 0, ns = 0, c;

    for (; opts[n].name; n++) {
        if (n == TS_MAX_OPTS)
            return -1;
        longopts[n] =
            (struct option){opts[n].name, required_argument, NULL, 256 + n};
        if (opts[n].name[1] == '\0') {
            shortopts[ns++] = opts[n].name[0];
            shortopts[ns++] = ':';
        }
    }
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    shortopts[ns] = '\0';
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const ts_opt *o = ts_opt_found(opts, c);
        if (!o)
            return -1;
        if (!o->list) {
            *o->value = optarg;
            continue;
        }
        if (*o->count == o->max)
            return -1;
        o->list[(*o->count)++] = optarg;
    }
    return optind == argc ? 0 : -1;
}

MYSQL *ts_mysql_open(const char *host, int port, const char *database,
                     unsigned int connect_s, unsigned int io_s,
                     unsigned long flags, char *err, size_t errlen)
{
    unsigned int proto = MYSQL_PROTOCOL_TCP;
    MYSQL *db = mysql_init(NULL);

    if (!db) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
    mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &io_s);
    mysql_options(db, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
    mysql_options(db, MYSQL_OPT_PROTOCOL, &proto);
    mysql_options(db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(db, host, "root", "", database, (unsigned int)port,
                            NULL, flags)) {
        snprintf(err, errlen, "%s", mysql_error(db));
        mysql_close(db);
        return NULL;
    }
    return db;
}

const amqp_bytes_t *ts_amqp_header(const amqp_basic_properties_t *props,
                                   const char *name)
{
    size_t len = strlen(name);
    const amqp_bytes_t *found = NULL;

    if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    for (int i = 0; i < props->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &props->headers.entries[i];
        if (e->key.len == len && memcmp(e->key.bytes, name, len) == 0 &&
            e->value.kind == AMQP_FIELD_KIND_UTF8)
            found = &e->value.value.bytes;
    }
    return found;
}

long long ts_spool_backlog(const char *dir)
{
    char path[4096];
    struct stat sb;
    unsigned char b[12];
    uint64_t head = 0;

    snprintf(path, sizeof path, "%s/spool.log", dir);
    if (stat(path, &sb) != 0)
        return 0;
    snprintf(path, sizeof path, "%s/spool.head", dir);
    FILE *f = fopen(path, "rb");
    if (f) {
        if (fread(b, 1, sizeof b, f) == sizeof b)
            for (int i = 7; i >= 0; i--)
                head = head << 8 | b[i];
        fclose(f);
    }
    return (uint64_t)sb.st_size > head
               ? (long long)((uint64_t)sb.st_size - head)
               : 0;
}
