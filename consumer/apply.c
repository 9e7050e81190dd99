/* apply.c: one batch in one transaction: stored versions in one query, the rule per change, rows by primary key, versions, commit. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "base64.h"
#include "error.h"
#include "mysql_util.h"

/* Prepared statements kept per (table, operation, column set). */
#define STMT_CACHE_MAX 128
/* Version reads take 2^k keys at once (padded), k <= READ_LOG2_MAX, so the
 * cache holds a handful of shapes; a batch is at most 10000 changes. */
#define READ_LOG2_MAX 14
/* Version writes go in chunks of 2^k rows, k <= WRITE_LOG2_MAX. */
#define WRITE_LOG2_MAX 8

typedef struct stmt_entry {
    uint64_t hash;
    char *key;
    size_t keylen;
    MYSQL_STMT *st;
    uint64_t used;
} stmt_entry;

/* One key of the batch and its version, as stored and then as decided. */
typedef struct vkey {
    const char *tbl; /* NULL: empty slot */
    const char *pk;
    size_t pklen;
    uint64_t hash;
    bool exists, dirty, deleted, applied;
    uint64_t hlc;
    char origin[65];
} vkey;

/* One bound parameter's storage: MYSQL_BIND points into it. */
typedef struct param {
    long long i;
    unsigned long len;
    unsigned char *owned; /* decoded base64, freed after the execute */
} param;

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

struct ds_applier {
    char node[65];
    const ds_logger *lg;
    MYSQL *db;
    stmt_entry cache[STMT_CACHE_MAX];
    int ncache;
    uint64_t tick;
    MYSQL_STMT *read_st[READ_LOG2_MAX + 1];
    MYSQL_STMT *write_st[WRITE_LOG2_MAX + 1];
    vkey *slots; /* open addressing, a power of two */
    size_t nslots;
    vkey **keys; /* the batch's keys in first-seen order */
    size_t nkeys, keyscap;
    MYSQL_BIND *binds;
    param *params;
    size_t nparams, paramcap;
    sbuf sql;
    ds_apply_stats stats;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                              */

static void sb_reset(sbuf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->p)
        b->p[0] = '\0';
}

