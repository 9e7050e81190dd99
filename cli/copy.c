/* copy.c: streams rows out of a peer's consistent snapshot into another database, in multi-row prepared INSERTs. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mysql_util.h"

/* At most this many rows per INSERT, and never more than MAX_PARAMS
 * placeholders (the protocol's limit is 65535). */
#define ROWS_PER_INSERT 500
#define MAX_PARAMS 60000

typedef struct inserter {
    MYSQL *db;
    char *sql_head; /* "INSERT INTO `t` (`a`, `b`) VALUES " */
    size_t ncols, per_stmt, nrows;
    MYSQL_STMT *full; /* prepared for per_stmt rows */
    MYSQL_BIND *binds;
    unsigned long *lens;
    size_t *offs;
    my_bool *nulls;
    enum enum_field_types *types; /* per column */
    char *arena;                  /* this statement's values */
    size_t arena_len, arena_cap;
} inserter;

/* "INSERT INTO `table` (`c1`, ...) VALUES " followed by rows times
 * "(?, ...)". */
static char *insert_sql(const char *head, size_t ncols, size_t rows)
{
    size_t hlen = strlen(head), per = 2 + 3 * ncols;
    char *sql = malloc(hlen + rows * (per + 1) + 1), *p;

    if (!sql)
        return NULL;
    memcpy(sql, head, hlen);
    p = sql + hlen;
    for (size_t r = 0; r < rows; r++) {
        *p++ = r ? ',' : ' ';
        *p++ = '(';
        for (size_t c = 0; c < ncols; c++) {
            if (c)
                *p++ = ',';
            *p++ = '?';
        }
        *p++ = ')';
    }
    *p = '\0';
    return sql;
}

