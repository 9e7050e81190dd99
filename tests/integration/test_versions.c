/* test_versions.c: the stored versions of a batch's keys (consumer/versions.c) read, locked and written on the real server, in both forms of the read: joined to a table of values (MariaDB's) and by IN list (MySQL's, and MariaDB's when the join check fails). */
#include "../lib/itest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mysql_util.h"
#include "stmt.h"
#include "versions.h"

#define DB "ds_versions"
#define NKEYS 300
/* A batch's versions read: 2^k keys, so these sizes are padded from 3 to
 * 4, 5 to 8, 129 to 256 and 300 to 512 with NULL keys. */
static const size_t batch_sizes[] = {1, 2, 3, 5, 64, 129, NKEYS};

typedef struct {
    char tbl[8];
    char pk[24];
    size_t pklen;
    bool stored;
    unsigned long long hlc;
    char origin[8];
    bool applied;
} key_case;

static key_case keys[NKEYS];

/* The keys: first the ones whose bytes a bind could get wrong (a NUL
 * inside, a byte over 0x7f, one key the prefix of another, one primary key
 * in two tables; each stored where its look-alike is not), then plain
 * ones. Every other key is stored. */
static void make_keys(void)
{
    static const struct {
        const char *tbl, *pk;
        size_t pklen;
    } special[] = {
        {"t", "x\0", 2},    {"t", "x", 1},     {"t", "x\0y", 3},
        {"t", "x\xff", 2},  {"t2", "x", 1},    {"t", "[\"a b\"]", 7},
        {"t2", "[1,2]", 5}, {"t", "[1,2]", 5},
    };
    size_t nspecial = sizeof special / sizeof *special;

    memset(keys, 0, sizeof keys);
    for (size_t i = 0; i < NKEYS; i++) {
        key_case *k = &keys[i];
        if (i < nspecial) {
            snprintf(k->tbl, sizeof k->tbl, "%s", special[i].tbl);
            memcpy(k->pk, special[i].pk, special[i].pklen);
            k->pklen = special[i].pklen;
        } else {
            snprintf(k->tbl, sizeof k->tbl, "t%zu", i % 3);
            k->pklen = (size_t)snprintf(k->pk, sizeof k->pk, "[%zu]", i);
        }
        k->stored = i % 2 == 0;
        k->hlc = 1000 + i;
        snprintf(k->origin, sizeof k->origin, "o%zu", i % 4);
        k->applied = i % 5 != 0;
    }
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* A connection with the consumer's own session settings (autocommit off,
 * the 5 s lock wait), to DB. */
static MYSQL *connect_db(void)
{
    ds_config cfg;
    char port[16], err[512];
    MYSQL *db = NULL;

    ds__config_defaults(&cfg);
    snprintf(port, sizeof port, "%d", itest_mysql_port());
    assert_int_equal(
        ds__config_set(&cfg, "mysql.host", itest_mysql_host(), err, sizeof err),
        0);
    assert_int_equal(ds__config_set(&cfg, "mysql.port", port, err, sizeof err),
                     0);
    assert_int_equal(
        ds__config_set(&cfg, "mysql.user", "root", err, sizeof err), 0);
    assert_int_equal(
        ds__config_set(&cfg, "mysql.database", DB, err, sizeof err), 0);
    if (ds__mysql_connect(&db, &cfg, err, sizeof err) != 0)
        fail_msg("connect: %s", err);
    return db;
}

/* One test's two connections, each with its statements and a batch's
 * keys: db reads and writes; holder is another writer. Closed by
 * teardown, so a failed test leaves no transaction holding locks. */
typedef struct {
    MYSQL *db, *holder;
    dsc_stmts s, hs;
    dsc_versions vs, held;
} fixture;

/* DB with datasync_versions as schemas/datasync-meta.sql creates it,
 * holding the stored keys, written by the text protocol (the pk as a hex
 * literal), not by the code under test; then the two connections. */
