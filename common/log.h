/* log.h: leveled logging through a callback; the level is checked before formatting. */
#ifndef DS_COMMON_LOG_H
#define DS_COMMON_LOG_H

#include "datasync.h"

/* One per handle (producer, consumer, CLI): no global logger. */
typedef struct ds_logger {
    ds_log_level level; /* messages below it are dropped unformatted */
    ds_log_fn fn;       /* NULL: logging off */
    void *userdata;
} ds_logger;

/* Formats and hands one message to lg->fn. Call through DS_LOG so the
 * arguments are not even evaluated for a dropped level. */
void ds__log(const ds_logger *lg, ds_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define DS_LOG(lg, lvl, ...)                                                   \
    do {                                                                       \
        if ((lg)->fn && (lvl) >= (lg)->level)                                  \
            ds__log((lg), (lvl), __VA_ARGS__);                                 \
    } while (0)

/* A ds_log_fn for programs: one line to stderr with an ISO 8601 UTC
 * timestamp, the level, and userdata as a program name if not NULL. */
void ds__log_stderr(void *userdata, ds_log_level level, const char *message);

/* The time of a log line: "2026-01-02T03:04:05.678Z" (UTC, ms). */
#define DS_LOG_STAMP_SIZE 32
void ds__log_stamp(char out[DS_LOG_STAMP_SIZE]);

/* Parses "debug", "info", "warn" or "error". Returns 0 or DS_EINVAL. */
int ds__log_level_parse(const char *name, ds_log_level *out);

const char *ds__log_level_name(ds_log_level level);

#endif
