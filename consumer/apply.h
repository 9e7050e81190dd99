/* apply.h: one batch in one transaction: read the versions, decide each change, write rows and versions, commit. */
#ifndef DS_CONSUMER_APPLY_H
#define DS_CONSUMER_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mysql.h>

#include "catalog.h"
#include "clockfile.h"
#include "decide.h"
#include "event.h"
#include "log.h"

/* Bytes of a dead letter's reason, x-datasync-error. */
#define DS_REASON_MAX 256

/* Foreign-key failures of one change before it is dead-lettered: its
 * parent may arrive (later in the batch, or from another server). */
#define DS_APPLY_FK_TRIES 4

typedef enum {
    DS_CHANGE_PENDING = 0, /* to apply */
    DS_CHANGE_DONE,        /* committed: decision says what was done */
    DS_CHANGE_POISON       /* can never apply: reason says why */
} dsc_change_state;

/* One change of a batch. The consumer fills ev, table and pk; apply sets
 * the outcome. */
typedef struct dsc_change {
    ds_event ev;
    const dsc_table *table; /* from the current catalogue */
    char *pk;               /* canonical key (malloc'd by the owner) */
    size_t pklen;
    dsc_change_state state;
    dsc_decision decision;
    bool deferred; /* applied after the others: a parent may come first */
    bool marker;   /* no change: a marker, recorded before the batch's ack */
    int fk_failures;
    int schema_failures;
    int poison_code; /* the DS_E code that made it POISON (metrics) */
    /* Why it is POISON; while it is PENDING without a key, the member that
     * is no column of the catalogue read (a newer one may have it). */
    char reason[DS_REASON_MAX];
} dsc_change;

/* Marks ch as a change that can never apply, with the reason its dead
 * letter carries (x-datasync-error): code's name, then the message, as in
 * "ECONSTRAINT: mysql: [1062] Duplicate entry ...". The arguments must
 * not point into ch->reason. */
__attribute__((format(printf, 3, 4))) void
dsc_change_poison(dsc_change *ch, int code, const char *fmt, ...);

/* Counters since start, of committed batches only. */
typedef struct dsc_apply_stats {
    uint64_t applied;    /* rows written or deleted */
    uint64_t recorded;   /* own changes whose version only was recorded */
    uint64_t superseded; /* duplicates and late changes */
    uint64_t batches;
    uint64_t redos; /* attempts rolled back to isolate a bad change */
} dsc_apply_stats;

/* What the caller does after a batch attempt that did not commit. */
typedef struct dsc_apply_retry {
    bool reload_catalog; /* a table or column was unknown to the server */
    int wait_ms;         /* back off this long first (foreign keys) */
} dsc_apply_retry;

typedef struct dsc_applier dsc_applier;

/* A new applier for this server (node: its node.id, copied). NULL when out
 * of memory. lg is borrowed and must outlive it. */
dsc_applier *dsc_applier_new(const char *node, const ds_logger *lg);

/* Closes its statements and frees it. NULL is a no-op. */
void dsc_applier_free(dsc_applier *ap);

/* Raises clock (borrowed; NULL: none) to every batch's highest version
 * before its commit, so this server's producers stamp later changes above
 * anything the consumer has written (common/clockfile.h). */
void dsc_applier_set_clock(dsc_applier *ap, ds_clockfile *clock);

/* Uses db from now on (borrowed). Closes the statements prepared on the
 * previous connection: call it before closing that one, and after every
 * catalogue reload (statements name columns). On a new connection, checks
 * in one query that ends the transaction how its server reads versions.
 * db may be NULL. */
void dsc_applier_set_db(dsc_applier *ap, MYSQL *db);

/*
 * One attempt at a batch, in one transaction: reads the stored versions of
 * every key in one query, decides each pending change in order (several
 * changes to one key decide against each other), writes the rows of the
 * APPLY ones with prepared statements, the new versions, and commits.
 * Changes not PENDING are skipped.
 *
 * Returns 0: committed; every pending change is DONE.
 * Returns 1 (redo): rolled back because one change failed for a reason of
 * its own; it is now POISON with its reason, or deferred with
 * retry->wait_ms set (foreign key), or retry->reload_catalog is set (unknown
 * table or column: reload, check the changes again, redo). Call again.
 * Returns < 0: rolled back on a database error with err; the caller
 * reconnects (DS_EDBCONNECT: the server or connection) or backs off and
 * retries the same batch.
 */
int dsc_applier_batch(dsc_applier *ap, dsc_change *changes, size_t n,
                      dsc_apply_retry *retry, char *err, size_t errlen);

/* The counters since start (borrowed: valid while ap lives). */
const dsc_apply_stats *dsc_applier_stats(const dsc_applier *ap);

#endif
