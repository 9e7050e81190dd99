/* snapshot.c: a first start's copy: the captured tables as they are at one consistent snapshot, emitted as creates, and the binlog position it stands for. */
#include <inttypes.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ids.h"
#include "mysql_util.h"
#include "rowimage.h"
#include "snapshot.h"
#include "txn.h"

/* Rows held before they go to ds_emit, and how often progress is logged. */
#define EMIT_EVERY 500
#define SAY_EVERY 100000

typedef struct snap {
    const ds_config *cfg;
    ds_producer *p;
    const ds_logger *lg;
    volatile sig_atomic_t *stop;
    MYSQL *db;
    cap_txn tx;
    uint64_t *clk, start_ms; /* the capture's clock; the copy's start */
    uint64_t rows;
    char *err;
    size_t errlen;
} snap;

static int query_error(snap *s, const char *what)
{
    return ds__mysql_error(s->db, what, NULL, s->err, s->errlen);
}

/* The first column of the first row of sql into out; "" for no row. */
static int query_value(snap *s, const char *sql, int col, char *out, size_t cap)
{
    MYSQL_RES *res;
    MYSQL_ROW row;

    if (mysql_query(s->db, sql) != 0 || !(res = mysql_store_result(s->db)))
        return query_error(s, sql);
    row = mysql_fetch_row(res);
    snprintf(out, cap, "%s",
             row && (int)mysql_num_fields(res) > col && row[col] ? row[col]
                                                                 : "");
    mysql_free_result(res);
    return 0;
}

/* The snapshot and the binlog position it stands for: the server moves
 * binlog_snapshot_file/position with the snapshot, not with later
 * commits. */
static int open_snapshot(snap *s, char *gtid, size_t cap)
{
    char file[256], pos[32], sql[400];
    int rc;

    if (mysql_query(s->db, "START TRANSACTION WITH CONSISTENT SNAPSHOT, "
                           "READ ONLY") != 0)
        return query_error(s, "START TRANSACTION WITH CONSISTENT SNAPSHOT");
    if ((rc = query_value(s, "SHOW STATUS LIKE 'binlog_snapshot_file'", 1, file,
                          sizeof file)) ||
        (rc = query_value(s, "SHOW STATUS LIKE 'binlog_snapshot_position'", 1,
                          pos, sizeof pos)))
        return rc;
    if (!file[0] || strspn(pos, "0123456789") != strlen(pos) || !pos[0] ||
        strchr(file, '\'') || strchr(file, '\\'))
        return ds__seterr(s->err, s->errlen, DS_ECONFIG,
                          "the server gives no binlog position for a "
                          "snapshot (log_bin off?)");
    snprintf(sql, sizeof sql, "SELECT BINLOG_GTID_POS('%s', %s)", file, pos);
    if ((rc = query_value(s, sql, 0, gtid, cap)))
        return rc;
    DS_LOG(s->lg, DS_LOG_INFO,
           "snapshot at binlog %s:%s (GTID position '%s'): copying the "
           "captured tables",
           file, pos, gtid);
    return 0;
}

/* The table's columns, in order, with its primary key, as a cap_table
 * (names and key only: the values come as text, not row images). */
