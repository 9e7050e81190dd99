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

typedef struct dsc_stmt_entry {
    uint64_t hash;
    char *key;
    size_t keylen;
    MYSQL_STMT *st;
    uint64_t used;
} dsc_stmt_entry;

/* One bound parameter's storage: its MYSQL_BIND points into it. */
typedef struct dsc_param {
    long long i;
    unsigned long len;
    unsigned char *owned; /* decoded base64, freed by dsc_params_clear */
} dsc_param;

typedef struct dsc_stmts {
    MYSQL *db; /* borrowed; NULL while disconnected */
    dsc_stmt_entry cache[DS_STMT_CACHE_MAX];
    int ncache;
    uint64_t tick;
    /* The parameters of the next execution. */
    MYSQL_BIND *binds;
    dsc_param *params;
    size_t nparams, paramcap;
    /* The SQL being built for the next prepare. */
    char *sql;
    size_t sqllen, sqlcap;
    bool sqloom;
    unsigned int prepare_errnum; /* MySQL errno of the last failed prepare */
} dsc_stmts;

/* Sets err to "apply: out of memory" and returns DS_ENOMEM: the one
 * message of the apply path's allocation failures. */
int dsc_nomem(char *err, size_t errlen);

/* Zeroes s. */
void dsc_stmts_init(dsc_stmts *s);

/* Closes every cached statement (they belong to the old connection: call
 * before closing it) and uses db from now on. */
void dsc_stmts_reset(dsc_stmts *s, MYSQL *db);

void dsc_stmts_free(dsc_stmts *s);

/* Starts a new SQL text / appends to it. Out of memory is remembered and
 * reported by dsc_stmts_prepare. */
void dsc_sql_reset(dsc_stmts *s);
void dsc_sql_add(dsc_stmts *s, const char *text);

/* The statement cached under key, or NULL. */
MYSQL_STMT *dsc_stmts_get(dsc_stmts *s, const char *key, size_t keylen);

/* Prepares the SQL built with dsc_sql_* and caches it under key. Returns 0
 * and *out, or a DS_E code with err (mapped by mysql_util). */
int dsc_stmts_prepare(dsc_stmts *s, const char *key, size_t keylen,
                      MYSQL_STMT **out, char *err, size_t errlen);

/* Room for n zeroed parameters (earlier ones cleared). DS_ENOMEM. */
int dsc_params_reserve(dsc_stmts *s, size_t n);

/* Frees what the parameters own. */
void dsc_params_clear(dsc_stmts *s);

/* Binds parameter i to len bytes at data (borrowed until the execute). */
void dsc_bind_bytes(dsc_stmts *s, size_t i, enum enum_field_types type,
                    const void *data, size_t len);

void dsc_bind_int(dsc_stmts *s, size_t i, long long v, bool is_unsigned);

void dsc_bind_null(dsc_stmts *s, size_t i);

/* Binds a JSON value for column c, converted by the column's kind. Returns
 * 0, DS_ENOMEM, or DS_ESCHEMA for a value that has no SQL form. */
int dsc_bind_json(dsc_stmts *s, size_t i, const dsc_column *c, json_object *v);

/* Binds the parameters and executes st; *rows gets the affected (with
 * CLIENT_FOUND_ROWS: matched) rows, *errnum the MySQL errno on failure.
 * Clears the parameters. Returns 0 or the mapped error with err. */
int dsc_stmts_run(dsc_stmts *s, MYSQL_STMT *st, uint64_t *rows,
                  unsigned int *errnum, char *err, size_t errlen);

#endif
