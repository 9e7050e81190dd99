/* apply.c: one batch in one transaction: stored versions in one query, the rule
 * per change, rows by primary key, versions, commit. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "error.h"
#include "mysql_util.h"
#include "rows.h"
#include "stmt.h"

/* Version reads take 2^k keys at once (padded), k <= READ_LOG2_MAX, so a
 * handful of statement shapes serve every batch (at most 10000 changes). */
#define READ_LOG2_MAX 14
/* Version writes go in chunks of 2^k rows, k <= WRITE_LOG2_MAX. */
#define WRITE_LOG2_MAX 8

/* One key of the batch and its version, as stored and then as decided. */
typedef struct vkey {
    const char *tbl; /* NULL: empty slot */
    const char *pk;
    size_t pklen;
    uint64_t hash;
    bool exists, dirty, deleted, applied;
    uint64_t hlc;
    char origin[65];
    /* Grouped writes: the key's last change that applies, whether a
     * delete that applies came before it, and how many upserts since. */
    struct dsc_change *last;
    bool wiped;
    int upserts;
} vkey;

struct dsc_applier {
    char node[65];
    const ds_logger *lg;
    dsc_stmts s;
    vkey *slots; /* open addressing, a power of two */
    size_t nslots;
    vkey **keys; /* the batch's keys in first-seen order */
    size_t nkeys, keyscap;
    dsc_change **todo; /* grouped writes: the changes to write, and a group */
    dsc_change **group;
    /* A grouped statement failed: the batch goes row by row, so the change
     * at fault is found, until a batch commits. */
    bool per_row;
    ds_clockfile *clock;
    dsc_apply_stats stats;
};

static int nomem(char *err, size_t errlen)
{
    return ds__seterr(err, errlen, DS_ENOMEM, "apply: out of memory");
}

static uint64_t key_hash(const char *tbl, const char *pk, size_t pklen)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const char *p = tbl; *p; p++)
        h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
    h = (h ^ 0xff) * UINT64_C(1099511628211);
    for (size_t i = 0; i < pklen; i++)
        h = (h ^ (unsigned char)pk[i]) * UINT64_C(1099511628211);
    return h;
}

dsc_applier *dsc_applier_new(const char *node, const ds_logger *lg)
{
    dsc_applier *ap = calloc(1, sizeof *ap);
    if (!ap)
        return NULL;
    snprintf(ap->node, sizeof ap->node, "%s", node);
    ap->lg = lg;
    dsc_stmts_init(&ap->s);
    return ap;
}

void dsc_applier_set_clock(dsc_applier *ap, ds_clockfile *clock)
{
    ap->clock = clock;
}

void dsc_applier_set_db(dsc_applier *ap, MYSQL *db)
{
    dsc_stmts_reset(&ap->s, db);
}

void dsc_applier_free(dsc_applier *ap)
{
    if (!ap)
        return;
    dsc_stmts_free(&ap->s);
    free(ap->slots);
    free(ap->keys);
    free(ap->todo);
    free(ap->group);
    free(ap);
}

const dsc_apply_stats *dsc_applier_stats(const dsc_applier *ap)
{
    return &ap->stats;
}

/* ------------------------------------------------------------------------ */
/* The versions of the batch's keys                                           */

