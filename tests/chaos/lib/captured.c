/* captured.c: the SQL-only writer's committed changes matched to the events datasync-capture emitted for them, read back from the broker (a tap queue and the archive stream). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <mysql.h>

#include "../chaos.h"
#include "amqp_util.h"
#include "captured.h"
#include "ids.h"
#include "xalloc.h"
#include "support.h"

#define PREFETCH 1000
/* Nothing delivered for this long: the end of the stream (everything has
 * stopped when the checker runs). */
#define IDLE_END_S 3

char *cc_row_text(int table, const char *data)
{
    const ch_table *t = &CH_TABLES[table];
    json_object *o = json_tokener_parse(data);
    char out[2048];
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < t->ncols; i++) {
        json_object *v = NULL;
        char val[512];
        if (!o || !json_object_object_get_ex(o, t->cols[i].name, &v))
            snprintf(val, sizeof val, "<missing>");
        else if (!v)
            snprintf(val, sizeof val, "\\N");
        else if (json_object_get_type(v) == json_type_boolean)
            snprintf(val, sizeof val, "%d", json_object_get_boolean(v));
        else if (json_object_get_type(v) == json_type_int)
            snprintf(val, sizeof val, "%" PRId64, json_object_get_int64(v));
        else
            snprintf(val, sizeof val, "%s", json_object_get_string(v));
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s",
                                i ? "\x1f" : "", val);
        if (len >= sizeof out)
            len = sizeof out - 1;
    }
    json_object_put(o);
    return xstrdup(out);
}

/* ------------------------------------------------------------------------ */
/* The archive                                                               */

/* The canonical key ([17], ["red",3]) of an event's key object. */
static bool canonical_pk(const ch_table *t, json_object *key, char *pk,
                         size_t len)
{
    size_t at = (size_t)snprintf(pk, len, "[");
    for (int i = 0; i < t->npk; i++) {
        json_object *v;
        if (!json_object_object_get_ex(key, t->cols[i].name, &v) || !v)
            return false;
        if (json_object_get_type(v) == json_type_int)
            at += (size_t)snprintf(pk + at, len - at, "%s%" PRId64,
                                   i ? "," : "", json_object_get_int64(v));
        else
            at += (size_t)snprintf(pk + at, len - at, "%s\"%s\"",
                                   i ? "," : "", json_object_get_string(v));
        if (at >= len)
            return false;
    }
    snprintf(pk + at, len - at, "]");
    return true;
}

/* One message of a source: kept when it is a change of origin. */
static void take_event(cc_result *r, int source, const char *origin,
                       const char *body, size_t len, FILE *details)
{
    char *text = strndup(body, len);
    json_object *ev = text ? json_tokener_parse(text) : NULL, *v;
    free(text);
    if (!ev)
        return;
    const char *get[5] = {0};
    static const char *const names[5] = {"origin", "id", "op", "table",
                                         "hlc"};
    for (int i = 0; i < 5; i++)
        if (json_object_object_get_ex(ev, names[i], &v) && v)
            get[i] = json_object_get_string(v);
    const ch_table *t = get[3] ? ch_table_named(get[3]) : NULL;
    json_object *key = NULL, *data = NULL;
    json_object_object_get_ex(ev, "key", &key);
    json_object_object_get_ex(ev, "data", &data);
    if (!get[0] || strcmp(get[0], origin) != 0) {
        json_object_put(ev);
        return;
    }
    cc_event e = {0};
    if (!get[1] || strlen(get[1]) != 36 || !get[2] || !t || !get[4] || !key ||
        !canonical_pk(t, key, e.pk, sizeof e.pk)) {
        if (details)
            fprintf(details, "an event of %s not understood: %.*s\n", origin,
                    (int)len, body);
        r->unexplained++;
        json_object_put(ev);
        return;
    }
    snprintf(e.id, sizeof e.id, "%s", get[1]);
    e.hlc = strtoull(get[4], NULL, 10);
    e.table = (int)(t - CH_TABLES);
    e.op = get[2][0];
    e.sources = source;
    if (e.op != 'd' && data) {
        e.data = xstrdup(json_object_to_json_string_ext(
            data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        e.row = cc_row_text(e.table, e.data);
    }
    if (r->nev % 1024 == 0)
        r->ev = xrealloc(r->ev, (r->nev + 1024) * sizeof *r->ev);
    r->ev[r->nev++] = e;
    json_object_put(ev);
}

/* Keeps the message id of every change (any origin) a source holds. */
static void keep_id(cc_result *r, int source, const amqp_basic_properties_t *p)
{
    int s = source == CC_FROM_TAP;
    if (!(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) || p->message_id.len != 36)
        return;
    if (r->nids[s] % 4096 == 0)
        r->ids[s] =
            xrealloc(r->ids[s], (r->nids[s] + 4096) * sizeof *r->ids[s]);
    memcpy(r->ids[s][r->nids[s]], p->message_id.bytes, 36);
    r->ids[s][r->nids[s]++][36] = '\0';
}

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 36);
}