static void sb_add(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static int nomem(char *err, size_t errlen)
{
    return ds__seterr(err, errlen, DS_ENOMEM, "apply: out of memory");
}

ds_applier *ds_applier_new(const char *node, const ds_logger *lg)
{
    ds_applier *ap = calloc(1, sizeof *ap);
    if (!ap)
        return NULL;
    snprintf(ap->node, sizeof ap->node, "%s", node);
    ap->lg = lg;
    return ap;
}

static void close_statements(ds_applier *ap)
{
    for (int i = 0; i < ap->ncache; i++) {
        mysql_stmt_close(ap->cache[i].st);
        free(ap->cache[i].key);
    }
    ap->ncache = 0;
    for (int i = 0; i <= READ_LOG2_MAX; i++) {
        if (ap->read_st[i])
            mysql_stmt_close(ap->read_st[i]);
        ap->read_st[i] = NULL;
    }
    for (int i = 0; i <= WRITE_LOG2_MAX; i++) {
        if (ap->write_st[i])
            mysql_stmt_close(ap->write_st[i]);
        ap->write_st[i] = NULL;
    }
}

void ds_applier_set_db(ds_applier *ap, MYSQL *db)
{
    close_statements(ap);
    ap->db = db;
}

static void free_params(ds_applier *ap)
{
    for (size_t i = 0; i < ap->nparams; i++) {
        free(ap->params[i].owned);
        ap->params[i].owned = NULL;
    }
    ap->nparams = 0;
}

void ds_applier_free(ds_applier *ap)
{
    if (!ap)
        return;
    close_statements(ap);
    free_params(ap);
    free(ap->slots);
    free(ap->keys);
    free(ap->binds);
    free(ap->params);
    free(ap->sql.p);
    free(ap);
}

const ds_apply_stats *ds_applier_stats(const ds_applier *ap)
{
    return &ap->stats;
}

/* Room for n parameters, zeroed. */
static int params_reserve(ds_applier *ap, size_t n)
{
    free_params(ap);
    if (n > ap->paramcap) {
        size_t cap = ap->paramcap ? ap->paramcap : 64;
        while (cap < n)
            cap *= 2;
        MYSQL_BIND *b = realloc(ap->binds, cap * sizeof *b);
        if (!b)
            return DS_ENOMEM;
        ap->binds = b;
        param *p = realloc(ap->params, cap * sizeof *p);
        if (!p)
            return DS_ENOMEM;
        ap->params = p;
        ap->paramcap = cap;
    }
    memset(ap->binds, 0, n * sizeof *ap->binds);
    memset(ap->params, 0, n * sizeof *ap->params);
    ap->nparams = n;
    return 0;
}

static void bind_bytes(ds_applier *ap, size_t i, enum enum_field_types type,
                       const void *data, size_t len)
{
    ap->params[i].len = (unsigned long)len;
    ap->binds[i].buffer_type = type;
    ap->binds[i].buffer = (void *)data;
    ap->binds[i].buffer_length = (unsigned long)len;
    ap->binds[i].length = &ap->params[i].len;
}

static void bind_int(ds_applier *ap, size_t i, long long v, bool is_unsigned)
{
    ap->params[i].i = v;
    ap->binds[i].buffer_type = MYSQL_TYPE_LONGLONG;
    ap->binds[i].buffer = &ap->params[i].i;
    ap->binds[i].is_unsigned = is_unsigned;
}

/*
 * Binds one JSON value for column c, converted by the column's kind. Text
 * is the JSON's own text, so DECIMALs and big numbers keep every digit;
 * the server converts it under the strict sql_mode, which turns a value
 * that does not fit into an error for this change.
 */
static int bind_value(ds_applier *ap, size_t i, const ds_column *c,
                      json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        ap->binds[i].buffer_type = MYSQL_TYPE_NULL;
        return 0;
    case json_type_boolean:
        bind_int(ap, i, json_object_get_boolean(v) ? 1 : 0, false);
        return 0;
    case json_type_int:
    case json_type_double: {
        const char *t =
            json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        if (json_object_is_type(v, json_type_int) &&
            (c->kind == DS_COL_INTEGER || c->kind == DS_COL_BIT)) {
            /* As an integer: a BIT column would take text as bytes. */
            if (t[0] == '-')
                bind_int(ap, i, strtoll(t, NULL, 10), false);
            else
                bind_int(ap, i, (long long)strtoull(t, NULL, 10), true);
        } else {
            /* As text, e.g. into a DECIMAL or a VARCHAR. */
            bind_bytes(ap, i, MYSQL_TYPE_STRING, t, strlen(t));
        }
        return 0;
    }
    case json_type_string:
        bind_bytes(ap, i, MYSQL_TYPE_STRING, json_object_get_string(v),
                   (size_t)json_object_get_string_len(v));
        return 0;
    case json_type_object: {
        /* {"base64": "..."}: checked by ds_catalog_check. */
        json_object *s;
        if (!json_object_object_get_ex(v, "base64", &s))
            return DS_ESCHEMA;
        size_t len = (size_t)json_object_get_string_len(s), outlen = 0;
        unsigned char *buf = malloc(ds__base64_decoded_max(len) + 1);
        if (!buf)
            return DS_ENOMEM;
        ap->params[i].owned = buf;
        if (ds__base64_decode(json_object_get_string(s), len, buf, &outlen))
            return DS_ESCHEMA;
        bind_bytes(ap, i, MYSQL_TYPE_BLOB, buf, outlen);
        return 0;
    }
    default:
        return DS_ESCHEMA;
    }
}

