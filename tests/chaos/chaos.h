/* chaos.h: the chaos run's tables, key space and emitted-log and SQL-log formats, shared by the producer driver and the checker. */
#ifndef DS_TESTS_CHAOS_H
#define DS_TESTS_CHAOS_H

/*
 * The replicated tables (tests/chaos/schema.sql creates them in every
 * database) and the shared key space the producers write over: 300 keys.
 * accounts.email is a unique secondary key; it is derived from the primary
 * key, so the random workload can never make two rows clash on it.
 *
 * The emitted log: one line per change that ds_emit_event returned 0 for,
 * written with one write(2) (a kill -9 loses no finished line), fields
 * separated by tabs:
 *
 *   E <id> <origin> <hlc> <table> <pk> <op> <data JSON, or "-" for delete>
 *
 * pk is the consumer's canonical key, as datasync_versions.pk holds it: a
 * compact JSON array of the key's values in primary-key order ([17],
 * ["red",3]). The data JSON carries no tab or newline. A change may be
 * logged twice (re-emitted from the outbox after a crash); both lines are
 * then identical.
 *
 * The SQL-only writer's log (chaos_producer --sql-only): one line per
 * change of a transaction, the transaction's lines with one write(2)
 * before its COMMIT or ROLLBACK:
 *
 *   S <transaction id> <origin> <commit|rollback> <table> <pk> <op> <data JSON, or "-">
 *
 * "rollback" is a transaction rolled back on purpose; one meant to commit
 * may not have (a kill -9, a lost connection, a deadlock): it committed
 * exactly when its id is in the writer's database's table chaos_sqltx.
 * Its changes carry no id nor version: datasync-capture gives them theirs.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef enum {
    CH_INT, /* JSON integer; the database prints the digits */
    CH_STR, /* JSON string (DECIMAL and DATE too, as MariaDB prints them) */
    CH_BOOL /* JSON true/false; TINYINT(1) prints 1/0 */
} ch_kind;

typedef struct ch_col {
    const char *name;
    ch_kind kind;
} ch_col;

#define CH_MAX_COLS 8

typedef struct ch_table {
    const char *name;
    int ncols;
    ch_col cols[CH_MAX_COLS]; /* primary-key columns first, in key order */
    int npk;
    int nkeys; /* keys of this table in the key space */
} ch_table;

static const ch_table CH_TABLES[] = {
    {"items",
     6,
     {{"id", CH_INT},
      {"name", CH_STR},
      {"qty", CH_INT},
      {"price", CH_STR},
      {"note", CH_STR},
      {"rev", CH_INT}},
     1,
     150},
    {"accounts",
     5,
     {{"id", CH_INT},
      {"email", CH_STR},
      {"balance", CH_INT},
      {"active", CH_BOOL},
      {"born", CH_STR}},
     1,
     100},
    {"tags", 3, {{"k1", CH_STR}, {"k2", CH_INT}, {"v", CH_STR}}, 2, 50},
};

#define CH_NTABLES ((int)(sizeof CH_TABLES / sizeof CH_TABLES[0]))

/* tags' first key column takes these values, its second 0..9. */
static const char *const CH_TAG_K1[] = {"red", "green", "blue", "cyan", "plum"};

/* The key values of key number idx of table t: an integer id (items,
 * accounts) or (k1, k2) (tags). */
static inline void ch_key(const ch_table *t, int idx, int *id, const char **k1)
{
    if (t->npk == 1) {
        *id = idx + 1;
        *k1 = NULL;
    } else {
        *k1 = CH_TAG_K1[idx / 10];
        *id = idx % 10;
    }
}

/* How ch_key_text writes a key. */
typedef enum {
    CH_KEY_PK,   /* the canonical key: [17], ["red",3] */
    CH_KEY_JSON, /* an event's key object: {"id":17}, {"k1":"red","k2":3} */
    CH_KEY_WHERE /* an SQL condition: `id` = 17, `k1` = 'red' AND `k2` = 3 */
} ch_key_form;

/* Key number idx of table t as form says, into buf. k1 is plain ASCII
 * letters, so JSON and SQL quoting is just the quotes. */
static inline void ch_key_text(const ch_table *t, int idx, ch_key_form form,
                               char *buf, size_t len)
{
    int id;
    const char *k1;
    ch_key(t, idx, &id, &k1);
    if (!k1 && form == CH_KEY_PK)
        snprintf(buf, len, "[%d]", id);
    else if (!k1 && form == CH_KEY_JSON)
        snprintf(buf, len, "{\"id\":%d}", id);
    else if (!k1)
        snprintf(buf, len, "`id` = %d", id);
    else if (form == CH_KEY_PK)
        snprintf(buf, len, "[\"%s\",%d]", k1, id);
    else if (form == CH_KEY_JSON)
        snprintf(buf, len, "{\"k1\":\"%s\",\"k2\":%d}", k1, id);
    else
        snprintf(buf, len, "`k1` = '%s' AND `k2` = %d", k1, id);
}

static inline const ch_table *ch_table_named(const char *name)
{
    for (int i = 0; i < CH_NTABLES; i++)
        if (strcmp(CH_TABLES[i].name, name) == 0)
            return &CH_TABLES[i];
    return NULL;
}

#endif