/* How many of the tap's ids the archive lacks (each id once); frees both
 * lists. */
static long tap_ids_not_archived(cc_result *r)
{
    long lack = 0;
    size_t a = 0;
    for (int s = 0; s < 2; s++)
        if (r->nids[s])
            qsort(r->ids[s], r->nids[s], sizeof *r->ids[s], id_cmp);
    for (size_t t = 0; t < r->nids[1]; t++) {
        if (t && id_cmp(r->ids[1][t - 1], r->ids[1][t]) == 0)
            continue;
        while (a < r->nids[0] && id_cmp(r->ids[0][a], r->ids[1][t]) < 0)
            a++;
        lack += a == r->nids[0] || id_cmp(r->ids[0][a], r->ids[1][t]) != 0;
    }
    for (int s = 0; s < 2; s++) {
        free(r->ids[s]);
        r->ids[s] = NULL;
        r->nids[s] = 0;
    }
    return lack;
}

/* Every message of queue, from its first (a stream: x-stream-offset,
 * acked in steps, read until idle; a queue: its messages, taken). Counts
 * them in *messages. */
static int read_source(const cc_source *src, const char *queue, bool stream,
                       int source, long *messages, cc_result *r,
                       FILE *details, char *err, size_t errlen)
{
    ds_amqp a = {0};
    amqp_table_entry_t offset;
    amqp_envelope_t env;
    long want = -1;
    int rc = 0;

    if (ds__amqp_connect(&a, src->amqp, 0, 10000, err, errlen) != 0)
        return -1;
    amqp_connection_state_t conn = a.conn;
    if (!stream) {
        amqp_queue_declare_ok_t *ok =
            amqp_queue_declare(conn, DS_AMQP_CHANNEL, ds__amqp_str(queue), 1,
                               0, 0, 0, amqp_empty_table);
        if (!ok) {
            snprintf(err, errlen, "no queue %s", queue);
            ds__amqp_close(&a);
            return -1;
        }
        want = (long)ok->message_count;
    }
    amqp_basic_qos(conn, DS_AMQP_CHANNEL, 0, PREFETCH, 0);
    offset.key = amqp_cstring_bytes("x-stream-offset");
    offset.value.kind = AMQP_FIELD_KIND_UTF8;
    offset.value.value.bytes = amqp_cstring_bytes("first");
    amqp_basic_consume(conn, DS_AMQP_CHANNEL, ds__amqp_str(queue),
                       amqp_empty_bytes, 0, !stream, 0,
                       (amqp_table_t){stream ? 1 : 0, &offset});
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, errlen, "cannot consume from %s", queue);
        ds__amqp_close(&a);
        return -1;
    }
    while (want < 0 || *messages < want) {
        struct timeval tv = {IDLE_END_S, 0};
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t rr = amqp_consume_message(conn, &env, &tv, 0);
        if (rr.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            rr.library_error == AMQP_STATUS_TIMEOUT)
            break;
        if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
            snprintf(err, errlen, "reading %s failed", queue);
            rc = -1;
            break;
        }
        if (++*messages % (PREFETCH / 2) == 0 && stream)
            amqp_basic_ack(conn, DS_AMQP_CHANNEL, env.delivery_tag, 1);
        if (!ds__amqp_is_marker(&env.message.properties)) {
            keep_id(r, source, &env.message.properties);
            take_event(r, source, src->origin, env.message.body.bytes,
                       env.message.body.len, details);
        }
        amqp_destroy_envelope(&env);
    }
    if (rc == 0 && want >= 0 && *messages < want) {
        snprintf(err, errlen, "%s: %ld of its %ld messages read", queue,
                 *messages, want);
        rc = -1;
    }
    ds__amqp_close(&a);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The writer's log and its commits                                          */

