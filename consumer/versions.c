/* versions.c: the SQL of datasync_versions: the stored versions of a batch's keys in one query, the decided ones written back, tombstones pruned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "mysql_util.h"
#include "versions.h"

/* Version reads take 2^k keys at once (padded), k <= READ_LOG2_MAX, so a
 * handful of statement shapes serve every batch (at most 10000 changes). */
#define READ_LOG2_MAX 14
/* Version writes go in chunks of 2^k rows, k <= WRITE_LOG2_MAX. */
#define WRITE_LOG2_MAX 8

/* The statements, for 2^k keys: head, the tuple 2^k times, tail. Keys
 * past the batch's are NULL: they match nothing.
 *
 * A read locks what it reads: a plain one would read the snapshot, and miss
 * a newer version another writer of this database (a consumer that lost
 * its queue to a standby and still commits) holds uncommitted; FOR UPDATE
 * waits for it and reads what it committed, so an older change is
 * superseded rather than written over the newer row. The keys go in
 * primary-key order, the order a range read locks them in, so two such
 * writers wait for each other rather than deadlock.
 *
 * On MariaDB the keys are a table of values joined to the stored versions:
 * one primary-key lookup each. MariaDB plans a statement at every
 * execution, prepared or not, and for `(tbl, pk) IN (...)` it first builds
 * a range per key, which costs more than the lookups (ANALYZE, 256 keys:
 * planning 1.2 ms and reading 1.0 ms, against 0.2 and 1.0 ms joined). The
 * empty SELECT first gives the table its columns' types: a prepared
 * statement's table of values alone takes them from parameters not yet
 * bound (MDEV-35747), and every key reads as '', never stored;
 * dsc_versions_check_join makes sure, once per connection
 * (dsc_applier_set_db). MySQL spells a
 * table of values differently (VALUES ROW(...)), so there the list stays. */
typedef struct {
    const char *head, *tuple, *tail;
} read_form;

#define JOINED_KEYS                                                            \
    "WITH k (tbl, pk) AS (SELECT tbl, pk FROM datasync_versions WHERE 0 "      \
    "UNION ALL VALUES "

static const read_form READ_JOINED = {
    JOINED_KEYS,
    "(?,?)",
    ") SELECT v.tbl, v.pk, v.hlc, v.origin, v.applied FROM k STRAIGHT_JOIN "
    "datasync_versions v ON v.tbl = k.tbl AND v.pk = k.pk FOR UPDATE",
};
static const read_form READ_LISTED = {
    "SELECT tbl, pk, hlc, origin, applied FROM datasync_versions WHERE "
    "(tbl, pk) IN (",
    "(?,?)",
    ") FOR UPDATE",
};

static const char WRITE_HEAD[] = "INSERT INTO datasync_versions (tbl, pk, hlc, "
                                 "origin, deleted, applied) VALUES ";
static const char WRITE_TUPLE[] = "(?,?,?,?,?,?)";
static const char WRITE_TAIL[] =
    " ON DUPLICATE KEY UPDATE hlc = VALUES(hlc), origin = VALUES(origin), "
    "deleted = VALUES(deleted), applied = VALUES(applied), updated_at = "
    "CURRENT_TIMESTAMP(3)";

/* ------------------------------------------------------------------------ */
/* The batch's keys                                                           */

void dsc_versions_free(dsc_versions *vs)
{
    free(vs->slots);
    free(vs->keys);
    free(vs->sorted);
    memset(vs, 0, sizeof *vs);
}

int dsc_versions_reset(dsc_versions *vs, size_t n)
{
    size_t want = 16;
    while (want < n * 2)
        want *= 2;
    if (want > vs->nslots) {
        dsc_version *s = realloc(vs->slots, want * sizeof *s);
        if (!s)
            return DS_ENOMEM;
        vs->slots = s;
        vs->nslots = want;
    }
    if (n > vs->keyscap) {
        dsc_version **k = realloc(vs->keys, n * sizeof *k);
        if (!k)
            return DS_ENOMEM;
        vs->keys = k;
        k = realloc(vs->sorted, n * sizeof *k);
        if (!k)
            return DS_ENOMEM;
        vs->sorted = k;
        vs->keyscap = n;
    }
    memset(vs->slots, 0, vs->nslots * sizeof *vs->slots);
    vs->nkeys = 0;
    return 0;
}

