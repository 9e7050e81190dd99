/* stmt.h: prepared statements cached by shape, and the bound parameters of one execution. */
#ifndef DS_CONSUMER_STMT_H
#define DS_CONSUMER_STMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <mysql.h>

#include "catalog.h"

/* Statements kept at most; the least recently used one is closed first. */
#define DS_STMT_CACHE_MAX 128

typedef struct ds_stmt_entry {
    uint64_t hash;
    char *key;
    size_t keylen;
    MYSQL_STMT *st;
    uint64_t used;
} ds_stmt_entry;

/* One bound parameter's storage: its MYSQL_BIND points into it. */
typedef struct ds_param {
    long long i;
    unsigned long len;
    unsigned char *owned; /* decoded base64, freed by ds_params_clear */
} ds_param;

typedef struct ds_stmts {
    MYSQL *db; /* borrowed; NULL while disconnected */
    ds_stmt_entry cache[DS_STMT_CACHE_MAX];
    int ncache;
    uint64_t tick;
    /* The parameters of the next execution. */
    MYSQL_BIND *binds;
    ds_param *params;
    size_t nparams, paramcap;
    /* The SQL being built for the next prepare. */
    char *sql;
    size_t sqllen, sqlcap;
    bool sqloom;
    unsigned int prepare_errnum; /* MySQL errno of the last failed prepare */
} ds_stmts;

/* Zeroes s. */
void ds_stmts_init(ds_stmts *s);

/* Closes every cached statement (they belong to the old connection: call
 * before closing it) and uses db from now on. */
void ds_stmts_reset(ds_stmts *s, MYSQL *db);

void ds_stmts_free(ds_stmts *s);

/* Starts a new SQL text / appends to it. Out of memory is remembered and
 * reported by ds_stmts_prepare. */
void ds_sql_reset(ds_stmts *s);
void ds_sql_add(ds_stmts *s, const char *text);

/* The statement cached under key, or NULL. */
MYSQL_STMT *ds_stmts_get(ds_stmts *s, const char *key, size_t keylen);

/* Prepares the SQL built with ds_sql_* and caches it under key. Returns 0
 * and *out, or a DS_E code with err (mapped by mysql_util). */
int ds_stmts_prepare(ds_stmts *s, const char *key, size_t keylen,
                     MYSQL_STMT **out, char *err, size_t errlen);

/* Room for n zeroed parameters (earlier ones cleared). DS_ENOMEM. */
int ds_params_reserve(ds_stmts *s, size_t n);

/* Frees what the parameters own. */
void ds_params_clear(ds_stmts *s);

/* Binds parameter i to len bytes at data (borrowed until the execute). */
void ds_bind_bytes(ds_stmts *s, size_t i, enum enum_field_types type,
                   const void *data, size_t len);

void ds_bind_int(ds_stmts *s, size_t i, long long v, bool is_unsigned);

/* Binds a JSON value for column c, converted by the column's kind. Returns
 * 0, DS_ENOMEM, or DS_ESCHEMA for a value that has no SQL form. */
int ds_bind_json(ds_stmts *s, size_t i, const ds_column *c, json_object *v);

/* Binds the parameters and executes st; *rows gets the affected (with
 * CLIENT_FOUND_ROWS: matched) rows, *errnum the MySQL errno on failure.
 * Clears the parameters. Returns 0 or the mapped error with err. */
int ds_stmts_run(ds_stmts *s, MYSQL_STMT *st, uint64_t *rows,
                 unsigned int *errnum, char *err, size_t errlen);

#endif