static int read_sql_log(const cc_source *src, cc_result *r, char *err,
                        size_t errlen)
{
    FILE *f = fopen(src->sql_log, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", src->sql_log);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        char *fld[8], *save = NULL;
        int n = 0;
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        for (char *tk = strtok_r(line, "\t", &save); tk && n < 8;
             tk = strtok_r(NULL, "\t", &save))
            fld[n++] = tk;
        const ch_table *t = n == 8 ? ch_table_named(fld[4]) : NULL;
        if (!t || strcmp(fld[0], "S") != 0 || strlen(fld[1]) != 36) {
            snprintf(err, errlen, "%s: a bad line", src->sql_log);
            free(line);
            fclose(f);
            return -1;
        }
        cc_sql c = {0};
        snprintf(c.txid, sizeof c.txid, "%s", fld[1]);
        c.meant_commit = strcmp(fld[3], "commit") == 0;
        c.table = (int)(t - CH_TABLES);
        snprintf(c.pk, sizeof c.pk, "%s", fld[5]);
        c.op = fld[6][0];
        if (strcmp(fld[7], "-") != 0) {
            c.data = xstrdup(fld[7]);
            c.row = cc_row_text(c.table, c.data);
        }
        c.seq = (long)r->nsql;
        c.event = -1;
        if (r->nsql % 1024 == 0)
            r->sql = xrealloc(r->sql, (r->nsql + 1024) * sizeof *r->sql);
        r->sql[r->nsql++] = c;
    }
    free(line);
    fclose(f);
    return 0;
}