static int describe(snap *s, const char *name, cap_table **out)
{
    cap_table *t = calloc(1, sizeof *t);
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    char sql[600], esc[2 * 64 + 1];
    int rc = 0;

    *out = NULL;
    if (!t || strlen(name) >= sizeof t->name)
        goto nomem;
    snprintf(t->db, sizeof t->db, "%s", s->cfg->mysql_database);
    snprintf(t->name, sizeof t->name, "%s", name);
    mysql_real_escape_string(s->db, esc, name, (unsigned long)strlen(name));
    snprintf(sql, sizeof sql,
             "SELECT COLUMN_NAME, (SELECT SEQ_IN_INDEX FROM "
             "information_schema.STATISTICS i WHERE i.TABLE_SCHEMA = "
             "c.TABLE_SCHEMA AND i.TABLE_NAME = c.TABLE_NAME AND "
             "i.INDEX_NAME = 'PRIMARY' AND i.COLUMN_NAME = c.COLUMN_NAME) "
             "FROM information_schema.COLUMNS c WHERE TABLE_SCHEMA = "
             "DATABASE() AND TABLE_NAME = '%s' ORDER BY ORDINAL_POSITION",
             esc);
    if (mysql_query(s->db, sql) != 0 || !(res = mysql_store_result(s->db))) {
        rc = query_error(s, name);
        goto fail;
    }
    t->ncols = mysql_num_rows(res);
    t->cols = calloc(t->ncols ? t->ncols : 1, sizeof *t->cols);
    t->pk = calloc(t->ncols ? t->ncols : 1, sizeof *t->pk);
    if (!t->cols || !t->pk)
        goto nomem;
    for (size_t i = 0; (row = mysql_fetch_row(res)); i++) {
        if (!(t->cols[i].name = strdup(row[0])))
            goto nomem;
        t->cols[i].pk_index = row[1] ? atoi(row[1]) - 1 : -1;
        if (row[1] && t->cols[i].pk_index >= 0 &&
            (size_t)t->cols[i].pk_index < t->ncols) {
            t->pk[t->cols[i].pk_index] = i;
            t->npk++;
        }
    }
    mysql_free_result(res);
    if (t->ncols == 0) {
        rc = ds__seterr(s->err, s->errlen, DS_ECONFIG,
                        "table %s.%s does not exist", t->db, name);
        goto fail;
    }
    if (t->npk == 0) {
        rc = ds__seterr(s->err, s->errlen, DS_ECONFIG,
                        "%s.%s has no primary key: its rows cannot be keyed",
                        t->db, name);
        goto fail;
    }
    *out = t;
    return 0;
nomem:
    mysql_free_result(res);
    rc = ds__seterr(s->err, s->errlen, DS_ENOMEM, "out of memory");
fail:
    cap_table_free(t);
    return rc;
}

/* A big-endian BIT value (the text protocol sends its bytes) as a number. */
static json_object *bit_value(const char *v, unsigned long len)
{
    uint64_t n = 0;
    for (unsigned long i = 0; i < len; i++)
        n = n << 8 | (unsigned char)v[i];
    return json_object_new_uint64(n);
}

/* One value of a text-protocol row, as a binlog row image would give it
 * (rowimage.h): numbers as numbers, DECIMAL, dates and times as strings
 * (the session is in UTC), binary as {"base64": ...}. The connection is
 * utf8mb4, so every other character column arrives as UTF-8 text. */
static json_object *text_value(const MYSQL_FIELD *f, const char *v,
                               unsigned long len)
{
    switch (f->type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
        return f->flags & UNSIGNED_FLAG
                   ? json_object_new_uint64(strtoull(v, NULL, 10))
                   : json_object_new_int64(strtoll(v, NULL, 10));
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
        return json_object_new_double_s(strtod(v, NULL), v);
    case MYSQL_TYPE_BIT:
        return bit_value(v, len);
    case MYSQL_TYPE_GEOMETRY:
        return cap_json_base64((const unsigned char *)v, len);
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
        if (f->charsetnr == 63) /* binary */
            return cap_json_base64((const unsigned char *)v, len);
        return json_object_new_string_len(v, (int)len);
    default: /* DECIMAL, dates and times, ENUM, SET, JSON */
        return json_object_new_string_len(v, (int)len);
    }
}

static int emit_held(snap *s)
{
    /* Ids new each time: a copy made again is another copy. */
    *s->clk = cap_txn_stamp(&s->tx, *s->clk, s->start_ms, NULL, NULL);
    return cap_txn_emit(&s->tx, s->p, s->cfg->node_id, s->err, s->errlen);
}

/* "SELECT `c1`, ... FROM `name`" with every column describe() found, in
 * its order: SELECT * would leave out the INVISIBLE ones, which the binlog's
 * row images carry. NULL when out of memory. */
static char *select_columns(const cap_table *t, const char *name)
{
    size_t cap = 2 * strlen(name) + 32, len = 0;
    char *sql;
    int bad = 0;

    for (size_t i = 0; i < t->ncols; i++)
        cap += 2 * strlen(t->cols[i].name) + 4;
    if (!(sql = malloc(cap)))
        return NULL;
    len = (size_t)snprintf(sql, cap, "SELECT ");
    for (size_t i = 0; i < t->ncols; i++) {
        if (i > 0)
            len += (size_t)snprintf(sql + len, cap - len, ", ");
        bad |= ds__mysql_quote_ident(sql, cap, &len, t->cols[i].name);
    }
    len += (size_t)snprintf(sql + len, cap - len, " FROM ");
    bad |= ds__mysql_quote_ident(sql, cap, &len, name);
    if (bad) { /* cap counts every byte: not reached */
        free(sql);
        return NULL;
    }
    return sql;
}

