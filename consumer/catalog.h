/* catalog.h: the columns and primary keys of the applied tables, read from the database's own catalogue. */
#ifndef DS_CONSUMER_CATALOG_H
#define DS_CONSUMER_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>
#include <mysql.h>

#include "event.h"

/* Longest canonical key (datasync_versions.pk is VARBINARY(2048)). */
#define DS_PK_MAX 2048

/* How a JSON value is turned into a bound parameter for a column. */
typedef enum {
    DS_COL_INTEGER, /* tinyint .. bigint, year */
    DS_COL_BIT,     /* bit: numbers bound as integers, never as text */
    DS_COL_EXACT,   /* decimal: from the JSON text, never through a double */
    DS_COL_FLOAT,   /* float, double */
    DS_COL_TEXT,    /* char, varchar, text, enum, set, json, dates, times */
    DS_COL_BINARY   /* binary, varbinary, blobs, geometry */
} dsc_col_kind;

typedef struct dsc_column {
    char *name;   /* as the catalogue spells it: may hold any character */
    char *quoted; /* `name`, backquotes doubled: the only form put in SQL */
    dsc_col_kind kind;
    bool nullable;
    bool generated; /* computed by the server: never written */
    int pk_index;   /* position in the primary key, or -1 */
} dsc_column;

typedef struct dsc_table {
    char name[65];
    char *quoted;
    dsc_column *cols; /* in table order */
    int ncols;
    int *pk; /* column indexes, in primary-key order */
    int npk;
    int *by_name; /* column indexes sorted by name, for lookups */
    /* A unique index besides the primary key: an INSERT ... ON DUPLICATE
     * KEY UPDATE could match another row by it, so upserts go row by row. */
    bool other_unique;
} dsc_table;

typedef struct dsc_catalog {
    dsc_table *tables;
    int ntables;
} dsc_catalog;

/*
 * Reads every table of the space-separated list `tables` in database
 * `database`: columns (name, type, nullable, generated) and primary-key
 * columns, with bound parameters. A table that does not exist or has no
 * primary key is an error (DS_ETABLE), as is a name that is no valid table
 * name (DS_ECONFIG); database errors map through mysql_util. On success
 * *cat is replaced (the old one freed); on error it is left as it was.
 */
int dsc_catalog_load(dsc_catalog *cat, MYSQL *db, const char *database,
                     const char *tables, char *err, size_t errlen);

void dsc_catalog_free(dsc_catalog *cat);

/* The table called name, or NULL when it is not applied here. */
const dsc_table *dsc_catalog_table(const dsc_catalog *cat, const char *name);

/* The index of column name, or -1. Exact, case-sensitive match: a name that
 * only looks like a column is not one. */
int dsc_table_column(const dsc_table *t, const char *name);

/*
 * Checks an event against its table and writes the canonical key: a
 * compact JSON array of the key's values in primary-key order (integers
 * normalised, so 7 and "007" name one row), into pk (DS_PK_MAX bytes).
 * Returns 0, DS_ECOLUMN for a data member that is no column (the catalogue
 * may be stale), or DS_ESCHEMA: a key that misses a primary-key column or
 * names another, a key value of the wrong kind, data whose key columns
 * differ from the key, a value that is an array or an object other than
 * {"base64": "..."}. err says which, with hostile names escaped.
 */
int dsc_catalog_check(const dsc_table *t, const ds_event *ev, char *pk,
                      size_t *pklen, char *err, size_t errlen);

/* Writes a name for messages: printable ASCII kept, the rest \xNN, cut at
 * 64 bytes with "...". */
void dsc_catalog_safe_name(const char *name, char *out, size_t len);

#endif
