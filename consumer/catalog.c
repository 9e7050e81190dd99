/* catalog.c: reads the applied tables' columns and primary keys from information_schema and checks events against them. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "catalog.h"
#include "config.h"
#include "error.h"
#include "mysql_util.h"

static const char COLUMNS_SQL[] =
    "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, "
    "IFNULL(GENERATION_EXPRESSION, '') FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

static const char PRIMARY_KEY_SQL[] =
    "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
    "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = "
    "'PRIMARY' ORDER BY ORDINAL_POSITION";

static const char OTHER_UNIQUE_SQL[] =
    "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE "
    "TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME "
    "<> 'PRIMARY' LIMIT 1";

void dsc_catalog_safe_name(const char *name, char *out, size_t len)
{
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)name;

    for (; *p && n + 5 < len && (size_t)(p - (const unsigned char *)name) < 64;
         p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\' && *p != '\'')
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, len - n, "\\x%02x", *p);
    }
    if (*p && n + 4 < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n < len ? n : len - 1] = '\0';
}

static dsc_col_kind kind_of(const char *type)
{
    static const char *const integer[] = {"tinyint", "smallint", "mediumint",
                                          "int",     "integer",  "bigint",
                                          "year",    NULL};
    static const char *const binary[] = {"binary",
                                         "varbinary",
                                         "tinyblob",
                                         "blob",
                                         "mediumblob",
                                         "longblob",
                                         "geometry",
                                         "point",
                                         "linestring",
                                         "polygon",
                                         "multipoint",
                                         "multilinestring",
                                         "multipolygon",
                                         "geometrycollection",
                                         NULL};

    for (int i = 0; integer[i]; i++)
        if (strcasecmp(type, integer[i]) == 0)
            return DS_COL_INTEGER;
    for (int i = 0; binary[i]; i++)
        if (strcasecmp(type, binary[i]) == 0)
            return DS_COL_BINARY;
    if (strcasecmp(type, "bit") == 0)
        return DS_COL_BIT;
    if (strcasecmp(type, "decimal") == 0 || strcasecmp(type, "numeric") == 0)
        return DS_COL_EXACT;
    if (strcasecmp(type, "float") == 0 || strcasecmp(type, "double") == 0 ||
        strcasecmp(type, "real") == 0)
        return DS_COL_FLOAT;
    return DS_COL_TEXT;
}

static void table_free(dsc_table *t)
{
    for (int i = 0; i < t->ncols; i++) {
        free(t->cols[i].name);
        free(t->cols[i].quoted);
    }
    free(t->cols);
    free(t->pk);
    free(t->by_name);
    free(t->quoted);
    memset(t, 0, sizeof *t);
}

void dsc_catalog_free(dsc_catalog *cat)
{
    for (int i = 0; i < cat->ntables; i++)
        table_free(&cat->tables[i]);
    free(cat->tables);
    cat->tables = NULL;
    cat->ntables = 0;
}

static char *quote(const char *name)
{
    size_t cap = strlen(name) * 2 + 3, len = 0;
    char *q = malloc(cap);
    if (q && ds__mysql_quote_ident(q, cap, &len, name) != 0) {
        free(q);
        q = NULL;
    }
    return q;
}

static int nomem(char *err, size_t errlen)
{
    return ds__seterr(err, errlen, DS_ENOMEM, "catalogue: out of memory");
}

/*
 * Runs a catalogue query with the two string parameters (database, table)
 * and binds its n result columns to the strings bufs[i] of sizes[i] bytes,
 * their lengths into lens[i]. Returns 0 and *out (close it), or < 0 with
 * err.
 */
