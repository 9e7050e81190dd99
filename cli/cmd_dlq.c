/* cmd_dlq.c: datasync dlq list|export|replay|purge: a node's dead letters, read without removing, republished with confirms, purged. */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "topology.h"

static const char usage[] =
    "Usage: datasync [-c FILE] dlq list --node ID [--json]\n"
    "       datasync [-c FILE] dlq export --node ID [FILE]\n"
    "       datasync [-c FILE] dlq replay --node ID\n"
    "       datasync [-c FILE] dlq purge --node ID [--from FILE] --yes\n"
    "\n"
    "The dead letters of a node: the changes its consumer could not apply,\n"
    "kept in the queue datasync.<ID>.dead with the reason in the header\n"
    "x-datasync-error. --node defaults to node.id.\n"
    "\n"
    "  list     id, table, op, when and reason of each dead letter (they "
    "stay)\n"
    "  export   the original events, one per line, to FILE or standard output\n"
    "           (they stay): fix them, then datasync replay --node ID FILE\n"
    "  replay   each dead letter back to datasync.<ID>, removed from the\n"
    "           dead-letter queue only once the broker confirmed its "
    "republish\n"
    "  purge    deletes every dead letter (asks for --yes)\n"
    "\n"
    "Run 'datasync dlq COMMAND --help' for the options of one.\n";

static const char usage_list[] =
    "Usage: datasync [-c FILE] dlq list --node ID [--json]\n"
    "\n"
    "Lists the dead letters of node ID (queue datasync.<ID>.dead) without\n"
    "removing them: ID, TABLE, OP, WHEN (header x-datasync-dead-at, else the\n"
    "message's timestamp) and REASON (header x-datasync-error).\n"
    "\n"
    "  --node ID   the node (default: node.id)\n"
    "  --json      a JSON array on standard output\n"
    "  -h, --help  this help\n";

static const char usage_export[] =
    "Usage: datasync [-c FILE] dlq export --node ID [FILE]\n"
    "\n"
    "Writes the original event of each dead letter of node ID, one per line,\n"
    "to FILE (replaced) or standard output, without removing them. Fix the\n"
    "lines (or the table), then: datasync replay --node ID FILE, and\n"
    "datasync dlq purge --node ID --from FILE --yes.\n"
    "\n"
    "  --node ID   the node (default: node.id)\n"
    "  -h, --help  this help\n";

static const char usage_replay[] =
    "Usage: datasync [-c FILE] dlq replay --node ID\n"
    "\n"
    "Republishes each dead letter of node ID, as it is, to the node's queue\n"
    "datasync.<ID> (persistent, mandatory, confirmed), and removes it from\n"
    "datasync.<ID>.dead only once the broker confirmed the republish. A dead\n"
    "letter the broker did not confirm stays. Exit status 6 if any stayed.\n"
    "\n"
    "  --node ID   the node (default: node.id)\n"
    "  -h, --help  this help\n";

static const char usage_purge[] =
    "Usage: datasync [-c FILE] dlq purge --node ID [--from FILE] --yes\n"
    "\n"
    "Deletes every dead letter of node ID, or with --from only those whose\n"
    "event id is in FILE (a dlq export): letters that died after the export\n"
    "stay. Without --yes, only says how many there are and refuses (exit\n"
    "status 2).\n"
    "\n"
    "  --node ID    the node (default: node.id)\n"
    "  --from FILE  only the dead letters of this export\n"
    "  --yes        really delete\n"
    "  -h, --help   this help\n";

/* The options of a subcommand. */
typedef struct dlq_opts {
    bool json;        /* list */
    const char *file; /* export: NULL or "-" for standard output */
    bool yes;         /* purge */
    const char *from; /* purge: only the ids in this export */
} dlq_opts;

typedef struct dlq {
    cli_ctx *ctx;
    const char *node;
    char queue[128], dead_queue[128];
    uint32_t count; /* dead letters when the command started */
    cli_broker b;
    char err[DS_ERRMSG_SIZE];
} dlq;

/* Prints d->err and returns the exit code of rc (a DS_E code). */
static int fail(dlq *d, int rc)
{
    cli_error(d->ctx, "%s", d->err);
    return cli_exit_code(rc);
}