/* The cached statement for key, or a new one prepared from ap->sql. */
static MYSQL_STMT *cached_stmt(ds_applier *ap, const char *key, size_t keylen,
                               bool *found)
{
    uint64_t h = fnv1a(UINT64_C(14695981039346656037), key, keylen);
    for (int i = 0; i < ap->ncache; i++) {
        stmt_entry *e = &ap->cache[i];
        if (e->hash == h && e->keylen == keylen &&
            memcmp(e->key, key, keylen) == 0) {
            e->used = ++ap->tick;
            *found = true;
            return e->st;
        }
    }
    *found = false;
    return NULL;
}

static int cache_put(ds_applier *ap, const char *key, size_t keylen,
                     MYSQL_STMT *st)
{
    stmt_entry *e;
    if (ap->ncache == STMT_CACHE_MAX) {
        /* Evict the least recently used: a table with many shapes of
         * changes must not hold statements without bound on the server. */
        e = &ap->cache[0];
        for (int i = 1; i < ap->ncache; i++)
            if (ap->cache[i].used < e->used)
                e = &ap->cache[i];
        mysql_stmt_close(e->st);
        free(e->key);
    } else {
        e = &ap->cache[ap->ncache++];
    }
    e->key = malloc(keylen);
    if (!e->key) {
        *e = ap->cache[--ap->ncache];
        return DS_ENOMEM;
    }
    memcpy(e->key, key, keylen);
    e->keylen = keylen;
    e->hash = fnv1a(UINT64_C(14695981039346656037), key, keylen);
    e->st = st;
    e->used = ++ap->tick;
    return 0;
}

