/* datasync.h: public API of libdatasync, the change-event producer library. */
#ifndef DATASYNC_H
#define DATASYNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DS_VERSION_MAJOR 0
#define DS_VERSION_MINOR 1
#define DS_VERSION_PATCH 0

#if defined(DS_BUILDING_LIBRARY) && defined(__GNUC__)
#define DS_EXPORT __attribute__((visibility("default")))
#else
#define DS_EXPORT
#endif

/*
 * Error codes. Every fallible call returns 0 or one of these (negative).
 * One list makes the enum, ds_strerror() and ds_err_name(), so a code can
 * never lack its text. Codes are only ever appended, never renumbered.
 */
#define DS_ERRNO_MAP(XX)                                                       \
    XX(EINVAL, -1, "invalid argument")                                         \
    XX(ENOMEM, -2, "out of memory")                                            \
    XX(EJSON, -3, "malformed JSON")                                            \
    XX(ESCHEMA, -4, "event violates the change-event schema")                  \
    XX(ECONFIG, -5, "bad configuration")                                       \
    XX(EIO, -6, "input/output error")                                          \
    XX(ESPOOL, -7, "spool error")                                              \
    XX(ECONNECT, -8, "cannot connect to the broker")                           \
    XX(EAMQP, -9, "broker error")                                              \
    XX(ETIMEOUT, -10, "timed out")                                             \
    XX(EUNROUTABLE, -11, "unroutable: no queue is bound for the change")       \
    XX(ENACK, -12, "the broker refused the message")                           \
    XX(EMYSQL, -13, "database error")                                          \
    XX(EDBCONNECT, -14, "cannot connect to the database")                      \
    XX(ETOOBIG, -15, "message too large")                                      \
    XX(ETABLE, -16, "table not applied on this server")                        \
    XX(ECOLUMN, -17, "unknown column")                                         \
    XX(ECONSTRAINT, -18, "the row breaks a constraint")                        \
    XX(ENOTFOUND, -19, "not found")                                            \
    XX(ESTATE, -20, "operation not allowed in this state")                     \
    XX(ECLOSED, -21, "handle is closed")

typedef enum {
    DS_OK = 0,
#define DS__ERR_ENUM(name, code, text) DS_##name = (code),
    DS_ERRNO_MAP(DS__ERR_ENUM)
#undef DS__ERR_ENUM
} ds_err;

/* A buffer of this size holds any error detail the library writes in full
 * (ds_producer_new's err). */
#define DS_ERRBUF_SIZE 512

/* Static English text for an error code; "unknown error" for a code not in
 * the list. Never NULL. Any thread. */
DS_EXPORT const char *ds_strerror(int err);

/* The code's name without prefix, e.g. "ETIMEOUT"; "OK" for 0, "UNKNOWN" for a
 * code not in the list. Never NULL. Any thread. */
DS_EXPORT const char *ds_err_name(int err);

/* The library's version as "MAJOR.MINOR.PATCH". Static string. */
DS_EXPORT const char *ds_version(void);

/* ------------------------------------------------------------------------ */
/* Options: the configuration of a producer.                                 */

typedef struct ds_options ds_options;

/* A new options object holding every default of datasync.conf. NULL when out
 * of memory. Free with ds_options_free(). */
DS_EXPORT ds_options *ds_options_new(void);

/* Reads an INI configuration file into opts (later values override earlier
 * ones). Returns 0, DS_EIO if the file cannot be read, or DS_ECONFIG for a bad
 * line; ds_options_errmsg() then says "file:line: reason". DS_ENOMEM, and
 * DS_EINVAL for a NULL argument. */
DS_EXPORT int ds_options_load(ds_options *opts, const char *path);

/* Sets one key written "section.key" as in the file ("amqp.url",
 * "producer.mode", ...). The strings are copied. Returns 0 or DS_ECONFIG
 * (DS_EINVAL for a NULL argument). */
DS_EXPORT int ds_options_set(ds_options *opts, const char *key,
                             const char *value);

