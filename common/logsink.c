/* logsink.c: the programs' log lines, as text or JSON, to stderr or a log file that can be reopened. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "logsink.h"

/* A whole line: ds__log cuts messages at 1 KB, which escaping may grow six
 * times at worst (\u00XX); what does not fit is cut, never overrun. */
#define LINE_MAX_BYTES 8192

/* ------------------------------------------------------------------------ */
/* JSON strings                                                              */

/* The length of the UTF-8 sequence at s (1..4), or 0 when s does not start
 * a valid one: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_sequence(const unsigned char *s)
{
    unsigned char c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
                       (s[3] & 0xC0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

size_t ds__json_escape(char *out, size_t len, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t used = 0;

    if (len == 0)
        return 0;
    while (*p) {
        char esc[8];
        const char *piece = esc;
        size_t n, step = 1;

        switch (*p) {
        case '"':
            piece = "\\\"";
            break;
        case '\\':
            piece = "\\\\";
            break;
        case '\n':
            piece = "\\n";
            break;
        case '\r':
            piece = "\\r";
            break;
        case '\t':
            piece = "\\t";
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
            } else if ((step = utf8_sequence(p)) == 0) {
                piece = "\\ufffd";
                step = 1;
            } else {
                memcpy(esc, p, step);
                esc[step] = '\0';
            }
        }
        n = strlen(piece);
        if (used + n >= len)
            break;
        memcpy(out + used, piece, n);
        used += n;
        p += step;
    }
    out[used] = '\0';
    return used;
}

/* ------------------------------------------------------------------------ */
/* Lines                                                                     */

typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t used;
} line;

static void put(line *l, const char *s)
{
    size_t n = strlen(s);

    if (l->used + n >= sizeof l->buf)
        n = sizeof l->buf - 1 - l->used;
    memcpy(l->buf + l->used, s, n);
    l->used += n;
    l->buf[l->used] = '\0';
}

/* "name":"escaped value" after a comma, or first. */
static void put_string_field(line *l, const char *name, const char *value,
                             size_t value_len)
{
    char copy[LINE_MAX_BYTES / 4];

    if (value_len >= sizeof copy)
        value_len = sizeof copy - 1;
    memcpy(copy, value, value_len);
    copy[value_len] = '\0';
    put(l, l->used > 1 ? ",\"" : "\"");
    put(l, name);
    put(l, "\":\"");
    l->used += ds__json_escape(l->buf + l->used, sizeof l->buf - l->used, copy);
    put(l, "\"");
}

/* The leading word of "word: rest" (lower case letters and dashes): its
 * length, or 0. */
static size_t event_length(const char *msg)
{
    size_t n = 0;

    if (msg[0] < 'a' || msg[0] > 'z')
        return 0;
    while ((msg[n] >= 'a' && msg[n] <= 'z') || msg[n] == '-')
        n++;
    return msg[n] == ':' && msg[n + 1] == ' ' ? n : 0;
}

