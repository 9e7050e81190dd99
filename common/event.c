/* event.c: the change event v1: JSON decoding, validation, encoding. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "event.h"

/* MySQL's limit for table and column names, which origin shares. */
#define NAME_MAX_CHARS 64
/* Nanoseconds: the finest clock anyone stamps events with. */
#define TS_FRACTION_MAX 9

#define UUID_SHAPE "a UUID (8-4-4-4-12 hex digits)"
#define ORIGIN_SHAPE "a node id matching [A-Za-z0-9._-]{1,64}"
#define TS_SHAPE "an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS[.fraction]Z)"
#define TABLE_SHAPE "a table name matching [A-Za-z_][A-Za-z0-9_]{0,63}"

/* The contract's top-level fields. */
static const char *const event_fields[] = {"v",  "id",    "origin", "hlc", "ts",
                                           "op", "table", "key",    "data"};

/* Key columns identify the row, so unlike row data they cannot be null. */
enum column_set { COLUMNS_KEY, COLUMNS_ROW };

typedef int (*syntax_fn)(const char *s, size_t len);

/* ------------------------------------------------------------------------ */
/* Syntax of the text fields. Explicit character classes rather than <ctype.h>
 * so the locale can never widen what the contract allows. */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_hex(char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_json_punct(char c)
{
    return c == '{' || c == '}' || c == '[' || c == ']' || c == ':' || c == ',';
}

static int valid_uuid(const char *s, size_t len)
{
    if (len != 36)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i]))
            return 0;
    }
    return 1;
}

static int valid_origin(const char *s, size_t len)
{
    if (len < 1 || len > NAME_MAX_CHARS)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '.' && s[i] != '_' &&
            s[i] != '-')
            return 0;
    return 1;
}

static int valid_table(const char *s, size_t len)
{
    if (len < 1 || len > NAME_MAX_CHARS || is_digit(s[0]))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_')
            return 0;
    return 1;
}

/* Two digits at s as a number, or -1. */
static int two_digits(const char *s)
{
    if (!is_digit(s[0]) || !is_digit(s[1]))
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* YYYY-MM-DDTHH:MM:SS[.fraction]Z. Days are checked against the month but
 * February always allows 29: the schema's regex cannot know leap years and
 * both validators must agree. 60 seconds is RFC 3339's leap second. */
static int valid_ts(const char *s, size_t len)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    static const int month_days[] = {31, 29, 31, 30, 31, 30,
                                     31, 31, 30, 31, 30, 31};
    const size_t base = sizeof(shape) - 1;
    int month, day;
    size_t i;

    if (len < base + 1 || s[len - 1] != 'Z')
        return 0;
    for (i = 0; i < base; i++)
        if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != shape[i])
            return 0;
    if (len > base + 1) { /* a fraction between the seconds and the Z */
        size_t digits = len - base - 2;
        if (s[base] != '.' || digits < 1 || digits > TS_FRACTION_MAX)
            return 0;
        for (i = base + 1; i < len - 1; i++)
            if (!is_digit(s[i]))
                return 0;
    }
    month = two_digits(s + 5);
    day = two_digits(s + 8);
    return month >= 1 && month <= 12 && day >= 1 &&
           day <= month_days[month - 1] && two_digits(s + 11) <= 23 &&
           two_digits(s + 14) <= 59 && two_digits(s + 17) <= 60;
}

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (is_digit(c))
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard alphabet, padded to a multiple of 4, '=' only at the end, and
 * the bits the padding leaves over all zero: ds__base64_decode refuses
 * anything else, and an event that validates must also apply. */
static int valid_base64(const char *s, size_t len)
{
    size_t pad = 0;

    if (len % 4 != 0)
        return 0;
    while (pad < len && pad < 3 && s[len - 1 - pad] == '=')
        pad++;
    if (pad > 2)
        return 0;
    for (size_t i = 0; i < len - pad; i++)
        if (base64_value(s[i]) < 0)
            return 0;
    if (pad > 0 && (base64_value(s[len - pad - 1]) & (pad == 2 ? 0x0F : 0x03)))
        return 0;
    return 1;
}

