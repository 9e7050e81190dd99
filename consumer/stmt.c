/* stmt.c: a small LRU cache of prepared statements and the storage of their bound parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "datasync.h"
#include "error.h"
#include "hash.h"
#include "mysql_util.h"
#include "stmt.h"

int dsc_nomem(char *err, size_t errlen)
{
    return ds__seterr(err, errlen, DS_ENOMEM, "apply: out of memory");
}

void dsc_stmts_init(dsc_stmts *s)
{
    memset(s, 0, sizeof *s);
}

void dsc_stmts_reset(dsc_stmts *s, MYSQL *db)
{
    for (int i = 0; i < s->ncache; i++) {
        mysql_stmt_close(s->cache[i].st);
        free(s->cache[i].key);
    }
    s->ncache = 0;
    s->db = db;
}

void dsc_stmts_free(dsc_stmts *s)
{
    dsc_stmts_reset(s, NULL);
    dsc_params_clear(s);
    free(s->binds);
    free(s->params);
    free(s->sql);
    memset(s, 0, sizeof *s);
}

void dsc_sql_reset(dsc_stmts *s)
{
    s->sqllen = 0;
    s->sqloom = false;
    if (s->sql)
        s->sql[0] = '\0';
}

void dsc_sql_add(dsc_stmts *s, const char *text)
{
    size_t n = strlen(text);
    if (s->sqloom)
        return;
    if (s->sqllen + n + 1 > s->sqlcap) {
        size_t cap = s->sqlcap ? s->sqlcap : 256;
        while (cap < s->sqllen + n + 1)
            cap *= 2;
        char *p = realloc(s->sql, cap);
        if (!p) {
            s->sqloom = true;
            return;
        }
        s->sql = p;
        s->sqlcap = cap;
    }
    memcpy(s->sql + s->sqllen, text, n + 1);
    s->sqllen += n;
}

MYSQL_STMT *dsc_stmts_get(dsc_stmts *s, const char *key, size_t keylen)
{
    uint64_t h = ds__fnv1a(DS_FNV1A_INIT, key, keylen);
    for (int i = 0; i < s->ncache; i++) {
        dsc_stmt_entry *e = &s->cache[i];
        if (e->hash == h && e->keylen == keylen &&
            memcmp(e->key, key, keylen) == 0) {
            e->used = ++s->tick;
            return e->st;
        }
    }
    return NULL;
}

int dsc_stmts_prepare(dsc_stmts *s, const char *key, size_t keylen,
                      MYSQL_STMT **out, char *err, size_t errlen)
{
    char *k = NULL;
    MYSQL_STMT *st = NULL;
    dsc_stmt_entry *e;

    if (!s->db)
        return ds__seterr(err, errlen, DS_EDBCONNECT,
                          "not connected to the database");
    k = malloc(keylen);
    if (s->sqloom || !k || !(st = mysql_stmt_init(s->db))) {
        free(k);
        return dsc_nomem(err, errlen);
    }
    if (mysql_stmt_prepare(st, s->sql, (unsigned long)s->sqllen) != 0) {
        int rc = ds__mysql_stmt_error(st, "prepare", &s->prepare_errnum, err,
                                      errlen);
        mysql_stmt_close(st);
        free(k);
        return rc;
    }
    if (s->ncache == DS_STMT_CACHE_MAX) {
        /* Many shapes of change must not hold statements without bound on
         * the server: close the least recently used. */
        e = &s->cache[0];
        for (int i = 1; i < s->ncache; i++)
            if (s->cache[i].used < e->used)
                e = &s->cache[i];
        mysql_stmt_close(e->st);
        free(e->key);
    } else {
        e = &s->cache[s->ncache++];
    }
    memcpy(k, key, keylen);
    e->key = k;
    e->keylen = keylen;
    e->hash = ds__fnv1a(DS_FNV1A_INIT, key, keylen);
    e->st = st;
    e->used = ++s->tick;
    *out = st;
    return 0;
}

void dsc_params_clear(dsc_stmts *s)
{
    for (size_t i = 0; i < s->nparams; i++) {
        free(s->params[i].owned);
        s->params[i].owned = NULL;
    }
    s->nparams = 0;
}

