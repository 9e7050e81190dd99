/* mysql_util.c: connecting to MySQL/MariaDB with the consumer's session settings, and classifying its errors. */
#include <errmsg.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "mysql_util.h"

/* The seconds a single statement may block on a row lock before it fails
 * as a retryable error; short, because the consumer cannot pump broker
 * heartbeats while it waits inside a statement. */
#define DS_MYSQL_LOCK_WAIT_S 5
/* Connect timeout, and the read/write timeouts that bound a hung server. */
#define DS_MYSQL_CONNECT_TIMEOUT_S 3
#define DS_MYSQL_RW_TIMEOUT_S 30

ds_mysql_class ds__mysql_classify(unsigned int err)
{
    switch (err) {
    /* Locks and the transaction as a whole. */
    case ER_LOCK_WAIT_TIMEOUT: /* 1205 */
    case ER_LOCK_DEADLOCK:     /* 1213 */
    case ER_LOCK_TABLE_FULL:   /* 1206 */
    case ER_CHECKREAD:         /* 1020: record changed since last read */
    case 1180:                 /* ER_ERROR_DURING_COMMIT */
    case 1181:                 /* ER_ERROR_DURING_ROLLBACK */
    case 1637:                 /* ER_TOO_MANY_CONCURRENT_TRXS */
    /* The server and the connection. */
    case ER_CON_COUNT_ERROR:           /* 1040 */
    case ER_TOO_MANY_USER_CONNECTIONS: /* 1203 */
    case ER_OUT_OF_RESOURCES:          /* 1041 */
    case ER_OUTOFMEMORY:               /* 1037 */
    case ER_SERVER_SHUTDOWN:           /* 1053 */
    case ER_NORMAL_SHUTDOWN:           /* 1077 */
    case ER_QUERY_INTERRUPTED:         /* 1317 */
    case ER_CONNECTION_KILLED:         /* 1927 */
    case 4031:                         /* client disconnected by idle timeout */
    case 1969:                         /* ER_STATEMENT_TIMEOUT (MariaDB) */
    case 3024:                         /* ER_QUERY_TIMEOUT (MySQL) */
    case ER_NET_READ_ERROR:            /* 1158 */
    case ER_NET_READ_INTERRUPTED:      /* 1159 */
    case ER_NET_ERROR_ON_WRITE:        /* 1160 */
    case ER_NET_WRITE_INTERRUPTED:     /* 1161 */
    case ER_NET_PACKETS_OUT_OF_ORDER:  /* 1156 */
    /* Space and read-only servers: an operator fixes them; retrying is the
     * only way not to lose the changes. */
    case ER_DISK_FULL:                 /* 1021 */
    case ER_RECORD_FILE_FULL:          /* 1114: the table is full */
    case ER_OPTION_PREVENTS_STATEMENT: /* 1290: --read-only */
    case 1792: /* ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION */
    case 1836: /* ER_READ_ONLY_MODE */
    case 1015: /* ER_CANT_LOCK */
    case 1030: /* ER_GET_ERRNO: storage engine error */
    /* Privileges and access: a grant missing is the operator's to fix, not a
     * reason to throw the changes away. */
    case ER_ACCESS_DENIED_ERROR:       /* 1045 */
    case ER_DBACCESS_DENIED_ERROR:     /* 1044 */
    case ER_TABLEACCESS_DENIED_ERROR:  /* 1142 */
    case ER_COLUMNACCESS_DENIED_ERROR: /* 1143 */
    case ER_BAD_DB_ERROR:              /* 1049 */
    case ER_UNKNOWN_COM_ERROR:         /* 1047 */
    case ER_NEED_REPREPARE:            /* 1615: retry re-prepares */
    case ER_UNKNOWN_STMT_HANDLER:      /* 1243 */
    /* The server's limits, shared with the application, not the change's
     * fault: dead-lettering would throw away good changes. An operator
     * raises them (max_prepared_stmt_count, max_binlog_cache_size,
     * max_binlog_stmt_cache_size) or the load passes. */
    case ER_MAX_PREPARED_STMT_COUNT_REACHED: /* 1461 */
    case ER_TRANS_CACHE_FULL:                /* 1197 */
    case ER_STMT_CACHE_FULL:                 /* 1705 */
    case ER_LOCK_ABORTED:                    /* 1689: retry the transaction */
        return DS_MYSQL_TRANSIENT;

    case ER_NO_REFERENCED_ROW:   /* 1216 */
    case ER_ROW_IS_REFERENCED:   /* 1217 */
    case ER_ROW_IS_REFERENCED_2: /* 1451 */
    case ER_NO_REFERENCED_ROW_2: /* 1452 */
        return DS_MYSQL_FOREIGN_KEY;

    case ER_BAD_FIELD_ERROR: /* 1054 */
    case ER_NO_SUCH_TABLE:   /* 1146 */
        return DS_MYSQL_SCHEMA;

    /* The change's own data, listed for the reader: the default says the
     * same. The constraints of ds__mysql_refusal_code, and
     * ER_WARN_DATA_OUT_OF_RANGE 1264, WARN_DATA_TRUNCATED 1265,
     * ER_TRUNCATED_WRONG_VALUE 1292, ER_TRUNCATED_WRONG_VALUE_FOR_FIELD 1366,
     * ER_DATA_TOO_LONG 1406, ER_NO_DEFAULT_FOR_FIELD 1364,
     * ER_DIVISION_BY_ZERO 1365, ER_SIGNAL_EXCEPTION 1644. */
    default:
        break;
    }
    if (err >= CR_MIN_ERROR && err <= CR_MAX_ERROR)
        return DS_MYSQL_TRANSIENT; /* 2002, 2003, 2006, 2013, 2055, ... */
    return DS_MYSQL_PERMANENT;
}