static int query(MYSQL *db, const char *sql, const char *database,
                 const char *table, int n, char *const *bufs,
                 const size_t *sizes, unsigned long *lens, MYSQL_STMT **out,
                 char *err, size_t errlen)
{
    MYSQL_BIND params[2], res[4];
    unsigned long plens[2] = {strlen(database), strlen(table)};
    int rc;

    MYSQL_STMT *st = mysql_stmt_init(db);
    if (!st)
        return nomem(err, errlen);
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0)
        goto fail;
    memset(params, 0, sizeof params);
    params[0].buffer_type = MYSQL_TYPE_STRING;
    params[0].buffer = (void *)database;
    params[0].length = &plens[0];
    params[1].buffer_type = MYSQL_TYPE_STRING;
    params[1].buffer = (void *)table;
    params[1].length = &plens[1];
    if (mysql_stmt_bind_param(st, params) != 0 || mysql_stmt_execute(st) != 0)
        goto fail;
    memset(res, 0, sizeof res);
    for (int i = 0; i < n; i++) {
        res[i].buffer_type = MYSQL_TYPE_STRING;
        res[i].buffer = bufs[i];
        res[i].buffer_length = sizes[i];
        res[i].length = &lens[i];
    }
    if (mysql_stmt_bind_result(st, res) != 0)
        goto fail;
    *out = st;
    return 0;
fail:
    rc = ds__mysql_stmt_error(st, "catalogue", NULL, err, errlen);
    mysql_stmt_close(st);
    return rc;
}

/* query() for a result of one string column. */
static int query_name(MYSQL *db, const char *sql, const char *database,
                      const char *table, char *buf, size_t size,
                      unsigned long *len, MYSQL_STMT **out, char *err,
                      size_t errlen)
{
    return query(db, sql, database, table, 1, &buf, &size, len, out, err,
                 errlen);
}

/* The next row of st: 1, 0 when there are no more, or < 0 with err. A value
 * cut to its buffer is an error unless truncation_ok. */
static int fetch(MYSQL_STMT *st, bool truncation_ok, char *err, size_t errlen)
{
    int f = mysql_stmt_fetch(st);

    if (f == MYSQL_NO_DATA)
        return 0;
    if (f == 1 || (f == MYSQL_DATA_TRUNCATED && !truncation_ok))
        return ds__mysql_stmt_error(st, "catalogue", NULL, err, errlen);
    return 1;
}

/* Appends a column to t. Returns 0 or DS_ENOMEM. */
static int add_column(dsc_table *t, int *cap, const char *name,
                      const char *type, bool nullable, bool generated)
{
    if (t->ncols == *cap) {
        int ncap = *cap ? *cap * 2 : 16;
        dsc_column *c = realloc(t->cols, (size_t)ncap * sizeof *c);
        if (!c)
            return DS_ENOMEM;
        t->cols = c;
        *cap = ncap;
    }
    dsc_column *c = &t->cols[t->ncols];
    memset(c, 0, sizeof *c);
    c->name = strdup(name);
    c->quoted = quote(name);
    t->ncols++; /* even half made: table_free frees what is there */
    if (!c->name || !c->quoted)
        return DS_ENOMEM;
    c->kind = kind_of(type);
    c->nullable = nullable;
    c->generated = generated;
    c->pk_index = -1;
    return 0;
}

/* The table's columns, in table order. None: the table does not exist. */
static int read_columns(dsc_table *t, MYSQL *db, const char *database,
                        char *err, size_t errlen)
{
    char col[1024], type[64], nullable[8], gen[16];
    char *const bufs[4] = {col, type, nullable, gen};
    const size_t sizes[4] = {sizeof col, sizeof type, sizeof nullable,
                             sizeof gen};
    unsigned long lens[4];
    MYSQL_STMT *st;
    int rc, cap = 0;

    rc = query(db, COLUMNS_SQL, database, t->name, 4, bufs, sizes, lens, &st,
               err, errlen);
    if (rc)
        return rc;
    while ((rc = fetch(st, true, err, errlen)) > 0) {
        /* Truncation is expected only of the generation expression, of
         * which the length is all we need. */
        if (lens[0] >= sizeof col || lens[1] >= sizeof type) {
            rc = ds__seterr(err, errlen, DS_ETABLE,
                            "table %s: a column name is too long", t->name);
            break;
        }
        col[lens[0]] = '\0';
        type[lens[1]] = '\0';
        nullable[lens[2] < sizeof nullable ? lens[2] : sizeof nullable - 1] =
            '\0';
        if (add_column(t, &cap, col, type, strcmp(nullable, "YES") == 0,
                       lens[3] > 0) != 0) {
            rc = nomem(err, errlen);
            break;
        }
    }
    mysql_stmt_close(st);
    if (rc == 0 && t->ncols == 0)
        rc = ds__seterr(err, errlen, DS_ETABLE,
                        "apply.tables: table %s does not exist in database %s",
                        t->name, database);
    return rc;
}

