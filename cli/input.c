/* input.c: reads changes and whole events one per line, checks every line before anything is published, then replays them in order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "ids.h"

void cli_item_clear(cli_item *it)
{
    ds__event_clear(&it->ev);
    free(it->key_json);
    free(it->data_json);
    memset(it, 0, sizeof *it);
}

/* The event as the producer would send it must fit apply.max_message_bytes:
 * a change gets the longest id, origin and clock the producer could give. */
static int check_size(ds_event *ev, bool envelope, const ds_config *cfg,
                      char *err, size_t errlen)
{
    ds_event sized = *ev;
    size_t len;
    char *body;

    if (envelope) {
        snprintf(sized.id, sizeof sized.id, "%s",
                 "00000000-0000-7000-8000-000000000000");
        snprintf(sized.origin, sizeof sized.origin, "%s",
                 cfg->node_id[0] ? cfg->node_id : "datasync-cli");
        sized.hlc = UINT64_MAX;
        ds__rfc3339_ms(ds__now_ms(), sized.ts);
    }
    body = ds__event_encode(&sized, &len);
    if (!body)
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    free(body);
    if ((long)len > cfg->apply_max_message_bytes)
        return ds__seterr(err, errlen, DS_ETOOBIG,
                          "the event would be %zu bytes, more than "
                          "apply.max_message_bytes (%ld)",
                          len, cfg->apply_max_message_bytes);
    return 0;
}

int cli_change_build(const char *op, const char *table, const char *key_json,
                     const char *data_json, const ds_config *cfg, cli_item *it,
                     char *err, size_t errlen)
{
    ds_op dop;
    int rc;

    memset(it, 0, sizeof *it);
    it->kind = CLI_KIND_CHANGE;
    if (!op)
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "op: required (create, update or delete)");
    if (!table)
        return ds__seterr(err, errlen, DS_ESCHEMA, "table: required");
    if (!key_json)
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "key: required (a JSON object of the primary-key "
                          "columns)");
    if (ds__op_parse(op, &dop) < 0)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "op: '%.32s' is not create, update or delete", op);
    rc = ds__event_build(&it->ev, dop, table, key_json, data_json, err, errlen);
    if (rc == 0)
        rc = check_size(&it->ev, true, cfg, err, errlen);
    if (rc == 0) {
        it->key_json = strdup(key_json);
        it->data_json = data_json ? strdup(data_json) : NULL;
        if (!it->key_json || (data_json && !it->data_json))
            rc = ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    }
    if (rc < 0)
        cli_item_clear(it);
    return rc;
}

/* A member of a change line as text: NULL when absent or JSON null. The
 * text was checked by ds__event_parse's lexical pass, so json-c prints back
 * every number exactly. */
