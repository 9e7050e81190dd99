/* demo_app.c: an example host program: writes rows to its own database and emits each change with libdatasync (or, with --sql-only, leaves that to datasync-capture). */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasync.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: demo_app -c CONFIG --socket MYSQL_SOCKET --database NAME "
            "[--sql-only]\n"
            "Creates, updates and deletes rows of table users in NAME, and\n"
            "emits every change through libdatasync configured by CONFIG;\n"
            "with --sql-only it only writes: datasync-capture emits the\n"
            "changes it reads from the binlog.\n");
}

/* The application's own write, then the change it emits. A real host does
 * the same: commit its transaction, then ds_emit the row as it now is.
 * Without a producer (p NULL), only the write: the binlog has it. */
static int write_and_emit(MYSQL *db, ds_producer *p, ds_op op, int id,
                          const char *name, const char *balance)
{
    char sql[512], key[64], data[256];

    if (op == DS_OP_DELETE)
        snprintf(sql, sizeof sql, "DELETE FROM users WHERE id = %d", id);
    else
        snprintf(sql, sizeof sql,
                 "REPLACE INTO users (id, name, email, balance) "
                 "VALUES (%d, '%s', 'user%d@example.com', %s)",
                 id, name, id, balance);
    if (mysql_query(db, sql) != 0 || mysql_commit(db) != 0) {
        fprintf(stderr, "demo_app: %s: %s\n", sql, mysql_error(db));
        return -1;
    }
    if (!p)
        goto done;
    snprintf(key, sizeof key, "{\"id\": %d}", id);
    snprintf(
        data, sizeof data,
        "{\"id\": %d, \"name\": \"%s\", \"email\": \"user%d@example.com\", "
        "\"balance\": \"%s\"}",
        id, name, id, balance);
    int rc = ds_emit(p, op, "users", key, op == DS_OP_DELETE ? NULL : data);
    if (rc != 0) {
        fprintf(stderr, "demo_app: ds_emit: %s: %s\n", ds_strerror(rc),
                ds_producer_errmsg(p));
        return -1;
    }
done:
    printf("  %-6s users id=%d%s%s\n",
           op == DS_OP_CREATE   ? "create"
           : op == DS_OP_UPDATE ? "update"
                                : "delete",
           id,
           op == DS_OP_DELETE ? "" : " name=", op == DS_OP_DELETE ? "" : name);
    return 0;
}

static int open_producer(const char *config, ds_producer **p)
{
    char err[DS_ERRBUF_SIZE];
    ds_options *opts = ds_options_new();

    if (!opts || ds_options_load(opts, config) != 0) {
        fprintf(stderr, "demo_app: %s\n",
                opts ? ds_options_errmsg(opts) : "out of memory");
        ds_options_free(opts);
        return -1;
    }
    int rc = ds_producer_new(p, opts, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "demo_app: %s\n", err);
    ds_options_free(opts);
    return rc;
}

/* Waits for the broker's confirms (or the spool) of every change. */
static int flush_and_report(ds_producer *p)
{
    ds_producer_stats st;

    if (ds_flush(p, 10000) != 0) {
        fprintf(stderr, "demo_app: flush: %s\n", ds_producer_errmsg(p));
        return -1;
    }
    ds_producer_stats_get(p, &st, sizeof st);
    printf("demo_app: emitted %llu, confirmed %llu, spooled %llu\n",
           (unsigned long long)st.emitted, (unsigned long long)st.confirmed,
           (unsigned long long)st.spooled);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *socket = NULL, *database = NULL;
    int sql_only = 0;
    static const char *names[] = {"Ada", "Grace",  "Linus",    "Barbara",
                                  "Ken", "Dennis", "Margaret", "Edsger"};
    ds_producer *p = NULL;
    MYSQL *db;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--sql-only") == 0)
            sql_only = 1;
        else if (strcmp(argv[i], "-c") == 0 && value)
            config = argv[++i];
        else if (strcmp(argv[i], "--socket") == 0 && value)
            socket = argv[++i];
        else if (strcmp(argv[i], "--database") == 0 && value)
            database = argv[++i];
    }
    if ((!config && !sql_only) || !socket || !database) {
        usage();
        return 2;
    }

    if (!sql_only && open_producer(config, &p) != 0)
        return 1;

    db = mysql_init(NULL);
    if (!mysql_real_connect(db, NULL, "root", "", database, 0, socket, 0)) {
        fprintf(stderr, "demo_app: connect to %s: %s\n", database,
                mysql_error(db));
        goto out;
    }
    mysql_autocommit(db, 0);

    printf("demo_app: writing to %s%s\n", database,
           p ? " and emitting each change" : " (SQL only)");
    for (int id = 1; id <= 8; id++)
        if (write_and_emit(db, p, DS_OP_CREATE, id, names[id - 1], "10.00"))
            goto out;
    for (int id = 2; id <= 8; id += 2)
        if (write_and_emit(db, p, DS_OP_UPDATE, id, names[id - 1], "99.95"))
            goto out;
    if (write_and_emit(db, p, DS_OP_DELETE, 3, NULL, NULL) ||
        write_and_emit(db, p, DS_OP_DELETE, 7, NULL, NULL))
        goto out;
    if (p && flush_and_report(p) != 0)
        goto out;
    rc = 0;
out:
    mysql_close(db);
    ds_producer_free(p);
    return rc;
}