/* The primary-key columns, in key order. None: an error, as datasync
 * finds a row by its key. */
static int read_primary_key(dsc_table *t, MYSQL *db, const char *database,
                            char *err, size_t errlen)
{
    char col[1024];
    unsigned long len;
    MYSQL_STMT *st;
    int rc;

    t->pk = malloc((size_t)t->ncols * sizeof *t->pk);
    if (!t->pk)
        return nomem(err, errlen);
    rc = query_name(db, PRIMARY_KEY_SQL, database, t->name, col, sizeof col,
                    &len, &st, err, errlen);
    if (rc)
        return rc;
    while ((rc = fetch(st, false, err, errlen)) > 0) {
        col[len < sizeof col ? len : sizeof col - 1] = '\0';
        int idx = -1;
        for (int i = 0; i < t->ncols; i++)
            if (strcmp(t->cols[i].name, col) == 0)
                idx = i;
        if (idx < 0 || t->npk >= t->ncols) {
            rc =
                ds__seterr(err, errlen, DS_ETABLE,
                           "table %s: primary key changed while read", t->name);
            break;
        }
        t->cols[idx].pk_index = t->npk;
        t->pk[t->npk++] = idx;
    }
    mysql_stmt_close(st);
    if (rc == 0 && t->npk == 0)
        rc = ds__seterr(err, errlen, DS_ETABLE,
                        "apply.tables: table %s has no primary key: datasync "
                        "needs one to find a row on every server",
                        t->name);
    return rc;
}

/* Whether a unique index other than the primary key exists. */
static int read_other_unique(dsc_table *t, MYSQL *db, const char *database,
                             char *err, size_t errlen)
{
    char index_name[1024];
    unsigned long len;
    MYSQL_STMT *st;
    int rc;

    rc = query_name(db, OTHER_UNIQUE_SQL, database, t->name, index_name,
                    sizeof index_name, &len, &st, err, errlen);
    if (rc)
        return rc;
    while ((rc = fetch(st, true, err, errlen)) > 0)
        t->other_unique = true;
    mysql_stmt_close(st);
    return rc;
}

static int by_name_cmp(const void *a, const void *b, void *table)
{
    const dsc_table *t = table;
    return strcmp(t->cols[*(const int *)a].name, t->cols[*(const int *)b].name);
}

/* The column indexes sorted by name, for dsc_table_column. */
static int index_by_name(dsc_table *t, char *err, size_t errlen)
{
    t->by_name = malloc((size_t)t->ncols * sizeof *t->by_name);
    if (!t->by_name)
        return nomem(err, errlen);
    for (int i = 0; i < t->ncols; i++)
        t->by_name[i] = i;
    qsort_r(t->by_name, (size_t)t->ncols, sizeof *t->by_name, by_name_cmp, t);
    return 0;
}

/* Reads one table's entry: columns, primary key, other unique indexes. */
static int load_table(dsc_table *t, MYSQL *db, const char *database,
                      const char *name, char *err, size_t errlen)
{
    int rc;

    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->quoted = quote(name);
    if (!t->quoted)
        rc = nomem(err, errlen);
    else
        rc = read_columns(t, db, database, err, errlen);
    if (rc == 0)
        rc = read_primary_key(t, db, database, err, errlen);
    if (rc == 0)
        rc = read_other_unique(t, db, database, err, errlen);
    if (rc == 0)
        rc = index_by_name(t, err, errlen);
    if (rc)
        table_free(t);
    return rc;
}

typedef struct load_ctx {
    dsc_catalog *cat;
    int cap;
    MYSQL *db;
    const char *database;
    char *err;
    size_t errlen;
} load_ctx;

