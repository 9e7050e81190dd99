/* rowimage.h: the values of a row image, as JSON, by the columns of its TABLE_MAP. */
#ifndef DS_CAPTURE_ROWIMAGE_H
#define DS_CAPTURE_ROWIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "tablemap.h"

/* How a string column's bytes travel: as a JSON string when they are UTF-8
 * text, as {"base64": ...} otherwise, so every byte arrives unchanged. */
typedef enum {
    CAP_CS_UNKNOWN = 0, /* not in the server's list: UTF-8 if valid */
    CAP_CS_UTF8 = 1,    /* utf8mb3, utf8mb4, ascii */
    CAP_CS_BINARY = 2,  /* binary: BLOB, BINARY, VARBINARY */
    CAP_CS_OTHER = 3    /* latin1 and the rest: bytes, base64 */
} cap_charset_class;

/* Collation id -> class, read from the server (information_schema). */
#define CAP_MAX_COLLATION 2048
typedef struct cap_charsets {
    unsigned char cls[CAP_MAX_COLLATION];
} cap_charsets;

/* {"base64": "..."} of n bytes at s, or NULL when out of memory. */
json_object *cap_json_base64(const unsigned char *s, size_t n);

/*
 * Decodes one row image at *pos (up to end) for the columns set in
 * present (the rows event's column bitmap) into vals[0..ncols): a new
 * JSON value per present column (NULL for SQL NULL, which json-c prints
 * as null), and sets have[i]. *pos moves past the image. Values are as
 * MySQL prints them: integers and BIT as numbers, DECIMAL as a string,
 * FLOAT/DOUBLE as numbers that read back to the same value, dates and
 * times as strings (TIMESTAMP in UTC), ENUM/SET by name, text as a string
 * when it is UTF-8, binary as {"base64": ...}. Returns 0, DS_ENOMEM, or
 * DS_EINVAL with err (a truncated or malformed image); on failure the
 * values made so far are freed.
 */
int cap_row_decode(const cap_table *t, const cap_charsets *cs,
                   const unsigned char *present, const unsigned char **pos,
                   const unsigned char *end, json_object **vals, bool *have,
                   char *err, size_t errlen);

#endif