static const char *member_text(json_object *obj, const char *name)
{
    json_object *v;

    if (!json_object_object_get_ex(obj, name, &v) || !v)
        return NULL;
    if (json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return json_object_to_json_string_ext(
        v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

static int parse_change(json_object *obj, const ds_config *cfg, cli_item *it,
                        char *err, size_t errlen)
{
    static const char *const allowed[] = {"op", "table", "key", "data", NULL};
    json_object *v;
    int rc;

    json_object_object_foreach(obj, name, val)
    {
        size_t i = 0;

        (void)val;
        while (allowed[i] && strcmp(allowed[i], name) != 0)
            i++;
        if (!allowed[i])
            return ds__seterr(err, errlen, DS_ESCHEMA,
                              "%.64s: unknown field (a change has op, table, "
                              "key, data; a whole event also has v, id, "
                              "origin, hlc, ts)",
                              name);
    }
    if (json_object_object_get_ex(obj, "op", &v) &&
        !json_object_is_type(v, json_type_string))
        return ds__seterr(err, errlen, DS_ESCHEMA, "op: must be a string");
    if (json_object_object_get_ex(obj, "table", &v) &&
        !json_object_is_type(v, json_type_string))
        return ds__seterr(err, errlen, DS_ESCHEMA, "table: must be a string");
    if (json_object_object_get_ex(obj, "key", &v) &&
        !json_object_is_type(v, json_type_object))
        return ds__seterr(err, errlen, DS_ESCHEMA, "key: must be an object");
    if (json_object_object_get_ex(obj, "data", &v) && v &&
        !json_object_is_type(v, json_type_object))
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "data: must be an object or null");
    /* Each text lives in its own member's print buffer: all stay valid
     * until obj is freed. */
    rc = cli_change_build(member_text(obj, "op"), member_text(obj, "table"),
                          member_text(obj, "key"), member_text(obj, "data"),
                          cfg, it, err, errlen);
    return rc;
}

int cli_line_parse(const char *line, size_t len, unsigned kinds,
                   const ds_config *cfg, cli_item *it, char *err, size_t errlen)
{
    json_object *obj = NULL;
    char why[DS_ERRMSG_SIZE];
    int rc;

    memset(it, 0, sizeof *it);
    if (memchr(line, '\0', len))
        return ds__seterr(err, errlen, DS_EJSON, "contains a NUL byte");
    /* The event parser is also the strict JSON checker (no clamped integers,
     * no NaN, valid UTF-8): whatever it calls malformed is malformed, and
     * anything else is JSON that json-c reads exactly. */
    rc = ds__event_parse(&it->ev, line, len, why, sizeof why);
    if (rc == 0) {
        it->kind = CLI_KIND_EVENT;
        it->text = line;
        if (!(kinds & CLI_KIND_EVENT)) {
            rc = ds__seterr(err, errlen, DS_ESCHEMA,
                            "a whole event (it has \"v\"), expected a change");
            goto fail;
        }
        rc = check_size(&it->ev, false, cfg, err, errlen);
        if (rc < 0)
            goto fail;
        return 0;
    }
    if (rc != DS_ESCHEMA) {
        rc = ds__seterr(err, errlen, rc, "%s", why);
        goto fail;
    }
    obj = json_tokener_parse(line);
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        rc = ds__seterr(err, errlen, DS_ESCHEMA, "expected a JSON object (%s)",
                        kinds & CLI_KIND_CHANGE ? "a change or a whole event"
                                                : "a whole event");
        goto fail;
    }
    if (json_object_object_get_ex(obj, "v", NULL)) {
        /* A whole event that breaks the schema: the parser's reason. */
        rc = ds__seterr(err, errlen, DS_ESCHEMA, "%s", why);
        goto fail;
    }
    if (!(kinds & CLI_KIND_CHANGE)) {
        rc = ds__seterr(err, errlen, DS_ESCHEMA,
                        "not a whole event (no \"v\"): replay takes events "
                        "as they were sent; datasync publish takes changes");
        goto fail;
    }
    rc = parse_change(obj, cfg, it, err, errlen);
    if (rc < 0)
        goto fail;
    it->text = line;
    it->kind = CLI_KIND_CHANGE;
    json_object_put(obj);
    return 0;

fail:
    json_object_put(obj);
    cli_item_clear(it);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

int cli_input_open(cli_input *in, const cli_ctx *ctx, const char *path,
                   unsigned kinds)
{
    struct stat st;

    memset(in, 0, sizeof *in);
    in->ctx = ctx;
    in->kinds = kinds;
    if (strcmp(path, "-") == 0) {
        in->name = "standard input";
        in->f = stdin;
    } else {
        in->name = path;
        in->f = fopen(path, "r");
        if (!in->f) {
            cli_error(ctx, "cannot open %s: %s", path, strerror(errno));
            return CLI_EXIT_FAILURE;
        }
        in->own_f = true;
    }
    /* A regular file is read twice; anything else (a pipe, a terminal) is
     * kept in an anonymous temporary file during the first pass. */
    if (fstat(fileno(in->f), &st) == 0 && S_ISREG(st.st_mode) &&
        (in->start = ftello(in->f)) >= 0)
        return 0;
    in->start = 0;
    in->copy = tmpfile();
    if (!in->copy) {
        cli_error(ctx, "cannot create a temporary file to hold %s: %s",
                  in->name, strerror(errno));
        cli_input_close(in);
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

void cli_input_close(cli_input *in)
{
    if (in->own_f && in->f)
        fclose(in->f);
    if (in->copy)
        fclose(in->copy);
    in->f = in->copy = NULL;
    free(in->invalid_lines);
    in->invalid_lines = NULL;
}

/* The line without its end ("\n", "\r\n") and trailing blanks; whether it
 * holds anything at all. */
static bool trim(char *line, ssize_t *len)
{
    size_t i = 0;

    while (*len > 0 && strchr(" \t\r\n", line[*len - 1]))
        line[--*len] = '\0';
    while ((ssize_t)i < *len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return (ssize_t)i < *len;
}

typedef int (*line_fn)(cli_input *in, size_t lineno, char *line, size_t len,
                       void *ctx);

/* Calls fn for every non-blank line of f, numbered from 1 as in the file. */
static int each_line(cli_input *in, FILE *f, line_fn fn, void *ctx)
{
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;

    errno = 0;
    while (!cli_interrupted() && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (in->copy && f == in->f &&
            (fwrite(line, 1, (size_t)len, in->copy) != (size_t)len ||
             (len > 0 && line[len - 1] != '\n' && fputc('\n', in->copy) < 0))) {
            cli_error(in->ctx, "cannot keep a copy of %s: %s", in->name,
                      strerror(errno));
            rc = CLI_EXIT_FAILURE;
            break;
        }
        if (!trim(line, &len))
            continue;
        rc = fn(in, lineno, line, (size_t)len, ctx);
        if (rc)
            break;
    }
    if (rc == 0 && ferror(f) && !cli_interrupted()) {
        cli_error(in->ctx, "cannot read %s: %s", in->name, strerror(errno));
        rc = CLI_EXIT_FAILURE;
    }
    free(line);
    return rc;
}

static int check_line(cli_input *in, size_t lineno, char *line, size_t len,
                      void *ctx)
{
    char err[DS_ERRMSG_SIZE];
    cli_item it;

    (void)ctx;
    if (cli_line_parse(line, len, in->kinds, &in->ctx->cfg, &it, err,
                       sizeof err) < 0) {
        size_t *lines =
            realloc(in->invalid_lines, (in->invalid + 1) * sizeof *lines);
        cli_error(in->ctx, "line %zu: %s", lineno, err);
        if (!lines) {
            cli_error(in->ctx, "out of memory");
            return CLI_EXIT_FAILURE;
        }
        in->invalid_lines = lines;
        in->invalid_lines[in->invalid++] = lineno;
        return 0;
    }
    cli_item_clear(&it);
    in->valid++;
    return 0;
}

int cli_input_check(cli_input *in)
{
    in->valid = in->invalid = in->next_invalid = 0;
    return each_line(in, in->f, check_line, NULL);
}

struct each_ctx {
    int (*fn)(cli_item *it, void *ctx);
    void *ctx;
};

static int publish_line(cli_input *in, size_t lineno, char *line, size_t len,
                        void *ctx)
{
    struct each_ctx *e = ctx;
    char err[DS_ERRMSG_SIZE];
    cli_item it;
    int rc;

    /* Lines found invalid in the first pass were reported: skipped. */
    if (in->next_invalid < in->invalid &&
        in->invalid_lines[in->next_invalid] == lineno) {
        in->next_invalid++;
        return 0;
    }
    if (cli_line_parse(line, len, in->kinds, &in->ctx->cfg, &it, err,
                       sizeof err) < 0) {
        cli_error(in->ctx,
                  "line %zu: %s: %s changed after it was checked; the lines "
                  "before were published, the rest were not",
                  lineno, err, in->name);
        return CLI_EXIT_INPUT;
    }
    it.line = lineno;
    rc = e->fn(&it, e->ctx);
    cli_item_clear(&it);
    return rc;
}

int cli_input_each(cli_input *in, int (*fn)(cli_item *it, void *ctx),
                   void *fnctx)
{
    struct each_ctx e = {fn, fnctx};
    FILE *f = in->copy ? in->copy : in->f;

    if (fseeko(f, (off_t)in->start, SEEK_SET) != 0) {
        cli_error(in->ctx, "cannot read %s again: %s", in->name,
                  strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    return each_line(in, f, publish_line, &e);
}