int ds__mysql_refusal_code(unsigned int err)
{
    switch (err) {
    case ER_BAD_NULL_ERROR:          /* 1048: NULL into NOT NULL */
    case ER_DUP_ENTRY:               /* 1062 */
    case ER_DUP_ENTRY_WITH_KEY_NAME: /* 1586 */
    case ER_NO_REFERENCED_ROW:       /* 1216: foreign keys */
    case ER_ROW_IS_REFERENCED:       /* 1217 */
    case ER_ROW_IS_REFERENCED_2:     /* 1451 */
    case ER_NO_REFERENCED_ROW_2:     /* 1452 */
    case 3819:                       /* ER_CHECK_CONSTRAINT_VIOLATED (MySQL) */
    case ER_CONSTRAINT_FAILED:       /* 4025: check constraint (MariaDB) */
        return DS_ECONSTRAINT;
    default:
        return DS_EMYSQL;
    }
}

bool ds__mysql_has_value_tables(const char *server_info, unsigned long version)
{
    return server_info && strstr(server_info, "MariaDB") && version >= 100303;
}

const char *ds__mysql_class_name(ds_mysql_class c)
{
    switch (c) {
    case DS_MYSQL_TRANSIENT:
        return "transient";
    case DS_MYSQL_PERMANENT:
        return "permanent";
    case DS_MYSQL_FOREIGN_KEY:
        return "foreign-key";
    case DS_MYSQL_SCHEMA:
        return "schema";
    }
    return "?";
}

static int map_error(unsigned int num, const char *msg, const char *what,
                     unsigned int *errnum, char *err, size_t errlen)
{
    if (errnum)
        *errnum = num;
    return ds__seterr(err, errlen,
                      ds__mysql_classify(num) == DS_MYSQL_TRANSIENT
                          ? DS_EDBCONNECT
                          : DS_EMYSQL,
                      "%s: [%u] %s", what, num, msg);
}

int ds__mysql_error(MYSQL *db, const char *what, unsigned int *errnum,
                    char *err, size_t errlen)
{
    return map_error(mysql_errno(db), mysql_error(db), what, errnum, err,
                     errlen);
}

int ds__mysql_stmt_error(MYSQL_STMT *st, const char *what, unsigned int *errnum,
                         char *err, size_t errlen)
{
    /* An error while a result's rows arrive (a lock wait timeout, a
     * deadlock, a lost connection) is the connection's: Connector/C leaves
     * the statement's own errno 0 there. */
    if (mysql_stmt_errno(st) == 0 && st->mysql)
        return ds__mysql_error(st->mysql, what, errnum, err, errlen);
    return map_error(mysql_stmt_errno(st), mysql_stmt_error(st), what, errnum,
                     err, errlen);
}

int ds__mysql_exec(MYSQL *db, const char *sql, char *err, size_t errlen)
{
    if (mysql_real_query(db, sql, (unsigned long)strlen(sql)) != 0)
        return ds__mysql_error(db, sql, NULL, err, errlen);
    MYSQL_RES *res = mysql_store_result(db);
    if (res)
        mysql_free_result(res);
    else if (mysql_field_count(db) != 0)
        return ds__mysql_error(db, sql, NULL, err, errlen);
    return 0;
}

