/* binlog.c: the binlog dump of the local MariaDB through Connector/C's mariadb_rpl, events taken from their raw bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* mariadb_rpl.h uses mysql.h's types without including it. */
#include <mysql.h>

#include <mariadb_rpl.h>
#include <zlib.h>

#include "binlog.h"
#include "error.h"
#include "mysql_util.h"

/* The server sends a heartbeat each second while it has nothing to send:
 * the caller sees the stop flag within a second, and a read that waits
 * longer than the timeout below means the server is gone. */
#define HEARTBEAT_NS "1000000000"
#define READ_TIMEOUT_S 30u
#define CONNECT_TIMEOUT_S 10u

/* The server's "could not find GTID state" and every other fatal dump
 * error (ER_MASTER_FATAL_ERROR_READING_BINLOG). */
#define ER_FATAL_READING_BINLOG 1236

#define HEADER_LEN 19

struct cap_binlog {
    MYSQL *db;
    MARIADB_RPL *rpl;
    MARIADB_RPL_EVENT *ev; /* reused by each fetch */
    /* Events end with a CRC32: the server's setting at connect, then what
     * each file's FORMAT_DESCRIPTION says (a file keeps the setting it was
     * written under, whatever binlog_checksum is now). */
    bool checksum;
    char file[512];
};

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static int connect_db(MYSQL **out, const ds_config *cfg, char *err,
                      size_t errlen)
{
    unsigned int ct = CONNECT_TIMEOUT_S, rt = READ_TIMEOUT_S;
    const char *sock = cfg->mysql_socket[0] ? cfg->mysql_socket : NULL;
    MYSQL *db = mysql_init(NULL);
    int rc;

    *out = NULL;
    if (!db)
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_options(db, MYSQL_OPT_WRITE_TIMEOUT, &rt);
    mysql_options(db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(db, sock ? NULL : cfg->mysql_host, cfg->mysql_user,
                            cfg->mysql_password, NULL,
                            (unsigned int)cfg->mysql_port, sock, 0)) {
        rc = ds__mysql_error(db, "connect", NULL, err, errlen);
        mysql_close(db);
        return rc == DS_EMYSQL ? DS_EDBCONNECT : rc;
    }
    *out = db;
    return 0;
}

/* Runs a query whose first row is wanted: returns 0 and the result (the
 * caller frees it) with *row, or an error. */
static int query_row(MYSQL *db, const char *sql, MYSQL_RES **res,
                     MYSQL_ROW *row, char *err, size_t errlen)
{
    *res = NULL;
    if (mysql_query(db, sql) != 0 || !(*res = mysql_store_result(db)))
        return ds__mysql_error(db, sql, NULL, err, errlen);
    *row = mysql_fetch_row(*res);
    if (!*row) {
        mysql_free_result(*res);
        *res = NULL;
        return ds__seterr(err, errlen, DS_EMYSQL, "%s: no row", sql);
    }
    return 0;
}

/* The settings without which rows cannot be captured whole. */
static int check_server(cap_binlog *b, const ds_config *cfg, char *err,
                        size_t errlen)
{
    MYSQL_RES *res;
    MYSQL_ROW row;
    int rc = query_row(b->db,
                       "SELECT @@global.log_bin, @@global.binlog_format, "
                       "@@global.binlog_row_image, "
                       "@@global.binlog_row_metadata, "
                       "@@global.binlog_checksum, @@global.server_id",
                       &res, &row, err, errlen);
    if (rc)
        return rc;
    static const char *const want[] = {"1", "ROW", "FULL", "FULL"};
    static const char *const name[] = {
        "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata"};
    for (int i = 0; i < 4 && rc == 0; i++) {
        if (!row[i] || strcasecmp(row[i], want[i]) != 0)
            rc = ds__seterr(err, errlen, DS_ECONFIG,
                            "the server has %s=%s: datasync-capture needs "
                            "%s=%s (log_bin, binlog_format=ROW, "
                            "binlog_row_image=FULL, binlog_row_metadata=FULL)",
                            name[i], row[i] ? row[i] : "NULL", name[i],
                            i == 0 ? "ON" : want[i]);
    }
    if (rc == 0) {
        b->checksum = row[4] && strcasecmp(row[4], "NONE") != 0;
        if (row[5] && strtol(row[5], NULL, 10) == cfg->capture_server_id)
            rc = ds__seterr(err, errlen, DS_ECONFIG,
                            "capture.server_id %ld is the server's own "
                            "server_id: choose another",
                            cfg->capture_server_id);
    }
    mysql_free_result(res);
    return rc;
}