/* The message of the last failed ds_options_load/ds_options_set; "" if none.
 * Borrowed: valid until the next call on opts. */
DS_EXPORT const char *ds_options_errmsg(const ds_options *opts);

/* Frees opts; NULL is a no-op. */
DS_EXPORT void ds_options_free(ds_options *opts);

/* ------------------------------------------------------------------------ */
/* The producer.                                                             */

typedef struct ds_producer ds_producer;

typedef enum { DS_OP_CREATE = 1, DS_OP_UPDATE = 2, DS_OP_DELETE = 3 } ds_op;

/* Log levels of the optional log callback. */
typedef enum {
    DS_LOG_DEBUG = 0,
    DS_LOG_INFO = 1,
    DS_LOG_WARN = 2,
    DS_LOG_ERROR = 3
} ds_log_level;

typedef void (*ds_log_fn)(void *userdata, ds_log_level level,
                          const char *message);

/* Counters since ds_producer_new(). Fields are only ever appended, so a
 * struct of an older header is a prefix of a newer one: pass
 * ds_producer_stats_get() the size of yours. */
typedef struct ds_producer_stats {
    uint64_t emitted;    /* changes accepted by ds_emit/ds_emit_event */
    uint64_t confirmed;  /* confirmed by the broker (spool drains included) */
    uint64_t spooled;    /* written to the local spool */
    uint64_t unroutable; /* returned by the broker: no queue bound */
    uint64_t nacked;     /* nacked by the broker (then retried or spooled) */
    uint64_t reconnects; /* successful connections after the first */
    /* Connections the broker refused (login, vhost, permissions, a missing
     * exchange): not an outage, each is logged at DS_LOG_ERROR. */
    uint64_t refused;
    /* Bytes waiting in the spool (producer.spool_dir, all processes that
     * share it), read when the counters are taken. */
    uint64_t spool_bytes;
    /* Changes neither the broker nor the spool took (a spool write failed:
     * disk full, I/O error): lost, each logged at DS_LOG_ERROR and reported,
     * by ds_emit when it spooled the change itself (sync mode, or async
     * with 16384 changes already queued) and by ds_flush otherwise. */
    uint64_t lost;
} ds_producer_stats;

/*
 * Creates a producer from opts (copied: opts may be freed afterwards; this
 * call never writes to it). node.id must be set: it is the origin of every
 * change. Opens the spool in producer.spool_dir and starts the library's
 * I/O thread, which connects in the background: an unreachable broker never
 * fails creation, it only means changes are spooled. Returns 0 and *out, or
 * a negative code (*out stays NULL: DS_EINVAL, DS_ECONFIG, DS_ESPOOL,
 * DS_EIO, DS_ENOMEM) with the reason written to err, cut to errlen bytes
 * and terminated (DS_ERRBUF_SIZE holds it in full); err may be NULL. On
 * success err holds "". Any thread.
 *
 * Threads: one producer may be used by several threads at once.
 * Fork: a child may keep using the producer it inherited: its first call
 * notices the new process, drops the parent's connection and queue (the
 * parent still delivers those), reopens the spool and reconnects (if that
 * fails, the call returns the error and the next call tries again). Only the
 * forking thread survives a fork, so fork while no other thread is inside a
 * ds_ call (as pre-forking servers do before they serve), and make the
 * child's first call before it starts threads that use the producer.
 */
DS_EXPORT int ds_producer_new(ds_producer **out, const ds_options *opts,
                              char *err, size_t errlen);

/* Flushes for up to producer.confirm_timeout_ms, spools whatever is still
 * unconfirmed, closes and frees; a spool being drained is left after the
 * chunk in flight, for the next producer on it, so this can take up to
 * twice producer.confirm_timeout_ms (a chunk's confirms after the flush),
 * plus a connection attempt already under way. NULL is a no-op. No other
 * thread may use the producer during or after this call. */
DS_EXPORT void ds_producer_free(ds_producer *p);

