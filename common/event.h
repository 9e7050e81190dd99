/* event.h: the change event v1 (schemas/change-event.v1.json): decode, validate, encode. */
#ifndef DS_COMMON_EVENT_H
#define DS_COMMON_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "datasync.h"

#define DS_EVENT_VERSION 1

typedef struct ds_event {
    char id[37];     /* UUID text, 36 chars */
    char origin[65]; /* [A-Za-z0-9._-]{1,64} */
    uint64_t hlc;    /* (unix_ms << 16) | counter */
    char ts[40];     /* RFC 3339 UTC */
    ds_op op;
    char table[65];    /* [A-Za-z_][A-Za-z0-9_]{0,63} */
    json_object *key;  /* owned reference: object, >= 1 member */
    json_object *data; /* owned reference, or NULL for delete */
} ds_event;

/* Parses and validates one event body (len bytes, need not be terminated).
 * Returns 0 and fills ev (release with ds__event_clear), DS_EJSON for
 * malformed JSON, or DS_ESCHEMA with err naming the offending field, e.g.
 * "key: must have at least one member". ev is left cleared on error. */
int ds__event_parse(ds_event *ev, const char *body, size_t len, char *err,
                    size_t errlen);

/* Validates an already parsed JSON value as an event; on success ev takes
 * its own references to key and data. Same returns as ds__event_parse. */
int ds__event_from_json(ds_event *ev, json_object *obj, char *err,
                        size_t errlen);

/* Builds the row part of an event from a producer's input: checks op and
 * table, parses key_json and data_json (data_json must be NULL for delete and
 * present for create/update). Leaves id, origin, hlc, ts to the caller.
 * Returns 0, DS_EINVAL (bad op), DS_EJSON, or DS_ESCHEMA naming the field. */
int ds__event_build(ds_event *ev, ds_op op, const char *table,
                    const char *key_json, const char *data_json, char *err,
                    size_t errlen);

/* Encodes ev as compact JSON with the fields in contract order. Returns a
 * malloc'd NUL-terminated string (length in *len if len is not NULL), or
 * NULL when out of memory. */
char *ds__event_encode(const ds_event *ev, size_t *len);

/* Drops ev's references and zeroes it. Safe on a zeroed or cleared event. */
void ds__event_clear(ds_event *ev);

/* "create", "update", "delete"; NULL for anything else. */
const char *ds__op_name(ds_op op);

/* Parses an op name. Returns 0 or DS_EINVAL. */
int ds__op_parse(const char *name, ds_op *out);

/* Syntax checks shared with the rest of the system. */
int ds__valid_table_name(const char *s); /* [A-Za-z_][A-Za-z0-9_]{0,63} */
int ds__valid_origin(const char *s);     /* [A-Za-z0-9._-]{1,64} */
int ds__valid_uuid(const char *s);       /* 8-4-4-4-12 hex */

#endif