static int load_word(const char *word, size_t len, void *vctx)
{
    load_ctx *ctx = vctx;
    char name[65];

    if (len >= sizeof name) {
        return ds__seterr(ctx->err, ctx->errlen, DS_ECONFIG,
                          "apply.tables: table name too long: %.64s...", word);
    }
    memcpy(name, word, len);
    name[len] = '\0';
    if (!ds__valid_table_name(name))
        return ds__seterr(ctx->err, ctx->errlen, DS_ECONFIG,
                          "apply.tables: '%s' is not a valid table name", name);
    if (dsc_catalog_table(ctx->cat, name))
        return 0; /* listed twice */
    if (ctx->cat->ntables == ctx->cap) {
        int cap = ctx->cap ? ctx->cap * 2 : 8;
        dsc_table *t = realloc(ctx->cat->tables, (size_t)cap * sizeof *t);
        if (!t)
            return nomem(ctx->err, ctx->errlen);
        ctx->cat->tables = t;
        ctx->cap = cap;
    }
    int rc = load_table(&ctx->cat->tables[ctx->cat->ntables], ctx->db,
                        ctx->database, name, ctx->err, ctx->errlen);
    if (rc == 0)
        ctx->cat->ntables++;
    return rc;
}

int dsc_catalog_load(dsc_catalog *cat, MYSQL *db, const char *database,
                     const char *tables, char *err, size_t errlen)
{
    dsc_catalog fresh = {NULL, 0};
    load_ctx ctx = {&fresh, 0, db, database, err, errlen};

    int rc = ds__config_each_word(tables, load_word, &ctx);
    if (rc) {
        dsc_catalog_free(&fresh);
        return rc;
    }
    dsc_catalog_free(cat);
    *cat = fresh;
    return 0;
}

const dsc_table *dsc_catalog_table(const dsc_catalog *cat, const char *name)
{
    for (int i = 0; i < cat->ntables; i++)
        if (strcmp(cat->tables[i].name, name) == 0)
            return &cat->tables[i];
    return NULL;
}

