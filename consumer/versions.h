/* versions.h: the row versions of a batch's keys in datasync_versions: read in one query, written as decided, old tombstones pruned. */
#ifndef DS_CONSUMER_VERSIONS_H
#define DS_CONSUMER_VERSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mysql.h>

#include "stmt.h"

struct dsc_change;

/* One key of the batch and its version, as stored and then as decided. */
typedef struct dsc_version {
    const char *tbl; /* NULL: empty slot */
    const char *pk;
    size_t pklen;
    uint64_t hash;
    bool exists, dirty, deleted, applied;
    uint64_t hlc;
    char origin[65];
    /* Grouped writes (apply.c): the key's last change that applies,
     * whether a delete that applies came before it, and how many upserts
     * since. */
    struct dsc_change *last;
    bool wiped;
    int upserts;
} dsc_version;

/* The keys of one batch: an open-addressing map and the keys in
 * first-seen order. Zero it to start; one owner, one thread. */
typedef struct dsc_versions {
    dsc_version *slots; /* a power of two of them */
    size_t nslots;
    dsc_version **keys;   /* keys[0..nkeys), first seen first */
    dsc_version **sorted; /* the same, as the primary key orders them */
    size_t nkeys, keyscap;
    /* How this connection reads: joined to a table of values, or by IN
     * list (dsc_versions_check_join). */
    bool joined;
} dsc_versions;

/* Frees what vs holds and zeroes it. */
void dsc_versions_free(dsc_versions *vs);

/* Empties vs, with room for n keys. Returns 0 or DS_ENOMEM. */
int dsc_versions_reset(dsc_versions *vs, size_t n);

/* The key (tbl, pk): found, or with insert added as not yet stored (tbl
 * and pk are borrowed and must outlive the batch; at most the n keys of
 * the reset). NULL when absent and not inserted. */
dsc_version *dsc_versions_find(dsc_versions *vs, const char *tbl,
                               const char *pk, size_t pklen, bool insert);

/* Whether the versions can be read on db's new connection as a join to a
 * table of values: the server has them (MariaDB), and reads a prepared
 * one back as bound. False otherwise, with why set when the server has
 * them but the check failed. Ends the transaction it reads in. */
bool dsc_versions_check_join(MYSQL *db, char *why, size_t whylen);

/* Reads, and locks, the stored version of every key in one query (padded
 * to a power of two, so a few prepared shapes serve every batch size),
 * joined when vs->joined, in primary-key order. Returns 0 or a DS_E code
 * with err (mapped by mysql_util). */
int dsc_versions_read(dsc_versions *vs, dsc_stmts *s, char *err, size_t errlen);

/* Writes the versions of the keys decided in this attempt (dirty), several
 * rows per statement, in the open transaction. Reorders keys[]: the last
 * use of vs in an attempt. Returns 0 or a DS_E code with err. */
int dsc_versions_write(dsc_versions *vs, dsc_stmts *s, char *err,
                       size_t errlen);

/* Deletes up to limit tombstones older than hours, in its own committed
 * transaction on db. Returns the number deleted, or < 0 with err. */
long dsc_versions_prune(MYSQL *db, int hours, int limit, char *err,
                        size_t errlen);

/* Records marker id (a UUID) in datasync_versions under the table name
 * DS_MARKER_TBL, committed: the batches before it are committed already.
 * Returns 0 or a DS_E code with err. */
int dsc_versions_note_marker(MYSQL *db, const char *id, char *err,
                             size_t errlen);

#endif
