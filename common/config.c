/* config.c: datasync.conf, read line by line and checked against one table of
 * directives. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "error.h"
#include "log.h"

/* Room for one reason ("amqp.prefetch: '...' is out of bounds (1..65535)");
 * quoted values are cut to QUOTE_MAX so a reason always fits. */
#define REASON_SIZE 256
#define QUOTE_MAX 64

/* ------------------------------------------------------------------------ */
/* The table of directives                                                   */

/* T_SECRET: the value names a file whose first line is the value stored. */
typedef enum { T_STRING, T_SECRET, T_INT, T_LONG, T_ENUM, T_LEVEL } dtype;

/* An extra check of a string value, beyond its length. Returns 0, or -1 with
 * reason filled. */
typedef int (*check_fn)(const char *value, char *reason, size_t len);

struct directive;

/* Recomputes the fields that depend on d's field, taking value as its new
 * content (not stored yet). Returns 0, or -1 with reason filled and cfg
 * untouched. */
typedef int (*derive_fn)(ds_config *cfg, const struct directive *d,
                         const char *value, char *reason, size_t len);

typedef struct directive {
    const char *section;
    const char *name;
    dtype type;
    size_t offset;
    size_t size;              /* of the field, for ds__config_each_change */
    long long min, max;       /* T_INT, T_LONG: bounds; T_STRING: max length */
    const char *const *names; /* T_ENUM: allowed names, NULL-terminated */
    void (*store)(void *, int); /* T_ENUM: writes the index as the enum type */
    check_fn check;             /* T_STRING: NULL or an extra check */
    derive_fn derive; /* T_STRING, T_SECRET: NULL or what follows from it */
    const char *def;  /* the default, as it would be written */
} directive;

/* Enums are stored through their own type: the width of an enum is the
 * compiler's choice, so writing one through an int pointer is not safe. */
static void store_queue_type(void *field, int v)
{
    *(ds_queue_type *)field = (ds_queue_type)v;
}

static void store_producer_mode(void *field, int v)
{
    *(ds_producer_mode *)field = (ds_producer_mode)v;
}

static void store_log_format(void *field, int v)
{
    *(ds_log_format *)field = (ds_log_format)v;
}

/* Indexed by the enum values of config.h. */
static void store_bool(void *field, int v)
{
    /* The names below alternate false, true. */
    *(bool *)field = v % 2 == 1;
}

static const char *const queue_type_names[] = {"classic", "quorum", NULL};
static const char *const bool_names[] = {"false", "true", "off", "on",
                                         "no",    "yes",  NULL};
static const char *const producer_mode_names[] = {"sync", "async", NULL};
/* Indexed by ds_log_format. */
static const char *const log_format_names[] = {"text", "json", NULL};
/* capture.start, stored as a bool (store_bool): snapshot or not. */
static const char *const capture_start_names[] = {"current", "snapshot", NULL};

static int check_node_id(const char *value, char *reason, size_t len);
static int check_urls(const char *value, char *reason, size_t len);
static int check_tables(const char *value, char *reason, size_t len);
static int check_max_age(const char *value, char *reason, size_t len);
static int check_not_empty(const char *value, char *reason, size_t len);
static int check_listen(const char *value, char *reason, size_t len);
static int derive_amqp_url(ds_config *cfg, const struct directive *d,
                           const char *value, char *reason, size_t len);

#define FIELD(f) (((ds_config *)0)->f)

/* _Generic with a single association makes a table row whose field has
 * another C type fail to compile, instead of writing the wrong width. */
#define D_STRING(sec, key, f, maxlen, chk, dflt)                               \
    {                                                                          \
        .section = sec, .name = key, .type = T_STRING,                         \
        .offset = offsetof(ds_config, f), .size = sizeof FIELD(f),             \
        .max = (maxlen), .check = chk, .def = dflt                             \
    }
#define D_STR(sec, key, f, chk, dflt)                                          \
    D_STRING(sec, key, f, (long long)sizeof FIELD(f) - 1, chk, dflt)
/* A password read from a file: the key's value is the file's path. */
#define D_SECRET(sec, key, f, drv)                                             \
    {                                                                          \
        .section = sec, .name = key, .type = T_SECRET,                         \
        .offset = offsetof(ds_config, f), .size = sizeof FIELD(f),             \
        .max = (long long)sizeof FIELD(f) - 1, .derive = drv, .def = ""        \
    }