/* Sets the log callback (NULL: no logging, the default). The library never
 * prints; the callback gets the messages at log.level and above (info by
 * default). The callback runs on the library's I/O thread or inside any ds_
 * call on p, one message at a time and in order, and never while the
 * library holds a lock: it may call ds_producer_stats_get() and
 * ds_producer_errmsg() on p. It must not wait for p (ds_flush, a sync
 * ds_emit, ds_producer_free): it may be running on the very thread that
 * would have to finish that work. Any thread. */
DS_EXPORT void ds_producer_set_log(ds_producer *p, ds_log_fn fn,
                                   void *userdata);

/*
 * Emits one change of a row. table is an unqualified table name; key_json a
 * JSON object of the primary-key columns (at least one member, non-null
 * scalar values); data_json the whole row after the change (create, update)
 * or NULL (delete). The library makes the id (UUIDv7), hlc, ts and origin.
 *
 * producer.mode = sync: returns 0 once the broker confirmed the change or it
 * is fsynced in the spool. async: returns 0 once queued; ds_flush() waits.
 * Errors: DS_EINVAL, DS_EJSON, DS_ESCHEMA (input; nothing is published, the
 * message names the field), DS_ETOOBIG (the event is larger than
 * apply.max_message_bytes), DS_EUNROUTABLE (sync: no queue bound),
 * DS_ESPOOL (neither the broker nor the spool took the change: counted in
 * stats.lost; also async, when 16384 changes are already queued and the
 * spool refuses the next), DS_ECLOSED (the producer is being freed),
 * DS_ENOMEM, DS_EIO (no random bytes for the change's id), and in a forked
 * child the error of its first call's set-up (see ds_producer_new).
 * Any thread.
 */
DS_EXPORT int ds_emit(ds_producer *p, ds_op op, const char *table,
                      const char *key_json, const char *data_json);

/* Emits a whole change event as it is, keeping its id, origin and hlc (for
 * replay). Validated against the schema first. Same returns as ds_emit. */
DS_EXPORT int ds_emit_event(ds_producer *p, const char *event_json);

/* Waits until everything emitted so far is confirmed or spooled, at most
 * timeout_ms (< 0: producer.confirm_timeout_ms). Returns 0, DS_ETIMEOUT,
 * DS_ESPOOL if a change since the last flush was lost (the spool could not
 * take it: stats.lost), or else DS_EUNROUTABLE if one was returned
 * unroutable (in any mode, changes drained from the spool are told only
 * here); DS_EINVAL when p is NULL. Any thread. */
DS_EXPORT int ds_flush(ds_producer *p, int timeout_ms);

/* Copies the counters into out, which is size bytes: pass sizeof *out.
 * Fills only what fits: a caller built against an older, shorter
 * ds_producer_stats gets just the fields it has, and bytes past the
 * library's own struct (a newer caller's fields) are set to 0. Returns 0,
 * or DS_EINVAL when p or out is NULL (or, in a forked child, the error of
 * its first call's set-up). Any thread. */
DS_EXPORT int ds_producer_stats_get(ds_producer *p, ds_producer_stats *out,
                                    size_t size);

/* For monitoring from outside the application (datasync status does): the
 * bytes waiting in the spool directory dir, and the last reason a producer
 * using it gave for not reaching the broker (problem, "" when it last
 * connected fine; cut to problen bytes). Reads only: never creates, locks
 * for writing or changes anything. Returns 0, DS_ENOTFOUND when dir holds no
 * spool, DS_EIO, or DS_EINVAL for a NULL argument. Any thread; no producer
 * needed. */
DS_EXPORT int ds_spool_inspect(const char *dir, uint64_t *bytes, char *problem,
                               size_t problen);

/* The detail of the calling thread's last failed call on p (ds_emit,
 * ds_emit_event, ds_flush); "" if it has none. Each thread has its own, so
 * threads sharing p never read each other's, and a later successful call
 * leaves it in place. A thread keeps the details of its last 4 producers
 * failed on. Borrowed: valid until the calling thread's next call on any
 * producer. Any thread. */
DS_EXPORT const char *ds_producer_errmsg(const ds_producer *p);

#ifdef __cplusplus
}
#endif

#endif /* DATASYNC_H */