static bool reserved_name(const char *name)
{
    static const char *const names[] = {"time", "level", "program",
                                        "node", "event", "msg"};

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/*
 * Parses "name N, other name N, ..." (what the stats lines say) into
 * ,"name":N,"other_name":N. Returns false, writing nothing, unless the
 * whole text is such counters: any other message keeps only its text.
 */
static bool put_counters(line *l, const char *s)
{
    line fields = {.used = 0};

    while (*s) {
        char name[64];
        size_t n = 0, k;
        const char *num;

        /* name: letters, spaces, dashes, ending before " N" */
        while ((s[n] >= 'a' && s[n] <= 'z') || s[n] == ' ' || s[n] == '-')
            n++;
        if (n >= 2 && s[n - 1] == '-' && s[n - 2] == ' ')
            n--; /* the sign of the number */
        if (n < 2 || s[n - 1] != ' ' || n > sizeof name)
            return false;
        num = s + n;
        k = num[0] == '-' ? 1 : 0;
        if (num[k] < '0' || num[k] > '9')
            return false;
        while (num[k] >= '0' && num[k] <= '9')
            k++;
        if (num[k] != '\0' && !(num[k] == ',' && num[k + 1] == ' '))
            return false;
        memcpy(name, s, n - 1);
        name[n - 1] = '\0';
        for (char *c = name; *c; c++)
            if (*c == ' ' || *c == '-')
                *c = '_';
        if (!reserved_name(name)) {
            put(&fields, ",\"");
            put(&fields, name);
            put(&fields, "\":");
            /* A number as written: digits, maybe a minus. */
            char digits[32];
            snprintf(digits, sizeof digits, "%.*s", (int)k, num);
            put(&fields, digits);
        }
        s = num + k;
        if (*s == ',')
            s += 2;
    }
    put(l, fields.buf);
    return true;
}

static void format_json(line *l, const ds_log_sink *s, ds_log_level level,
                        const char *msg)
{
    char stamp[DS_LOG_STAMP_SIZE];
    size_t ev = event_length(msg);

    ds__log_stamp(stamp);
    put(l, "{");
    put_string_field(l, "time", stamp, strlen(stamp));
    put_string_field(l, "level", ds__log_level_name(level),
                     strlen(ds__log_level_name(level)));
    put_string_field(l, "program", s->program, strlen(s->program));
    if (s->node[0])
        put_string_field(l, "node", s->node, strlen(s->node));
    if (ev)
        put_string_field(l, "event", msg, ev);
    put_string_field(l, "msg", msg, strlen(msg));
    if (ev)
        put_counters(l, msg + ev + 2);
    /* Room for the closing brace and the newline, even when cut. */
    if (l->used > sizeof l->buf - 3)
        l->used = sizeof l->buf - 3;
    l->buf[l->used] = '\0';
    put(l, "}\n");
}

static void format_text(line *l, const ds_log_sink *s, ds_log_level level,
                        const char *msg)
{
    char stamp[DS_LOG_STAMP_SIZE];
    int n;

    ds__log_stamp(stamp);
    n = snprintf(l->buf, sizeof l->buf - 1, "%s %-5s %s%s%s", stamp,
                 ds__log_level_name(level), s->program,
                 s->program[0] ? ": " : "", msg);
    l->used = n < 0                           ? 0
              : (size_t)n < sizeof l->buf - 1 ? (size_t)n
                                              : sizeof l->buf - 2;
    l->buf[l->used++] = '\n';
    l->buf[l->used] = '\0';
}

void ds__log_sink_write(void *sink, ds_log_level level, const char *message)
{
    ds_log_sink *s = sink;
    line l = {.used = 0};

    pthread_mutex_lock(&s->lock);
    if (s->format == DS_LOG_JSON)
        format_json(&l, s, level, message);
    else
        format_text(&l, s, level, message);
    /* Nowhere to report a failed log write: the line is lost. */
    for (size_t off = 0; off < l.used;) {
        ssize_t n = write(s->fd, l.buf + off, l.used - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                   */

/* A new descriptor for path, or for stderr when path is "". */
static int open_target(const char *path, char *err, size_t errlen)
{
    char ebuf[128];
    int fd = path[0]
                 ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)
                 : fcntl(2, F_DUPFD_CLOEXEC, 3);

    if (fd < 0)
        return ds__seterr(err, errlen, DS_EIO, "%s: %s",
                          path[0] ? path : "stderr",
                          strerror_r(errno, ebuf, sizeof ebuf));
    return fd;
}

int ds__log_sink_open(ds_log_sink *s, const char *program, const char *node,
                      ds_log_format format, const char *path, char *err,
                      size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    if (!path)
        path = "";
    if (strlen(path) >= sizeof s->path)
        return ds__seterr(err, errlen, DS_EINVAL, "log file name too long");
    snprintf(s->program, sizeof s->program, "%s", program ? program : "");
    snprintf(s->node, sizeof s->node, "%s", node ? node : "");
    s->format = format;
    int fd = open_target(path, err, errlen);
    if (fd < 0)
        return fd;
    pthread_mutex_init(&s->lock, NULL);
    s->fd = fd;
    memcpy(s->path, path, strlen(path) + 1);
    return 0;
}

int ds__log_sink_reopen(ds_log_sink *s, const char *path, char *err,
                        size_t errlen)
{
    if (strlen(path) >= sizeof s->path)
        return ds__seterr(err, errlen, DS_EINVAL, "log file name too long");
    /* Opened before the old one is let go: a path that cannot be opened
     * leaves the sink as it was. */
    int fd = open_target(path, err, errlen);
    if (fd < 0)
        return fd;
    pthread_mutex_lock(&s->lock);
    int old = s->fd;
    s->fd = fd;
    memcpy(s->path, path, strlen(path) + 1);
    pthread_mutex_unlock(&s->lock);
    close(old);
    return 0;
}

void ds__log_sink_set_format(ds_log_sink *s, ds_log_format format)
{
    pthread_mutex_lock(&s->lock);
    s->format = format;
    pthread_mutex_unlock(&s->lock);
}

void ds__log_sink_close(ds_log_sink *s)
{
    if (s->fd < 0)
        return;
    close(s->fd);
    s->fd = -1;
    pthread_mutex_destroy(&s->lock);
}