#define D_INT(sec, key, f, lo, hi, dflt)                                       \
    {                                                                          \
        .section = sec, .name = key,                                           \
        .type = _Generic(FIELD(f), int                                         \
                         : T_INT),                                             \
        .offset = offsetof(ds_config, f), .size = sizeof FIELD(f), .min = lo,  \
        .max = hi, .def = dflt                                                 \
    }
#define D_LONG(sec, key, f, lo, hi, dflt)                                      \
    {                                                                          \
        .section = sec, .name = key,                                           \
        .type = _Generic(FIELD(f), long                                        \
                         : T_LONG),                                            \
        .offset = offsetof(ds_config, f), .size = sizeof FIELD(f), .min = lo,  \
        .max = hi, .def = dflt                                                 \
    }
#define D_ENUM(sec, key, f, allowed, storefn, dflt)                            \
    {                                                                          \
        .section = sec, .name = key, .type = T_ENUM,                           \
        .offset = offsetof(ds_config, f), .size = sizeof FIELD(f),             \
        .names = allowed, .store = storefn, .def = dflt                        \
    }
#define D_LEVEL(sec, key, f, dflt)                                             \
    {                                                                          \
        .section = sec, .name = key,                                           \
        .type = _Generic(FIELD(f), ds_log_level                                \
                         : T_LEVEL),                                           \
        .offset = offsetof(ds_config, f), .size = sizeof FIELD(f), .def = dflt \
    }

/* Every key, its default and its bounds, in the order of
 * datasync.conf.example. The defaults are parsed like any value, so they
 * pass the same checks. */
static const directive directives[] = {
    D_STR("node", "id", node_id, check_node_id, ""),
    D_STR("node", "clock_file", node_clock_file, NULL,
          "/var/lib/datasync/clock"),

    {.section = "amqp",
     .name = "url",
     .type = T_STRING,
     .offset = offsetof(ds_config, amqp_url_written),
     .size = sizeof FIELD(amqp_url_written),
     .max = (long long)sizeof FIELD(amqp_url_written) - 1,
     .check = check_urls,
     .derive = derive_amqp_url,
     .def = "amqp://guest:guest@127.0.0.1:5672/%2f"},
    D_SECRET("amqp", "password_file", amqp_password, derive_amqp_url),
    /* 247, not 255: "<exchange>.archive" must still fit AMQP's 255-byte
     * names. */
    D_STRING("amqp", "exchange", amqp_exchange, 247, check_not_empty,
             "datasync"),
    D_STR("amqp", "routing_key", amqp_routing_key, NULL, "data.sync"),
    D_ENUM("amqp", "queue_type", amqp_queue_type, queue_type_names,
           store_queue_type, "classic"),
    D_INT("amqp", "prefetch", amqp_prefetch, 1, 65535, "500"),
    D_INT("amqp", "heartbeat", amqp_heartbeat, 0, 3600, "10"),
    D_STR("amqp", "ca_file", amqp_ca_file, NULL, ""),
    D_STR("amqp", "cert_file", amqp_cert_file, NULL, ""),
    D_STR("amqp", "key_file", amqp_key_file, NULL, ""),
    D_ENUM("amqp", "verify_peer", amqp_verify_peer, bool_names, store_bool,
           "true"),

    D_STR("mysql", "host", mysql_host, NULL, "127.0.0.1"),
    D_INT("mysql", "port", mysql_port, 1, 65535, "3306"),
    D_STR("mysql", "socket", mysql_socket, NULL, ""),
    D_STR("mysql", "user", mysql_user, NULL, "root"),
    D_STR("mysql", "password", mysql_password, NULL, ""),
    D_SECRET("mysql", "password_file", mysql_password, NULL),
    D_STR("mysql", "database", mysql_database, NULL, "app"),

    D_STR("apply", "tables", apply_tables, check_tables, ""),
    D_INT("apply", "batch_max", apply_batch_max, 1, 10000, "200"),
    D_INT("apply", "batch_wait_ms", apply_batch_wait_ms, 0, 60000, "10"),
    D_LONG("apply", "max_message_bytes", apply_max_message_bytes, 1024,
           134217728, "1048576"),
    D_INT("apply", "tombstone_retention_hours", apply_tombstone_retention_hours,
          1, 87600, "168"),

    D_ENUM("producer", "mode", producer_mode, producer_mode_names,
           store_producer_mode, "sync"),
    D_STR("producer", "spool_dir", producer_spool_dir, check_not_empty,
          "/var/lib/datasync/spool"),
    D_INT("producer", "confirm_timeout_ms", producer_confirm_timeout_ms, 100,
          600000, "5000"),

    D_LEVEL("log", "level", log_level, "info"),
    D_ENUM("log", "format", log_format, log_format_names, store_log_format,
           "text"),
    D_STR("log", "file", log_file, NULL, ""),

    D_ENUM("archive", "enabled", archive_enabled, bool_names, store_bool,
           "true"),
    D_STR("archive", "max_age", archive_max_age, check_max_age, "7D"),
    D_LONG("archive", "max_bytes", archive_max_bytes, 0, LONG_MAX, "0"),

    D_LONG("capture", "server_id", capture_server_id, 0, 4294967295L, "0"),
    D_STR("capture", "tables", capture_tables, check_tables, ""),
    D_STR("capture", "state_file", capture_state_file, check_not_empty,
          "/var/lib/datasync/capture.state"),
    D_ENUM("capture", "start", capture_snapshot, capture_start_names,
           store_bool, "current"),

    D_STR("metrics", "listen", metrics_listen, check_listen, ""),
};