/* Connects and counts the dead letters. Returns 0 or an exit code. */
static int dlq_open(dlq *d, const char *node)
{
    int rc = cli_config(d->ctx);

    if (rc)
        return rc;
    rc = cli_node(d->ctx, node, &d->node);
    if (rc)
        return rc;
    ds__topology_node_queue(d->node, d->queue, sizeof d->queue);
    ds__topology_dead_queue(d->node, d->dead_queue, sizeof d->dead_queue);
    rc = cli_broker_open(&d->b, d->ctx, d->err, sizeof d->err);
    if (rc == 0)
        rc = cli_queue_inspect(&d->b, d->dead_queue, &d->count, NULL, d->err,
                               sizeof d->err);
    return rc < 0 ? fail(d, rc) : 0;
}

/* Removes a dead letter taken by dlq_walk. Returns an AMQP status. */
static int ack_dead_letter(dlq *d, uint64_t tag)
{
    return d->b.amqp.conn
               ? amqp_basic_ack(d->b.amqp.conn, DS_AMQP_CHANNEL, tag, 0)
               : AMQP_STATUS_CONNECTION_CLOSED;
}

typedef int (*msg_fn)(dlq *d, cli_msg *m, void *ctx);

/* basic.get every dead letter there was at the start (later ones, e.g. a
 * replayed change dead-lettered again, are not taken), unacked: what fn
 * does not ack goes back to the queue when the connection closes. Returns
 * 0 or the first error of fn or the broker (in d->err). */