/* Characters, not bytes: column names are limited in characters, like the
 * schema's maxLength. The tokener has already checked the UTF-8. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

int ds__valid_table_name(const char *s)
{
    return s && valid_table(s, strlen(s));
}

int ds__valid_origin(const char *s)
{
    return s && valid_origin(s, strlen(s));
}

int ds__valid_uuid(const char *s)
{
    return s && valid_uuid(s, strlen(s));
}

const char *ds__op_name(ds_op op)
{
    switch (op) {
    case DS_OP_CREATE:
        return "create";
    case DS_OP_UPDATE:
        return "update";
    case DS_OP_DELETE:
        return "delete";
    }
    return NULL;
}

int ds__op_parse(const char *name, ds_op *out)
{
    static const ds_op ops[] = {DS_OP_CREATE, DS_OP_UPDATE, DS_OP_DELETE};

    for (size_t i = 0; name && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(name, ds__op_name(ops[i])) == 0) {
            *out = ops[i];
            return 0;
        }
    }
    return DS_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* JSON text. */

/* Length of the JSON number at s[0..len), 0 if it is not one. *range_ok is
 * cleared for an integer json-c would silently clamp to 64 bits. */
static size_t scan_number(const char *s, size_t len, int *range_ok)
{
    size_t i = 0, digits;
    int neg = 0, integer = 1;

    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i < len && s[i] == '0')
        i++;
    else if (i < len && is_digit(s[i]))
        while (i < len && is_digit(s[i]))
            i++;
    else
        return 0;
    digits = i - (size_t)neg;
    if (i < len && s[i] == '.') {
        integer = 0;
        if (++i >= len || !is_digit(s[i]))
            return 0;
        while (i < len && is_digit(s[i]))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        integer = 0;
        if (++i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || !is_digit(s[i]))
            return 0;
        while (i < len && is_digit(s[i]))
            i++;
    }
    /* json-c's strict mode catches "01" but not "-01" or "1.5.2": a number
     * must end where the next token starts. */
    if (i < len && s[i] != '\0' && (is_digit(s[i]) || strchr(".eE+-", s[i])))
        return 0;
    if (integer) {
        const char *limit =
            neg ? "9223372036854775808" : "18446744073709551615";
        size_t limit_len = strlen(limit);
        *range_ok = digits < limit_len || (digits == limit_len &&
                                           memcmp(s + neg, limit, digits) <= 0);
    }
    return i;
}

/* Scans the string that opens at s[*i] and leaves *i past its closing
 * quote. Returns -1 at a raw control character (*i on it), else 1 if the
 * string holds the escape \u0000, else 0. */
static int scan_string(const char *s, size_t len, size_t *i)
{
    int nul = 0;

    for (++*i; *i < len && s[*i] != '"'; ++*i) {
        if ((unsigned char)s[*i] < 0x20)
            return -1;
        if (s[*i] == '\\') {
            nul |= len - *i > 5 && memcmp(s + *i + 1, "u0000", 5) == 0;
            ++*i; /* json-c checks what the escape says */
        }
    }
    ++*i;
    return nul;
}

/* Whether the string that ended just before s[i] is a member name. */
static int is_member_name(const char *s, size_t len, size_t i)
{
    while (i < len && is_json_space(s[i]))
        i++;
    return i < len && s[i] == ':';
}

/* json-c's tokener, even in strict mode, accepts some text that is not JSON
 * ('single quotes', NaN, Infinity, 1., raw control characters in strings),
 * clamps integers beyond 64 bits without a word, which would replicate a
 * wrong value, and cuts member names at \u0000, so {"v\u0000x": 2} would
 * replace "v". This lexical pass rejects exactly those; json-c checks the
 * rest. Returns 0, or -1 with the offset and reason. */
