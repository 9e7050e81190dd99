/* rows.c: the SQL that writes rows by primary key: one at a time, or a group of
 * rows in multi-row statements. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rows.h"

/* Grouped row writes go in chunks of 2^k rows, within the protocol's
 * placeholder limit. */
#define GROUP_LOG2_MAX 8
#define MAX_PLACEHOLDERS 65535

/* Whether the change's data sets column i: a create's or update's written
 * columns, the value into *v. Key columns come from the key; generated
 * ones the server computes. */
static bool sets(const dsc_change *c, int i, json_object **v)
{
    const dsc_column *col = &c->table->cols[i];
    return col->pk_index < 0 && !col->generated &&
           json_object_object_get_ex(c->ev.data, col->name, v);
}

/* ------------------------------------------------------------------------ */
/* One row at a time                                                          */

static void add_pk_where(dsc_stmts *s, const dsc_table *t)
{
    dsc_sql_add(s, " WHERE ");
    for (int i = 0; i < t->npk; i++) {
        if (i)
            dsc_sql_add(s, " AND ");
        dsc_sql_add(s, t->cols[t->pk[i]].quoted);
        dsc_sql_add(s, " = ?");
    }
}

/* Binds the key's values in primary-key order from position first. */
static int bind_key(dsc_stmts *s, const dsc_change *c, size_t first)
{
    const dsc_table *t = c->table;
    for (int i = 0; i < t->npk; i++) {
        const dsc_column *col = &t->cols[t->pk[i]];
        json_object *v = NULL;
        json_object_object_get_ex(c->ev.key, col->name, &v);
        int rc = dsc_bind_json(s, first + (size_t)i, col, v);
        if (rc)
            return rc;
    }
    return 0;
}

/* "INSERT INTO t (key columns, set columns) VALUES (?, ...)" for rows
 * rows: the key first, then the columns set[0..nset). */
static void add_insert(dsc_stmts *s, const dsc_table *t, const int *set,
                       size_t nset, size_t rows)
{
    size_t per_row = (size_t)t->npk + nset;

    dsc_sql_add(s, "INSERT INTO ");
    dsc_sql_add(s, t->quoted);
    dsc_sql_add(s, " (");
    for (int i = 0; i < t->npk; i++) {
        dsc_sql_add(s, i ? ", " : "");
        dsc_sql_add(s, t->cols[t->pk[i]].quoted);
    }
    for (size_t i = 0; i < nset; i++) {
        dsc_sql_add(s, ", ");
        dsc_sql_add(s, t->cols[set[i]].quoted);
    }
    dsc_sql_add(s, ") VALUES ");
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < per_row; i++)
            dsc_sql_add(s, i ? ", ?" : (r ? "), (?" : "(?"));
    dsc_sql_add(s, ")");
}

int dsc_row_delete(dsc_stmts *s, const dsc_change *c, unsigned int *errnum,
                   char *err, size_t errlen)
{
    const dsc_table *t = c->table;
    char key[80];
    size_t keylen = (size_t)snprintf(key, sizeof key, "D%s", t->name);
    uint64_t rows;
    int rc;

    MYSQL_STMT *st = dsc_stmts_get(s, key, keylen);
    if (!st) {
        dsc_sql_reset(s);
        dsc_sql_add(s, "DELETE FROM ");
        dsc_sql_add(s, t->quoted);
        add_pk_where(s, t);
        rc = dsc_stmts_prepare(s, key, keylen, &st, err, errlen);
        if (rc)
            return rc;
    }
    if (dsc_params_reserve(s, (size_t)t->npk))
        return dsc_nomem(err, errlen);
    rc = bind_key(s, c, 0);
    if (rc)
        return ds__seterr(err, errlen, rc, "key: cannot bind");
    return dsc_stmts_run(s, st, &rows, errnum, err, errlen);
}

/* The columns a create or update writes, in table order, and the key of
 * its statements' shape: one shape of change always maps to one
 * statement. */
typedef struct row_shape {
    char *key; /* "U<table>\0" then '1' or '0' per column; 'I' to insert */
    size_t keylen;
    int *set; /* set[0..nset): the written columns */
    json_object **vals;
    size_t nset;
} row_shape;

static void shape_free(row_shape *sh)
{
    free(sh->key);
    free(sh->set);
    free(sh->vals);
}