int ds__mysql_exec_script(MYSQL *db, const char *sql, char *err, size_t errlen)
{
    int rc = 0;

    if (mysql_set_server_option(db, MYSQL_OPTION_MULTI_STATEMENTS_ON) != 0)
        return ds__mysql_error(db, "multi-statement mode", NULL, err, errlen);
    if (mysql_real_query(db, sql, (unsigned long)strlen(sql)) != 0) {
        rc = ds__mysql_error(db, "metadata tables", NULL, err, errlen);
        goto done;
    }
    for (;;) {
        MYSQL_RES *res = mysql_store_result(db);
        if (res)
            mysql_free_result(res);
        int next = mysql_next_result(db);
        if (next < 0)
            break; /* no more results */
        if (next > 0) {
            rc = ds__mysql_error(db, "metadata tables", NULL, err, errlen);
            break;
        }
    }
done:
    /* Off again even after an error, so no later statement of this session
     * could ever run as several. */
    if (mysql_set_server_option(db, MYSQL_OPTION_MULTI_STATEMENTS_OFF) != 0 &&
        rc == 0)
        rc = ds__mysql_error(db, "multi-statement mode", NULL, err, errlen);
    return rc;
}

int ds__mysql_quote_ident(char *buf, size_t cap, size_t *len, const char *name)
{
    size_t n = *len;

    if (n + 1 >= cap)
        return DS_EINVAL;
    buf[n++] = '`';
    for (const char *p = name; *p; p++) {
        if (n + 3 >= cap)
            return DS_EINVAL;
        if (*p == '`')
            buf[n++] = '`';
        buf[n++] = *p;
    }
    buf[n++] = '`';
    buf[n] = '\0';
    *len = n;
    return 0;
}

int ds__mysql_connect(MYSQL **out, const ds_config *cfg, char *err,
                      size_t errlen)
{
    static const char *const session[] = {
        /* Strict: a value that does not fit is an error, never silently
         * truncated into a different row on this server than on others. */
        "SET SESSION sql_mode = "
        "'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION'",
        /* Dates and times travel as MySQL prints them; TIMESTAMP columns
         * must not shift with the server's zone. */
        "SET SESSION time_zone = '+00:00'",
    };
    char lock_wait[64];
    unsigned int timeout = DS_MYSQL_CONNECT_TIMEOUT_S;
    unsigned int rw_timeout = DS_MYSQL_RW_TIMEOUT_S;
    bool reconnect = false;
    const char *sock = cfg->mysql_socket[0] ? cfg->mysql_socket : NULL;
    int rc;

    *out = NULL;
    MYSQL *db = mysql_init(NULL);
    if (!db)
        return ds__seterr(err, errlen, DS_ENOMEM, "mysql_init: out of memory");
    mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
    mysql_options(db, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
    mysql_options(db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    /* The library's silent reconnect would lose the session settings and
     * the open transaction without telling: the consumer reconnects itself. */
    mysql_options(db, MYSQL_OPT_RECONNECT, &reconnect);
    if (!mysql_real_connect(db, sock ? NULL : cfg->mysql_host, cfg->mysql_user,
                            cfg->mysql_password, cfg->mysql_database,
                            sock ? 0 : (unsigned int)cfg->mysql_port, sock,
                            CLIENT_FOUND_ROWS)) {
        char where[1100];
        if (sock)
            snprintf(where, sizeof where, "mysql %s", sock);
        else
            snprintf(where, sizeof where, "mysql %s:%d", cfg->mysql_host,
                     cfg->mysql_port);
        rc = ds__mysql_error(db, where, NULL, err, errlen);
        goto fail;
    }
    for (size_t i = 0; i < sizeof session / sizeof *session; i++) {
        rc = ds__mysql_exec(db, session[i], err, errlen);
        if (rc)
            goto fail;
    }
    snprintf(lock_wait, sizeof lock_wait,
             "SET SESSION innodb_lock_wait_timeout = %d", DS_MYSQL_LOCK_WAIT_S);
    rc = ds__mysql_exec(db, lock_wait, err, errlen);
    if (rc)
        goto fail;
    if (mysql_autocommit(db, 0) != 0) {
        rc = ds__mysql_error(db, "autocommit off", NULL, err, errlen);
        goto fail;
    }
    *out = db;
    return 0;
fail:
    mysql_close(db);
    return rc;
}