static int prepare(ds_applier *ap, MYSQL_STMT **out, char *err, size_t errlen)
{
    if (ap->sql.oom)
        return nomem(err, errlen);
    MYSQL_STMT *st = mysql_stmt_init(ap->db);
    if (!st)
        return nomem(err, errlen);
    if (mysql_stmt_prepare(st, ap->sql.p, (unsigned long)ap->sql.len) != 0) {
        int rc = ds__mysql_stmt_error(st, "prepare", NULL, err, errlen);
        mysql_stmt_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The versions of the batch's keys                                           */

static vkey *map_find(ds_applier *ap, const char *tbl, const char *pk,
                      size_t pklen, bool insert)
{
    uint64_t h = fnv1a(UINT64_C(14695981039346656037), tbl, strlen(tbl) + 1);
    h = fnv1a(h, pk, pklen);
    size_t mask = ap->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        vkey *k = &ap->slots[i];
        if (!k->tbl) {
            if (!insert)
                return NULL;
            k->tbl = tbl;
            k->pk = pk;
            k->pklen = pklen;
            k->hash = h;
            ap->keys[ap->nkeys++] = k;
            return k;
        }
        if (k->hash == h && k->pklen == pklen && strcmp(k->tbl, tbl) == 0 &&
            memcmp(k->pk, pk, pklen) == 0)
            return k;
    }
}

static int map_reset(ds_applier *ap, size_t n)
{
    size_t want = 16;
    while (want < n * 2)
        want *= 2;
    if (want > ap->nslots) {
        vkey *s = realloc(ap->slots, want * sizeof *s);
        if (!s)
            return DS_ENOMEM;
        ap->slots = s;
        ap->nslots = want;
    }
    if (n > ap->keyscap) {
        vkey **k = realloc(ap->keys, n * sizeof *k);
        if (!k)
            return DS_ENOMEM;
        ap->keys = k;
        ap->keyscap = n;
    }
    memset(ap->slots, 0, ap->nslots * sizeof *ap->slots);
    ap->nkeys = 0;
    return 0;
}

static unsigned log2_ceil(size_t n)
{
    unsigned k = 0;
    while (((size_t)1 << k) < n)
        k++;
    return k;
}

/* Reads the stored versions of all keys in one query, padded to a power of
 * two with repeats of the last key so a few prepared shapes serve every
 * batch size. */
static int read_versions(ds_applier *ap, char *err, size_t errlen)
{
    size_t n = ap->nkeys;
    unsigned k = log2_ceil(n);
    size_t size = (size_t)1 << k;
    char tbl[65], pk[DS_PK_MAX], origin[65];
    unsigned long lens[5];
    unsigned long long hlc = 0;
    signed char applied = 0;
    MYSQL_BIND res[4];
    int rc;

    if (n == 0)
        return 0;
    if (k > READ_LOG2_MAX)
        return ds__seterr(err, errlen, DS_EINVAL, "apply: batch too large");
    if (!ap->read_st[k]) {
        sb_reset(&ap->sql);
        sb_add(&ap->sql, "SELECT tbl, pk, hlc, origin, applied FROM "
                         "datasync_versions WHERE (tbl, pk) IN (");
        for (size_t i = 0; i < size; i++)
            sb_add(&ap->sql, i ? ",(?,?)" : "(?,?)");
        sb_add(&ap->sql, ")");
        rc = prepare(ap, &ap->read_st[k], err, errlen);
        if (rc)
            return rc;
    }
    MYSQL_STMT *st = ap->read_st[k];
    if (params_reserve(ap, size * 2))
        return nomem(err, errlen);
    for (size_t i = 0; i < size; i++) {
        const vkey *v = ap->keys[i < n ? i : n - 1];
        bind_bytes(ap, 2 * i, MYSQL_TYPE_STRING, v->tbl, strlen(v->tbl));
        bind_bytes(ap, 2 * i + 1, MYSQL_TYPE_BLOB, v->pk, v->pklen);
    }
    if (mysql_stmt_bind_param(st, ap->binds) != 0 ||
        mysql_stmt_execute(st) != 0)
        return ds__mysql_stmt_error(st, "read versions", NULL, err, errlen);

    memset(res, 0, sizeof res);
    res[0].buffer_type = MYSQL_TYPE_STRING;
    res[0].buffer = tbl;
    res[0].buffer_length = sizeof tbl;
    res[0].length = &lens[0];
    res[1].buffer_type = MYSQL_TYPE_BLOB;
    res[1].buffer = pk;
    res[1].buffer_length = sizeof pk;
    res[1].length = &lens[1];
    res[2].buffer_type = MYSQL_TYPE_LONGLONG;
    res[2].buffer = &hlc;
    res[2].is_unsigned = true;
    res[3].buffer_type = MYSQL_TYPE_STRING;
    res[3].buffer = origin;
    res[3].buffer_length = sizeof origin;
    res[3].length = &lens[3];
    MYSQL_BIND res5[5];
    memcpy(res5, res, sizeof res);
    memset(&res5[4], 0, sizeof res5[4]);
    res5[4].buffer_type = MYSQL_TYPE_TINY;
    res5[4].buffer = &applied;
    if (mysql_stmt_bind_result(st, res5) != 0) {
        rc = ds__mysql_stmt_error(st, "read versions", NULL, err, errlen);
        goto done;
    }
    rc = 0;
    for (;;) {
        int f = mysql_stmt_fetch(st);
        if (f == MYSQL_NO_DATA)
            break;
        if (f == 1) {
            rc = ds__mysql_stmt_error(st, "read versions", NULL, err, errlen);
            break;
        }
        if (f == MYSQL_DATA_TRUNCATED || lens[0] >= sizeof tbl ||
            lens[3] >= sizeof origin)
            continue; /* not a key of ours: ours all fit */
        tbl[lens[0]] = '\0';
        origin[lens[3]] = '\0';
        vkey *v = map_find(ap, tbl, pk, lens[1], false);
        if (!v)
            continue;
        v->exists = true;
        v->hlc = hlc;
        memcpy(v->origin, origin, lens[3] + 1);
        v->applied = applied != 0;
    }
done:
    mysql_stmt_free_result(st);
    return rc;
}

/* Writes the decided versions, several rows per statement. */
static int write_versions(ds_applier *ap, char *err, size_t errlen)
{
    size_t n = 0, done = 0;
    int rc;

    /* Dirty keys first, in place: keys[] is rebuilt every attempt. */
    for (size_t i = 0; i < ap->nkeys; i++)
        if (ap->keys[i]->dirty)
            ap->keys[n++] = ap->keys[i];
    while (done < n) {
        unsigned k = WRITE_LOG2_MAX;
        while (((size_t)1 << k) > n - done)
            k--;
        size_t rows = (size_t)1 << k;
        if (!ap->write_st[k]) {
            sb_reset(&ap->sql);
            sb_add(&ap->sql, "INSERT INTO datasync_versions (tbl, pk, hlc, "
                             "origin, deleted, applied) VALUES ");
            for (size_t i = 0; i < rows; i++)
                sb_add(&ap->sql, i ? ",(?,?,?,?,?,?)" : "(?,?,?,?,?,?)");
            sb_add(&ap->sql,
                   " ON DUPLICATE KEY UPDATE hlc = VALUES(hlc), origin = "
                   "VALUES(origin), deleted = VALUES(deleted), applied = "
                   "VALUES(applied), updated_at = CURRENT_TIMESTAMP(3)");
            rc = prepare(ap, &ap->write_st[k], err, errlen);
            if (rc)
                return rc;
        }
        MYSQL_STMT *st = ap->write_st[k];
        if (params_reserve(ap, rows * 6))
            return nomem(err, errlen);
        for (size_t i = 0; i < rows; i++) {
            vkey *v = ap->keys[done + i];
            size_t p = i * 6;
            bind_bytes(ap, p, MYSQL_TYPE_STRING, v->tbl, strlen(v->tbl));
            bind_bytes(ap, p + 1, MYSQL_TYPE_BLOB, v->pk, v->pklen);
            bind_int(ap, p + 2, (long long)v->hlc, true);
            bind_bytes(ap, p + 3, MYSQL_TYPE_STRING, v->origin,
                       strlen(v->origin));
            bind_int(ap, p + 4, v->deleted, false);
            bind_int(ap, p + 5, v->applied, false);
        }
        if (mysql_stmt_bind_param(st, ap->binds) != 0 ||
            mysql_stmt_execute(st) != 0)
            return ds__mysql_stmt_error(st, "write versions", NULL, err,
                                        errlen);
        done += rows;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The rows                                                                   */

static void add_pk_where(ds_applier *ap, const ds_table *t)
{
    sb_add(&ap->sql, " WHERE ");
    for (int i = 0; i < t->npk; i++) {
        if (i)
            sb_add(&ap->sql, " AND ");
        sb_add(&ap->sql, t->cols[t->pk[i]].quoted);
        sb_add(&ap->sql, " = ?");
    }
}

/* Binds the key's values in primary-key order from position first. */
static int bind_key(ds_applier *ap, const ds_change *c, size_t first)
{
    const ds_table *t = c->table;
    for (int i = 0; i < t->npk; i++) {
        const ds_column *col = &t->cols[t->pk[i]];
        json_object *v = NULL;
        json_object_object_get_ex(c->ev.key, col->name, &v);
        int rc = bind_value(ap, first + (size_t)i, col, v);
        if (rc)
            return rc;
    }
    return 0;
}

/* Runs st with ap's binds; *rows gets the matched rows. */
static int run(ds_applier *ap, MYSQL_STMT *st, my_ulonglong *rows,
               unsigned int *errnum, char *err, size_t errlen)
{
    *errnum = 0;
    if (mysql_stmt_bind_param(st, ap->binds) != 0 ||
        mysql_stmt_execute(st) != 0)
        return ds__mysql_stmt_error(st, "mysql", errnum, err, errlen);
    *rows = mysql_stmt_affected_rows(st);
    free_params(ap);
    return 0;
}

static int delete_row(ds_applier *ap, const ds_change *c,
                      unsigned int *errnum, char *err, size_t errlen)
{
    const ds_table *t = c->table;
    char key[80];
    size_t keylen = (size_t)snprintf(key, sizeof key, "D%s", t->name);
    bool found;
    my_ulonglong rows;
    int rc;

    MYSQL_STMT *st = cached_stmt(ap, key, keylen, &found);
    if (!found) {
        sb_reset(&ap->sql);
        sb_add(&ap->sql, "DELETE FROM ");
        sb_add(&ap->sql, t->quoted);
        add_pk_where(ap, t);
        rc = prepare(ap, &st, err, errlen);
        if (rc == 0 && (rc = cache_put(ap, key, keylen, st)) != 0) {
            mysql_stmt_close(st);
            rc = nomem(err, errlen);
        }
        if (rc)
            return rc;
    }
    if (params_reserve(ap, (size_t)t->npk))
        return nomem(err, errlen);
    rc = bind_key(ap, c, 0);
    if (rc)
        return ds__seterr(err, errlen, rc, "key: cannot bind");
    return run(ap, st, &rows, errnum, err, errlen);
}

/*
 * Writes a create or update: UPDATE by primary key, and INSERT when no row
 * matched (CLIENT_FOUND_ROWS: matched, not changed). Never INSERT ... ON
 * DUPLICATE KEY UPDATE: that also matches other unique keys, and would
 * overwrite another row that happens to share one; here such a clash is a
 * duplicate-key error for this change.
 */
static int upsert_row(ds_applier *ap, const ds_change *c,
                      unsigned int *errnum, char *err, size_t errlen)
{
    const ds_table *t = c->table;
    size_t keycap = 80 + (size_t)t->ncols;
    char *key = malloc(keycap);
    int *set = malloc(((size_t)t->ncols + 1) * sizeof *set);
    json_object **vals = malloc(((size_t)t->ncols + 1) * sizeof *vals);
    size_t nset = 0, keylen;
    bool found;
    my_ulonglong rows = 0;
    MYSQL_STMT *st;
    int rc;

    if (!key || !set || !vals) {
        rc = nomem(err, errlen);
        goto out;
    }
    /* The written columns, in table order, so one shape of change always
     * maps to one statement. */
    keylen = (size_t)snprintf(key, keycap, "U%s", t->name) + 1;
    for (int i = 0; i < t->ncols; i++) {
        const ds_column *col = &t->cols[i];
        json_object *v;
        bool on = col->pk_index < 0 && !col->generated &&
                  json_object_object_get_ex(c->ev.data, col->name, &v);
        key[keylen++] = on ? '1' : '0';
        if (on) {
            set[nset] = i;
            vals[nset++] = v;
        }
    }

    st = cached_stmt(ap, key, keylen, &found);
    if (!found) {
        sb_reset(&ap->sql);
        sb_add(&ap->sql, "UPDATE ");
        sb_add(&ap->sql, t->quoted);
        sb_add(&ap->sql, " SET ");
        for (size_t i = 0; i < nset; i++) {
            sb_add(&ap->sql, i ? ", " : "");
            sb_add(&ap->sql, t->cols[set[i]].quoted);
            sb_add(&ap->sql, " = ?");
        }
        if (nset == 0) {
            /* Only key columns: a no-op that still reports a match. */
            sb_add(&ap->sql, t->cols[t->pk[0]].quoted);
            sb_add(&ap->sql, " = ");
            sb_add(&ap->sql, t->cols[t->pk[0]].quoted);
        }
        add_pk_where(ap, t);
        rc = prepare(ap, &st, err, errlen);
        if (rc == 0 && (rc = cache_put(ap, key, keylen, st)) != 0) {
            mysql_stmt_close(st);
            rc = nomem(err, errlen);
        }
        if (rc)
            goto out;
    }
    if (params_reserve(ap, nset + (size_t)t->npk)) {
        rc = nomem(err, errlen);
        goto out;
    }
    for (size_t i = 0; i < nset; i++) {
        rc = bind_value(ap, i, &t->cols[set[i]], vals[i]);
        if (rc)
            goto bad_value;
    }
    rc = bind_key(ap, c, nset);
    if (rc)
        goto bad_value;
    rc = run(ap, st, &rows, errnum, err, errlen);
    if (rc || rows > 0)
        goto out;

    /* No row has this key: insert it, key columns from the key. */
    key[0] = 'I';
    st = cached_stmt(ap, key, keylen, &found);
    if (!found) {
        sb_reset(&ap->sql);
        sb_add(&ap->sql, "INSERT INTO ");
        sb_add(&ap->sql, t->quoted);
        sb_add(&ap->sql, " (");
        for (int i = 0; i < t->npk; i++) {
            sb_add(&ap->sql, i ? ", " : "");
            sb_add(&ap->sql, t->cols[t->pk[i]].quoted);
        }
        for (size_t i = 0; i < nset; i++) {
            sb_add(&ap->sql, ", ");
            sb_add(&ap->sql, t->cols[set[i]].quoted);
        }
        sb_add(&ap->sql, ") VALUES (");
        for (size_t i = 0; i < (size_t)t->npk + nset; i++)
            sb_add(&ap->sql, i ? ", ?" : "?");
        sb_add(&ap->sql, ")");
        rc = prepare(ap, &st, err, errlen);
        if (rc == 0 && (rc = cache_put(ap, key, keylen, st)) != 0) {
            mysql_stmt_close(st);
            rc = nomem(err, errlen);
        }
        if (rc)
            goto out;
    }
    if (params_reserve(ap, nset + (size_t)t->npk)) {
        rc = nomem(err, errlen);
        goto out;
    }
    rc = bind_key(ap, c, 0);
    if (rc)
        goto bad_value;
    for (size_t i = 0; i < nset; i++) {
        rc = bind_value(ap, (size_t)t->npk + i, &t->cols[set[i]], vals[i]);
        if (rc)
            goto bad_value;
    }
    rc = run(ap, st, &rows, errnum, err, errlen);
    goto out;
bad_value:
    if (rc == DS_ENOMEM)
        rc = nomem(err, errlen);
    else
        rc = ds__seterr(err, errlen, DS_ESCHEMA, "a value cannot be bound");
out:
    free_params(ap);
    free(key);
    free(set);
    free(vals);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The batch                                                                  */

static void rollback(ds_applier *ap)
{
    /* Its failure needs no handling: a dead connection rolls back too, and
     * the caller reconnects on the error that brought us here. */
    if (ap->db)
        mysql_rollback(ap->db);
}

static void poison(ds_change *c, const char *reason)
{
    c->state = DS_CHANGE_POISON;
    snprintf(c->reason, sizeof c->reason, "%s", reason);
}

/* Decides one change against the batch's map and writes its row. Returns
 * 0, 1 (redo, c marked) or < 0 (error for the whole batch). */
static int apply_one(ds_applier *ap, ds_change *c, ds_apply_retry *retry,
                     char *err, size_t errlen)
{
    vkey *v = map_find(ap, c->ev.table, c->pk, c->pklen, false);
    ds_row_version in = {c->ev.hlc, c->ev.origin};
    ds_row_version stored = {v->hlc, v->origin};
    bool own = strcmp(c->ev.origin, ap->node) == 0;
    bool app_write =
        v->exists && !v->applied && strcmp(v->origin, ap->node) == 0;
    unsigned int errnum = 0;
    int rc = 0;

    c->decision = ds_decide(v->exists ? &stored : NULL, &in, own, app_write);
    if (c->decision == DS_DECIDE_APPLY) {
        if (c->ev.op == DS_OP_DELETE)
            rc = delete_row(ap, c, &errnum, err, errlen);
        else
            rc = upsert_row(ap, c, &errnum, err, errlen);
    }
    if (rc == DS_ESCHEMA) {
        /* A value apply cannot bind: nothing ran for it; drop it. */
        rollback(ap);
        poison(c, err);
        return 1;
    }
    if (rc < 0 && errnum == 0)
        return rc; /* out of memory, or preparing failed: not this change's */
    if (rc < 0) {
        switch (ds__mysql_classify(errnum)) {
        case DS_MYSQL_TRANSIENT:
            return rc;
        case DS_MYSQL_PERMANENT:
            rollback(ap);
            poison(c, err);
            return 1;
        case DS_MYSQL_FOREIGN_KEY:
            rollback(ap);
            if (++c->fk_failures >= DS_APPLY_FK_TRIES) {
                poison(c, err);
            } else {
                c->deferred = true;
                retry->wait_ms = 100 << c->fk_failures;
            }
            return 1;
        case DS_MYSQL_SCHEMA:
            rollback(ap);
            if (++c->schema_failures >= 2)
                poison(c, err);
            else
                retry->reload_catalog = true;
            return 1;
        }
    }
    if (c->decision != DS_DECIDE_SUPERSEDED) {
        v->exists = true;
        v->dirty = true;
        v->hlc = c->ev.hlc;
        snprintf(v->origin, sizeof v->origin, "%s", c->ev.origin);
        v->deleted = c->ev.op == DS_OP_DELETE;
        v->applied = c->decision == DS_DECIDE_APPLY;
    }
    return 0;
}

int ds_applier_batch(ds_applier *ap, ds_change *changes, size_t n,
                     ds_apply_retry *retry, char *err, size_t errlen)
{
    size_t pending = 0;
    int rc;

    retry->reload_catalog = false;
    retry->wait_ms = 0;
    if (!ap->db)
        return ds__seterr(err, errlen, DS_EDBCONNECT,
                          "apply: not connected to the database");
    for (size_t i = 0; i < n; i++)
        if (changes[i].state == DS_CHANGE_PENDING)
            pending++;
    if (map_reset(ap, pending ? pending : 1))
        return nomem(err, errlen);
    for (size_t i = 0; i < n; i++)
        if (changes[i].state == DS_CHANGE_PENDING)
            map_find(ap, changes[i].ev.table, changes[i].pk,
                     changes[i].pklen, true);

    rc = read_versions(ap, err, errlen);
    if (rc)
        goto fail;
    /* In order, deferred changes (a foreign key failed) last: versions make
     * the order within a batch irrelevant to the outcome. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            ds_change *c = &changes[i];
            if (c->state != DS_CHANGE_PENDING || c->deferred != (pass == 1))
                continue;
            rc = apply_one(ap, c, retry, err, errlen);
            if (rc > 0) {
                ap->stats.redos++;
                return rc;
            }
            if (rc < 0)
                goto fail;
        }
    }
    rc = write_versions(ap, err, errlen);
    if (rc)
        goto fail;
    if (mysql_commit(ap->db) != 0) {
        rc = ds__mysql_error(ap->db, "commit", NULL, err, errlen);
        goto fail;
    }

    ap->stats.batches++;
    for (size_t i = 0; i < n; i++) {
        ds_change *c = &changes[i];
        if (c->state != DS_CHANGE_PENDING)
            continue;
        c->state = DS_CHANGE_DONE;
        switch (c->decision) {
        case DS_DECIDE_APPLY:
            ap->stats.applied++;
            break;
        case DS_DECIDE_RECORD_ONLY:
            ap->stats.recorded++;
            break;
        case DS_DECIDE_SUPERSEDED:
            ap->stats.superseded++;
            break;
        }
    }
    return 0;
fail:
    free_params(ap);
    rollback(ap);
    return rc;
}

long ds_applier_prune(ds_applier *ap, int hours, int limit, char *err,
                      size_t errlen)
{
    char sql[256];
    long n;

    if (!ap->db)
        return ds__seterr(err, errlen, DS_EDBCONNECT,
                          "prune: not connected to the database");
    /* Numbers only: formatted, never taken from a message. */
    snprintf(sql, sizeof sql,
             "DELETE FROM datasync_versions WHERE deleted = 1 AND updated_at "
             "< CURRENT_TIMESTAMP(3) - INTERVAL %d HOUR LIMIT %d",
             hours, limit);
    if (mysql_real_query(ap->db, sql, (unsigned long)strlen(sql)) != 0) {
        int rc = ds__mysql_error(ap->db, "prune tombstones", NULL, err, errlen);
        rollback(ap);
        return rc;
    }
    n = (long)mysql_affected_rows(ap->db);
    if (mysql_commit(ap->db) != 0) {
        int rc = ds__mysql_error(ap->db, "prune commit", NULL, err, errlen);
        rollback(ap);
        return rc;
    }
    return n;
}