/* Streams one table's rows and emits each as a create. */
static int copy_table(snap *s, const char *name)
{
    cap_table *t;
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    json_object **vals = NULL;
    bool *have = NULL;
    char *sql = NULL;
    uint64_t n = 0;
    int rc = describe(s, name, &t);

    if (rc)
        return rc;
    sql = select_columns(t, name);
    vals = calloc(t->ncols, sizeof *vals);
    have = malloc(t->ncols * sizeof *have);
    if (!sql || !vals || !have) {
        rc = ds__seterr(s->err, s->errlen, DS_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->ncols; i++)
        have[i] = true;
    /* Unbuffered: the rows stream through, however many. */
    if (mysql_query(s->db, sql) != 0 || !(res = mysql_use_result(s->db))) {
        rc = query_error(s, name);
        goto out;
    }
    if (mysql_num_fields(res) != t->ncols) {
        /* The table changed between the two queries. */
        rc = ds__seterr(s->err, s->errlen, DS_EINVAL,
                        "%s has %u columns, information_schema listed %zu: "
                        "was it altered during the snapshot?",
                        name, mysql_num_fields(res), t->ncols);
        goto out;
    }
    MYSQL_FIELD *fields = mysql_fetch_fields(res);
    while (rc == 0 && !*s->stop && (row = mysql_fetch_row(res))) {
        unsigned long *lens = mysql_fetch_lengths(res);
        for (size_t i = 0; i < t->ncols; i++)
            vals[i] = row[i] ? text_value(&fields[i], row[i], lens[i]) : NULL;
        rc = cap_txn_add(&s->tx, t, CAP_ROW_INSERT, NULL, NULL, vals, have,
                         s->err, s->errlen);
        for (size_t i = 0; i < t->ncols; i++)
            json_object_put(vals[i]), vals[i] = NULL;
        if (rc == 0 && s->tx.n >= EMIT_EVERY)
            rc = emit_held(s);
        if (++n % SAY_EVERY == 0)
            DS_LOG(s->lg, DS_LOG_INFO, "snapshot: %s: %" PRIu64 " rows so far",
                   name, n);
    }
    if (rc == 0 && !*s->stop && mysql_errno(s->db))
        rc = query_error(s, name);
    if (rc == 0)
        rc = emit_held(s);
    if (rc == 0 && *s->stop)
        rc = ds__seterr(s->err, s->errlen, DS_ECLOSED,
                        "stopped during the snapshot of %s (the next start "
                        "copies again)",
                        name);
    if (rc == 0)
        DS_LOG(s->lg, DS_LOG_INFO, "snapshot: %s: %" PRIu64 " rows emitted",
               name, n);
    s->rows += n;
out:
    mysql_free_result(res);
    free(sql);
    free(vals);
    free(have);
    cap_table_free(t);
    return rc;
}

static int copy_word(const char *word, size_t len, void *ctx)
{
    char name[65];

    if (len >= sizeof name)
        return ds__seterr(((snap *)ctx)->err, ((snap *)ctx)->errlen, DS_ECONFIG,
                          "table name %.*s is too long", (int)len, word);
    memcpy(name, word, len);
    name[len] = '\0';
    return copy_table(ctx, name);
}

int cap_snapshot(const ds_config *cfg, ds_producer *p, const ds_logger *lg,
                 volatile sig_atomic_t *stop, uint64_t *clk, char *gtid,
                 size_t cap, char *err, size_t errlen)
{
    snap s = {cfg, p, lg, stop, NULL, {0}, clk, ds__now_ms(), 0, err, errlen};
    const char *tables =
        cfg->capture_tables[0] ? cfg->capture_tables : cfg->apply_tables;
    int rc = ds__mysql_connect(&s.db, cfg, err, errlen);

    if (rc)
        return rc;
    rc = open_snapshot(&s, gtid, cap);
    if (rc == 0)
        rc = ds__config_each_word(tables, copy_word, &s);
    mysql_rollback(s.db);
    mysql_close(s.db);
    cap_txn_free(&s.tx);
    if (rc)
        return rc;
    /* The position counts only once every row is safe with the broker
     * (or spooled: the flush ends by the confirm timeout). */
    do
        rc = ds_flush(p, -1);
    while (rc == DS_ETIMEOUT && !*stop);
    if (rc)
        return ds__seterr(err, errlen, rc,
                          "the snapshot's %" PRIu64
                          " rows are not all confirmed: %s",
                          s.rows, ds_producer_errmsg(p));
    DS_LOG(lg, DS_LOG_INFO,
           "snapshot: %" PRIu64 " rows confirmed; reading the binlog from "
           "'%s'",
           s.rows, gtid);
    return 0;
}
