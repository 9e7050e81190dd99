/* log.c: leveled logging through a per-handle callback, and the stderr sink of the programs. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ds__log(const ds_logger *lg, ds_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (!lg->fn || level < lg->level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lg->fn(lg->userdata, level, msg);
}

void ds__log_stamp(char out[DS_LOG_STAMP_SIZE])
{
    struct timeval tv;
    struct tm tm;
    char secs[24];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(secs, sizeof secs, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, DS_LOG_STAMP_SIZE, "%s.%03dZ", secs,
             (int)(tv.tv_usec / 1000) % 1000);
}

void ds__log_stderr(void *userdata, ds_log_level level, const char *message)
{
    char stamp[DS_LOG_STAMP_SIZE];

    ds__log_stamp(stamp);
    /* One fprintf per line: stdio locks the stream, so lines from several
     * threads never interleave. */
    fprintf(stderr, "%s %-5s %s%s%s\n", stamp, ds__log_level_name(level),
            userdata ? (const char *)userdata : "", userdata ? ": " : "",
            message);
}

int ds__log_level_parse(const char *name, ds_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (ds_log_level)i;
            return 0;
        }
    }
    return DS_EINVAL;
}

const char *ds__log_level_name(ds_log_level level)
{
    if ((int)level < 0 || (int)level > 3)
        return "?";
    return level_names[level];
}
