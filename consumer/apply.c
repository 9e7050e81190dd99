/* apply.c: one batch in one transaction, read straight through: the batch's
 * keys, their stored versions, the rule per change, rows, versions, commit. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "error.h"
#include "mysql_util.h"
#include "rows.h"
#include "stmt.h"
#include "versions.h"

struct dsc_applier {
    char node[65];
    const ds_logger *lg;
    dsc_stmts s;
    dsc_versions vs;   /* the batch's keys and their versions */
    dsc_change **todo; /* grouped writes: the changes to write, and a group */
    dsc_change **group;
    size_t todocap;
    /* A grouped statement failed: the batch goes row by row, so the change
     * at fault is found, until a batch commits. */
    bool per_row;
    ds_clockfile *clock;
    dsc_apply_stats stats;
};

void dsc_change_poison(dsc_change *ch, int code, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(ch->reason, sizeof ch->reason, "%s: ", ds_err_name(code));

    va_start(ap, fmt);
    vsnprintf(ch->reason + n, sizeof ch->reason - (size_t)n, fmt, ap);
    va_end(ap);
    ch->state = DS_CHANGE_POISON;
    ch->poison_code = code;
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
    char why[256];
    /* A catalogue reload keeps the connection, and what it was found to
     * read; a new one comes after NULL (the old one closed). */
    bool fresh = db != ap->s.db;

    dsc_stmts_reset(&ap->s, db);
    if (!fresh)
        return;
    ap->vs.joined = db && dsc_versions_check_join(db, why, sizeof why);
    if (db && !ap->vs.joined && why[0])
        DS_LOG(ap->lg, DS_LOG_WARN,
               "versions are read by IN list, the slower way: the check of "
               "the faster one failed: %s",
               why);
}

void dsc_applier_free(dsc_applier *ap)
{
    if (!ap)
        return;
    dsc_stmts_free(&ap->s);
    dsc_versions_free(&ap->vs);
    free(ap->todo);
    free(ap->group);
    free(ap);
}

const dsc_apply_stats *dsc_applier_stats(const dsc_applier *ap)
{
    return &ap->stats;
}

static void rollback(dsc_applier *ap)
{
    /* Its failure needs no handling: a dead connection rolls back too, and
     * the caller reconnects on the error that brought us here. */
    if (ap->s.db)
        mysql_rollback(ap->s.db);
}

/* ------------------------------------------------------------------------ */
/* The batch's keys and the rule                                              */

/* Every pending change's key, once, in the order first seen; and room for
 * the grouped writes of as many. Returns 0 or DS_ENOMEM. */
static int collect_keys(dsc_applier *ap, dsc_change *changes, size_t n)
{
    size_t pending = 0;

    for (size_t i = 0; i < n; i++)
        if (changes[i].state == DS_CHANGE_PENDING)
            pending++;
    if (pending == 0)
        pending = 1;
    if (dsc_versions_reset(&ap->vs, pending))
        return DS_ENOMEM;
    if (pending > ap->todocap) {
        dsc_change **t = realloc(ap->todo, pending * sizeof *t);
        if (!t)
            return DS_ENOMEM;
        ap->todo = t;
        dsc_change **g = realloc(ap->group, pending * sizeof *g);
        if (!g)
            return DS_ENOMEM;
        ap->group = g;
        ap->todocap = pending;
    }
    for (size_t i = 0; i < n; i++)
        if (changes[i].state == DS_CHANGE_PENDING)
            dsc_versions_find(&ap->vs, changes[i].ev.table, changes[i].pk,
                              changes[i].pklen, true);
    return 0;
}

/* The convergence rule for c against its key's version in the batch. */
static dsc_decision decide(const dsc_applier *ap, const dsc_version *v,
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
static void record(dsc_version *v, const dsc_change *c)
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

/* ------------------------------------------------------------------------ */
/* Grouped: decide all, then write the rows in multi-row statements          */

/*
 * Decides every pending change in order (deferred ones last) without
 * writing, each against its key's version as the changes before it left
 * it, and keeps per key the last change that applies: the row ends as it
 * says, later changes of a key being newer.
 */
static void decide_all(dsc_applier *ap, dsc_change *changes, size_t n)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            dsc_change *c = &changes[i];
            if (c->state != DS_CHANGE_PENDING || c->deferred != (pass == 1))
                continue;
            dsc_version *v =
                dsc_versions_find(&ap->vs, c->ev.table, c->pk, c->pklen, false);
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
}

/*
 * Writes the rows decide_all left, a group at a time, groups in the order
 * of their first change. A key deleted earlier in the batch and written
 * again is deleted first, as row by row (cascades fire alike). Returns 0,
 * < 0 on a transient database error, or 1 when a statement failed for
 * another reason, or the batch cannot be written grouped: the caller redoes
 * it row by row, which finds the change at fault and deals with it as
 * always (dead letter, deferral, reload).
 */