static int prepare(inserter *in, size_t rows, MYSQL_STMT **out, char *err,
                   size_t errlen)
{
    char *sql = insert_sql(in->sql_head, in->ncols, rows);
    MYSQL_STMT *st;
    int rc = 0;

    if (!sql)
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    st = mysql_stmt_init(in->db);
    if (!st)
        rc = ds__mysql_error(in->db, "mysql_stmt_init", NULL, err, errlen);
    else if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0)
        rc = ds__mysql_stmt_error(st, "prepare INSERT", NULL, err, errlen);
    free(sql);
    if (rc) {
        if (st)
            mysql_stmt_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

/* Values go in as strings, as the text protocol gave them; binary columns
 * as blobs so no character set conversion touches their bytes. */
static enum enum_field_types bind_type(const MYSQL_FIELD *f)
{
    bool bytes = f->type == MYSQL_TYPE_STRING ||
                 f->type == MYSQL_TYPE_VAR_STRING ||
                 f->type == MYSQL_TYPE_BLOB || f->type == MYSQL_TYPE_BIT ||
                 f->type == MYSQL_TYPE_GEOMETRY;
    return bytes && f->charsetnr == 63 ? MYSQL_TYPE_BLOB : MYSQL_TYPE_STRING;
}

static void inserter_free(inserter *in)
{
    if (in->full)
        mysql_stmt_close(in->full);
    free(in->sql_head);
    free(in->binds);
    free(in->lens);
    free(in->offs);
    free(in->nulls);
    free(in->types);
    free(in->arena);
    memset(in, 0, sizeof *in);
}

static int inserter_init(inserter *in, MYSQL *db, const char *table,
                         const char *const *cols, const MYSQL_FIELD *fields,
                         size_t ncols, char *err, size_t errlen)
{
    size_t cap = 64 + 68 * (ncols + 1), len = 0, n;
    int rc = 0;

    memset(in, 0, sizeof *in);
    in->db = db;
    in->ncols = ncols;
    in->per_stmt = ROWS_PER_INSERT;
    if (in->per_stmt * ncols > MAX_PARAMS)
        in->per_stmt = MAX_PARAMS / ncols;
    n = in->per_stmt * ncols;
    in->sql_head = malloc(cap);
    in->binds = calloc(n, sizeof *in->binds);
    in->lens = calloc(n, sizeof *in->lens);
    in->offs = calloc(n, sizeof *in->offs);
    in->nulls = calloc(n, sizeof *in->nulls);
    in->types = calloc(ncols, sizeof *in->types);
    if (!in->sql_head || !in->binds || !in->lens || !in->offs || !in->nulls ||
        !in->types) {
        rc = ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
        goto fail;
    }
    len = (size_t)snprintf(in->sql_head, cap, "INSERT INTO ");
    rc = ds__mysql_quote_ident(in->sql_head, cap, &len, table);
    for (size_t c = 0; rc == 0 && c < ncols; c++) {
        len += (size_t)snprintf(in->sql_head + len, cap - len, c ? ", " : " (");
        rc = ds__mysql_quote_ident(in->sql_head, cap, &len, cols[c]);
        in->types[c] = bind_type(&fields[c]);
    }
    if (rc == 0 && len + 10 < cap)
        snprintf(in->sql_head + len, cap - len, ") VALUES");
    else
        rc = ds__seterr(err, errlen, DS_EINVAL, "table %s: names too long",
                        table);
    if (rc == 0)
        rc = prepare(in, in->per_stmt, &in->full, err, errlen);
    if (rc == 0)
        return 0;
fail:
    inserter_free(in);
    return rc;
}

/* Runs the buffered rows as one INSERT (the prepared one when full, a
 * one-off for the tail) and commits them. */
static int inserter_flush(inserter *in, char *err, size_t errlen)
{
    MYSQL_STMT *st = in->full;
    size_t n = in->nrows * in->ncols;
    int rc = 0;

    if (in->nrows == 0)
        return 0;
    if (in->nrows < in->per_stmt) {
        rc = prepare(in, in->nrows, &st, err, errlen);
        if (rc)
            return rc;
    }
    /* The arena may have moved while it grew: pointers are set now. */
    for (size_t i = 0; i < n; i++) {
        MYSQL_BIND *b = &in->binds[i];
        b->buffer_type = in->types[i % in->ncols];
        b->buffer = in->arena + in->offs[i];
        b->buffer_length = in->lens[i];
        b->length = &in->lens[i];
        b->is_null = &in->nulls[i];
    }
    if (mysql_stmt_bind_param(st, in->binds) != 0 ||
        mysql_stmt_execute(st) != 0)
        rc = ds__mysql_stmt_error(st, "INSERT", NULL, err, errlen);
    else if (mysql_commit(in->db) != 0)
        rc = ds__mysql_error(in->db, "COMMIT", NULL, err, errlen);
    if (st != in->full)
        mysql_stmt_close(st);
    in->nrows = 0;
    in->arena_len = 0;
    return rc;
}

static int inserter_add(inserter *in, MYSQL_ROW row, const unsigned long *lens,
                        char *err, size_t errlen)
{
    size_t base = in->nrows * in->ncols, need = in->arena_len;

    for (size_t c = 0; c < in->ncols; c++)
        need += row[c] ? lens[c] : 0;
    if (need > in->arena_cap) {
        size_t cap = in->arena_cap ? in->arena_cap : 65536;
        while (cap < need)
            cap *= 2;
        char *more = realloc(in->arena, cap);
        if (!more)
            return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
        in->arena = more;
        in->arena_cap = cap;
    }
    for (size_t c = 0; c < in->ncols; c++) {
        in->nulls[base + c] = row[c] == NULL;
        in->offs[base + c] = in->arena_len;
        in->lens[base + c] = row[c] ? lens[c] : 0;
        if (row[c]) {
            memcpy(in->arena + in->arena_len, row[c], lens[c]);
            in->arena_len += lens[c];
        }
    }
    if (++in->nrows == in->per_stmt)
        return inserter_flush(in, err, errlen);
    return 0;
}

int cli_copy_query(cli_copy *cp, const char *select_sql, const char *table,
                   const char *const *cols, size_t ncols, uint64_t *copied,
                   char *err, size_t errlen)
{
    MYSQL_RES *res;
    MYSQL_ROW row;
    inserter in;
    int rc;

    *copied = 0;
    if (mysql_real_query(cp->src, select_sql, strlen(select_sql)) != 0)
        return ds__mysql_error(cp->src, "SELECT on the peer", NULL, err,
                               errlen);
    /* Streamed, not stored: a table of any size in constant memory. */
    res = mysql_use_result(cp->src);
    if (!res)
        return ds__mysql_error(cp->src, "reading the peer", NULL, err, errlen);
    if (mysql_num_fields(res) != ncols) {
        rc = ds__seterr(err, errlen, DS_EINVAL,
                        "table %s: %u columns read for %zu", table,
                        mysql_num_fields(res), ncols);
        mysql_free_result(res);
        return rc;
    }
    rc = inserter_init(&in, cp->dst, table, cols, mysql_fetch_fields(res),
                       ncols, err, errlen);
    while (rc == 0 && (row = mysql_fetch_row(res)) != NULL) {
        rc = inserter_add(&in, row, mysql_fetch_lengths(res), err, errlen);
        if (rc == 0 && ++*copied % 1000 == 0 && cp->progress)
            cp->progress(cp->progress_ctx, *copied);
        if (rc == 0 && cli_interrupted())
            rc = 1; /* stopped: the caller says so, the table stays undone */
    }
    if (rc == 0 && mysql_errno(cp->src))
        rc = ds__mysql_error(cp->src, "reading the peer", NULL, err, errlen);
    if (rc == 0)
        rc = inserter_flush(&in, err, errlen);
    if (rc == 0 && cp->progress)
        cp->progress(cp->progress_ctx, *copied);
    /* A stopped stream must still be drained before the connection can
     * be used again; mysql_free_result does that. */
    mysql_free_result(res);
    inserter_free(&in);
    if (rc)
        mysql_rollback(cp->dst);
    return rc;
}