static int check_json_lexemes(const char *s, size_t len, size_t *at,
                              const char **why)
{
    size_t i = 0;

    while (i < len) {
        char c = s[i];
        if (c == '"') {
            size_t start = i;
            int nul = scan_string(s, len, &i);
            if (nul < 0) {
                *at = i;
                *why = "control character in string";
                return -1;
            }
            if (nul && is_member_name(s, len, i)) {
                *at = start;
                *why = "member name contains \\u0000";
                return -1;
            }
        } else if (c == '-' || is_digit(c)) {
            int range_ok = 1;
            size_t n = scan_number(s + i, len - i, &range_ok);
            if (n == 0 || !range_ok) {
                *at = i;
                *why = n == 0 ? "number expected"
                              : "integer out of the 64-bit range";
                return -1;
            }
            i += n;
        } else if (is_json_space(c) || is_json_punct(c) ||
                   (c >= 'a' && c <= 'z')) {
            i++; /* lower case: json-c checks for true, false, null */
        } else {
            *at = i;
            *why = "unexpected character";
            return -1;
        }
    }
    return 0;
}

static int malformed(const char *field, size_t at, const char *why, char *err,
                     size_t errlen)
{
    return ds__seterr(err, errlen, DS_EJSON,
                      "%s%smalformed JSON at offset %zu: %s",
                      field ? field : "", field ? ": " : "", at, why);
}

/* Parses text[0..len) as exactly one JSON value into *out (a new reference,
 * possibly NULL for JSON null). field prefixes error messages; NULL for a
 * whole event body. A tokener per call keeps this thread-safe. */
static int parse_json(const char *field, const char *text, size_t len,
                      json_object **out, char *err, size_t errlen)
{
    json_tokener *tok = NULL;
    json_object *obj = NULL;
    enum json_tokener_error jerr;
    const char *why;
    size_t at;
    int rc;

    *out = NULL;
    if (len > INT_MAX) {
        rc = ds__seterr(err, errlen, DS_ETOOBIG, "%s%sJSON text of %zu bytes",
                        field ? field : "", field ? ": " : "", len);
        goto fail;
    }
    if (check_json_lexemes(text, len, &at, &why) < 0) {
        rc = malformed(field, at, why, err, errlen);
        goto fail;
    }
    tok = json_tokener_new();
    if (!tok) {
        rc = ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
        goto fail;
    }
    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, text, (int)len);
    jerr = json_tokener_get_error(tok);
    at = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* A bare scalar or truncated text: the terminator json-c waits for
         * tells the two apart. */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        at = len;
    }
    if (jerr != json_tokener_success) {
        rc = malformed(field, at, json_tokener_error_desc(jerr), err, errlen);
        goto fail;
    }
    /* Strict mode rejects trailing text today, but json-c documents that
     * what "strict" means may change; the contract may not. */
    for (; at < len; at++) {
        if (!is_json_space(text[at])) {
            rc = malformed(field, at, "trailing characters after the value",
                           err, errlen);
            goto fail;
        }
    }
    json_tokener_free(tok);
    *out = obj;
    return 0;

fail:
    json_object_put(obj);
    if (tok) /* unlike json_object_put, json_tokener_free wants a tokener */
        json_tokener_free(tok);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Validation, one helper per rule of the contract. */

static int check_known_fields(json_object *obj, char *err, size_t errlen)
{
    struct json_object_iter it;

    json_object_object_foreachC(obj, it)
    {
        size_t i = 0;
        while (i < sizeof(event_fields) / sizeof(event_fields[0]) &&
               strcmp(it.key, event_fields[i]) != 0)
            i++;
        if (i == sizeof(event_fields) / sizeof(event_fields[0]))
            return ds__seterr(err, errlen, DS_ESCHEMA, "unknown field \"%s\"",
                              it.key);
    }
    return 0;
}

/* *val is NULL both for JSON null and for a missing field; only the return
 * value tells them apart. */
static int get_field(json_object *obj, const char *name, json_object **val,
                     char *err, size_t errlen)
{
    if (!json_object_object_get_ex(obj, name, val))
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "%s: required field is missing", name);
    return 0;
}

static int check_version(json_object *obj, char *err, size_t errlen)
{
    json_object *val;
    int rc = get_field(obj, "v", &val, err, errlen);

    if (rc < 0)
        return rc;
    if (!json_object_is_type(val, json_type_int) ||
        json_object_get_int64(val) != DS_EVENT_VERSION)
        return ds__seterr(err, errlen, DS_ESCHEMA, "v: must be the integer %d",
                          DS_EVENT_VERSION);
    return 0;
}

