/* decide.c: the convergence rule: which incoming change wins over the stored row version. */
#include <string.h>

#include "decide.h"

int dsc_row_version_cmp(const dsc_row_version *a, const dsc_row_version *b)
{
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    return strcmp(a->origin, b->origin);
}

dsc_decision dsc_decide(const dsc_row_version *stored,
                        const dsc_row_version *incoming, bool incoming_is_own,
                        bool stored_is_app_write)
{
    if (stored && dsc_row_version_cmp(incoming, stored) <= 0)
        return DS_DECIDE_SUPERSEDED;
    if (!incoming_is_own)
        return DS_DECIDE_APPLY;
    /* Our own change is newer than anything stored. With no stored version,
     * or one of ours that only was recorded, the table already holds the
     * application's write, which is this change or a later one. Otherwise
     * the consumer wrote the row last (another server's older change that
     * arrived after the application's write, or a repair): the table may
     * hold less than this change, so write it again. */
    if (!stored || stored_is_app_write)
        return DS_DECIDE_RECORD_ONLY;
    return DS_DECIDE_APPLY;
}

const char *dsc_decision_name(dsc_decision d)
{
    switch (d) {
    case DS_DECIDE_SUPERSEDED:
        return "superseded";
    case DS_DECIDE_APPLY:
        return "apply";
    case DS_DECIDE_RECORD_ONLY:
        return "record-only";
    }
    return "?";
}
