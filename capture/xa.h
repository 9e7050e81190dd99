/* xa.h: XA transactions prepared in the binlog, held until their XA COMMIT (then emitted) or XA ROLLBACK (then dropped). */
#ifndef DS_CAPTURE_XA_H
#define DS_CAPTURE_XA_H

#include <stdbool.h>
#include <stddef.h>

#include "state.h"
#include "txn.h"

/*
 * MariaDB writes a two-phase XA transaction as two event groups: at XA
 * PREPARE its rows, ended by an XA_PREPARE event instead of a commit; at
 * XA COMMIT or XA ROLLBACK, maybe much later and after other transactions,
 * a group of that one statement. Both groups' GTID events carry the xid.
 * (XA COMMIT ... ONE PHASE is an ordinary transaction ending in an XID.)
 *
 * A prepared transaction's changes are held here until its outcome. While
 * one is held, the position saved is the one before its prepare: a
 * restart reads the prepare again, and emits again what came after it
 * (duplicates, which consumers ignore), so nothing prepared is lost.
 */

/* GTID event flags of the two groups (MariaDB's FL_PREPARED_XA and
 * FL_COMPLETED_XA). */
#define CAP_GTID_PREPARED_XA 0x40
#define CAP_GTID_COMPLETED_XA 0x80

/* An xid as the GTID event carries it: format id, the two lengths, gtrid
 * and bqual (at most 64 bytes each). */
typedef struct cap_xid {
    unsigned char b[4 + 2 + 128];
    size_t len;
} cap_xid;

typedef struct cap_xa_held {
    cap_xid xid;
    cap_txn tx;
    char resume[CAP_GTID_MAX]; /* the position before its prepare */
    uint64_t resume_clk;       /* the capture's clock there */
} cap_xa_held;

/* The prepared transactions, oldest first. */
typedef struct cap_xa_list {
    cap_xa_held *v;
    size_t n, cap;
} cap_xa_list;

/* Reads the xid from a GTID event's body (len bytes, after the common
 * header) whose flags have one of the XA bits. Returns 0 or DS_EINVAL. */
int cap_xid_from_gtid(const unsigned char *body, size_t len, cap_xid *out);

/* Holds a prepared transaction: tx's changes move to the list (tx is left
 * empty), resume and resume_clk are the state to save while it is held.
 * Returns 0 or DS_ENOMEM (tx untouched). */
int cap_xa_hold(cap_xa_list *l, const cap_xid *xid, cap_txn *tx,
                const char *resume, uint64_t resume_clk);

/* Takes the transaction prepared as xid out of the list: its changes move
 * to out (which must be empty). False when none is held under xid (it was
 * prepared before the capture's start position). */
bool cap_xa_take(cap_xa_list *l, const cap_xid *xid, cap_txn *out);

/* The transaction whose state is saved while transactions are held (the
 * oldest), or NULL when none is. */
const cap_xa_held *cap_xa_pin(const cap_xa_list *l);

void cap_xa_free(cap_xa_list *l);

#endif