/* Fills sh for c. Returns 0 or DS_ENOMEM; shape_free it either way. */
static int shape_of(row_shape *sh, const dsc_change *c)
{
    const dsc_table *t = c->table;
    size_t keycap = 80 + (size_t)t->ncols;

    memset(sh, 0, sizeof *sh);
    sh->key = malloc(keycap);
    sh->set = malloc(((size_t)t->ncols + 1) * sizeof *sh->set);
    sh->vals = malloc(((size_t)t->ncols + 1) * sizeof *sh->vals);
    if (!sh->key || !sh->set || !sh->vals)
        return DS_ENOMEM;
    sh->keylen = (size_t)snprintf(sh->key, keycap, "U%s", t->name) + 1;
    for (int i = 0; i < t->ncols; i++) {
        json_object *v;
        bool on = sets(c, i, &v);
        sh->key[sh->keylen++] = on ? '1' : '0';
        if (on) {
            sh->set[sh->nset] = i;
            sh->vals[sh->nset++] = v;
        }
    }
    return 0;
}

/* A value that cannot be bound is the change's own (DS_ESCHEMA: it is
 * dropped); out of memory is not. */
static int bind_failed(int rc, char *err, size_t errlen)
{
    if (rc == DS_ENOMEM)
        return dsc_nomem(err, errlen);
    return ds__seterr(err, errlen, DS_ESCHEMA, "a value cannot be bound");
}

/* UPDATE ... SET the written columns WHERE the key; *rows: rows matched. */
static int update_row(dsc_stmts *s, const dsc_change *c, const row_shape *sh,
                      uint64_t *rows, unsigned int *errnum, char *err,
                      size_t errlen)
{
    const dsc_table *t = c->table;
    int rc;

    MYSQL_STMT *st = dsc_stmts_get(s, sh->key, sh->keylen);
    if (!st) {
        dsc_sql_reset(s);
        dsc_sql_add(s, "UPDATE ");
        dsc_sql_add(s, t->quoted);
        dsc_sql_add(s, " SET ");
        for (size_t i = 0; i < sh->nset; i++) {
            dsc_sql_add(s, i ? ", " : "");
            dsc_sql_add(s, t->cols[sh->set[i]].quoted);
            dsc_sql_add(s, " = ?");
        }
        if (sh->nset == 0) {
            /* Only key columns: a no-op that still reports a match. */
            dsc_sql_add(s, t->cols[t->pk[0]].quoted);
            dsc_sql_add(s, " = ");
            dsc_sql_add(s, t->cols[t->pk[0]].quoted);
        }
        add_pk_where(s, t);
        rc = dsc_stmts_prepare(s, sh->key, sh->keylen, &st, err, errlen);
        if (rc)
            return rc;
    }
    if (dsc_params_reserve(s, sh->nset + (size_t)t->npk))
        return dsc_nomem(err, errlen);
    for (size_t i = 0; i < sh->nset; i++) {
        rc = dsc_bind_json(s, i, &t->cols[sh->set[i]], sh->vals[i]);
        if (rc)
            return bind_failed(rc, err, errlen);
    }
    rc = bind_key(s, c, sh->nset);
    if (rc)
        return bind_failed(rc, err, errlen);
    return dsc_stmts_run(s, st, rows, errnum, err, errlen);
}

/* INSERT the key columns, from the key, and the written columns. */
static int insert_row(dsc_stmts *s, const dsc_change *c, row_shape *sh,
                      unsigned int *errnum, char *err, size_t errlen)
{
    const dsc_table *t = c->table;
    uint64_t rows;
    int rc;

    sh->key[0] = 'I';
    MYSQL_STMT *st = dsc_stmts_get(s, sh->key, sh->keylen);
    if (!st) {
        dsc_sql_reset(s);
        add_insert(s, t, sh->set, sh->nset, 1);
        rc = dsc_stmts_prepare(s, sh->key, sh->keylen, &st, err, errlen);
        if (rc)
            return rc;
    }
    if (dsc_params_reserve(s, sh->nset + (size_t)t->npk))
        return dsc_nomem(err, errlen);
    rc = bind_key(s, c, 0);
    if (rc)
        return bind_failed(rc, err, errlen);
    for (size_t i = 0; i < sh->nset; i++) {
        rc = dsc_bind_json(s, (size_t)t->npk + i, &t->cols[sh->set[i]],
                           sh->vals[i]);
        if (rc)
            return bind_failed(rc, err, errlen);
    }
    return dsc_stmts_run(s, st, &rows, errnum, err, errlen);
}