static uint64_t key_hash(const char *tbl, const char *pk, size_t pklen)
{
    /* A byte no table name holds between the two, so ("ab", "c") and
     * ("a", "bc") differ. */
    uint64_t h = ds__fnv1a(DS_FNV1A_INIT, tbl, strlen(tbl));
    h = ds__fnv1a(h, "\xff", 1);
    return ds__fnv1a(h, pk, pklen);
}

dsc_version *dsc_versions_find(dsc_versions *vs, const char *tbl,
                               const char *pk, size_t pklen, bool insert)
{
    uint64_t h = key_hash(tbl, pk, pklen);
    size_t mask = vs->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        dsc_version *k = &vs->slots[i];
        if (!k->tbl) {
            if (!insert)
                return NULL;
            k->tbl = tbl;
            k->pk = pk;
            k->pklen = pklen;
            k->hash = h;
            vs->keys[vs->nkeys++] = k;
            return k;
        }
        if (k->hash == h && k->pklen == pklen && strcmp(k->tbl, tbl) == 0 &&
            memcmp(k->pk, pk, pklen) == 0)
            return k;
    }
}

/* The statement head, tuple 2^k times, tail: prepared once, cached under
 * name and k. */
static int versions_stmt(dsc_stmts *s, char name, unsigned k, const char *head,
                         const char *tuple, const char *tail, MYSQL_STMT **out,
                         char *err, size_t errlen)
{
    char skey[16];
    size_t skeylen = (size_t)snprintf(skey, sizeof skey, "%c%u", name, k);

    *out = dsc_stmts_get(s, skey, skeylen);
    if (*out)
        return 0;
    dsc_sql_reset(s);
    dsc_sql_add(s, head);
    for (size_t i = 0; i < (size_t)1 << k; i++) {
        if (i)
            dsc_sql_add(s, ",");
        dsc_sql_add(s, tuple);
    }
    dsc_sql_add(s, tail);
    return dsc_stmts_prepare(s, skey, skeylen, out, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                    */

static unsigned log2_ceil(size_t n)
{
    unsigned k = 0;
    while (((size_t)1 << k) < n)
        k++;
    return k;
}

/* The first two result columns, (tbl, pk), into tbl and pk, their lengths
 * into lens[0] and lens[1]. */
static void bind_key_result(MYSQL_BIND *res, char *tbl, size_t tblcap, char *pk,
                            size_t pkcap, unsigned long *lens)
{
    res[0].buffer_type = MYSQL_TYPE_STRING;
    res[0].buffer = tbl;
    res[0].buffer_length = (unsigned long)tblcap;
    res[0].length = &lens[0];
    res[1].buffer_type = MYSQL_TYPE_BLOB;
    res[1].buffer = pk;
    res[1].buffer_length = (unsigned long)pkcap;
    res[1].length = &lens[1];
}

bool dsc_versions_check_join(MYSQL *db, char *why, size_t whylen)
{
    static const char sql[] = JOINED_KEYS "(?,?),(?,?)) SELECT tbl, pk FROM k";
    static const char tbl[] = "datasync_check", pk[] = "[\"x\",2]";
    char got_tbl[65], got_pk[32];
    unsigned long lens[2], tbllen = sizeof tbl - 1, pklen = sizeof pk - 1;
    MYSQL_BIND par[4], res[2];
    MYSQL_STMT *st;
    bool ok = false;
    int f;

    why[0] = '\0';
    if (!ds__mysql_has_value_tables(mysql_get_server_info(db),
                                    mysql_get_server_version(db)))
        return false;
    memset(par, 0, sizeof par);
    par[0].buffer_type = MYSQL_TYPE_STRING;
    par[0].buffer = (void *)tbl;
    par[0].length = &tbllen;
    par[1].buffer_type = MYSQL_TYPE_BLOB;
    par[1].buffer = (void *)pk;
    par[1].length = &pklen;
    par[2].buffer_type = MYSQL_TYPE_NULL;
    par[3].buffer_type = MYSQL_TYPE_NULL;
    memset(res, 0, sizeof res);
    bind_key_result(res, got_tbl, sizeof got_tbl, got_pk, sizeof got_pk, lens);
    st = mysql_stmt_init(db);
    if (!st) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    /* The bound key comes back first, byte for byte, then the NULL one. */
    if (mysql_stmt_prepare(st, sql, sizeof sql - 1) != 0 ||
        mysql_stmt_bind_param(st, par) != 0 || mysql_stmt_execute(st) != 0 ||
        mysql_stmt_bind_result(st, res) != 0) {
        snprintf(why, whylen, "[%u] %s", mysql_stmt_errno(st),
                 mysql_stmt_error(st));
    } else if ((f = mysql_stmt_fetch(st)) == 1) {
        /* The connection failed, not the check (reconnects check again). */
        snprintf(why, whylen, "[%u] %s", mysql_errno(db), mysql_error(db));
    } else if (f != 0 || lens[0] != tbllen || lens[1] != pklen ||
               memcmp(got_tbl, tbl, tbllen) != 0 ||
               memcmp(got_pk, pk, pklen) != 0) {
        snprintf(why, whylen, "a table of values did not read back as bound");
    } else {
        ok = true;
    }
    mysql_stmt_close(st);
    mysql_rollback(db);
    return ok;
}

/* Primary-key order: tbl, then pk, byte for byte, a shorter pk first when
 * it is the other's prefix (VARBINARY's order; ascii_bin's for tbl, whose
 * names end in no space). */
static int key_order(const void *a, const void *b)
{
    const dsc_version *x = *(const dsc_version *const *)a;
    const dsc_version *y = *(const dsc_version *const *)b;
    int c = strcmp(x->tbl, y->tbl);
    if (c)
        return c;
    c = memcmp(x->pk, y->pk, x->pklen < y->pklen ? x->pklen : y->pklen);
    if (c)
        return c;
    return (x->pklen > y->pklen) - (x->pklen < y->pklen);
}

/* Takes the rows the executed read returned into the keys' versions. */
static int fetch_versions(dsc_versions *vs, MYSQL_STMT *st, char *err,
                          size_t errlen)
{
    char tbl[65], pk[DS_PK_MAX], origin[65];
    unsigned long lens[5];
    unsigned long long hlc = 0;
    signed char applied = 0;
    MYSQL_BIND res[5];
    int rc = 0;

    memset(res, 0, sizeof res);
    bind_key_result(res, tbl, sizeof tbl, pk, sizeof pk, lens);
    res[2].buffer_type = MYSQL_TYPE_LONGLONG;
    res[2].buffer = &hlc;
    res[2].is_unsigned = true;
    res[3].buffer_type = MYSQL_TYPE_STRING;
    res[3].buffer = origin;
    res[3].buffer_length = sizeof origin;
    res[3].length = &lens[3];
    res[4].buffer_type = MYSQL_TYPE_TINY;
    res[4].buffer = &applied;
    if (mysql_stmt_bind_result(st, res) != 0) {
        rc = ds__mysql_stmt_error(st, "read versions", NULL, err, errlen);
        goto done;
    }
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
        dsc_version *v = dsc_versions_find(vs, tbl, pk, lens[1], false);
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

int dsc_versions_read(dsc_versions *vs, dsc_stmts *s, char *err, size_t errlen)
{
    size_t n = vs->nkeys;
    unsigned k = log2_ceil(n);
    size_t size = (size_t)1 << k;
    MYSQL_STMT *st;
    unsigned int errnum;
    int rc;

    if (n == 0)
        return 0;
    if (k > READ_LOG2_MAX)
        return ds__seterr(err, errlen, DS_EINVAL, "apply: batch too large");
    const read_form *f = vs->joined ? &READ_JOINED : &READ_LISTED;
    rc = versions_stmt(s, vs->joined ? 'J' : 'R', k, f->head, f->tuple, f->tail,
                       &st, err, errlen);
    if (rc)
        return rc;
    if (dsc_params_reserve(s, size * 2))
        return dsc_nomem(err, errlen);
    memcpy(vs->sorted, vs->keys, n * sizeof *vs->sorted);
    qsort(vs->sorted, n, sizeof *vs->sorted, key_order);
    for (size_t i = 0; i < n; i++) {
        const dsc_version *v = vs->sorted[i];
        dsc_bind_bytes(s, 2 * i, MYSQL_TYPE_STRING, v->tbl, strlen(v->tbl));
        dsc_bind_bytes(s, 2 * i + 1, MYSQL_TYPE_BLOB, v->pk, v->pklen);
    }
    for (size_t i = 2 * n; i < 2 * size; i++)
        dsc_bind_null(s, i);
    rc = dsc_stmts_run(s, st, NULL, &errnum, err, errlen);
    if (rc)
        return rc;
    return fetch_versions(vs, st, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                    */

int dsc_versions_write(dsc_versions *vs, dsc_stmts *s, char *err, size_t errlen)
{
    size_t n = 0, done = 0;
    int rc;

    /* Dirty keys first, in place: keys[] is rebuilt every attempt. */
    for (size_t i = 0; i < vs->nkeys; i++)
        if (vs->keys[i]->dirty)
            vs->keys[n++] = vs->keys[i];
    while (done < n) {
        unsigned k = WRITE_LOG2_MAX;
        while (((size_t)1 << k) > n - done)
            k--;
        size_t rows = (size_t)1 << k;
        MYSQL_STMT *st;
        rc = versions_stmt(s, 'W', k, WRITE_HEAD, WRITE_TUPLE, WRITE_TAIL, &st,
                           err, errlen);
        if (rc)
            return rc;
        if (dsc_params_reserve(s, rows * 6))
            return dsc_nomem(err, errlen);
        for (size_t i = 0; i < rows; i++) {
            const dsc_version *v = vs->keys[done + i];
            size_t p = i * 6;
            dsc_bind_bytes(s, p, MYSQL_TYPE_STRING, v->tbl, strlen(v->tbl));
            dsc_bind_bytes(s, p + 1, MYSQL_TYPE_BLOB, v->pk, v->pklen);
            dsc_bind_int(s, p + 2, (long long)v->hlc, true);
            dsc_bind_bytes(s, p + 3, MYSQL_TYPE_STRING, v->origin,
                           strlen(v->origin));
            dsc_bind_int(s, p + 4, v->deleted, false);
            dsc_bind_int(s, p + 5, v->applied, false);
        }
        unsigned int errnum;
        rc = dsc_stmts_run(s, st, NULL, &errnum, err, errlen);
        if (rc)
            return rc;
        done += rows;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Pruning                                                                    */

long dsc_versions_prune(MYSQL *db, int hours, int limit, char *err,
                        size_t errlen)
{
    char sql[256];
    long n;

    if (!db)
        return ds__seterr(err, errlen, DS_EDBCONNECT,
                          "prune: not connected to the database");
    /* Numbers only: formatted, never taken from a message. */
    snprintf(sql, sizeof sql,
             "DELETE FROM datasync_versions WHERE deleted = 1 AND updated_at "
             "< CURRENT_TIMESTAMP(3) - INTERVAL %d HOUR LIMIT %d",
             hours, limit);
    if (mysql_real_query(db, sql, (unsigned long)strlen(sql)) != 0) {
        int rc = ds__mysql_error(db, "prune tombstones", NULL, err, errlen);
        mysql_rollback(db);
        return rc;
    }
    n = (long)mysql_affected_rows(db);
    if (mysql_commit(db) != 0) {
        int rc = ds__mysql_error(db, "prune commit", NULL, err, errlen);
        mysql_rollback(db);
        return rc;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Markers                                                                    */

int dsc_versions_note_marker(MYSQL *db, const char *id, char *err,
                             size_t errlen)
{
    char sql[320];

    if (!db)
        return ds__seterr(err, errlen, DS_EDBCONNECT,
                          "marker: not connected to the database");
    if (!ds__valid_uuid(id))
        return ds__seterr(err, errlen, DS_EINVAL,
                          "marker: '%.40s' is not a UUID", id);
    /* A checked UUID, safe in quotes. deleted = 1: pruned as tombstones. */
    snprintf(sql, sizeof sql,
             "INSERT INTO datasync_versions (tbl, pk, hlc, origin, deleted, "
             "applied) VALUES ('" DS_MARKER_TBL "', '%s', 0, 'marker', 1, 0) "
             "ON DUPLICATE KEY UPDATE updated_at = CURRENT_TIMESTAMP(3)",
             id);
    if (mysql_real_query(db, sql, (unsigned long)strlen(sql)) != 0 ||
        mysql_commit(db) != 0) {
        int rc = ds__mysql_error(db, "marker", NULL, err, errlen);
        mysql_rollback(db);
        return rc;
    }
    return 0;
}