static int setup(void **state)
{
    char path[1100], err[512], hex[2 * sizeof keys[0].pk + 1];
    snprintf(path, sizeof path, "%s/schemas/datasync-meta.sql", itest_root());
    char *meta = read_text(path);
    fixture *fx = calloc(1, sizeof *fx);
    MYSQL *db;

    assert_non_null(fx);
    make_keys();
    itest_create_database(DB);
    db = itest_mysql_connect(DB);
    if (ds__mysql_exec_script(db, meta, err, sizeof err) != 0)
        fail_msg("datasync-meta.sql: %s", err);
    for (size_t i = 0; i < NKEYS; i++) {
        const key_case *k = &keys[i];
        if (!k->stored)
            continue;
        for (size_t j = 0; j < k->pklen; j++)
            snprintf(hex + 2 * j, 3, "%02x", (unsigned char)k->pk[j]);
        itest_mysql_exec(db,
                         "INSERT INTO datasync_versions (tbl, pk, hlc, origin, "
                         "applied) VALUES ('%s', X'%s', %llu, '%s', %d)",
                         k->tbl, hex, k->hlc, k->origin, k->applied);
    }
    mysql_close(db);
    free(meta);

    fx->db = connect_db();
    fx->holder = connect_db();
    dsc_stmts_init(&fx->s);
    dsc_stmts_reset(&fx->s, fx->db);
    dsc_stmts_init(&fx->hs);
    dsc_stmts_reset(&fx->hs, fx->holder);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    dsc_stmts_free(&fx->s);
    dsc_stmts_free(&fx->hs);
    dsc_versions_free(&fx->vs);
    dsc_versions_free(&fx->held);
    mysql_close(fx->db);
    mysql_close(fx->holder);
    free(fx);
    MYSQL *db = itest_mysql_connect(NULL);
    itest_mysql_exec(db, "DROP DATABASE IF EXISTS " DB);
    mysql_close(db);
    return 0;
}

/* vs, emptied, holding keys [first, first + n) of keys[], added last
 * first when backwards (the read binds them in primary-key order). */
static void batch_of(dsc_versions *vs, size_t first, size_t n, bool backwards)
{
    assert_int_equal(dsc_versions_reset(vs, n), 0);
    for (size_t j = 0; j < n; j++) {
        const key_case *k = &keys[first + (backwards ? n - 1 - j : j)];
        assert_non_null(dsc_versions_find(vs, k->tbl, k->pk, k->pklen, true));
    }
    assert_int_equal(vs->nkeys, n);
}

static void read_ok(dsc_versions *vs, dsc_stmts *s)
{
    char err[512];
    if (dsc_versions_read(vs, s, err, sizeof err) != 0)
        fail_msg("read (%s): %s", vs->joined ? "joined" : "IN list", err);
}

/* What the read found for keys[i], against what is stored. */
static void assert_read_as_stored(dsc_versions *vs, size_t i)
{
    const key_case *k = &keys[i];
    const dsc_version *v =
        dsc_versions_find(vs, k->tbl, k->pk, k->pklen, false);
    assert_non_null(v);
    if (v->exists != k->stored)
        fail_msg("key %zu (%s, %zu bytes) read %s, is %s (%s)", i, k->tbl,
                 k->pklen, v->exists ? "stored" : "absent",
                 k->stored ? "stored" : "absent",
                 vs->joined ? "joined" : "IN list");
    if (!k->stored)
        return;
    assert_int_equal(v->hlc, k->hlc);
    assert_string_equal(v->origin, k->origin);
    assert_int_equal(v->applied, k->applied);
}

/* The check this server passes, or the joined form below is the IN list
 * in disguise and the consumer reads by IN list. */
static void the_join_reads_back_as_bound_on_this_server(void **state)
{
    fixture *fx = *state;
    char why[256];
    assert_true(dsc_versions_check_join(fx->db, why, sizeof why));
    assert_string_equal(why, "");
}

/* Every batch size, each padded to its statement's 2^k keys, keys in and
 * out of primary-key order: each key reads its stored version, or none,
 * the same in both forms. */
static void both_forms_read_the_stored_versions(void **state)
{
    fixture *fx = *state;

    for (int joined = 0; joined < 2; joined++) {
        for (size_t b = 0; b < sizeof batch_sizes / sizeof *batch_sizes; b++) {
            size_t n = batch_sizes[b];
            /* From the first key, and (the sizes that leave room) from the
             * middle, added backwards. */
            for (int from_middle = 0; from_middle < 2; from_middle++) {
                size_t first = from_middle ? (NKEYS - n) / 2 : 0;
                if (from_middle && n == NKEYS)
                    continue;
                batch_of(&fx->vs, first, n, from_middle);
                fx->vs.joined = joined;
                read_ok(&fx->vs, &fx->s);
                for (size_t i = first; i < first + n; i++)
                    assert_read_as_stored(&fx->vs, i);
                mysql_rollback(fx->db);
            }
        }
    }
}