static int dlq_walk(dlq *d, msg_fn fn, void *ctx)
{
    for (uint32_t i = 0; i < d->count && !cli_interrupted(); i++) {
        bool got;
        cli_msg m;
        int rc = cli_get(&d->b, d->dead_queue, &m, &got, d->err, sizeof d->err);

        if (rc < 0)
            return rc;
        if (!got)
            break;
        rc = fn(d, &m, ctx);
        cli_msg_free(&m);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A copy of the body with its NUL. */
static char *body_text(const cli_msg *m)
{
    char *s = malloc(m->msg.body.len + 1);

    if (s) {
        memcpy(s, m->msg.body.bytes, m->msg.body.len);
        s[m->msg.body.len] = '\0';
    }
    return s;
}

/* ------------------------------------------------------------------------ */
/* list                                                                      */

typedef struct dead_info {
    char id[64], table[72], op[16], when[64], reason[1024];
} dead_info;

static void copy_field(json_object *obj, const char *name, char *out,
                       size_t len)
{
    json_object *v;

    if (obj && json_object_object_get_ex(obj, name, &v) &&
        json_object_is_type(v, json_type_string))
        snprintf(out, len, "%s", json_object_get_string(v));
}

static void describe(const cli_msg *m, dead_info *di)
{
    const amqp_basic_properties_t *p = &m->msg.properties;
    char *body = body_text(m);
    json_object *obj = body ? json_tokener_parse(body) : NULL;

    memset(di, 0, sizeof *di);
    if (obj && !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        obj = NULL;
    }
    copy_field(obj, "id", di->id, sizeof di->id);
    copy_field(obj, "table", di->table, sizeof di->table);
    copy_field(obj, "op", di->op, sizeof di->op);
    if (!di->id[0] && (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG))
        snprintf(di->id, sizeof di->id, "%.*s", (int)p->message_id.len,
                 (const char *)p->message_id.bytes);
    cli_msg_header(m, "x-datasync-error", di->reason, sizeof di->reason);
    cli_msg_header(m, "x-datasync-dead-at", di->when, sizeof di->when);
    if (!di->when[0] && (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG))
        cli_format_time(p->timestamp, di->when, sizeof di->when);
    json_object_put(obj);
    free(body);
}

static json_object *string_or_null(const char *s)
{
    return s[0] ? json_object_new_string(s) : NULL;
}

static int list_one(dlq *d, cli_msg *m, void *ctx)
{
    json_object *array = ctx;
    dead_info di;

    (void)d;
    describe(m, &di);
    if (array) {
        json_object *o = json_object_new_object();
        if (!o)
            return ds__seterr(d->err, sizeof d->err, DS_ENOMEM,
                              "out of memory");
        json_object_object_add(o, "id", string_or_null(di.id));
        json_object_object_add(o, "table", string_or_null(di.table));
        json_object_object_add(o, "op", string_or_null(di.op));
        json_object_object_add(o, "when", string_or_null(di.when));
        json_object_object_add(o, "reason", string_or_null(di.reason));
        json_object_array_add(array, o);
        return 0;
    }
    printf("%-36s  %-20s  %-6s  %-20s  %s\n", di.id[0] ? di.id : "-",
           di.table[0] ? di.table : "-", di.op[0] ? di.op : "-",
           di.when[0] ? di.when : "-", di.reason[0] ? di.reason : "-");
    return 0;
}

static int dlq_list(dlq *d, const dlq_opts *o)
{
    bool json = o->json;
    json_object *array = json ? json_object_new_array() : NULL;
    int rc;

    if (json && !array)
        return fail(
            d, ds__seterr(d->err, sizeof d->err, DS_ENOMEM, "out of memory"));
    if (!json)
        printf("%-36s  %-20s  %-6s  %-20s  %s\n", "ID", "TABLE", "OP", "WHEN",
               "REASON");
    rc = dlq_walk(d, list_one, array);
    if (rc == 0 && json)
        puts(json_object_to_json_string_ext(
            array, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(array);
    return rc < 0 ? fail(d, rc) : CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* export                                                                    */

struct export_ctx {
    FILE *out;
    size_t written, skipped;
};

/* body (JSON, NUL-terminated) on one line, every value kept: a break
 * between tokens becomes a space; a control character inside a string,
 * which json-c reads as it is but a strict reader refuses, is written
 * escaped, the same character. NULL when out of memory. */
static char *json_on_one_line(const char *body)
{
    char *out = malloc(strlen(body) * 6 + 1), *o = out;
    bool in_string = false;

    if (!out)
        return NULL;
    for (const char *p = body; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (!in_string) {
            *o++ = ch == '\n' || ch == '\r' ? ' ' : (char)ch;
            in_string = ch == '"';
        } else if (ch == '\\' && p[1]) {
            *o++ = *p++;
            *o++ = *p;
        } else if (ch == '"') {
            *o++ = '"';
            in_string = false;
        } else if (ch < 0x20) {
            const char *esc = ch == '\n'   ? "\\n"
                              : ch == '\r' ? "\\r"
                              : ch == '\t' ? "\\t"
                                           : NULL;
            o += esc ? sprintf(o, "%s", esc) : sprintf(o, "\\u%04x", ch);
        } else {
            *o++ = (char)ch;
        }
    }
    *o = '\0';
    return out;
}

static int export_one(dlq *d, cli_msg *m, void *ctx)
{
    struct export_ctx *e = ctx;
    const char *bytes = m->msg.body.bytes;
    size_t len = m->msg.body.len;
    char *body = NULL;
    const char *line = bytes;
    int rc = 0;

    /* One event per line: a pretty-printed body is put on one line, every
     * value left as it reads; a body that is not JSON cannot be. */
    if (memchr(bytes, '\n', len) || memchr(bytes, '\r', len) ||
        memchr(bytes, '\0', len)) {
        json_object *obj;

        body = body_text(m);
        obj =
            body && !memchr(bytes, '\0', len) ? json_tokener_parse(body) : NULL;
        if (!obj) {
            dead_info di;
            describe(m, &di);
            cli_warn(d->ctx,
                     "dead letter %s: its body spans several lines and is not "
                     "JSON: not exported (see dlq list)",
                     di.id[0] ? di.id : "(no id)");
            e->skipped++;
            free(body);
            return 0;
        }
        json_object_put(obj);
        line = json_on_one_line(body);
        free(body);
        body = (char *)line;
        if (!line)
            return ds__seterr(d->err, sizeof d->err, DS_ENOMEM,
                              "out of memory");
        len = strlen(line);
    }
    if (len && fwrite(line, 1, len, e->out) != len)
        rc = -1;
    if (rc == 0 && fputc('\n', e->out) == EOF)
        rc = -1;
    free(body);
    if (rc < 0)
        return ds__seterr(d->err, sizeof d->err, DS_EIO, "cannot write: %s",
                          strerror(errno));
    e->written++;
    return 0;
}

static int dlq_export(dlq *d, const dlq_opts *o)
{
    const char *path = o->file;
    struct export_ctx e = {0};
    bool to_file = path && strcmp(path, "-") != 0;
    int rc;

    e.out = to_file ? fopen(path, "w") : stdout;
    if (!e.out)
        return fail(d,
                    ds__seterr(d->err, sizeof d->err, DS_EIO,
                               "cannot create %s: %s", path, strerror(errno)));
    rc = dlq_walk(d, export_one, &e);
    /* The file is complete and on disk before the user acts on it. */
    if (fflush(e.out) != 0 || (to_file && fsync(fileno(e.out)) != 0))
        rc = rc ? rc
                : ds__seterr(
                      d->err, sizeof d->err, DS_EIO, "cannot write %s: %s",
                      to_file ? path : "standard output", strerror(errno));
    if (to_file && fclose(e.out) != 0 && rc == 0)
        rc = ds__seterr(d->err, sizeof d->err, DS_EIO, "cannot write %s: %s",
                        path, strerror(errno));
    fprintf(stderr,
            "datasync dlq export: %zu dead letter%s of %s exported to "
            "%s%s\n",
            e.written, e.written == 1 ? "" : "s", d->dead_queue,
            to_file ? path : "standard output",
            e.skipped ? " (some skipped, see above)" : "");
    if (rc < 0)
        return fail(d, rc);
    return e.skipped ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* replay                                                                    */

struct replay_ctx {
    dlq *d;
    cli_pub pub;
    size_t sent, removed, kept;
    int ack_rc;
};

/* Once the republish is confirmed, and only then, the dead letter goes. */
static void on_republished(void *ctx, uint64_t tag, const char *id, int result)
{
    struct replay_ctx *r = ctx;
    dlq *d = r->d;
    int st;

    if (result != 0) {
        r->kept++;
        cli_error(d->ctx,
                  "dead letter %s: republish to %s not confirmed (%s): "
                  "it stays in %s",
                  id[0] ? id : "(no id)", d->queue,
                  result == DS_EUNROUTABLE ? "unroutable" : ds_strerror(result),
                  d->dead_queue);
        return;
    }
    st = ack_dead_letter(d, tag);
    if (st != AMQP_STATUS_OK) {
        /* It was republished: replaying it again later is harmless. */
        r->kept++;
        if (!r->ack_rc)
            r->ack_rc =
                ds__amqp_status_error(st, "basic.ack", d->err, sizeof d->err);
        return;
    }
    r->removed++;
}

static int replay_one(dlq *d, cli_msg *m, void *ctx)
{
    struct replay_ctx *r = ctx;
    amqp_basic_properties_t props = m->msg.properties;
    const amqp_table_t *old = &m->msg.properties.headers;
    amqp_table_entry_t *entries = NULL;
    dead_info di;
    int n = 0, rc;

    /* Confirms are matched to returns by message_id: one that has none
     * (not published by libdatasync) gets its event's id, or one of its
     * own; a return matched to another message would get this dead letter
     * removed though its republish went nowhere. */
    describe(m, &di);
    if (!(props._flags & AMQP_BASIC_MESSAGE_ID_FLAG)) {
        if (!di.id[0])
            snprintf(di.id, sizeof di.id, "datasync-dlq-%llu",
                     (unsigned long long)m->tag);
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes(di.id);
    }

    /* The same message, without the reasons of its death: the consumer
     * writes new ones if it fails again. */
    if (props._flags & AMQP_BASIC_HEADERS_FLAG) {
        entries = malloc(((size_t)old->num_entries + 1) * sizeof *entries);
        if (!entries)
            return ds__seterr(d->err, sizeof d->err, DS_ENOMEM,
                              "out of memory");
        for (int i = 0; i < old->num_entries; i++) {
            const amqp_bytes_t *k = &old->entries[i].key;
            if (k->len > 11 && memcmp(k->bytes, "x-datasync-", 11) == 0)
                continue;
            entries[n++] = old->entries[i];
        }
        props.headers.num_entries = n;
        props.headers.entries = entries;
    }
    props._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    rc = cli_pub_send(&r->pub, "", d->queue, &props, m->msg.body, m->tag,
                      d->err, sizeof d->err);
    free(entries);
    if (rc == 0)
        r->sent++;
    return rc;
}

static int dlq_replay(dlq *d, const dlq_opts *o)
{
    struct replay_ctx r = {.d = d};
    int rc;

    (void)o;
    rc = cli_queue_inspect(&d->b, d->queue, NULL, NULL, d->err, sizeof d->err);
    if (rc == 0)
        rc = cli_pub_open(&r.pub, &d->b, 256,
                          d->ctx->cfg.producer_confirm_timeout_ms,
                          on_republished, &r, d->err, sizeof d->err);
    if (rc < 0)
        return fail(d, rc);
    cli_catch_interrupts();
    rc = dlq_walk(d, replay_one, &r);
    /* What went out is waited for even after an error: each confirmed
     * republish still gets its dead letter removed. */
    {
        char err[DS_ERRMSG_SIZE];
        int frc = cli_pub_finish(&r.pub, err, sizeof err);

        if (rc == 0 && frc < 0) {
            rc = frc;
            snprintf(d->err, sizeof d->err, "%s", err);
        }
    }
    cli_pub_close(&r.pub, rc < 0 ? rc : DS_ETIMEOUT);
    printf("dlq replay: %zu dead letter%s republished to %s and removed from "
           "%s, %zu kept\n",
           r.removed, r.removed == 1 ? "" : "s", d->queue, d->dead_queue,
           r.kept);
    fflush(stdout);
    if (rc == 0)
        rc = r.ack_rc;
    if (rc < 0)
        return fail(d, rc);
    if (cli_interrupted()) {
        cli_error(d->ctx, "interrupted: the other dead letters stay in %s",
                  d->dead_queue);
        return CLI_EXIT_INTERRUPTED;
    }
    return r.kept ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* purge and the dispatch                                                    */

/* The event ids of an export, sorted for bsearch, each with how many
 * letters of it the export holds: a change replayed from it that fails
 * again dies again under the same id, after the export, and stays. */
struct id_count {
    char *id;
    size_t n;
};

struct id_set {
    struct id_count *ids;
    size_t n;
    size_t removed, kept;
};

static int compare_ids(const void *a, const void *b)
{
    return strcmp(((const struct id_count *)a)->id,
                  ((const struct id_count *)b)->id);
}

static void id_set_free(struct id_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        free(set->ids[i].id);
    free(set->ids);
}

/* Sorts the ids and folds the repeated ones into counts. */
static void count_ids(struct id_set *set)
{
    size_t out = 0;

    if (set->n)
        qsort(set->ids, set->n, sizeof *set->ids, compare_ids);
    for (size_t i = 0; i < set->n; i++) {
        if (out > 0 && strcmp(set->ids[out - 1].id, set->ids[i].id) == 0) {
            set->ids[out - 1].n++;
            free(set->ids[i].id);
        } else {
            set->ids[out++] = set->ids[i];
        }
    }
    set->n = out;
}

/* Reads the "id" of each line of path. Returns 0 or a DS_E code (d->err). */
static int read_ids(dlq *d, const char *path, struct id_set *set)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;

    if (!f)
        return ds__seterr(d->err, sizeof d->err, DS_EIO, "cannot open %s: %s",
                          path, strerror(errno));
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        json_object *obj = json_tokener_parse(line), *id;
        struct id_count *grown;
        if (obj && json_object_object_get_ex(obj, "id", &id) &&
            json_object_is_type(id, json_type_string)) {
            grown = realloc(set->ids, (set->n + 1) * sizeof *grown);
            if (grown)
                set->ids = grown;
            if (!grown ||
                !(grown[set->n].id = strdup(json_object_get_string(id))))
                rc = ds__seterr(d->err, sizeof d->err, DS_ENOMEM,
                                "out of memory");
            else
                grown[set->n++].n = 1;
        }
        json_object_put(obj);
    }
    if (rc == 0 && ferror(f))
        rc = ds__seterr(d->err, sizeof d->err, DS_EIO, "cannot read %s: %s",
                        path, strerror(errno));
    free(line);
    fclose(f);
    count_ids(set);
    return rc;
}

/* Acks the dead letter when the export holds one more of its id (the
 * queue gives the oldest first: the exported ones); the others go back to
 * the queue when the connection closes. */
static int purge_one(dlq *d, cli_msg *m, void *ctx)
{
    struct id_set *set = ctx;
    dead_info di;
    struct id_count key = {di.id, 0}, *found;

    describe(m, &di);
    found = di.id[0]
                ? bsearch(&key, set->ids, set->n, sizeof *set->ids, compare_ids)
                : NULL;
    if (!found || found->n == 0) {
        set->kept++;
        return 0;
    }
    int st = ack_dead_letter(d, m->tag);
    if (st != AMQP_STATUS_OK)
        return ds__amqp_status_error(st, "basic.ack", d->err, sizeof d->err);
    found->n--;
    set->removed++;
    return 0;
}

static int purge_listed(dlq *d, const char *path)
{
    struct id_set set = {0};
    int rc = read_ids(d, path, &set);

    if (rc == 0) {
        cli_catch_interrupts();
        rc = dlq_walk(d, purge_one, &set);
    }
    id_set_free(&set);
    if (rc < 0)
        return fail(d, rc);
    printf("dlq purge: %zu dead letter%s of %s deleted from %s, %zu kept\n",
           set.removed, set.removed == 1 ? "" : "s", path, d->dead_queue,
           set.kept);
    if (cli_interrupted()) {
        cli_error(d->ctx, "interrupted: the other dead letters stay in %s",
                  d->dead_queue);
        return CLI_EXIT_INTERRUPTED;
    }
    return CLI_EXIT_OK;
}

static int dlq_purge(dlq *d, const dlq_opts *o)
{
    uint32_t purged = 0;
    int rc;

    if (!o->yes)
        return cli_usage_error(d->ctx,
                               "refusing to delete the %u dead letter%s of %s "
                               "without --yes",
                               d->count, d->count == 1 ? "" : "s",
                               d->dead_queue);
    if (o->from)
        return purge_listed(d, o->from);
    rc = cli_queue_purge(&d->b, d->dead_queue, &purged, d->err, sizeof d->err);
    if (rc < 0)
        return fail(d, rc);
    printf("dlq purge: %u dead letter%s deleted from %s\n", purged,
           purged == 1 ? "" : "s", d->dead_queue);
    return CLI_EXIT_OK;
}

int cli_cmd_dlq(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"node", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"yes", no_argument, NULL, 'y'},
        {"from", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    /* Which options each subcommand takes. */
    static const struct {
        const char *name, *cmd, *help;
        bool json, yes, file;
        int (*run)(dlq *d, const dlq_opts *o);
    } subs[] = {
        {"list", "dlq list", usage_list, true, false, false, dlq_list},
        {"export", "dlq export", usage_export, false, false, true, dlq_export},
        {"replay", "dlq replay", usage_replay, false, false, false, dlq_replay},
        {"purge", "dlq purge", usage_purge, false, true, false, dlq_purge},
    };
    const char *node = NULL;
    dlq_opts o = {0};
    size_t s;
    dlq d;
    int c, rc;

    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 &&
            (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        }
        return cli_usage_error(ctx, "which one? list, export, replay or purge");
    }
    for (s = 0; s < sizeof subs / sizeof subs[0]; s++)
        if (strcmp(argv[1], subs[s].name) == 0)
            break;
    if (s == sizeof subs / sizeof subs[0])
        return cli_usage_error(ctx,
                               "unknown subcommand '%s' (list, export, replay, "
                               "purge)",
                               argv[1]);
    ctx->cmd = subs[s].cmd;
    argc--;
    argv++;
    optind = 0; /* GNU getopt starts over at argv[1] */
    while ((c = cli_getopt(ctx, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case 'n':
            node = optarg;
            break;
        case 'j':
            if (!subs[s].json)
                return cli_usage_error(ctx, "unknown option --json");
            o.json = true;
            break;
        case 'y':
            if (!subs[s].yes)
                return cli_usage_error(ctx, "unknown option --yes");
            o.yes = true;
            break;
        case 'f':
            if (!subs[s].yes) /* purge's, as --yes */
                return cli_usage_error(ctx, "unknown option --from");
            o.from = optarg;
            break;
        case 'h':
            fputs(subs[s].help, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (subs[s].file && optind < argc)
        o.file = argv[optind++];
    if (optind < argc)
        return cli_usage_error(ctx, "unexpected argument '%s'", argv[optind]);

    memset(&d, 0, sizeof d);
    d.ctx = ctx;
    rc = dlq_open(&d, node);
    if (rc == 0)
        rc = subs[s].run(&d, &o);
    cli_broker_close(&d.b);
    return rc;
}