/* A text field that must match a syntax, copied into dst. */
static int get_text(json_object *obj, const char *name, syntax_fn valid,
                    const char *shape, char *dst, size_t dstsize, char *err,
                    size_t errlen)
{
    json_object *val;
    size_t len;
    int rc = get_field(obj, name, &val, err, errlen);

    if (rc < 0)
        return rc;
    if (!json_object_is_type(val, json_type_string))
        return ds__seterr(err, errlen, DS_ESCHEMA, "%s: must be %s", name,
                          shape);
    len = (size_t)json_object_get_string_len(val);
    if (!valid(json_object_get_string(val), len) || len >= dstsize)
        return ds__seterr(err, errlen, DS_ESCHEMA, "%s: must be %s", name,
                          shape);
    memcpy(dst, json_object_get_string(val), len + 1);
    return 0;
}

static int get_hlc(json_object *obj, uint64_t *hlc, char *err, size_t errlen)
{
    json_object *val;
    int rc = get_field(obj, "hlc", &val, err, errlen);

    if (rc < 0)
        return rc;
    /* json-c keeps values above INT64_MAX as unsigned; get_int64 then
     * saturates at INT64_MAX, so only true negatives come out below 0. */
    if (!json_object_is_type(val, json_type_int) ||
        json_object_get_int64(val) < 0)
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "hlc: must be an integer >= 0");
    *hlc = json_object_get_uint64(val);
    return 0;
}

static int get_op(json_object *obj, ds_op *op, char *err, size_t errlen)
{
    json_object *val;
    int rc = get_field(obj, "op", &val, err, errlen);

    if (rc < 0)
        return rc;
    if (!json_object_is_type(val, json_type_string) ||
        ds__op_parse(json_object_get_string(val), op) < 0)
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "op: must be \"create\", \"update\" or \"delete\"");
    return 0;
}

static int check_column_name(const char *field, const char *name, char *err,
                             size_t errlen)
{
    if (name[0] == '\0')
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "%s: member name must not be empty", field);
    if (utf8_chars(name) > NAME_MAX_CHARS)
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "%s.%s: member name must be at most %d characters",
                          field, name, NAME_MAX_CHARS);
    return 0;
}

/* An object value is binary: {"base64": "<base64 text>"} and nothing else. */
static int check_binary(const char *field, const char *name, json_object *val,
                        char *err, size_t errlen)
{
    json_object *b64;

    if (json_object_object_length(val) != 1)
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "%s.%s: binary value must have \"base64\" as its "
                          "only member",
                          field, name);
    json_object_object_get_ex(val, "base64", &b64);
    if (!json_object_is_type(b64, json_type_string))
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "%s.%s: base64 value must be a string", field, name);
    if (!valid_base64(json_object_get_string(b64),
                      (size_t)json_object_get_string_len(b64)))
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "%s.%s: base64 value is not valid base64", field,
                          name);
    return 0;
}

static int check_value(const char *field, const char *name, json_object *val,
                       enum column_set set, char *err, size_t errlen)
{
    switch (json_object_get_type(val)) {
    case json_type_null:
        if (set == COLUMNS_ROW)
            return 0;
        return ds__seterr(err, errlen, DS_ESCHEMA, "%s.%s: must not be null",
                          field, name);
    case json_type_boolean:
    case json_type_int:
    case json_type_string:
        return 0;
    case json_type_double:
        /* NaN and Infinity never parse, but 1e400 parses as infinity and
         * an event built in memory may hold either. */
        if (isfinite(json_object_get_double(val)))
            return 0;
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "%s.%s: must be a finite number", field, name);
    case json_type_object:
        if (json_object_object_get_ex(val, "base64", NULL))
            return check_binary(field, name, val, err, errlen);
        break;
    case json_type_array:
        break;
    }
    return ds__seterr(err, errlen, DS_ESCHEMA,
                      "%s.%s: must be a string, number, boolean%s or "
                      "{\"base64\": \"...\"}",
                      field, name, set == COLUMNS_ROW ? ", null" : "");
}