static int write_rows_grouped(dsc_applier *ap, char *err, size_t errlen)
{
    const dsc_versions *vs = &ap->vs;
    size_t ntodo = 0;
    int rc;

    for (size_t i = 0; i < vs->nkeys; i++) {
        const dsc_version *v = vs->keys[i];
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
    for (size_t i = 0; i < vs->nkeys; i++)
        if (vs->keys[i]->last)
            ap->todo[ntodo++] = vs->keys[i]->last;
    if (rc == 0)
        rc = dsc_rows_write(&ap->s, ap->todo, ap->group, ntodo, false, err,
                            errlen);
    if (rc == 0)
        return 0;
    return rc == DS_EDBCONNECT ? rc : 1;
}

/* The grouped write failed: the batch goes again row by row. Returns 1. */
static int redo_row_by_row(dsc_applier *ap, const char *why)
{
    DS_LOG(ap->lg, DS_LOG_INFO,
           "grouped write failed (%s); redoing the batch row by row", why);
    rollback(ap);
    ap->per_row = true;
    ap->stats.redos++;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Row by row: decide and write each change, to find the one at fault        */

/*
 * What a change the server refused with errnum becomes: the whole batch's
 * error (transient: returns rc), or, rolled back, a dead letter, a
 * deferral (foreign key: its parent may come), or a catalogue reload
 * (unknown column: a second time, a dead letter). Returns rc or 1 (redo).
 */
static int refused(dsc_applier *ap, dsc_change *c, int rc, unsigned int errnum,
                   const char *why, dsc_apply_retry *retry)
{
    switch (ds__mysql_classify(errnum)) {
    case DS_MYSQL_TRANSIENT:
        return rc;
    case DS_MYSQL_PERMANENT:
        rollback(ap);
        dsc_change_poison(c, ds__mysql_refusal_code(errnum), "%s", why);
        return 1;
    case DS_MYSQL_FOREIGN_KEY:
        rollback(ap);
        if (++c->fk_failures >= DS_APPLY_FK_TRIES) {
            dsc_change_poison(c, ds__mysql_refusal_code(errnum), "%s", why);
        } else {
            c->deferred = true;
            retry->wait_ms = 100 << c->fk_failures;
        }
        return 1;
    case DS_MYSQL_SCHEMA:
        rollback(ap);
        if (++c->schema_failures >= 2)
            dsc_change_poison(c, ds__mysql_refusal_code(errnum), "%s", why);
        else
            retry->reload_catalog = true;
        return 1;
    }
    return rc;
}

/* Decides one change against the batch's versions and writes its row.
 * Returns 0, 1 (redo, c marked) or < 0 (error for the whole batch). */
static int apply_one(dsc_applier *ap, dsc_change *c, dsc_apply_retry *retry,
                     char *err, size_t errlen)
{
    dsc_version *v =
        dsc_versions_find(&ap->vs, c->ev.table, c->pk, c->pklen, false);
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
        dsc_change_poison(c, DS_ESCHEMA, "%s", err);
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
    if (rc < 0)
        return refused(ap, c, rc, errnum, err, retry);
    record(v, c);
    return 0;
}

/* Every pending change in order, deferred ones (a foreign key failed)
 * last: versions make the order within a batch irrelevant to the outcome.
 * Returns 0, 1 (redo, one change marked) or < 0. */
static int apply_row_by_row(dsc_applier *ap, dsc_change *changes, size_t n,
                            dsc_apply_retry *retry, char *err, size_t errlen)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            dsc_change *c = &changes[i];
            if (c->state != DS_CHANGE_PENDING || c->deferred != (pass == 1))
                continue;
            int rc = apply_one(ap, c, retry, err, errlen);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Commit                                                                     */

/* Raises the clock file to the batch's versions, then commits. */
static int commit(dsc_applier *ap, const dsc_change *changes, size_t n,
                  char *err, size_t errlen)
{
    /* Before the commit makes the rows visible: an application write that
     * follows them must be stamped above their versions. */
    for (size_t i = 0; i < n; i++)
        if (changes[i].state == DS_CHANGE_PENDING)
            ds__clockfile_raise(ap->clock, changes[i].ev.hlc);
    if (mysql_commit(ap->s.db) != 0)
        return ds__mysql_error(ap->s.db, "commit", NULL, err, errlen);
    return 0;
}

/* The batch committed: its pending changes are done, and counted. */
static void count_done(dsc_applier *ap, dsc_change *changes, size_t n)
{
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
}

int dsc_applier_batch(dsc_applier *ap, dsc_change *changes, size_t n,
                      dsc_apply_retry *retry, char *err, size_t errlen)
{
    int rc;

    retry->reload_catalog = false;
    retry->wait_ms = 0;
    if (!ap->s.db)
        return ds__seterr(err, errlen, DS_EDBCONNECT,
                          "apply: not connected to the database");
    if (collect_keys(ap, changes, n))
        return dsc_nomem(err, errlen);
    rc = dsc_versions_read(&ap->vs, &ap->s, err, errlen);
    if (rc)
        goto fail;
    /* Decide and write the rows: grouped, or, after a grouped write failed,
     * row by row until a batch commits. */
    if (!ap->per_row) {
        decide_all(ap, changes, n);
        rc = write_rows_grouped(ap, err, errlen);
        if (rc > 0)
            return redo_row_by_row(ap, err);
    } else {
        rc = apply_row_by_row(ap, changes, n, retry, err, errlen);
        if (rc > 0) {
            ap->stats.redos++;
            return rc;
        }
    }
    if (rc)
        goto fail;
    rc = dsc_versions_write(&ap->vs, &ap->s, err, errlen);
    if (rc)
        goto fail;
    rc = commit(ap, changes, n, err, errlen);
    if (rc)
        goto fail;
    count_done(ap, changes, n);
    return 0;
fail:
    dsc_params_clear(&ap->s);
    rollback(ap);
    return rc;
}