static int by_txid(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Marks the changes whose transaction's id is in chaos_sqltx, and counts
 * transactions by outcome. */
static int read_commits(const cc_source *src, cc_result *r, char *err,
                        size_t errlen)
{
    MYSQL *db = ts_mysql_open(src->host, src->port, src->db, 10, 30, 0, err,
                              errlen);
    if (!db)
        return -1;
    if (mysql_query(db, "SELECT id FROM chaos_sqltx") != 0) {
        snprintf(err, errlen, "%s.chaos_sqltx: %s", src->db, mysql_error(db));
        mysql_close(db);
        return -1;
    }
    MYSQL_RES *res = mysql_store_result(db);
    size_t n = res ? (size_t)mysql_num_rows(res) : 0, i = 0;
    char **ids = xrealloc(NULL, (n + 1) * sizeof *ids);
    MYSQL_ROW row;
    while (res && (row = mysql_fetch_row(res)) && i < n)
        ids[i++] = xstrdup(row[0]);
    if (res)
        mysql_free_result(res);
    mysql_close(db);
    qsort(ids, i, sizeof *ids, by_txid);

    for (size_t k = 0; k < r->nsql; k++) {
        cc_sql *c = &r->sql[k];
        const char *key = c->txid;
        c->committed = bsearch(&key, ids, i, sizeof *ids, by_txid) != NULL;
        bool first = k == 0 || strcmp(r->sql[k - 1].txid, c->txid) != 0;
        if (c->committed) {
            r->changes_committed++;
            r->trx_committed += first;
        } else if (!c->meant_commit) {
            r->changes_rolled_back++;
            r->trx_rolled_back += first;
        } else {
            r->changes_failed++;
            r->trx_failed += first;
        }
    }
    for (size_t k = 0; k < i; k++)
        free(ids[k]);
    free(ids);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Matching                                                                  */

static int key_cmp(int ta, const char *pa, int tb, const char *pb)
{
    return ta != tb ? (ta < tb ? -1 : 1) : strcmp(pa, pb);
}

static int ev_order(const void *a, const void *b)
{
    const cc_event *x = a, *y = b;
    int c = key_cmp(x->table, x->pk, y->table, y->pk);
    if (c)
        return c;
    if (x->hlc != y->hlc)
        return x->hlc < y->hlc ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int sql_order(const void *a, const void *b)
{
    const cc_sql *x = a, *y = b;
    int c = key_cmp(x->table, x->pk, y->table, y->pk);
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool same_change(const cc_event *e, const cc_sql *c)
{
    if (e->op != c->op)
        return false;
    return c->op == 'd' || (e->row && c->row && strcmp(e->row, c->row) == 0);
}

/* One row's events ev[e0, e1) and logged changes sql[s0, s1), both in
 * order. */
static void match_row(cc_result *r, size_t e0, size_t e1, size_t s0,
                      size_t s1, FILE *details)
{
    size_t next = e0; /* events before it are taken or skipped */
    for (size_t s = s0; s < s1; s++) {
        cc_sql *c = &r->sql[s];
        if (!c->committed)
            continue;
        size_t e;
        for (e = next; e < e1 && !same_change(&r->ev[e], c); e++)
            ;
        if (e < e1) {
            c->event = (long)e;
            next = e + 1;
            r->matched++;
            continue;
        }
        r->not_captured++;
        if (details)
            fprintf(details,
                    "NOT CAPTURED: committed change %c %s %s of transaction "
                    "%s: no event of it after the row's previous change\n",
                    c->op, CH_TABLES[c->table].name, c->pk, c->txid);
    }
    for (size_t e = e0; e < e1; e++) {
        bool committed = false, rolled_back = false, taken = false;
        long first = -1; /* an earlier event of the same committed change */
        for (size_t s = s0; s < s1; s++) {
            if (!same_change(&r->ev[e], &r->sql[s]))
                continue;
            taken |= r->sql[s].event == (long)e;
            committed |= r->sql[s].committed;
            rolled_back |= !r->sql[s].committed;
            if (r->sql[s].event >= 0 && r->sql[s].event < (long)e)
                first = r->sql[s].event;
        }
        if (committed) {
            if (!taken) {
                r->emitted_again++;
                if (first >= 0)
                    r->ev[e].replay_of_hlc = r->ev[first].hlc;
            }
            continue;
        }
        if (rolled_back)
            r->rolled_back_seen++;
        else
            r->unexplained++;
        if (details)
            fprintf(details, "%s: event %s (%c %s %s, hlc %" PRIu64 ") %s\n",
                    rolled_back ? "ROLLED BACK BUT EMITTED" : "UNEXPLAINED",
                    r->ev[e].id, r->ev[e].op, CH_TABLES[r->ev[e].table].name,
                    r->ev[e].pk, r->ev[e].hlc,
                    rolled_back ? "is a change that never committed"
                                : "is no change the writer logged");
    }
}

static void match(cc_result *r, FILE *details)
{
    size_t e = 0, s = 0;
    while (e < r->nev || s < r->nsql) {
        /* The next row, in key order, of either list. */
        int c = e == r->nev   ? 1
                : s == r->nsql ? -1
                               : key_cmp(r->ev[e].table, r->ev[e].pk,
                                         r->sql[s].table, r->sql[s].pk);
        const int table = c <= 0 ? r->ev[e].table : r->sql[s].table;
        const char *pk = c <= 0 ? r->ev[e].pk : r->sql[s].pk;
        size_t e1 = e, s1 = s;
        while (e1 < r->nev && key_cmp(r->ev[e1].table, r->ev[e1].pk, table,
                                      pk) == 0)
            e1++;
        while (s1 < r->nsql && key_cmp(r->sql[s1].table, r->sql[s1].pk,
                                       table, pk) == 0)
            s1++;
        match_row(r, e, e1, s, s1, details);
        e = e1;
        s = s1;
    }
}

/* Sorted by row and version; an id read twice (from both sources, or
 * published twice) once, with the sources it came from; then counts the
 * events one source lacks. */
static void sort_events(cc_result *r, FILE *details)
{
    size_t out = 0;
    qsort(r->ev, r->nev, sizeof *r->ev, ev_order);
    for (size_t i = 0; i < r->nev; i++) {
        if (out && strcmp(r->ev[out - 1].id, r->ev[i].id) == 0) {
            r->ev[out - 1].sources |= r->ev[i].sources;
            free(r->ev[i].data);
            free(r->ev[i].row);
            continue;
        }
        r->ev[out++] = r->ev[i];
    }
    r->nev = out;
    for (size_t i = 0; i < r->nev; i++) {
        const cc_event *e = &r->ev[i];
        r->not_in_archive += !(e->sources & CC_FROM_ARCHIVE);
        r->not_in_tap += !(e->sources & CC_FROM_TAP);
        if (details && e->sources != (CC_FROM_ARCHIVE | CC_FROM_TAP)) {
            char ts[32];
            ds__rfc3339_ms(e->hlc >> 16, ts);
            fprintf(details, "NOT IN THE %s: event %s (%c %s %s, hlc %" PRIu64
                    ", stamped %s)\n",
                    e->sources & CC_FROM_TAP ? "ARCHIVE" : "TAP", e->id, e->op,
                    CH_TABLES[e->table].name, e->pk, e->hlc, ts);
        }
    }
}

int cc_load(const cc_source *src, cc_result *r, FILE *details, char *err,
            size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (read_sql_log(src, r, err, errlen) != 0 ||
        read_commits(src, r, err, errlen) != 0 ||
        read_source(src, src->archive, true, CC_FROM_ARCHIVE,
                    &r->archive_messages, r, details, err, errlen) != 0 ||
        read_source(src, src->tap, false, CC_FROM_TAP, &r->tap_messages, r,
                    details, err, errlen) != 0)
        return -1;
    r->all_not_in_archive = tap_ids_not_archived(r);
    sort_events(r, details);
    /* The matching sorts the log by row; c->seq keeps the commit order. */
    qsort(r->sql, r->nsql, sizeof *r->sql, sql_order);
    match(r, details);
    return 0;
}

void cc_free(cc_result *r)
{
    for (size_t i = 0; i < r->nev; i++) {
        free(r->ev[i].data);
        free(r->ev[i].row);
    }
    for (size_t i = 0; i < r->nsql; i++) {
        free(r->sql[i].data);
        free(r->sql[i].row);
    }
    free(r->ev);
    free(r->sql);
    free(r->ids[0]);
    free(r->ids[1]);
    memset(r, 0, sizeof *r);
}