#define N_DIRECTIVES (sizeof directives / sizeof directives[0])

_Static_assert(247 < sizeof FIELD(amqp_exchange), "amqp.exchange bound");
/* append_list() joins a list key in a buffer of apply.tables' size. */
_Static_assert(sizeof FIELD(capture_tables) == sizeof FIELD(apply_tables),
               "capture.tables fits append_list's buffer");
_Static_assert(sizeof FIELD(amqp_url) == sizeof FIELD(amqp_url_written),
               "amqp.url as written fits the URLs connections use");
/* apply() reads a T_SECRET into a buffer of the size of mysql_password. */
_Static_assert(sizeof FIELD(amqp_password) <= sizeof FIELD(mysql_password),
               "amqp.password_file's buffer");

/* ------------------------------------------------------------------------ */
/* Values                                                                    */

static int reason(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats a reason and returns -1, so checks read `return reason(...)`. */
static int reason(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_node_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static int is_ident_char(int c, int first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

/* The node id also names queues and travels as the event's origin, so it
 * keeps the schema's pattern; "" means not set, which each program that
 * needs it (the producer, the consumer, the capture) refuses for itself:
 * the CLI runs several commands without it. */
static int check_node_id(const char *value, char *buf, size_t len)
{
    size_t n = strlen(value); /* at most 64: the field's bound */

    for (size_t i = 0; i < n; i++) {
        if (!is_node_char((unsigned char)value[i]))
            return reason(buf, len,
                          "'%.*s' is not a valid node id "
                          "([A-Za-z0-9._-]{1,64})",
                          QUOTE_MAX, value);
    }
    return 0;
}

typedef struct word_check {
    char *buf;
    size_t len;
} word_check;

static int check_url_word(const char *word, size_t n, void *ctx)
{
    word_check *wc = ctx;

    /* Only the scheme here: ds__amqp_connect parses the rest and names the
     * URL that fails, but a wrong scheme is a typo worth a file:line. */
    if ((n > 7 && strncmp(word, "amqp://", 7) == 0) ||
        (n > 8 && strncmp(word, "amqps://", 8) == 0))
        return 0;
    return reason(wc->buf, wc->len, "'%.*s' is not an amqp:// or amqps:// URL",
                  (int)(n < QUOTE_MAX ? n : QUOTE_MAX), word);
}

static int check_urls(const char *value, char *buf, size_t len)
{
    word_check wc = {buf, len};

    if (value[strspn(value, " \t")] == '\0')
        return reason(buf, len, "at least one URL is needed");
    return ds__config_each_word(value, check_url_word, &wc);
}

static int check_table_word(const char *word, size_t n, void *ctx)
{
    word_check *wc = ctx;
    size_t i = 0;

    while (i < n && is_ident_char((unsigned char)word[i], i == 0))
        i++;
    if (i == n && n <= 64)
        return 0;
    return reason(wc->buf, wc->len,
                  "'%.*s' is not a valid table name "
                  "([A-Za-z_][A-Za-z0-9_]{0,63})",
                  (int)(n < QUOTE_MAX ? n : QUOTE_MAX), word);
}

/* Names only: the consumer matches them against the database's catalogue,
 * and a typo here should stop start-up, not dead-letter every change. */
static int check_tables(const char *value, char *buf, size_t len)
{
    word_check wc = {buf, len};

    return ds__config_each_word(value, check_table_word, &wc);
}

/* RabbitMQ's x-max-age: a positive number and one unit, Y M D h m s. */
static int check_max_age(const char *value, char *buf, size_t len)
{
    size_t digits = strspn(value, "0123456789");

    if (digits == 0 || digits > 9 || value[digits] == '\0' ||
        !strchr("YMDhms", value[digits]) || value[digits + 1] != '\0' ||
        strtol(value, NULL, 10) == 0)
        return reason(buf, len,
                      "'%.*s' is not an age such as 7D, 12h or 30m (units Y, "
                      "M, D, h, m, s)",
                      QUOTE_MAX, value);
    return 0;
}

static int check_not_empty(const char *value, char *buf, size_t len)
{
    if (*value == '\0')
        return reason(buf, len, "must not be empty");
    return 0;
}

int ds__config_split_listen(const char *value, char host[256], int *port,
                            char *buf, size_t len)
{
    const char *colon, *h = value;
    size_t hlen;

    /* "[::1]:9464": the brackets keep the address's colons from the port's. */
    if (*value == '[') {
        const char *close = strchr(value, ']');
        if (!close || close[1] != ':')
            goto bad;
        h = value + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(value, ':');
        if (!colon || memchr(value, ':', (size_t)(colon - value)))
            goto bad;
        hlen = (size_t)(colon - value);
    }
    size_t digits = strspn(colon + 1, "0123456789");
    if (hlen > 255 || digits == 0 || digits > 5 || colon[1 + digits] != '\0')
        goto bad;
    long p = strtol(colon + 1, NULL, 10);
    if (p < 1 || p > 65535)
        goto bad;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
bad:
    return reason(buf, len,
                  "'%.*s' is not HOST:PORT (127.0.0.1:9464, [::1]:9464, or "
                  ":9464 for every interface; port 1..65535)",
                  QUOTE_MAX, value);
}

/* "" turns the endpoint off; otherwise an address ds__config_split_listen
 * takes. The name is resolved when the consumer starts. */
static int check_listen(const char *value, char *buf, size_t len)
{
    char host[256];
    int port;

    if (*value == '\0')
        return 0;
    return ds__config_split_listen(value, host, &port, buf, len);
}

/* Bytes a URL's password may hold as they are; the rest is written %XX. */
static int is_unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* Appends n bytes to out (size outlen) at *at, counting them even when they
 * do not fit, so the caller can say how long the result would be. */
static void put(char *out, size_t outlen, size_t *at, const char *s, size_t n)
{
    if (*at < outlen && n < outlen - *at)
        memcpy(out + *at, s, n);
    *at += n;
}

/* Where ":password" goes into one URL: at the '@' of a user given without a
 * password (amqp://user@host/...), else 0 (no user, or one with a password:
 * the URL is taken as written). */
static size_t password_slot(const char *url, size_t n)
{
    const char *scheme = memmem(url, n, "://", 3);
    size_t from, at = 0, i;

    if (!scheme)
        return 0;
    from = (size_t)(scheme - url) + 3;
    for (i = from; i < n && url[i] != '/'; i++) {
        if (url[i] == '@')
            at = i;
    }
    if (at <= from || memchr(url + from, ':', at - from))
        return 0;
    return at;
}

/* amqp_url: the URLs as written, with the password of amqp.password_file
 * percent-encoded into each that names a user but no password; the blanks
 * between URLs are kept as written. */
static int derive_amqp_url(ds_config *cfg, const directive *d,
                           const char *value, char *buf, size_t len)
{
    char out[sizeof cfg->amqp_url];
    const char *urls = cfg->amqp_url_written, *password = cfg->amqp_password;
    const char *p;
    size_t at = 0;

    if (d->offset == offsetof(ds_config, amqp_url_written))
        urls = value;
    else
        password = value;
    for (p = urls; *p;) {
        size_t gap = strspn(p, " \t"), n, slot;

        put(out, sizeof out, &at, p, gap);
        p += gap;
        n = strcspn(p, " \t");
        slot = *password ? password_slot(p, n) : 0;
        if (slot) {
            put(out, sizeof out, &at, p, slot);
            put(out, sizeof out, &at, ":", 1);
            for (const char *c = password; *c; c++) {
                char hex[4];
                if (is_unreserved((unsigned char)*c)) {
                    put(out, sizeof out, &at, c, 1);
                } else {
                    snprintf(hex, sizeof hex, "%%%02X", (unsigned char)*c);
                    put(out, sizeof out, &at, hex, 3);
                }
            }
        }
        put(out, sizeof out, &at, p + slot, n - slot);
        p += n;
    }
    if (at >= sizeof out)
        return reason(buf, len,
                      "the URLs with amqp.password_file's password are too "
                      "long (%zu bytes, max %zu)",
                      at, sizeof out - 1);
    out[at] = '\0';
    memcpy(cfg->amqp_url, out, at + 1);
    return 0;
}

/* The first line of the file at path, without its line end, into out (a
 * buffer of size bytes); "" for an empty path. Returns 0, or -1 with a
 * reason naming the path. */
static int read_secret(const char *path, char *out, size_t size, char *buf,
                       size_t len)
{
    char ebuf[128];
    size_t n = 0;
    FILE *f;
    int c;

    out[0] = '\0';
    if (*path == '\0')
        return 0;
    f = fopen(path, "re");
    if (!f)
        return reason(buf, len, "%s: %s", path,
                      strerror_r(errno, ebuf, sizeof ebuf));
    while ((c = getc(f)) != EOF && c != '\n') {
        if (n + 1 >= size) {
            fclose(f);
            return reason(buf, len, "%s: first line longer than %zu bytes",
                          path, size - 1);
        }
        out[n++] = (char)c;
    }
    if (ferror(f)) {
        int e = errno ? errno : EIO;
        fclose(f);
        return reason(buf, len, "%s: %s", path,
                      strerror_r(e, ebuf, sizeof ebuf));
    }
    fclose(f);
    if (n > 0 && out[n - 1] == '\r')
        n--; /* written on Windows */
    out[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)out[i];
        if ((b < 0x20 && b != '\t') || b == 0x7f)
            return reason(buf, len, "%s: control character 0x%02x in it", path,
                          b);
    }
    return 0;
}

static int parse_integer(const directive *d, const char *value, long long *out,
                         char *buf, size_t len)
{
    char *end;
    long long v;

    /* strtoll would skip leading blanks and accept "0x10" with base 0; a
     * value is written one way only: optional sign, decimal digits. */
    if (!((value[0] >= '0' && value[0] <= '9') ||
          ((value[0] == '-' || value[0] == '+') && value[1] >= '0' &&
           value[1] <= '9')))
        return reason(buf, len, "'%.*s' is not an integer (%lld..%lld)",
                      QUOTE_MAX, value, d->min, d->max);
    errno = 0;
    v = strtoll(value, &end, 10);
    if (*end != '\0')
        return reason(buf, len, "'%.*s' is not an integer (%lld..%lld)",
                      QUOTE_MAX, value, d->min, d->max);
    if (errno == ERANGE || v < d->min || v > d->max)
        return reason(buf, len, "%.*s is out of bounds (%lld..%lld)", QUOTE_MAX,
                      value, d->min, d->max);
    *out = v;
    return 0;
}

/* "a, b, c" into buf, for the message of a bad enum value. */
static void join_names(const directive *d, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int i = 0;; i++) {
        const char *name;
        int n;

        if (d->type == T_LEVEL)
            name =
                i <= DS_LOG_ERROR ? ds__log_level_name((ds_log_level)i) : NULL;
        else
            name = d->names[i];
        if (!name || used >= len)
            break;
        n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Checks value against d and stores it in cfg. On failure cfg is untouched
 * and buf holds the reason (without the key). */
static int apply(const directive *d, ds_config *cfg, const char *value,
                 char *buf, size_t len)
{
    char *field = (char *)cfg + d->offset;
    long long v;
    char names[128];

    switch (d->type) {
    case T_SECRET:
    case T_STRING: {
        char secret[sizeof cfg->mysql_password];
        size_t n;

        if (d->type == T_SECRET) {
            if (read_secret(value, secret, (size_t)d->max + 1, buf, len) != 0)
                return -1;
            value = secret;
        }
        n = strlen(value);

        if ((long long)n > d->max)
            return reason(buf, len, "value too long (%zu bytes, max %lld)", n,
                          d->max);
        /* A file line cannot hold them; a ds_options_set value must not
         * smuggle a newline into a URL, a path or a log line either. */
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)value[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return reason(buf, len, "control character 0x%02x in value", c);
        }
        if (d->check && d->check(value, buf, len) != 0)
            return -1;
        if (d->derive && d->derive(cfg, d, value, buf, len) != 0)
            return -1;
        memcpy(field, value, n + 1);
        return 0;
    }
    case T_INT:
        if (parse_integer(d, value, &v, buf, len) != 0)
            return -1;
        *(int *)(void *)field = (int)v;
        return 0;
    case T_LONG:
        if (parse_integer(d, value, &v, buf, len) != 0)
            return -1;
        *(long *)(void *)field = (long)v;
        return 0;
    case T_ENUM:
        for (int i = 0; d->names[i]; i++) {
            if (strcasecmp(value, d->names[i]) == 0) {
                d->store(field, i);
                return 0;
            }
        }
        break;
    case T_LEVEL: {
        ds_log_level level;

        if (ds__log_level_parse(value, &level) == 0) {
            *(ds_log_level *)(void *)field = level;
            return 0;
        }
        break;
    }
    }
    join_names(d, names, sizeof names);
    return reason(buf, len, "'%.*s' is not one of: %s", QUOTE_MAX, value,
                  names);
}

static const directive *find_directive(const char *section, size_t seclen,
                                       const char *name)
{
    for (size_t i = 0; i < N_DIRECTIVES; i++) {
        const directive *d = &directives[i];
        if (strlen(d->section) == seclen &&
            strncmp(d->section, section, seclen) == 0 &&
            strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

/* Edit distance (insert, delete, replace, swap of neighbours) between two
 * short names, capped: enough to tell a typo from another key. */
static int name_distance(const char *a, const char *b)
{
    enum { MAX = 40 };
    size_t la = strlen(a), lb = strlen(b);
    int d[MAX + 1][MAX + 1];

    if (la > MAX || lb > MAX)
        return MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
                a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* " (did you mean 'batch_max'?)" for the key of section closest to name,
 * or "" when none is close. */
static void suggest_key(const char *section, size_t seclen, const char *name,
                        char *out, size_t len)
{
    const char *best = NULL;
    int best_d = 3; /* at most two edits away */

    for (size_t i = 0; i < N_DIRECTIVES; i++) {
        const directive *d = &directives[i];
        if (strlen(d->section) != seclen ||
            strncmp(d->section, section, seclen) != 0)
            continue;
        int dist = name_distance(name, d->name);
        if (dist < best_d) {
            best_d = dist;
            best = d->name;
        }
    }
    if (best)
        snprintf(out, len, " (did you mean '%s'?)", best);
    else if (len)
        out[0] = '\0';
}

static int known_section(const char *section, size_t seclen)
{
    for (size_t i = 0; i < N_DIRECTIVES; i++)
        if (strlen(directives[i].section) == seclen &&
            strncmp(directives[i].section, section, seclen) == 0)
            return 1;
    return 0;
}

/* "node amqp mysql ..." for the message of an unknown section: the table is
 * grouped by section, so a change of section starts a new name. */
static void list_sections(char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < N_DIRECTIVES && used < len; i++) {
        int n;

        if (i > 0 &&
            strcmp(directives[i].section, directives[i - 1].section) == 0)
            continue;
        n = snprintf(buf + used, len - used, "%s[%s]", i ? " " : "",
                     directives[i].section);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

void ds__config_defaults(ds_config *cfg)
{
    char buf[REASON_SIZE];

    memset(cfg, 0, sizeof *cfg);
    /* Cannot fail: the defaults are constants that test_config loads and
     * compares with the documented values. */
    for (size_t i = 0; i < N_DIRECTIVES; i++)
        (void)apply(&directives[i], cfg, directives[i].def, buf, sizeof buf);
}

int ds__config_set(ds_config *cfg, const char *key, const char *value,
                   char *err, size_t errlen)
{
    char buf[REASON_SIZE];
    const directive *d;
    const char *dot;

    if (!cfg || !key || !value)
        return ds__seterr(err, errlen, DS_EINVAL, "%s: missing %s",
                          key ? key : "(null)", key ? "value" : "key");
    dot = strchr(key, '.');
    if (!dot)
        return ds__seterr(err, errlen, DS_ECONFIG,
                          "%s: expected section.key, e.g. amqp.url", key);
    d = find_directive(key, (size_t)(dot - key), dot + 1);
    if (!d) {
        if (known_section(key, (size_t)(dot - key))) {
            suggest_key(key, (size_t)(dot - key), dot + 1, buf, sizeof buf);
            return ds__seterr(err, errlen, DS_ECONFIG, "%s: unknown key%s", key,
                              buf);
        }
        list_sections(buf, sizeof buf);
        return ds__seterr(err, errlen, DS_ECONFIG,
                          "%s: unknown section [%.*s] (known: %s)", key,
                          (int)(dot - key), key, buf);
    }
    if (apply(d, cfg, value, buf, sizeof buf) != 0)
        return ds__seterr(err, errlen, DS_ECONFIG, "%s: %s", key, buf);
    return 0;
}

int ds__config_each_change(const ds_config *a, const ds_config *b,
                           void (*fn)(const char *key, void *ctx), void *ctx)
{
    int changed = 0;

    for (size_t i = 0; i < N_DIRECTIVES; i++) {
        const directive *d = &directives[i];
        const char *fa = (const char *)a + d->offset;
        const char *fb = (const char *)b + d->offset;
        bool same_field_seen = false;
        char key[64];

        /* A string's bytes past its end are whatever an earlier, longer
         * value left there. */
        if (d->type == T_STRING || d->type == T_SECRET
                ? strcmp(fa, fb) == 0
                : memcmp(fa, fb, d->size) == 0)
            continue;
        /* mysql.password and mysql.password_file share their field: one
         * change, named by the first key. */
        for (size_t j = 0; j < i; j++)
            same_field_seen |= directives[j].offset == d->offset;
        if (same_field_seen)
            continue;
        snprintf(key, sizeof key, "%s.%s", d->section, d->name);
        fn(key, ctx);
        changed++;
    }
    return changed;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

/*
 * The file is read here, not by inih: Debian's libinih cuts lines at 200
 * bytes (a URL with a long password did not fit) and keeps its options in
 * process-wide variables (ini_max_line, ini_allow_multiline, ...) that a
 * library must not change in a host process. The syntax is the one inih
 * gave this file, stricter where inih was lax:
 *  - "[section]" with a known name and nothing after it; "key = value" (or
 *    "key: value") with blanks around key and value ignored;
 *  - comments: a line whose first non-blank is ';' or '#', and the rest of
 *    a line after " ;" (a ';' with a blank before it);
 *  - lines of any length, LF or CRLF, a UTF-8 BOM first;
 *  - no continuation lines: a list key written again adds its words;
 *  - the first bad line stops the load, control bytes included (a binary
 *    file), and nothing of the file is applied.
 */
typedef struct load_state {
    FILE *f;
    char *text; /* the line being parsed (getline's buffer) */
    size_t cap;
    int line;            /* its number, from 1 */
    int err_line;        /* the first bad line; 0 */
    int io_errno;        /* a read error: the load fails with DS_EIO */
    const char *section; /* the table's name of the current section */
    char reason[REASON_SIZE];
    /* A working copy: a bad file leaves the caller's as it was. */
    ds_config cfg;
    /* Keys set by this file so far: a list key seen again adds its words. */
    bool seen[sizeof directives / sizeof directives[0]];
} load_state;

static void fail_line(load_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the bad line; the load stops there. */
static void fail_line(load_state *st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->reason, sizeof st->reason, fmt, ap);
    va_end(ap);
    st->err_line = st->line;
}

/* Reads the next line into st->text without its line end. Returns 1, 0 at
 * the end of the file, -1 after a read error or a control byte. */
static int read_line(load_state *st)
{
    ssize_t n;

    errno = 0;
    n = getline(&st->text, &st->cap, st->f);
    if (n < 0) {
        if (!feof(st->f))
            st->io_errno = errno ? errno : EIO;
        return st->io_errno ? -1 : 0;
    }
    st->line++;
    if (n > 0 && st->text[n - 1] == '\n')
        n--;
    if (n > 0 && st->text[n - 1] == '\r')
        n--; /* CRLF, or a CR that ends the file */
    st->text[n] = '\0';
    for (ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)st->text[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            fail_line(st, "control character 0x%02x (not a text file?)", c);
            return -1;
        }
    }
    return 1;
}

/* The space-separated lists: amqp.url and apply.tables. */
static bool is_list(const directive *d)
{
    return d->check == check_urls || d->check == check_tables;
}

/* Adds value's words to a list key this file already set. */
static void append_list(load_state *st, const directive *d, const char *value)
{
    const char *have = (const char *)&st->cfg + d->offset;
    char joined[sizeof st->cfg.apply_tables + 2], buf[REASON_SIZE - 64];
    size_t nhave = strlen(have), nvalue = strlen(value), at = nhave;

    if (nhave + 1 + nvalue >= sizeof joined) {
        fail_line(st, "%s.%s: value too long (max %lld bytes in all)",
                  d->section, d->name, d->max);
        return;
    }
    memcpy(joined, have, nhave);
    if (nhave)
        joined[at++] = ' ';
    memcpy(joined + at, value, nvalue + 1);
    if (apply(d, &st->cfg, joined, buf, sizeof buf) != 0)
        fail_line(st, "%s.%s: %s", d->section, d->name, buf);
}

/* "[name]": checks the name and makes it the current section. */
static void section_line(load_state *st, char *s)
{
    char *end = strchr(s, ']');
    size_t n;

    if (!end) {
        fail_line(st, "missing ']' in section header");
        return;
    }
    if (end[1] != '\0') {
        fail_line(st, "unexpected text after ']'");
        return;
    }
    n = (size_t)(end - s - 1);
    for (size_t i = 0; i < N_DIRECTIVES; i++) {
        if (strlen(directives[i].section) == n &&
            strncmp(directives[i].section, s + 1, n) == 0) {
            st->section = directives[i].section;
            return;
        }
    }
    {
        char known[REASON_SIZE / 2];
        list_sections(known, sizeof known);
        fail_line(st, "unknown section [%.*s] (known: %s)",
                  (int)(n < QUOTE_MAX ? n : QUOTE_MAX), s + 1, known);
    }
}

/* "key = value" under the current section. */
static void key_line(load_state *st, char *s)
{
    size_t k = strcspn(s, "=:");
    char *name = s, *value, *end;
    const directive *d;
    char buf[REASON_SIZE - 64];

    if (s[k] == '\0') {
        fail_line(st, "expected 'key = value'");
        return;
    }
    if (k == 0) {
        fail_line(st, "missing key before '%c'", s[k]);
        return;
    }
    value = s + k + 1;
    value += strspn(value, " \t");
    for (end = s + k; end > name && (end[-1] == ' ' || end[-1] == '\t');)
        end--;
    *end = '\0';
    if (!st->section) {
        fail_line(st, "key '%.*s' before any [section]", QUOTE_MAX, name);
        return;
    }
    d = find_directive(st->section, strlen(st->section), name);
    if (!d) {
        char hint[96];
        suggest_key(st->section, strlen(st->section), name, hint, sizeof hint);
        fail_line(st, "unknown key '%.*s' in [%s]%s", QUOTE_MAX, name,
                  st->section, hint);
        return;
    }
    if (is_list(d) && st->seen[d - directives]) {
        /* A long list of brokers or tables may be written as several
         * lines of the same key, which add up. */
        append_list(st, d, value);
        return;
    }
    st->seen[d - directives] = true;
    if (apply(d, &st->cfg, value, buf, sizeof buf) != 0)
        fail_line(st, "%s.%s: %s", d->section, d->name, buf);
}

/* One line: comments and blanks dropped, then a section or a key. */
static void parse_line(load_state *st)
{
    char *s = st->text, *p;

    if (st->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3; /* UTF-8 BOM */
    s += strspn(s, " \t");
    if (*s == ';' || *s == '#')
        return;
    for (p = s; *p; p++) {
        if (*p == ';' && p > s && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
    }
    while (p > s && (p[-1] == ' ' || p[-1] == '\t'))
        *--p = '\0';
    if (*s == '[')
        section_line(st, s);
    else if (*s)
        key_line(st, s);
}

int ds__config_load(ds_config *cfg, const char *path, char *err, size_t errlen)
{
    load_state *st;
    char ebuf[128];
    int rc;

    if (!cfg || !path)
        return ds__seterr(err, errlen, DS_EINVAL, "no configuration file");
    /* On the heap: the working copy is ~15 KB, too much for a host thread
     * with a small stack. */
    st = calloc(1, sizeof *st);
    if (!st)
        return ds__seterr(err, errlen, DS_ENOMEM, "%s: out of memory", path);
    st->f = fopen(path, "re");
    if (!st->f) {
        rc = ds__seterr(err, errlen, DS_EIO, "%s: %s", path,
                        strerror_r(errno, ebuf, sizeof ebuf));
        goto fail;
    }
    st->cfg = *cfg;

    while (!st->err_line && read_line(st) > 0)
        parse_line(st);

    if (st->io_errno == ENOMEM) {
        rc = ds__seterr(err, errlen, DS_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (st->io_errno) {
        rc = ds__seterr(err, errlen, DS_EIO, "%s: %s", path,
                        strerror_r(st->io_errno, ebuf, sizeof ebuf));
        goto fail;
    }
    if (st->err_line) {
        rc = ds__seterr(err, errlen, DS_ECONFIG, "%s:%d: %s", path,
                        st->err_line, st->reason);
        goto fail;
    }
    *cfg = st->cfg;
    rc = 0;
fail:
    if (st->f)
        fclose(st->f);
    free(st->text);
    free(st);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

const char *ds__config_path(const char *given)
{
    const char *env;

    if (given)
        return given;
    env = getenv("DATASYNC_CONFIG");
    return env && *env ? env : NULL;
}

int ds__config_each_word(const char *list,
                         int (*fn)(const char *word, size_t len, void *ctx),
                         void *ctx)
{
    const char *p = list;

    if (!p)
        return 0;
    for (;;) {
        size_t n;
        int r;

        p += strspn(p, " \t");
        if (*p == '\0')
            return 0;
        n = strcspn(p, " \t");
        r = fn(p, n, ctx);
        if (r != 0)
            return r;
        p += n;
    }
}
