/* xa.c: XA transactions prepared in the binlog, held until their XA COMMIT (then emitted) or XA ROLLBACK (then dropped). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "xa.h"

/* The GTID event body: seq 8, domain 4, flags 1, a commit id of 8 when
 * FL_GROUP_COMMIT_ID, then the XA part (the 6 zero bytes a plain GTID
 * event is padded with are there only when it is shorter than 19). */
#define GTID_FLAGS_AT 12
#define GTID_GROUP_COMMIT_ID 0x02

int cap_xid_from_gtid(const unsigned char *body, size_t len, cap_xid *out)
{
    if (len <= GTID_FLAGS_AT)
        return DS_EINVAL;
    size_t at = GTID_FLAGS_AT + 1 +
                ((body[GTID_FLAGS_AT] & GTID_GROUP_COMMIT_ID) ? 8 : 0);
    if (len < at + 6)
        return DS_EINVAL;
    size_t gtrid = body[at + 4], bqual = body[at + 5];
    size_t n = 6 + gtrid + bqual;
    if (gtrid > 64 || bqual > 64 || len < at + n)
        return DS_EINVAL;
    memcpy(out->b, body + at, n);
    out->len = n;
    return 0;
}

static bool same_xid(const cap_xid *a, const cap_xid *b)
{
    return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

int cap_xa_hold(cap_xa_list *l, const cap_xid *xid, cap_txn *tx,
                const char *resume, uint64_t resume_clk)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        cap_xa_held *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return DS_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    cap_xa_held *h = &l->v[l->n++];
    h->xid = *xid;
    h->tx = *tx;
    snprintf(h->resume, sizeof h->resume, "%s", resume);
    h->resume_clk = resume_clk;
    memset(tx, 0, sizeof *tx);
    return 0;
}

bool cap_xa_take(cap_xa_list *l, const cap_xid *xid, cap_txn *out)
{
    for (size_t i = 0; i < l->n; i++) {
        if (!same_xid(&l->v[i].xid, xid))
            continue;
        cap_txn_free(out);
        *out = l->v[i].tx;
        memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
        l->n--;
        return true;
    }
    return false;
}

const cap_xa_held *cap_xa_pin(const cap_xa_list *l)
{
    return l->n ? &l->v[0] : NULL;
}

void cap_xa_free(cap_xa_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        cap_txn_free(&l->v[i].tx);
    l->n = 0;
    free(l->v);
    l->v = NULL;
    l->cap = 0;
}
