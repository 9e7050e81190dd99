/* binlog.h: the local MariaDB's binary log, read as a replica from a GTID position, one raw event at a time. */
#ifndef DS_CAPTURE_BINLOG_H
#define DS_CAPTURE_BINLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "rowimage.h"

/* The event types the capture acts on (the server's log_event.h). */
enum {
    CAP_EV_QUERY = 2,
    CAP_EV_ROTATE = 4,
    CAP_EV_FORMAT_DESCRIPTION = 15,
    CAP_EV_XID = 16,
    /* LOAD DATA logged as a statement: a query with the file's place. */
    CAP_EV_EXECUTE_LOAD_QUERY = 18,
    CAP_EV_TABLE_MAP = 19,
    CAP_EV_WRITE_ROWS_V1 = 23,
    CAP_EV_UPDATE_ROWS_V1 = 24,
    CAP_EV_DELETE_ROWS_V1 = 25,
    CAP_EV_INCIDENT = 26,
    CAP_EV_HEARTBEAT = 27,
    CAP_EV_WRITE_ROWS = 30,
    CAP_EV_XA_PREPARE = 38,
    CAP_EV_UPDATE_ROWS = 31,
    CAP_EV_DELETE_ROWS = 32,
    CAP_EV_GTID = 162,
    CAP_EV_GTID_LIST = 163,
    /* log_bin_compress: the query text, or the rows, zlib-compressed. */
    CAP_EV_QUERY_COMPRESSED = 165,
    CAP_EV_WRITE_ROWS_COMPRESSED_V1 = 166, /* update 167, delete 168 */
    CAP_EV_WRITE_ROWS_COMPRESSED = 169,    /* update 170, delete 171 */
    CAP_EV_DELETE_ROWS_COMPRESSED = 171
};

/* One event, borrowed from the reader until the next cap_binlog_next. */
typedef struct cap_event {
    uint8_t type;
    uint32_t when; /* the header's timestamp: unix seconds */
    uint32_t server_id;
    uint16_t flags;
    uint32_t next_pos;         /* in the current file */
    const unsigned char *body; /* after the 19-byte header */
    size_t len;                /* without the checksum */
} cap_event;

typedef struct cap_binlog cap_binlog;

/*
 * Connects to the server of cfg's [mysql] section, checks that it logs
 * what the capture needs (log_bin, binlog_format=ROW,
 * binlog_row_image=FULL, binlog_row_metadata=FULL), and starts the binlog
 * dump as replica cfg->capture_server_id after GTID position gtid ("" for
 * the start of the binlog). Reads the server's collations into cs.
 * Returns 0 and *out, DS_EDBCONNECT (transient: retry later), DS_ECONFIG
 * (the server is not set up for capture: do not retry), DS_EMYSQL, or
 * DS_ENOMEM, with err.
 */
int cap_binlog_open(cap_binlog **out, const ds_config *cfg, const char *gtid,
                    cap_charsets *cs, char *err, size_t errlen);

/*
 * The server's current GTID position (@@gtid_binlog_pos): where a first
 * start without state begins. Connects for this call only. Returns 0 with
 * buf filled, or an error as cap_binlog_open.
 */
int cap_binlog_current_pos(const ds_config *cfg, char *buf, size_t cap,
                           char *err, size_t errlen);

/*
 * Waits for the next event (heartbeats included: the server sends one
 * each second while idle, so the caller regains control). Returns 0 and
 * *ev; DS_ENOTFOUND when the requested GTID is no longer in the binlog
 * (purged: fatal); DS_EDBCONNECT for a lost connection (reconnect from the
 * saved position); DS_EMYSQL or DS_EINVAL (a corrupt event) with err.
 */
int cap_binlog_next(cap_binlog *b, cap_event *ev, char *err, size_t errlen);

/* The binlog file being read ("" before the first ROTATE). */
const char *cap_binlog_file(const cap_binlog *b);

/* Closes the stream and the connection; NULL is a no-op. */
void cap_binlog_close(cap_binlog *b);

#endif
