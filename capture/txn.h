/* txn.h: the row changes of one binlog transaction, held until its commit and then emitted through libdatasync. */
#ifndef DS_CAPTURE_TXN_H
#define DS_CAPTURE_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "datasync.h"
#include "rowimage.h"

typedef struct cap_change {
    uint64_t hlc; /* its version, from cap_txn_stamp */
    char id[37];  /* its event id, from cap_txn_stamp; "" for a new one */
    ds_op op;
    char table[65];
    char *key;  /* JSON object of the primary-key columns */
    char *data; /* JSON object of the whole row; NULL for a delete */
} cap_change;

/* A savepoint: its name and how many changes were held when it was set. */
typedef struct cap_savepoint {
    char name[65];
    size_t mark;
} cap_savepoint;

typedef struct cap_txn {
    cap_change *changes;
    size_t n, cap;
    cap_savepoint *savepoints; /* in the order they were set */
    size_t nsavepoints;
} cap_txn;

/* What a rows event did to one row. */
typedef enum { CAP_ROW_INSERT, CAP_ROW_UPDATE, CAP_ROW_DELETE } cap_row_kind;

/*
 * Adds the change(s) of one row of table t: before/after are the decoded
 * images (vals and have as cap_row_decode fills them; NULL when the kind
 * has none). An insert is a create with the after-image; a delete takes
 * its key from the before-image; an update whose primary key changed is a
 * delete of the old key and a create of the new one. Returns 0,
 * DS_ENOMEM, or DS_EINVAL with err (no primary key, a partial image).
 */
int cap_txn_add(cap_txn *tx, const cap_table *t, cap_row_kind kind,
                json_object *const *before, const bool *before_have,
                json_object *const *after, const bool *after_have, char *err,
                size_t errlen);

/*
 * Gives every change held that has none yet a version, in order: each one
 * hlc = max(clk + 1, when_ms << 16), the next one above it; and, with txid
 * (the transaction's GTID), an event id made from origin, txid and the
 * change's place in it. Returns the last version given (clk when none is
 * held). A function of the binlog alone (when_ms is its commit's
 * timestamp) and of clk: a transaction read again after a restart gets the
 * ids and versions it had the first time, a true duplicate.
 */
uint64_t cap_txn_stamp(cap_txn *tx, uint64_t clk, uint64_t when_ms,
                       const char *origin, const char *txid);

/* Emits every change held, in order, as a whole event of origin with its
 * version (ds_emit_event), then forgets them. Returns 0 or the library's
 * error with err (the rest is kept: the caller stops and a restart emits
 * the transaction again). */
int cap_txn_emit(cap_txn *tx, ds_producer *p, const char *origin, char *err,
                 size_t errlen);

/* SAVEPOINT name: marks the changes held so far (a savepoint of the same
 * name is replaced). Returns 0 or DS_ENOMEM. */
int cap_txn_savepoint(cap_txn *tx, const char *name);

/* ROLLBACK TO name: forgets the changes held since it was set, and the
 * savepoints set after it. Returns 0, or DS_EINVAL when there is none of
 * that name. */
int cap_txn_rollback_to(cap_txn *tx, const char *name);

/* RELEASE SAVEPOINT name: forgets it and those set after it; the changes
 * stay. */
void cap_txn_release(cap_txn *tx, const char *name);

/* Forgets the changes held (a rolled-back or skipped transaction). */
void cap_txn_clear(cap_txn *tx);

/* Frees what tx holds; tx itself is the caller's. */
void cap_txn_free(cap_txn *tx);

#endif
