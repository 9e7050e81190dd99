/* txn.c: one transaction's row changes as change events (key from the primary key, data the after-image), emitted at commit. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "error.h"
#include "event.h"
#include "hash.h"
#include "ids.h"
#include "txn.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* An object of the given columns' values (a new reference each). */
static char *columns_json(const cap_table *t, json_object *const *vals,
                          bool pk_only)
{
    json_object *o = json_object_new_object();
    char *s = NULL;

    if (!o)
        return NULL;
    size_t n = pk_only ? t->npk : t->ncols;
    for (size_t k = 0; k < n; k++) {
        size_t i = pk_only ? t->pk[k] : k;
        if (json_object_object_add(o, t->cols[i].name,
                                   json_object_get(vals[i])) != 0)
            goto done;
    }
    s = strdup(json_object_to_json_string_ext(o, JSON_FLAGS));
done:
    json_object_put(o);
    return s;
}

static int push(cap_txn *tx, const cap_table *t, ds_op op, char *key,
                char *data)
{
    if (!key || (op != DS_OP_DELETE && !data)) {
        free(key);
        free(data);
        return DS_ENOMEM;
    }
    if (tx->n == tx->cap) {
        size_t cap = tx->cap ? tx->cap * 2 : 64;
        cap_change *c = realloc(tx->changes, cap * sizeof *c);
        if (!c) {
            free(key);
            free(data);
            return DS_ENOMEM;
        }
        tx->changes = c;
        tx->cap = cap;
    }
    cap_change *c = &tx->changes[tx->n++];
    c->hlc = 0; /* cap_txn_stamp's */
    c->id[0] = '\0';
    c->op = op;
    snprintf(c->table, sizeof c->table, "%s", t->name);
    c->key = key;
    c->data = data;
    return 0;
}

/* An image that lacks a column the change needs. */
static bool complete(const cap_table *t, const bool *have, bool pk_only)
{
    size_t n = pk_only ? t->npk : t->ncols;
    for (size_t k = 0; k < n; k++)
        if (!have[pk_only ? t->pk[k] : k])
            return false;
    return true;
}

int cap_txn_add(cap_txn *tx, const cap_table *t, cap_row_kind kind,
                json_object *const *before, const bool *before_have,
                json_object *const *after, const bool *after_have, char *err,
                size_t errlen)
{
    char *old_key = NULL, *new_key = NULL;
    int rc;

    if (t->npk == 0)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "%s.%s has no primary key: its changes cannot be "
                          "keyed",
                          t->db, t->name);
    if ((before && !complete(t, before_have, true)) ||
        (after && !complete(t, after_have, false)))
        return ds__seterr(err, errlen, DS_EINVAL,
                          "%s.%s: a partial row image (binlog_row_image is "
                          "not FULL for the session that wrote it)",
                          t->db, t->name);
    if (before && !(old_key = columns_json(t, before, true)))
        goto nomem;
    if (after && !(new_key = columns_json(t, after, true)))
        goto nomem;
    switch (kind) {
    case CAP_ROW_INSERT:
        rc = push(tx, t, DS_OP_CREATE, new_key, columns_json(t, after, false));
        new_key = NULL;
        break;
    case CAP_ROW_DELETE:
        rc = push(tx, t, DS_OP_DELETE, old_key, NULL);
        old_key = NULL;
        break;
    default:
        /* Another key is another row: the old one is gone everywhere. */
        if (strcmp(old_key, new_key) != 0) {
            rc = push(tx, t, DS_OP_DELETE, old_key, NULL);
            old_key = NULL;
            if (rc == 0)
                rc = push(tx, t, DS_OP_CREATE, new_key,
                          columns_json(t, after, false));
        } else {
            rc = push(tx, t, DS_OP_UPDATE, new_key,
                      columns_json(t, after, false));
        }
        new_key = NULL;
        break;
    }
    free(old_key);
    free(new_key);
    if (rc)
        return ds__seterr(err, errlen, rc, "out of memory");
    return 0;
nomem:
    free(old_key);
    free(new_key);
    return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
}

/* The id of the change at index i of transaction txid of origin: a
 * UUIDv7 of its version's time whose other bits hash the three. */
static void id_of(const cap_change *c, const char *origin, const char *txid,
                  size_t i, char out[37])
{
    uint8_t tail[10];
    uint64_t h = DS_FNV1A_INIT;

    h = ds__fnv1a(h, origin, strlen(origin) + 1);
    h = ds__fnv1a(h, txid, strlen(txid) + 1);
    h = ds__fnv1a(h, &i, sizeof i);
    /* 74 bits are wanted: a second pass over the same input gives more. */
    uint64_t h2 = ds__fnv1a(h, txid, strlen(txid) + 1);
    memcpy(tail, &h, 8);
    memcpy(tail + 8, &h2, 2);
    ds__uuid7_of(c->hlc >> 16, tail, out);
}

