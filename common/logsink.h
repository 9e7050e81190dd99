/* logsink.h: where the programs' log lines go: text or JSON lines, to stderr or a file that SIGHUP reopens. */
#ifndef DS_COMMON_LOGSINK_H
#define DS_COMMON_LOGSINK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "datasync.h"

typedef enum { DS_LOG_TEXT = 0, DS_LOG_JSON = 1 } ds_log_format;

/*
 * One per program (datasync-consumer, datasync-capture), owned by main():
 * the library never writes anywhere, it hands its messages to the host's
 * callback, and a program passes ds__log_sink_write with its sink. Lines
 * may come from several threads (libdatasync's I/O thread in the capture):
 * a lock keeps them whole and lets another thread reopen the file.
 */
typedef struct ds_log_sink {
    pthread_mutex_t lock;
    int fd;               /* a file opened here, or a duplicate of stderr */
    ds_log_format format; /* of the lines written from now on */
    char path[1024];      /* the log file; "" = stderr */
    char program[64];     /* "program" in JSON, the "prog: " prefix in text */
    char node[65];        /* "node" in JSON; "" = not set */
} ds_log_sink;

/* Opens the sink: path "" (or NULL) writes to stderr. Returns 0, or DS_EIO
 * with err ("PATH: strerror") when the file cannot be opened for appending
 * (created 0640 when missing), DS_EINVAL for a path that does not fit. */
int ds__log_sink_open(ds_log_sink *s, const char *program, const char *node,
                      ds_log_format format, const char *path, char *err,
                      size_t errlen);

/* Opens path ("" = stderr) again, a new path or the same one after a
 * rotation, and writes there from the next line on. On failure the sink
 * keeps writing where it did and returns DS_EIO with err. Any thread. */
int ds__log_sink_reopen(ds_log_sink *s, const char *path, char *err,
                        size_t errlen);

/* Changes the format of the lines written from now on. Any thread. */
void ds__log_sink_set_format(ds_log_sink *s, ds_log_format format);

/* Closes the file (not stderr). */
void ds__log_sink_close(ds_log_sink *s);

/* A ds_log_fn: userdata is the ds_log_sink. One line per message, written
 * with one write(2), so lines of several processes appending to one file
 * do not interleave.
 *   text: 2026-01-02T03:04:05.678Z info  datasync-consumer: message
 *   json: {"time":"2026-01-02T03:04:05.678Z","level":"info",
 *          "program":"datasync-consumer","node":"a","event":"stats",
 *          "msg":"stats: applied 5, ...","applied":5,...}
 * "event" is the message's leading word before ": " (broker, database,
 * stats, reload, ...) when it has one; a message that is only counters
 * ("event: name N, name N, ...") also gets each counter as a number field
 * (spaces and dashes in names become '_'). */
void ds__log_sink_write(void *sink, ds_log_level level, const char *message);

/* Appends s as the inside of a JSON string (no quotes) to out, which holds
 * len bytes and is always terminated; stops before a character that does
 * not fit. Quotes, backslashes and control characters are escaped; bytes
 * that are not UTF-8 become U+FFFD, so the line stays valid JSON whatever
 * a message quotes. Returns the bytes written. */
size_t ds__json_escape(char *out, size_t len, const char *s);

#endif
