/* captured.h: chaos_check's view of the SQL-only writer: its logged transactions, which committed, the changes datasync-capture emitted for it (read back from the broker), and which committed change each one is. */
#ifndef DS_TESTS_CHAOS_CAPTURED_H
#define DS_TESTS_CHAOS_CAPTURED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * The writer logs its changes without id nor version (tests/chaos/chaos.h,
 * the "S" lines); the capture gives them theirs. So the changes to check
 * on the nodes are the events of the writer's origin that reached the
 * broker, all of them. Two sources hold every change the broker took: a
 * tap, a node queue no consumer reads (set up like the others, so it gets
 * what they get), and the archive stream (<exchange>.archive). The events
 * are those of either; each one that a source lacks is counted (the tap
 * must lack none; the archive should not either). A capture restarted
 * from its state file emits the changes after its saved position again,
 * with the ids and versions they had (capture/txn.h): the same events.
 * One committed change with several events (the same change under two
 * ids and versions) is counted as emitted again, and fails the run.
 *
 * Each committed change must be one of them: per row, in commit order,
 * the first event after the previous change's with the same op and row
 * contents. An event that is no committed change of its row (a rolled-back
 * one, or a consumer's write captured again) is unexplained.
 */

/* Where an event was read. */
#define CC_FROM_ARCHIVE 1
#define CC_FROM_TAP 2

/* One change event of the writer's origin, from the broker. */
typedef struct cc_event {
    char id[37];
    uint64_t hlc;
    int table; /* index into CH_TABLES */
    char pk[64];
    char op;    /* c, u, d */
    char *data; /* compact JSON; NULL for a delete */
    char *row;  /* cc_row_text of data; NULL for a delete */
    /* Emitted again after a restart: the hlc of the change's first event
     * (the replay carries the old change with a newer version); else 0. */
    uint64_t replay_of_hlc;
    int sources; /* CC_FROM_* */
} cc_event;

/* One change of the writer's log. */
typedef struct cc_sql {
    char txid[37];
    int table;
    char pk[64];
    char op;
    char *data, *row;
    bool committed;    /* its transaction's id is in chaos_sqltx */
    bool meant_commit; /* not rolled back on purpose */
    long seq;          /* its place in the log */
    long event;        /* the event it is (index into ev), -1: none */
} cc_sql;

typedef struct cc_result {
    cc_event *ev;
    size_t nev;
    cc_sql *sql;
    size_t nsql;
    long archive_messages, tap_messages; /* all read */
    long not_in_archive, not_in_tap;     /* events one source lacks */
    /* Every origin's: message ids of the tap the archive lacks. */
    long all_not_in_archive;
    char (*ids[2])[37]; /* while reading: each source's message ids */
    size_t nids[2];
    long trx_committed, trx_rolled_back, trx_failed;
    long changes_committed, changes_rolled_back, changes_failed;
    long matched, not_captured, emitted_again;
    long unexplained, rolled_back_seen;
} cc_result;

/* Where to look. */
typedef struct cc_source {
    const char *origin;  /* the writer's node id */
    const char *sql_log; /* its log */
    const char *amqp;    /* the broker's URL(s) */
    const char *archive; /* the archive stream's name */
    const char *tap;     /* the tap queue's name */
    const char *host;    /* MariaDB, and the writer's database, */
    int port;            /* where chaos_sqltx is */
    const char *db;
} cc_source;

/* Reads the log, chaos_sqltx and the broker's events of src->origin,
 * and matches them. Returns 0, or -1 with err when it could not look
 * (then *r holds what it had). *r is freed with cc_free. Details of what
 * did not match go to details (may be NULL). */
int cc_load(const cc_source *src, cc_result *r, FILE *details, char *err,
            size_t errlen);

void cc_free(cc_result *r);

/* The row text of a change's data (a JSON object) as chaos_check compares
 * rows: table's columns in chaos.h order joined by 0x1f, NULL as \N,
 * booleans as 1/0. Returns a malloc'd string. */
char *cc_row_text(int table, const char *data);

#endif