/*
 * Writes a create or update: UPDATE by primary key, and INSERT when no row
 * matched (CLIENT_FOUND_ROWS: matched, not changed). Never INSERT ... ON
 * DUPLICATE KEY UPDATE: that also matches other unique keys, and would
 * overwrite another row that happens to share one; here such a clash is a
 * duplicate-key error for this change.
 */
int dsc_row_upsert(dsc_stmts *s, const dsc_change *c, unsigned int *errnum,
                   char *err, size_t errlen)
{
    row_shape sh;
    uint64_t rows = 0;
    int rc;

    if (shape_of(&sh, c)) {
        rc = dsc_nomem(err, errlen);
        goto out;
    }
    rc = update_row(s, c, &sh, &rows, errnum, err, errlen);
    if (rc == 0 && rows == 0)
        rc = insert_row(s, c, &sh, errnum, err, errlen);
out:
    dsc_params_clear(s);
    shape_free(&sh);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Grouped writes: a statement per chunk of rows, not per row                 */

/* Whether an upsert writes every column it can: the whole row. */
bool dsc_row_is_whole(const dsc_change *c)
{
    json_object *v;
    for (int i = 0; i < c->table->ncols; i++)
        if (c->table->cols[i].pk_index < 0 && !c->table->cols[i].generated &&
            !sets(c, i, &v))
            return false;
    return true;
}

/* One statement serves changes of one table, one op, the same columns. */
static bool same_group(const dsc_change *a, const dsc_change *b)
{
    json_object *v;
    if (a->table != b->table ||
        (a->ev.op == DS_OP_DELETE) != (b->ev.op == DS_OP_DELETE))
        return false;
    if (a->ev.op == DS_OP_DELETE)
        return true;
    for (int i = 0; i < a->table->ncols; i++)
        if (sets(a, i, &v) != sets(b, i, &v))
            return false;
    return true;
}

/* The largest chunk exponent for rows of per_row placeholders. */
static unsigned chunk_log2(size_t left, size_t per_row)
{
    unsigned k = GROUP_LOG2_MAX;
    while (k > 0 && (((size_t)1 << k) > left ||
                     ((size_t)1 << k) * per_row > MAX_PLACEHOLDERS))
        k--;
    return k;
}

/* DELETE ... WHERE key IN (...), in chunks of 2^k keys. */
static int delete_rows(dsc_stmts *s, dsc_change **g, size_t n, char *err,
                       size_t errlen)
{
    const dsc_table *t = g[0]->table;
    size_t npk = (size_t)t->npk, done = 0;
    int rc;

    while (done < n) {
        unsigned k = chunk_log2(n - done, npk);
        size_t rows = (size_t)1 << k;
        char key[80];
        size_t keylen =
            (size_t)snprintf(key, sizeof key, "GD%u:%s", k, t->name);
        MYSQL_STMT *st = dsc_stmts_get(s, key, keylen);
        if (!st) {
            dsc_sql_reset(s);
            dsc_sql_add(s, "DELETE FROM ");
            dsc_sql_add(s, t->quoted);
            dsc_sql_add(s, npk > 1 ? " WHERE (" : " WHERE ");
            for (size_t i = 0; i < npk; i++) {
                dsc_sql_add(s, i ? ", " : "");
                dsc_sql_add(s, t->cols[t->pk[i]].quoted);
            }
            dsc_sql_add(s, npk > 1 ? ") IN (" : " IN (");
            for (size_t r = 0; r < rows; r++) {
                dsc_sql_add(s, r ? ", " : "");
                for (size_t i = 0; i < npk; i++)
                    dsc_sql_add(s, i ? ", ?" : (npk > 1 ? "(?" : "?"));
                if (npk > 1)
                    dsc_sql_add(s, ")");
            }
            dsc_sql_add(s, ")");
            rc = dsc_stmts_prepare(s, key, keylen, &st, err, errlen);
            if (rc)
                return rc;
        }
        if (dsc_params_reserve(s, rows * npk))
            return dsc_nomem(err, errlen);
        for (size_t r = 0; r < rows; r++) {
            rc = bind_key(s, g[done + r], r * npk);
            if (rc) {
                dsc_params_clear(s);
                return ds__seterr(err, errlen, rc, "key: cannot bind");
            }
        }
        unsigned int errnum;
        rc = dsc_stmts_run(s, st, NULL, &errnum, err, errlen);
        if (rc)
            return rc;
        done += rows;
    }
    return 0;
}

/*
 * INSERT ... ON DUPLICATE KEY UPDATE of the columns the changes set, in
 * chunks of 2^k rows. Only for tables whose one unique index is the primary
 * key: there, the statement can match no other row than the key's.
 */
static int upsert_rows(dsc_stmts *s, dsc_change **g, size_t n, char *err,
                       size_t errlen)
{
    const dsc_table *t = g[0]->table;
    size_t npk = (size_t)t->npk, nset = 0, done = 0, keycap, per_row;
    int *set = malloc(((size_t)t->ncols + 1) * sizeof *set);
    char *key = malloc(keycap = 80 + (size_t)t->ncols);
    json_object *v;
    int rc = 0;

    if (!set || !key) {
        rc = dsc_nomem(err, errlen);
        goto out;
    }
    for (int i = 0; i < t->ncols; i++)
        if (sets(g[0], i, &v))
            set[nset++] = i;
    per_row = npk + nset;
    while (done < n) {
        unsigned k = chunk_log2(n - done, per_row);
        size_t rows = (size_t)1 << k;
        size_t keylen =
            (size_t)snprintf(key, keycap, "GU%u:%s", k, t->name) + 1;
        for (int i = 0; i < t->ncols; i++)
            key[keylen++] = sets(g[0], i, &v) ? '1' : '0';
        MYSQL_STMT *st = dsc_stmts_get(s, key, keylen);
        if (!st) {
            dsc_sql_reset(s);
            add_insert(s, t, set, nset, rows);
            dsc_sql_add(s, " ON DUPLICATE KEY UPDATE ");
            for (size_t i = 0; i < nset; i++) {
                const char *q = t->cols[set[i]].quoted;
                dsc_sql_add(s, i ? ", " : "");
                dsc_sql_add(s, q);
                dsc_sql_add(s, " = VALUES(");
                dsc_sql_add(s, q);
                dsc_sql_add(s, ")");
            }
            if (nset == 0) {
                dsc_sql_add(s, t->cols[t->pk[0]].quoted);
                dsc_sql_add(s, " = ");
                dsc_sql_add(s, t->cols[t->pk[0]].quoted);
            }
            rc = dsc_stmts_prepare(s, key, keylen, &st, err, errlen);
            if (rc)
                goto out;
        }
        if (dsc_params_reserve(s, rows * per_row)) {
            rc = dsc_nomem(err, errlen);
            goto out;
        }
        for (size_t r = 0; r < rows; r++) {
            const dsc_change *c = g[done + r];
            size_t p = r * per_row;
            rc = bind_key(s, c, p);
            for (size_t i = 0; rc == 0 && i < nset; i++) {
                json_object_object_get_ex(c->ev.data, t->cols[set[i]].name, &v);
                rc = dsc_bind_json(s, p + npk + i, &t->cols[set[i]], v);
            }
            if (rc) {
                dsc_params_clear(s);
                rc = ds__seterr(err, errlen, rc, "a value cannot be bound");
                goto out;
            }
        }
        unsigned int errnum;
        rc = dsc_stmts_run(s, st, NULL, &errnum, err, errlen);
        if (rc)
            goto out;
        done += rows;
    }
out:
    free(set);
    free(key);
    return rc;
}

/* Writes todo[0..n), a group at a time, groups in the order of their
 * first change; as deletes of the keys when wipe is set. */
int dsc_rows_write(dsc_stmts *s, dsc_change **todo, dsc_change **group,
                   size_t n, bool wipe, char *err, size_t errlen)
{
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        dsc_change *first = todo[i];
        size_t ng = 0;
        if (!first)
            continue;
        for (size_t j = i; j < n; j++) {
            dsc_change *c = todo[j];
            if (c && (wipe ? c->table == first->table : same_group(first, c))) {
                group[ng++] = c;
                todo[j] = NULL;
            }
        }
        if (wipe || first->ev.op == DS_OP_DELETE) {
            rc = delete_rows(s, group, ng, err, errlen);
        } else if (!first->table->other_unique) {
            rc = upsert_rows(s, group, ng, err, errlen);
        } else {
            /* Another unique index: UPDATE, then INSERT, row by row. */
            unsigned int errnum;
            for (size_t j = 0; j < ng && rc == 0; j++)
                rc = dsc_row_upsert(s, group[j], &errnum, err, errlen);
        }
    }
    return rc;
}
