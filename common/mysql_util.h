/* mysql_util.h: the database connection of the consumer and the one place MySQL errors are classified. */
#ifndef DS_COMMON_MYSQL_UTIL_H
#define DS_COMMON_MYSQL_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <mysql.h>

#include "config.h"
#include "datasync.h"

/* The table name under which datasync_versions records the markers a
 * consumer took from its queue (a name no table can have): datasync
 * bootstrap reads a peer's to know it applied everything queued before. */
#define DS_MARKER_TBL "#marker"

/* What a MySQL error means for the change that hit it. */
typedef enum {
    /* The server or the connection: roll back, reconnect with backoff, try
     * the same batch again (lock wait timeout, deadlock, server gone, lost
     * connection, cannot connect, too many connections, shutdown,
     * read-only, out of space, missing privileges). */
    DS_MYSQL_TRANSIENT = 0,
    /* The change itself: it can never apply (NULL into NOT NULL, duplicate
     * key, out of range, truncated, bad value, too long, check constraint,
     * trigger signal, and any other server error not listed). */
    DS_MYSQL_PERMANENT = 1,
    /* A foreign key: the parent row may still arrive; retry a few times. */
    DS_MYSQL_FOREIGN_KEY = 2,
    /* Unknown column or table: the catalogue may be stale; reload it once. */
    DS_MYSQL_SCHEMA = 3
} ds_mysql_class;

/* Classifies a MySQL/MariaDB error number (server 1000-1999, 3000+, 4000+;
 * client 2000-2999). Client errors not listed are transient; server errors
 * not listed are permanent. Pure; any thread. */
ds_mysql_class ds__mysql_classify(unsigned int err);

/* The DS_E code that names, in a dead letter's reason, a change the server
 * refused with err: DS_ECONSTRAINT for a constraint the row breaks (NULL
 * into NOT NULL, duplicate key, foreign key, check constraint), DS_EMYSQL
 * for any other. Pure; any thread. */
int ds__mysql_refusal_code(unsigned int err);

/* True when the server reads `VALUES (...), (...)` as a table (MariaDB
 * 10.3.3 and later; MySQL writes VALUES ROW(...)): server_info and version
 * as mysql_get_server_info and mysql_get_server_version give them. Pure. */
bool ds__mysql_has_value_tables(const char *server_info, unsigned long version);

/* "transient", "permanent", "foreign-key", "schema". */
const char *ds__mysql_class_name(ds_mysql_class c);

/*
 * Connects as configured in [mysql] (socket when set, else host and port),
 * with utf8mb4, CLIENT_FOUND_ROWS (UPDATE reports matched rows, not changed
 * ones), connect/read/write timeouts, and sets the session the consumer
 * needs: strict sql_mode, time_zone +00:00, autocommit off, a short
 * innodb_lock_wait_timeout so a locked row becomes a retry rather than a
 * long block. Returns 0 and *out (close with mysql_close), or
 * DS_EDBCONNECT (transient: the caller may retry) / DS_EMYSQL with err.
 */
int ds__mysql_connect(MYSQL **out, const ds_config *cfg, char *err,
                      size_t errlen);

/* Formats the connection's last error as "what: [errno] message" into err
 * and returns DS_EDBCONNECT for transient errors, DS_EMYSQL otherwise.
 * *errnum (if not NULL) gets the errno. */
int ds__mysql_error(MYSQL *db, const char *what, unsigned int *errnum,
                    char *err, size_t errlen);

/* Same for a prepared statement's last error. */
int ds__mysql_stmt_error(MYSQL_STMT *st, const char *what, unsigned int *errnum,
                         char *err, size_t errlen);

/* Runs one statement that returns no rows (or discards them). Returns 0
 * or the mapped error. */
int ds__mysql_exec(MYSQL *db, const char *sql, char *err, size_t errlen);

/* Runs a script of several ';'-separated statements (multi-statement mode
 * on for this call only), draining every result. Returns 0 or the error of
 * the first failing statement. */
int ds__mysql_exec_script(MYSQL *db, const char *sql, char *err, size_t errlen);

/* Appends `name` to buf (identifier quoting: backquotes doubled). Returns 0
 * or DS_EINVAL when it does not fit. */
int ds__mysql_quote_ident(char *buf, size_t cap, size_t *len, const char *name);

#endif