uint64_t cap_txn_stamp(cap_txn *tx, uint64_t clk, uint64_t when_ms,
                       const char *origin, const char *txid)
{
    for (size_t i = 0; i < tx->n; i++) {
        cap_change *c = &tx->changes[i];
        if (c->hlc)
            continue; /* an XA transaction's, since its prepare */
        uint64_t physical = when_ms << 16;
        clk = physical > clk ? physical : clk + 1;
        c->hlc = clk;
        if (txid)
            id_of(c, origin, txid, i, c->id);
    }
    return clk;
}

/* The event of change c as text into *out: key and data are JSON
 * already. Returns 0, DS_EIO (no randomness for a new id) or DS_ENOMEM. */
static int event_text(const cap_change *c, const char *origin, char **out)
{
    char id[37], ts[32];

    if (c->id[0])
        memcpy(id, c->id, sizeof id);
    else if (ds__uuid7(id) < 0)
        return DS_EIO;
    ds__rfc3339_ms(c->hlc >> 16, ts);
    int n =
        asprintf(out,
                 "{\"v\":1,\"id\":\"%s\",\"origin\":\"%s\",\"hlc\":%" PRIu64
                 ",\"ts\":\"%s\",\"op\":\"%s\",\"table\":\"%s\","
                 "\"key\":%s%s%s}",
                 id, origin, c->hlc, ts, ds__op_name(c->op), c->table, c->key,
                 c->data ? ",\"data\":" : "", c->data ? c->data : "");
    return n < 0 ? DS_ENOMEM : 0;
}

int cap_txn_emit(cap_txn *tx, ds_producer *p, const char *origin, char *err,
                 size_t errlen)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < tx->n; i++) {
        cap_change *c = &tx->changes[i];
        char *ev = NULL;
        if ((rc = event_text(c, origin, &ev)) != 0)
            return ds__seterr(err, errlen, rc, "%s",
                              rc == DS_EIO ? "no randomness for an event id"
                                           : "out of memory");
        rc = ds_emit_event(p, ev);
        free(ev);
        if (rc) {
            ds__seterr(err, errlen, rc, "emitting a change of %s %s: %s",
                       c->table, c->key, ds_producer_errmsg(p));
            break;
        }
    }
    if (rc == 0)
        cap_txn_clear(tx);
    return rc;
}

/* Forgets the changes from the n-th on. */
static void truncate_changes(cap_txn *tx, size_t n)
{
    for (size_t i = n; i < tx->n; i++) {
        free(tx->changes[i].key);
        free(tx->changes[i].data);
    }
    if (n < tx->n)
        tx->n = n;
}

/* The savepoint of that name, or -1. */
static ssize_t find_savepoint(const cap_txn *tx, const char *name)
{
    for (size_t i = tx->nsavepoints; i-- > 0;)
        if (strcasecmp(tx->savepoints[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

int cap_txn_savepoint(cap_txn *tx, const char *name)
{
    ssize_t at = find_savepoint(tx, name);
    cap_savepoint *grown;

    if (at >= 0) { /* replaced: the old one goes, the new one is last */
        memmove(&tx->savepoints[at], &tx->savepoints[at + 1],
                (tx->nsavepoints - (size_t)at - 1) * sizeof *tx->savepoints);
        tx->nsavepoints--;
    }
    grown =
        realloc(tx->savepoints, (tx->nsavepoints + 1) * sizeof *tx->savepoints);
    if (!grown)
        return DS_ENOMEM;
    tx->savepoints = grown;
    snprintf(grown[tx->nsavepoints].name, sizeof grown->name, "%s", name);
    grown[tx->nsavepoints++].mark = tx->n;
    return 0;
}

int cap_txn_rollback_to(cap_txn *tx, const char *name)
{
    ssize_t at = find_savepoint(tx, name);

    if (at < 0)
        return DS_EINVAL;
    truncate_changes(tx, tx->savepoints[at].mark);
    tx->nsavepoints = (size_t)at + 1;
    return 0;
}

void cap_txn_release(cap_txn *tx, const char *name)
{
    ssize_t at = find_savepoint(tx, name);

    if (at >= 0)
        tx->nsavepoints = (size_t)at;
}

void cap_txn_clear(cap_txn *tx)
{
    truncate_changes(tx, 0);
    tx->nsavepoints = 0;
}

void cap_txn_free(cap_txn *tx)
{
    cap_txn_clear(tx);
    free(tx->changes);
    free(tx->savepoints);
    tx->changes = NULL;
    tx->savepoints = NULL;
    tx->cap = 0;
}