int dsc_table_column(const dsc_table *t, const char *name)
{
    int lo = 0, hi = t->ncols - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, t->cols[t->by_name[mid]].name);
        if (c == 0)
            return t->by_name[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Checking events                                                           */

/* A value that is a binary {"base64": "..."}: returns the string, or NULL. */
static json_object *base64_member(json_object *v)
{
    json_object *s;
    if (!json_object_is_type(v, json_type_object) ||
        json_object_object_length(v) != 1 ||
        !json_object_object_get_ex(v, "base64", &s) ||
        !json_object_is_type(s, json_type_string))
        return NULL;
    return s;
}

/* A value the consumer can bind: scalar, or a well-formed base64 object. */
static int check_value(const dsc_column *c, json_object *v, const char *where,
                       char *err, size_t errlen)
{
    char safe[300];

    switch (json_object_get_type(v)) {
    case json_type_null:
    case json_type_boolean:
    case json_type_int:
    case json_type_double:
    case json_type_string:
        return 0;
    case json_type_object: {
        json_object *s = base64_member(v);
        if (s) {
            size_t len = (size_t)json_object_get_string_len(s);
            size_t outlen;
            unsigned char *tmp = malloc(ds__base64_decoded_max(len) + 1);
            if (!tmp)
                return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
            int rc =
                ds__base64_decode(json_object_get_string(s), len, tmp, &outlen);
            free(tmp);
            if (rc == 0)
                return 0;
            dsc_catalog_safe_name(c->name, safe, sizeof safe);
            return ds__seterr(err, errlen, DS_ESCHEMA, "%s.%s: invalid base64",
                              where, safe);
        }
        break;
    }
    default:
        break;
    }
    dsc_catalog_safe_name(c->name, safe, sizeof safe);
    return ds__seterr(err, errlen, DS_ESCHEMA,
                      "%s.%s: a value must be a string, number, boolean, "
                      "null or {\"base64\": ...}",
                      where, safe);
}

/* Appends the canonical form of one key value to buf. */
static int key_value(const dsc_column *c, json_object *v, char *buf, size_t cap,
                     size_t *len, char *err, size_t errlen)
{
    char safe[300], num[32];
    const char *text = NULL;
    size_t tlen = 0;
    enum json_type jt = json_object_get_type(v);

    if (c->kind == DS_COL_INTEGER || c->kind == DS_COL_BIT) {
        /* 7, "7" and "007" are one row: normalise to the shortest digits. */
        const char *s = NULL;
        if (jt == json_type_int)
            s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        else if (jt == json_type_string)
            s = json_object_get_string(v);
        size_t n = 0;
        int neg = 0;
        if (s && (*s == '-' || *s == '+'))
            neg = *s++ == '-';
        while (s && *s == '0' && isdigit((unsigned char)s[1]))
            s++;
        for (const char *p = s; p && isdigit((unsigned char)*p); p++)
            n++;
        if (!s || n == 0 || s[n] != '\0' || n > 20) {
            dsc_catalog_safe_name(c->name, safe, sizeof safe);
            return ds__seterr(err, errlen, DS_ESCHEMA,
                              "key.%s: must be an integer", safe);
        }
        neg = neg && !(n == 1 && s[0] == '0');
        snprintf(num, sizeof num, "%s%.*s", neg ? "-" : "", (int)n, s);
        text = num;
        tlen = strlen(num);
    } else if (jt == json_type_string || jt == json_type_int ||
               jt == json_type_double ||
               (jt == json_type_object && base64_member(v))) {
        text = json_object_to_json_string_ext(
            v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        tlen = strlen(text);
    } else {
        dsc_catalog_safe_name(c->name, safe, sizeof safe);
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "key.%s: must be a string, a number or "
                          "{\"base64\": ...}",
                          safe);
    }
    if (*len + tlen + 2 > cap)
        return ds__seterr(err, errlen, DS_ESCHEMA, "key: longer than %d bytes",
                          DS_PK_MAX);
    memcpy(buf + *len, text, tlen);
    *len += tlen;
    return 0;
}

int dsc_catalog_check(const dsc_table *t, const ds_event *ev, char *pk,
                      size_t *pklen, char *err, size_t errlen)
{
    char safe[300];
    size_t len = 0;
    int rc;

    /* The key: exactly the primary-key columns. */
    json_object_object_foreach(ev->key, kname, kval)
    {
        int idx = dsc_table_column(t, kname);
        dsc_catalog_safe_name(kname, safe, sizeof safe);
        if (idx < 0)
            return ds__seterr(err, errlen, DS_ECOLUMN,
                              "key: unknown column '%s' in table %s", safe,
                              t->name);
        if (t->cols[idx].pk_index < 0)
            return ds__seterr(err, errlen, DS_ESCHEMA,
                              "key: '%s' is not a primary-key column of %s",
                              safe, t->name);
        (void)kval;
    }
    pk[len++] = '[';
    for (int i = 0; i < t->npk; i++) {
        const dsc_column *c = &t->cols[t->pk[i]];
        json_object *v;
        if (!json_object_object_get_ex(ev->key, c->name, &v)) {
            dsc_catalog_safe_name(c->name, safe, sizeof safe);
            return ds__seterr(err, errlen, DS_ESCHEMA,
                              "key: missing primary-key column '%s' of %s",
                              safe, t->name);
        }
        if (i > 0)
            pk[len++] = ',';
        rc = key_value(c, v, pk, DS_PK_MAX, &len, err, errlen);
        if (rc)
            return rc;
        rc = check_value(c, v, "key", err, errlen);
        if (rc)
            return rc;
    }
    pk[len++] = ']';
    *pklen = len;

    if (!ev->data)
        return 0;
    json_object_object_foreach(ev->data, dname, dval)
    {
        int idx = dsc_table_column(t, dname);
        if (idx < 0) {
            dsc_catalog_safe_name(dname, safe, sizeof safe);
            return ds__seterr(err, errlen, DS_ECOLUMN,
                              "data: unknown column '%s' in table %s", safe,
                              t->name);
        }
        const dsc_column *c = &t->cols[idx];
        rc = check_value(c, dval, "data", err, errlen);
        if (rc)
            return rc;
        if (c->pk_index >= 0) {
            /* The row's key lives in the key; data may repeat it, but not
             * move the row (a changed key is a delete and a create). */
            char a[DS_PK_MAX], b[DS_PK_MAX];
            size_t alen = 0, blen = 0;
            json_object *kv = NULL;
            json_object_object_get_ex(ev->key, c->name, &kv);
            if (key_value(c, dval, a, sizeof a, &alen, err, errlen) != 0 ||
                key_value(c, kv, b, sizeof b, &blen, err, errlen) != 0 ||
                alen != blen || memcmp(a, b, alen) != 0) {
                dsc_catalog_safe_name(dname, safe, sizeof safe);
                return ds__seterr(err, errlen, DS_ESCHEMA,
                                  "data.%s: differs from the key", safe);
            }
        }
    }
    return 0;
}