static vkey *map_find(dsc_applier *ap, const char *tbl, const char *pk,
                      size_t pklen, bool insert)
{
    uint64_t h = key_hash(tbl, pk, pklen);
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

static int map_reset(dsc_applier *ap, size_t n)
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
        dsc_change **t = realloc(ap->todo, n * sizeof *t);
        if (!t)
            return DS_ENOMEM;
        ap->todo = t;
        dsc_change **g = realloc(ap->group, n * sizeof *g);
        if (!g)
            return DS_ENOMEM;
        ap->group = g;
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
static int read_versions(dsc_applier *ap, char *err, size_t errlen)
{
    size_t n = ap->nkeys;
    unsigned k = log2_ceil(n);
    size_t size = (size_t)1 << k;
    char tbl[65], pk[DS_PK_MAX], origin[65];
    unsigned long lens[5];
    unsigned long long hlc = 0;
    signed char applied = 0;
    MYSQL_BIND res[5];
    int rc;

    if (n == 0)
        return 0;
    if (k > READ_LOG2_MAX)
        return ds__seterr(err, errlen, DS_EINVAL, "apply: batch too large");
    char skey[16];
    size_t skeylen = (size_t)snprintf(skey, sizeof skey, "R%u", k);
    MYSQL_STMT *st = dsc_stmts_get(&ap->s, skey, skeylen);
    if (!st) {
        dsc_sql_reset(&ap->s);
        dsc_sql_add(&ap->s, "SELECT tbl, pk, hlc, origin, applied FROM "
                            "datasync_versions WHERE (tbl, pk) IN (");
        for (size_t i = 0; i < size; i++)
            dsc_sql_add(&ap->s, i ? ",(?,?)" : "(?,?)");
        dsc_sql_add(&ap->s, ")");
        rc = dsc_stmts_prepare(&ap->s, skey, skeylen, &st, err, errlen);
        if (rc)
            return rc;
    }
    if (dsc_params_reserve(&ap->s, size * 2))
        return nomem(err, errlen);
    for (size_t i = 0; i < size; i++) {
        const vkey *v = ap->keys[i < n ? i : n - 1];
        dsc_bind_bytes(&ap->s, 2 * i, MYSQL_TYPE_STRING, v->tbl,
                       strlen(v->tbl));
        dsc_bind_bytes(&ap->s, 2 * i + 1, MYSQL_TYPE_BLOB, v->pk, v->pklen);
    }
    unsigned int errnum;
    rc = dsc_stmts_run(&ap->s, st, NULL, &errnum, err, errlen);
    if (rc)
        return rc;

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
    res[4].buffer_type = MYSQL_TYPE_TINY;
    res[4].buffer = &applied;
    if (mysql_stmt_bind_result(st, res) != 0) {
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
static int write_versions(dsc_applier *ap, char *err, size_t errlen)
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
        char skey[16];
        size_t skeylen = (size_t)snprintf(skey, sizeof skey, "W%u", k);
        MYSQL_STMT *st = dsc_stmts_get(&ap->s, skey, skeylen);
        if (!st) {
            dsc_sql_reset(&ap->s);
            dsc_sql_add(&ap->s, "INSERT INTO datasync_versions (tbl, pk, hlc, "
                                "origin, deleted, applied) VALUES ");
            for (size_t i = 0; i < rows; i++)
                dsc_sql_add(&ap->s, i ? ",(?,?,?,?,?,?)" : "(?,?,?,?,?,?)");
            dsc_sql_add(&ap->s,
                        " ON DUPLICATE KEY UPDATE hlc = VALUES(hlc), origin = "
                        "VALUES(origin), deleted = VALUES(deleted), applied = "
                        "VALUES(applied), updated_at = CURRENT_TIMESTAMP(3)");
            rc = dsc_stmts_prepare(&ap->s, skey, skeylen, &st, err, errlen);
            if (rc)
                return rc;
        }
        if (dsc_params_reserve(&ap->s, rows * 6))
            return nomem(err, errlen);
        for (size_t i = 0; i < rows; i++) {
            vkey *v = ap->keys[done + i];
            size_t p = i * 6;
            dsc_bind_bytes(&ap->s, p, MYSQL_TYPE_STRING, v->tbl,
                           strlen(v->tbl));
            dsc_bind_bytes(&ap->s, p + 1, MYSQL_TYPE_BLOB, v->pk, v->pklen);
            dsc_bind_int(&ap->s, p + 2, (long long)v->hlc, true);
            dsc_bind_bytes(&ap->s, p + 3, MYSQL_TYPE_STRING, v->origin,
                           strlen(v->origin));
            dsc_bind_int(&ap->s, p + 4, v->deleted, false);
            dsc_bind_int(&ap->s, p + 5, v->applied, false);
        }
        unsigned int errnum;
        rc = dsc_stmts_run(&ap->s, st, NULL, &errnum, err, errlen);
        if (rc)
            return rc;
        done += rows;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The batch                                                                  */

static void rollback(dsc_applier *ap)
{
    /* Its failure needs no handling: a dead connection rolls back too, and
     * the caller reconnects on the error that brought us here. */
    if (ap->s.db)
        mysql_rollback(ap->s.db);
}

/* The reason of a change the database refused, named like every other
 * dead letter's: "ECONSTRAINT: mysql: [1062] Duplicate entry ...". */
static void poison(dsc_change *c, unsigned int errnum, const char *reason)
{
    int code = DS_EMYSQL;
    switch (errnum) {
    case 1048: /* NULL into NOT NULL */
    case 1062: /* duplicate key */
    case 1586:
    case 1216: /* foreign keys */
    case 1217:
    case 1451:
    case 1452:
    case 3819: /* check constraints */
    case 4025:
        code = DS_ECONSTRAINT;
        break;
    case 0:
        code = DS_ESCHEMA;
        break;
    }
    c->state = DS_CHANGE_POISON;
    snprintf(c->reason, sizeof c->reason, "%s: %s", ds_err_name(code), reason);
}

/* The convergence rule for c against its key's version in the batch. */
static dsc_decision decide(const dsc_applier *ap, const vkey *v,
                           const dsc_change *c)
{
    dsc_row_version in = {c->ev.hlc, c->ev.origin};
    dsc_row_version stored = {v->hlc, v->origin};
    bool own = strcmp(c->ev.origin, ap->node) == 0;
    bool app_write =
        v->exists && !v->applied && strcmp(v->origin, ap->node) == 0;
    return dsc_decide(v->exists ? &stored : NULL, &in, own, app_write);
}

/* The key's version after a decided change. */
static void record(vkey *v, const dsc_change *c)
{
    if (c->decision == DS_DECIDE_SUPERSEDED)
        return;
    v->exists = true;
    v->dirty = true;
    v->hlc = c->ev.hlc;
    snprintf(v->origin, sizeof v->origin, "%s", c->ev.origin);
    v->deleted = c->ev.op == DS_OP_DELETE;
    v->applied = c->decision == DS_DECIDE_APPLY;
}

/* Decides one change against the batch's map and writes its row. Returns
 * 0, 1 (redo, c marked) or < 0 (error for the whole batch). */
static int apply_one(dsc_applier *ap, dsc_change *c, dsc_apply_retry *retry,
                     char *err, size_t errlen)
{
    vkey *v = map_find(ap, c->ev.table, c->pk, c->pklen, false);
    unsigned int errnum = 0;
    int rc = 0;

    ap->s.prepare_errnum = 0;
    c->decision = decide(ap, v, c);
    if (c->decision == DS_DECIDE_APPLY) {
        if (c->ev.op == DS_OP_DELETE)
            rc = dsc_row_delete(&ap->s, c, &errnum, err, errlen);
        else
            rc = dsc_row_upsert(&ap->s, c, &errnum, err, errlen);
    }
    if (rc == DS_ESCHEMA) {
        /* A value apply cannot bind: nothing ran for it; drop it. */
        rollback(ap);
        poison(c, 0, err);
        return 1;
    }
    if (rc < 0 && errnum == 0 && ap->s.prepare_errnum != 0) {
        /* Preparing failed: an unknown column is this change's (a column
         * dropped since the catalogue was read); reload, as at execute. */
        errnum = ap->s.prepare_errnum;
        ap->s.prepare_errnum = 0;
    }
    if (rc < 0 && errnum == 0)
        return rc; /* out of memory: not this change's */
    if (rc < 0) {
        switch (ds__mysql_classify(errnum)) {
        case DS_MYSQL_TRANSIENT:
            return rc;
        case DS_MYSQL_PERMANENT:
            rollback(ap);
            poison(c, errnum, err);
            return 1;
        case DS_MYSQL_FOREIGN_KEY:
            rollback(ap);
            if (++c->fk_failures >= DS_APPLY_FK_TRIES) {
                poison(c, errnum, err);
            } else {
                c->deferred = true;
                retry->wait_ms = 100 << c->fk_failures;
            }
            return 1;
        case DS_MYSQL_SCHEMA:
            rollback(ap);
            if (++c->schema_failures >= 2)
                poison(c, errnum, err);
            else
                retry->reload_catalog = true;
            return 1;
        }
    }
    record(v, c);
    return 0;
}

/*
 * Decides every pending change in order (deferred ones last) without
 * writing, keeps per key the last change that applies (the row ends as it
 * says: later changes of a key are newer), then writes those rows a group
 * at a time, groups in the order of their first change. A key deleted
 * earlier in the batch and written again is deleted first, as row by row
 * (cascades fire alike). Returns 0, < 0 on a transient database error, or
 * 1 when a statement failed for another reason, or the batch cannot be
 * written grouped: the caller redoes it row by row, which finds the change
 * at fault and deals with it as always (dead letter, deferral, reload).
 */
static int apply_grouped(dsc_applier *ap, dsc_change *changes, size_t n,
                         char *err, size_t errlen)
{
    size_t ntodo = 0;
    int rc;

    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            dsc_change *c = &changes[i];
            if (c->state != DS_CHANGE_PENDING || c->deferred != (pass == 1))
                continue;
            vkey *v = map_find(ap, c->ev.table, c->pk, c->pklen, false);
            c->decision = decide(ap, v, c);
            record(v, c);
            if (c->decision != DS_DECIDE_APPLY)
                continue;
            v->last = c;
            if (c->ev.op == DS_OP_DELETE) {
                v->wiped = true;
                v->upserts = 0;
            } else {
                v->upserts++;
            }
        }
    }
    for (size_t i = 0; i < ap->nkeys; i++) {
        const vkey *v = ap->keys[i];
        /* Writing only the last upsert is the same as writing them all in
         * turn when it sets the whole row; a partial one would keep
         * columns an earlier upsert of the batch set differently. */
        if (v->last && v->upserts > 1 && !dsc_row_is_whole(v->last))
            return ds__seterr(err, errlen, 1,
                              "a key changed twice, the last time partly");
        if (v->last && v->wiped && v->last->ev.op != DS_OP_DELETE)
            ap->todo[ntodo++] = v->last;
    }
    rc = dsc_rows_write(&ap->s, ap->todo, ap->group, ntodo, true, err, errlen);
    ntodo = 0;
    for (size_t i = 0; i < ap->nkeys; i++)
        if (ap->keys[i]->last)
            ap->todo[ntodo++] = ap->keys[i]->last;
    if (rc == 0)
        rc = dsc_rows_write(&ap->s, ap->todo, ap->group, ntodo, false, err,
                            errlen);
    if (rc == 0)
        return 0;
    return rc == DS_EDBCONNECT ? rc : 1;
}

int dsc_applier_batch(dsc_applier *ap, dsc_change *changes, size_t n,
                      dsc_apply_retry *retry, char *err, size_t errlen)
{
    size_t pending = 0;
    int rc;

    retry->reload_catalog = false;
    retry->wait_ms = 0;
    if (!ap->s.db)
        return ds__seterr(err, errlen, DS_EDBCONNECT,
                          "apply: not connected to the database");
    for (size_t i = 0; i < n; i++)
        if (changes[i].state == DS_CHANGE_PENDING)
            pending++;
    if (map_reset(ap, pending ? pending : 1))
        return nomem(err, errlen);
    for (size_t i = 0; i < n; i++)
        if (changes[i].state == DS_CHANGE_PENDING)
            map_find(ap, changes[i].ev.table, changes[i].pk, changes[i].pklen,
                     true);

    rc = read_versions(ap, err, errlen);
    if (rc)
        goto fail;
    if (!ap->per_row) {
        rc = apply_grouped(ap, changes, n, err, errlen);
        if (rc < 0)
            goto fail;
        if (rc > 0) {
            DS_LOG(ap->lg, DS_LOG_INFO,
                   "grouped write failed (%s); redoing the batch row by row",
                   err);
            rollback(ap);
            ap->per_row = true;
            ap->stats.redos++;
            return 1;
        }
    }
    /* In order, deferred changes (a foreign key failed) last: versions make
     * the order within a batch irrelevant to the outcome. */
    for (int pass = 0; ap->per_row && pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            dsc_change *c = &changes[i];
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
    /* Before the commit makes the rows visible: an application write that
     * follows them must be stamped above their versions. */
    for (size_t i = 0; i < n; i++)
        if (changes[i].state == DS_CHANGE_PENDING)
            ds__clockfile_raise(ap->clock, changes[i].ev.hlc);
    if (mysql_commit(ap->s.db) != 0) {
        rc = ds__mysql_error(ap->s.db, "commit", NULL, err, errlen);
        goto fail;
    }

    ap->per_row = false;
    ap->stats.batches++;
    for (size_t i = 0; i < n; i++) {
        dsc_change *c = &changes[i];
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
    dsc_params_clear(&ap->s);
    rollback(ap);
    return rc;
}

long dsc_applier_prune(dsc_applier *ap, int hours, int limit, char *err,
                       size_t errlen)
{
    char sql[256];
    long n;

    if (!ap->s.db)
        return ds__seterr(err, errlen, DS_EDBCONNECT,
                          "prune: not connected to the database");
    /* Numbers only: formatted, never taken from a message. */
    snprintf(sql, sizeof sql,
             "DELETE FROM datasync_versions WHERE deleted = 1 AND updated_at "
             "< CURRENT_TIMESTAMP(3) - INTERVAL %d HOUR LIMIT %d",
             hours, limit);
    if (mysql_real_query(ap->s.db, sql, (unsigned long)strlen(sql)) != 0) {
        int rc =
            ds__mysql_error(ap->s.db, "prune tombstones", NULL, err, errlen);
        rollback(ap);
        return rc;
    }
    n = (long)mysql_affected_rows(ap->s.db);
    if (mysql_commit(ap->s.db) != 0) {
        int rc = ds__mysql_error(ap->s.db, "prune commit", NULL, err, errlen);
        rollback(ap);
        return rc;
    }
    return n;
}