int dsc_params_reserve(dsc_stmts *s, size_t n)
{
    dsc_params_clear(s);
    if (n > s->paramcap) {
        size_t cap = s->paramcap ? s->paramcap : 64;
        while (cap < n)
            cap *= 2;
        MYSQL_BIND *b = realloc(s->binds, cap * sizeof *b);
        if (!b)
            return DS_ENOMEM;
        s->binds = b;
        dsc_param *p = realloc(s->params, cap * sizeof *p);
        if (!p)
            return DS_ENOMEM;
        s->params = p;
        s->paramcap = cap;
    }
    memset(s->binds, 0, n * sizeof *s->binds);
    memset(s->params, 0, n * sizeof *s->params);
    s->nparams = n;
    return 0;
}

void dsc_bind_bytes(dsc_stmts *s, size_t i, enum enum_field_types type,
                    const void *data, size_t len)
{
    s->params[i].len = (unsigned long)len;
    s->binds[i].buffer_type = type;
    s->binds[i].buffer = (void *)data;
    s->binds[i].buffer_length = (unsigned long)len;
    s->binds[i].length = &s->params[i].len;
}

void dsc_bind_null(dsc_stmts *s, size_t i)
{
    s->binds[i].buffer_type = MYSQL_TYPE_NULL;
}

void dsc_bind_int(dsc_stmts *s, size_t i, long long v, bool is_unsigned)
{
    s->params[i].i = v;
    s->binds[i].buffer_type = MYSQL_TYPE_LONGLONG;
    s->binds[i].buffer = &s->params[i].i;
    s->binds[i].is_unsigned = is_unsigned;
}

/*
 * Text is the JSON's own text, so DECIMALs and long numbers keep every
 * digit; the server converts it under the strict sql_mode, which turns a
 * value that does not fit into an error for this change alone.
 */
int dsc_bind_json(dsc_stmts *s, size_t i, const dsc_column *c, json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        dsc_bind_null(s, i);
        return 0;
    case json_type_boolean:
        dsc_bind_int(s, i, json_object_get_boolean(v) ? 1 : 0, false);
        return 0;
    case json_type_int:
    case json_type_double: {
        const char *t =
            json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        if (json_object_is_type(v, json_type_int) &&
            (c->kind == DS_COL_INTEGER || c->kind == DS_COL_BIT)) {
            /* As an integer: a BIT column would take text as bytes. */
            if (t[0] == '-')
                dsc_bind_int(s, i, strtoll(t, NULL, 10), false);
            else
                dsc_bind_int(s, i, (long long)strtoull(t, NULL, 10), true);
        } else {
            dsc_bind_bytes(s, i, MYSQL_TYPE_STRING, t, strlen(t));
        }
        return 0;
    }
    case json_type_string:
        dsc_bind_bytes(s, i, MYSQL_TYPE_STRING, json_object_get_string(v),
                       (size_t)json_object_get_string_len(v));
        return 0;
    case json_type_object: {
        /* {"base64": "..."}, checked by dsc_catalog_check. */
        json_object *b64;
        if (!json_object_object_get_ex(v, "base64", &b64))
            return DS_ESCHEMA;
        size_t len = (size_t)json_object_get_string_len(b64), outlen = 0;
        unsigned char *buf = malloc(ds__base64_decoded_max(len) + 1);
        if (!buf)
            return DS_ENOMEM;
        s->params[i].owned = buf;
        if (ds__base64_decode(json_object_get_string(b64), len, buf, &outlen))
            return DS_ESCHEMA;
        dsc_bind_bytes(s, i, MYSQL_TYPE_BLOB, buf, outlen);
        return 0;
    }
    default:
        return DS_ESCHEMA;
    }
}

int dsc_stmts_run(dsc_stmts *s, MYSQL_STMT *st, uint64_t *rows,
                  unsigned int *errnum, char *err, size_t errlen)
{
    int rc = 0;
    *errnum = 0;
    if (mysql_stmt_bind_param(st, s->binds) != 0 || mysql_stmt_execute(st) != 0)
        rc = ds__mysql_stmt_error(st, "mysql", errnum, err, errlen);
    else if (rows)
        *rows = (uint64_t)mysql_stmt_affected_rows(st);
    dsc_params_clear(s);
    return rc;
}
