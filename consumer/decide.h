/* decide.h: the convergence rule of docs/design.md, as a pure function over row versions. */
#ifndef DS_CONSUMER_DECIDE_H
#define DS_CONSUMER_DECIDE_H

#include <stdbool.h>
#include <stdint.h>

/* The version of one change of a row: compared by hlc, then by origin. */
typedef struct dsc_row_version {
    uint64_t hlc;
    const char *origin; /* borrowed; [A-Za-z0-9._-]{1,64} */
} dsc_row_version;

typedef enum {
    DS_DECIDE_SUPERSEDED = 0, /* not newer than the stored version: ack only */
    DS_DECIDE_APPLY = 1,      /* write the row and record the version */
    DS_DECIDE_RECORD_ONLY = 2 /* own change already in the table: record it */
} dsc_decision;

/* <0, 0, >0 as a is older than, equal to, newer than b. Origins compare
 * bytewise (strcmp), so every server orders ties the same way. */
int dsc_row_version_cmp(const dsc_row_version *a, const dsc_row_version *b);

/*
 * Decides what to do with an incoming change of a row.
 * stored: the version last accepted for the row (deletes included), or NULL
 * when the row has none. incoming_is_own: the change's origin is this
 * server. stored_is_app_write: the stored version is this server's own
 * change that was only recorded, so the table still holds what the
 * application wrote (ignored when stored is NULL).
 *
 * - incoming <= stored: SUPERSEDED (duplicates and late deliveries).
 * - a change from another server: APPLY.
 * - this server's own change: the application already wrote it, so
 *   RECORD_ONLY; unless the stored version is another server's (and lower),
 *   which means a remote change overwrote this server's newer write: APPLY,
 *   to repair it.
 * - a refinement of the contract's rule: once the consumer has written a
 *   row itself (a remote change or a repair), the table holds the
 *   consumer's copy, which can be older than what the application wrote
 *   since; later own changes of that row are APPLIED too until one is
 *   recorded over an application write again. Without it, own writes
 *   w1 < w2 with a remote r < w1 delivered first end with w1's data:
 *   r applied, w1 repairs, w2 only recorded.
 * Pure; any thread.
 */
dsc_decision dsc_decide(const dsc_row_version *stored,
                        const dsc_row_version *incoming, bool incoming_is_own,
                        bool stored_is_app_write);

/* "superseded", "apply", "record-only". */
const char *dsc_decision_name(dsc_decision d);

#endif