/* key or data: an object of column name -> value. */
static int check_columns(const char *field, json_object *obj,
                         enum column_set set, char *err, size_t errlen)
{
    struct json_object_iter it;
    int rc;

    if (!json_object_is_type(obj, json_type_object))
        return ds__seterr(err, errlen, DS_ESCHEMA, "%s: must be an object",
                          field);
    if (set == COLUMNS_KEY && json_object_object_length(obj) == 0)
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "%s: must have at least one member", field);
    json_object_object_foreachC(obj, it)
    {
        if ((rc = check_column_name(field, it.key, err, errlen)) < 0 ||
            (rc = check_value(field, it.key, it.val, set, err, errlen)) < 0)
            return rc;
    }
    return 0;
}

/* data is NULL when absent or JSON null. */
static int check_data(ds_op op, int present, json_object *data, char *err,
                      size_t errlen)
{
    if (op == DS_OP_DELETE) {
        if (data)
            return ds__seterr(err, errlen, DS_ESCHEMA,
                              "data: must be absent or null for delete");
        return 0;
    }
    if (!present)
        return ds__seterr(err, errlen, DS_ESCHEMA,
                          "data: required for create and update");
    return check_columns("data", data, COLUMNS_ROW, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* The event. */

void ds__event_clear(ds_event *ev)
{
    json_object_put(ev->key);
    json_object_put(ev->data);
    memset(ev, 0, sizeof(*ev));
}

int ds__event_from_json(ds_event *ev, json_object *obj, char *err,
                        size_t errlen)
{
    json_object *key = NULL, *data = NULL;
    int has_data, rc;

    memset(ev, 0, sizeof(*ev));
    if (!json_object_is_type(obj, json_type_object)) {
        rc =
            ds__seterr(err, errlen, DS_ESCHEMA, "event: must be a JSON object");
        goto fail;
    }
    has_data = json_object_object_get_ex(obj, "data", &data);
    if ((rc = check_known_fields(obj, err, errlen)) < 0 ||
        (rc = check_version(obj, err, errlen)) < 0 ||
        (rc = get_text(obj, "id", valid_uuid, UUID_SHAPE, ev->id,
                       sizeof(ev->id), err, errlen)) < 0 ||
        (rc = get_text(obj, "origin", valid_origin, ORIGIN_SHAPE, ev->origin,
                       sizeof(ev->origin), err, errlen)) < 0 ||
        (rc = get_hlc(obj, &ev->hlc, err, errlen)) < 0 ||
        (rc = get_text(obj, "ts", valid_ts, TS_SHAPE, ev->ts, sizeof(ev->ts),
                       err, errlen)) < 0 ||
        (rc = get_op(obj, &ev->op, err, errlen)) < 0 ||
        (rc = get_text(obj, "table", valid_table, TABLE_SHAPE, ev->table,
                       sizeof(ev->table), err, errlen)) < 0 ||
        (rc = get_field(obj, "key", &key, err, errlen)) < 0 ||
        (rc = check_columns("key", key, COLUMNS_KEY, err, errlen)) < 0 ||
        (rc = check_data(ev->op, has_data, data, err, errlen)) < 0)
        goto fail;
    ev->key = json_object_get(key);
    ev->data = json_object_get(data);
    return 0;

fail:
    ds__event_clear(ev);
    return rc;
}

int ds__event_parse(ds_event *ev, const char *body, size_t len, char *err,
                    size_t errlen)
{
    json_object *root;
    int rc;

    memset(ev, 0, sizeof(*ev));
    rc = parse_json(NULL, body, len, &root, err, errlen);
    if (rc == 0)
        rc = ds__event_from_json(ev, root, err, errlen);
    json_object_put(root);
    return rc;
}

/* Parses one of the producer's column objects and checks it. */
static int parse_columns(const char *field, const char *text,
                         enum column_set set, json_object **out, char *err,
                         size_t errlen)
{
    int rc = parse_json(field, text, strlen(text), out, err, errlen);

    if (rc == 0 && (rc = check_columns(field, *out, set, err, errlen)) < 0) {
        json_object_put(*out);
        *out = NULL;
    }
    return rc;
}

int ds__event_build(ds_event *ev, ds_op op, const char *table,
                    const char *key_json, const char *data_json, char *err,
                    size_t errlen)
{
    json_object *key = NULL, *data = NULL;
    int rc;

    /* Only the row part is ours: the caller may have set the rest already. */
    ev->op = 0;
    ev->table[0] = '\0';
    ev->key = ev->data = NULL;
    if (!ds__op_name(op)) {
        rc = ds__seterr(err, errlen, DS_EINVAL,
                        "op: must be DS_OP_CREATE, DS_OP_UPDATE or "
                        "DS_OP_DELETE");
        goto fail;
    }
    if (!table || !key_json) {
        rc = ds__seterr(err, errlen, DS_EINVAL, "%s: must not be NULL",
                        table ? "key" : "table");
        goto fail;
    }
    if (!valid_table(table, strlen(table))) {
        rc = ds__seterr(err, errlen, DS_ESCHEMA, "table: must be %s",
                        TABLE_SHAPE);
        goto fail;
    }
    if ((rc = parse_columns("key", key_json, COLUMNS_KEY, &key, err, errlen)) <
        0)
        goto fail;
    if (op == DS_OP_DELETE && data_json) {
        rc = ds__seterr(err, errlen, DS_ESCHEMA,
                        "data: must be NULL for delete");
        goto fail;
    }
    if (op != DS_OP_DELETE && !data_json) {
        rc = ds__seterr(err, errlen, DS_ESCHEMA,
                        "data: required for create and update");
        goto fail;
    }
    if (data_json && (rc = parse_columns("data", data_json, COLUMNS_ROW, &data,
                                         err, errlen)) < 0)
        goto fail;
    ev->op = op;
    memcpy(ev->table, table, strlen(table) + 1);
    ev->key = key;
    ev->data = data;
    return 0;

fail:
    json_object_put(key);
    json_object_put(data);
    return rc;
}

/* Adds a new member under a literal name, taking val's reference even on
 * failure. A NULL val is the failed allocation of the caller's constructor. */
static int add_member(json_object *obj, const char *name, json_object *val)
{
    if (!val)
        return -1;
    if (json_object_object_add_ex(obj, name, val,
                                  JSON_C_OBJECT_ADD_KEY_IS_NEW |
                                      JSON_C_OBJECT_ADD_CONSTANT_KEY) < 0) {
        json_object_put(val);
        return -1;
    }
    return 0;
}

char *ds__event_encode(const ds_event *ev, size_t *len)
{
    json_object *root = json_object_new_object();
    const char *op = ds__op_name(ev->op);
    const char *text;
    char *out = NULL;
    size_t n;

    if (!root || !op || !ev->key || (ev->op != DS_OP_DELETE && !ev->data))
        goto done;
    /* json-c writes members in insertion order: this is the contract's. */
    if (add_member(root, "v", json_object_new_int(DS_EVENT_VERSION)) < 0 ||
        add_member(root, "id", json_object_new_string(ev->id)) < 0 ||
        add_member(root, "origin", json_object_new_string(ev->origin)) < 0 ||
        add_member(root, "hlc", json_object_new_uint64(ev->hlc)) < 0 ||
        add_member(root, "ts", json_object_new_string(ev->ts)) < 0 ||
        add_member(root, "op", json_object_new_string(op)) < 0 ||
        add_member(root, "table", json_object_new_string(ev->table)) < 0 ||
        add_member(root, "key", json_object_get(ev->key)) < 0)
        goto done;
    if (ev->op != DS_OP_DELETE &&
        add_member(root, "data", json_object_get(ev->data)) < 0)
        goto done;
    /* Unescaped slashes: base64 is full of them. */
    text = json_object_to_json_string_length(
        root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (!text || !(out = malloc(n + 1)))
        goto done;
    memcpy(out, text, n + 1);
    if (len)
        *len = n;

done:
    json_object_put(root);
    return out;
}