/* The versions written in one form read back in the other: new keys and
 * stored ones, deletes among them, in chunks of 256, 32, 8 and 4 rows. */
static void both_forms_read_what_was_written(void **state)
{
    fixture *fx = *state;
    dsc_versions *vs = &fx->vs;
    char err[512], sql[160];

    for (int joined = 0; joined < 2; joined++) {
        unsigned long long base = 100000ull * (unsigned long long)(joined + 1);
        batch_of(vs, 0, NKEYS, false);
        vs->joined = joined;
        read_ok(vs, &fx->s);
        for (size_t i = 0; i < NKEYS; i++) {
            dsc_version *v = vs->keys[i];
            v->dirty = true;
            v->hlc = base + i;
            snprintf(v->origin, sizeof v->origin, "w%d", joined);
            v->deleted = i % 7 == 0;
            v->applied = i % 3 != 0;
        }
        if (dsc_versions_write(vs, &fx->s, err, sizeof err) != 0)
            fail_msg("write: %s", err);
        assert_int_equal(mysql_commit(fx->db), 0);

        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM datasync_versions WHERE hlc >= %llu "
                 "AND origin = 'w%d'",
                 base, joined);
        assert_int_equal(itest_mysql_count(fx->db, sql), NKEYS);
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM datasync_versions WHERE hlc >= %llu "
                 "AND deleted = 1",
                 base);
        assert_int_equal(itest_mysql_count(fx->db, sql), (NKEYS + 6) / 7);
        mysql_rollback(fx->db);

        /* Read back by the other form, keys in another order. */
        batch_of(vs, 0, NKEYS, true);
        vs->joined = !joined;
        read_ok(vs, &fx->s);
        for (size_t i = 0; i < NKEYS; i++) {
            const key_case *k = &keys[i];
            const dsc_version *v =
                dsc_versions_find(vs, k->tbl, k->pk, k->pklen, false);
            assert_true(v->exists);
            assert_int_equal(v->hlc, base + i);
            assert_int_equal(v->applied, i % 3 != 0);
        }
        mysql_rollback(fx->db);
    }
}

/* A key another writer has read (and so locked) and not yet committed is
 * waited for by either form: past the lock wait timeout, the read fails
 * with the server's [1205], a transient error the consumer retries; once
 * the other commits, it reads. */
static void both_forms_wait_for_a_key_another_writer_holds(void **state)
{
    fixture *fx = *state;
    char err[512];

    itest_mysql_exec(fx->db, "SET SESSION innodb_lock_wait_timeout = 1");
    for (int joined = 0; joined < 2; joined++) {
        /* The holder locks keys 10 and 11 (stored and not), by the other
         * form. */
        batch_of(&fx->held, 10, 2, false);
        fx->held.joined = !joined;
        read_ok(&fx->held, &fx->hs);

        batch_of(&fx->vs, 8, 3, false); /* keys 8, 9, 10 */
        fx->vs.joined = joined;
        int rc = dsc_versions_read(&fx->vs, &fx->s, err, sizeof err);
        if (rc == 0 || !strstr(err, "[1205]"))
            fail_msg("read of a held key (%s): rc %d, \"%s\"",
                     joined ? "joined" : "IN list", rc, err);
        assert_int_equal(rc, DS_EDBCONNECT); /* transient: retried */
        mysql_rollback(fx->db);

        assert_int_equal(mysql_commit(fx->holder), 0);
        read_ok(&fx->vs, &fx->s);
        assert_read_as_stored(&fx->vs, 10);
        mysql_rollback(fx->db);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            the_join_reads_back_as_bound_on_this_server, setup, teardown),
        cmocka_unit_test_setup_teardown(both_forms_read_the_stored_versions,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(both_forms_read_what_was_written, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            both_forms_wait_for_a_key_another_writer_holds, setup, teardown),
    };

    return cmocka_run_group_tests_name("versions", tests, NULL, NULL);
}