static int read_charsets(MYSQL *db, cap_charsets *cs, char *err, size_t errlen)
{
    MYSQL_RES *res;
    MYSQL_ROW row;

    memset(cs, 0, sizeof *cs);
    if (mysql_query(db, "SELECT ID, CHARACTER_SET_NAME FROM "
                        "information_schema.COLLATIONS") != 0 ||
        !(res = mysql_store_result(db)))
        return ds__mysql_error(db, "reading the collations", NULL, err, errlen);
    while ((row = mysql_fetch_row(res))) {
        if (!row[0] || !row[1])
            continue;
        long id = strtol(row[0], NULL, 10);
        if (id <= 0 || id >= CAP_MAX_COLLATION)
            continue;
        if (strcmp(row[1], "binary") == 0)
            cs->cls[id] = CAP_CS_BINARY;
        else if (strncmp(row[1], "utf8", 4) == 0 ||
                 strcmp(row[1], "ascii") == 0)
            cs->cls[id] = CAP_CS_UTF8;
        else
            cs->cls[id] = CAP_CS_OTHER;
    }
    mysql_free_result(res);
    return 0;
}

/* A GTID list as the server prints it: digits, '-' and ','. Anything else
 * in the state file would be spliced into SQL. */
static bool valid_gtid_list(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == ','))
            return false;
    return true;
}

int cap_binlog_current_pos(const ds_config *cfg, char *buf, size_t cap,
                           char *err, size_t errlen)
{
    MYSQL *db;
    MYSQL_RES *res;
    MYSQL_ROW row;
    int rc = connect_db(&db, cfg, err, errlen);

    if (rc)
        return rc;
    rc = query_row(db, "SELECT @@global.gtid_binlog_pos", &res, &row, err,
                   errlen);
    if (rc == 0) {
        const char *pos = row[0] ? row[0] : "";
        if (strlen(pos) >= cap || !valid_gtid_list(pos))
            rc = ds__seterr(err, errlen, DS_EMYSQL,
                            "unexpected @@gtid_binlog_pos '%.100s'", pos);
        else
            snprintf(buf, cap, "%s", pos);
        mysql_free_result(res);
    }
    mysql_close(db);
    return rc;
}

int cap_binlog_open(cap_binlog **out, const ds_config *cfg, const char *gtid,
                    cap_charsets *cs, char *err, size_t errlen)
{
    char sql[1200];
    cap_binlog *b;
    int rc;

    *out = NULL;
    if (!valid_gtid_list(gtid) || strlen(gtid) > 1000)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "'%.100s' is not a GTID position", gtid);
    if (!(b = calloc(1, sizeof *b)))
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    if ((rc = connect_db(&b->db, cfg, err, errlen)) ||
        (rc = check_server(b, cfg, err, errlen)) ||
        (rc = read_charsets(b->db, cs, err, errlen)))
        goto fail;
    /* What a MariaDB replica tells the server before the dump: it takes
     * checksummed events, understands GTIDs (capability 4), wants
     * heartbeats, and starts after these GTIDs. */
    snprintf(sql, sizeof sql,
             "SET @master_binlog_checksum = @@global.binlog_checksum, "
             "@mariadb_slave_capability = 4, "
             "@master_heartbeat_period = " HEARTBEAT_NS ", "
             "@slave_connect_state = '%s', @slave_gtid_strict_mode = 0, "
             "@slave_gtid_ignore_duplicates = 0",
             gtid);
    if ((rc = ds__mysql_exec(b->db, sql, err, errlen)))
        goto fail;
    if (!(b->rpl = mariadb_rpl_init(b->db))) {
        rc = ds__seterr(err, errlen, DS_ENOMEM, "mariadb_rpl_init failed");
        goto fail;
    }
    mariadb_rpl_optionsv(b->rpl, MARIADB_RPL_SERVER_ID,
                         (uint32_t)cfg->capture_server_id);
    mariadb_rpl_optionsv(b->rpl, MARIADB_RPL_FILENAME, "", (size_t)0);
    mariadb_rpl_optionsv(b->rpl, MARIADB_RPL_START, (unsigned long)4);
    mariadb_rpl_optionsv(b->rpl, MARIADB_RPL_FLAGS, (uint32_t)0);
    if (mariadb_rpl_open(b->rpl) != 0) {
        rc = ds__mysql_error(b->db, "starting the binlog dump", NULL, err,
                             errlen);
        goto fail;
    }
    *out = b;
    return 0;
fail:
    cap_binlog_close(b);
    return rc;
}

/* Maps a failed fetch: the purged-position error is its own case. */
static int fetch_error(cap_binlog *b, char *err, size_t errlen)
{
    unsigned int errnum = mysql_errno(b->db);

    if (errnum == ER_FATAL_READING_BINLOG)
        return ds__seterr(err, errlen, DS_ENOTFOUND,
                          "the server cannot send the binlog from the saved "
                          "position (purged? a missing privilege?): [%u] %s",
                          errnum, mysql_error(b->db));
    if (errnum == 0)
        return ds__seterr(err, errlen, DS_EDBCONNECT,
                          "the server ended the binlog dump");
    int rc = ds__mysql_error(b->db, "reading the binlog", NULL, err, errlen);
    /* A privilege refused (REPLICATION SLAVE) shows up only here. */
    return rc;
}

int cap_binlog_next(cap_binlog *b, cap_event *ev, char *err, size_t errlen)
{
    MARIADB_RPL_EVENT *e = mariadb_rpl_fetch(b->rpl, b->ev);

    if (!e) {
        /* A failed fetch (a lost connection: the server stopped) frees the
         * event it was handed to reuse (Connector/C 3.3): freeing it again
         * in cap_binlog_close crashed the daemon at every reconnect. */
        b->ev = NULL;
        return fetch_error(b, err, errlen);
    }
    b->ev = e;
    if (e->raw_data_ofs > e->raw_data_size ||
        e->raw_data_size - e->raw_data_ofs < HEADER_LEN)
        return ds__seterr(err, errlen, DS_EINVAL, "a binlog event is cut");
    const unsigned char *h = e->raw_data + e->raw_data_ofs;
    size_t avail = e->raw_data_size - e->raw_data_ofs;
    uint32_t len = le32(h + 9);
    if (len < HEADER_LEN || len > avail)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "a binlog event has a bad length (%u of %zu)", len,
                          avail);
    ev->when = le32(h);
    ev->type = h[4];
    ev->server_id = le32(h + 5);
    ev->next_pos = le32(h + 13);
    ev->flags = (uint16_t)(h[17] | h[18] << 8);
    ev->body = h + HEADER_LEN;
    ev->len = len - HEADER_LEN;
    /* It ends with the file's checksum algorithm (1: CRC32) and 4 bytes. */
    if (ev->type == CAP_EV_FORMAT_DESCRIPTION && len >= HEADER_LEN + 57 + 5)
        b->checksum = h[len - 5] == 1;
    if (b->checksum && len >= HEADER_LEN + 4) {
        uint32_t want = le32(h + len - 4);
        uint32_t got = (uint32_t)crc32(0L, h, len - 4);
        if (got == want) {
            ev->len -= 4;
        } else if (!(ev->type == CAP_EV_ROTATE ||
                     ev->type == CAP_EV_HEARTBEAT ||
                     (ev->flags & LOG_EVENT_ARTIFICIAL_F))) {
            /* Events the server made up for this dump may come without. */
            return ds__seterr(err, errlen, DS_EINVAL,
                              "binlog event of type %u at %s:%u: checksum "
                              "mismatch",
                              ev->type, b->file, ev->next_pos);
        }
    }
    /* The connector's own handling of ROTATE after FORMAT_DESCRIPTION is
     * wrong (the position is skipped twice): the file name comes from the
     * raw event. */
    if (ev->type == CAP_EV_ROTATE && ev->len >= 8) {
        size_t n = ev->len - 8;
        if (n >= sizeof b->file)
            n = sizeof b->file - 1;
        memcpy(b->file, ev->body + 8, n);
        b->file[n] = '\0';
    }
    return 0;
}

const char *cap_binlog_file(const cap_binlog *b)
{
    return b->file;
}

void cap_binlog_close(cap_binlog *b)
{
    if (!b)
        return;
    if (b->ev)
        mariadb_free_rpl_event(b->ev);
    if (b->rpl)
        mariadb_rpl_close(b->rpl);
    if (b->db)
        mysql_close(b->db);
    free(b);
}
