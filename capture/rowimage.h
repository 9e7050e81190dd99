/* rowimage.h: a binlog TABLE_MAP's columns (with the optional metadata) and the values of a row image, as JSON. */
#ifndef DS_CAPTURE_ROWIMAGE_H
#define DS_CAPTURE_ROWIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

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

typedef struct cap_column {
    char *name;         /* from the optional metadata; "" when absent */
    uint8_t type;       /* the binlog type (MYSQL_TYPE_*) */
    uint8_t real_type;  /* STRING's real type: STRING, ENUM or SET */
    uint16_t meta;      /* the type's metadata (lengths, precision, fsp) */
    bool is_unsigned;   /* numeric columns, from SIGNEDNESS */
    uint16_t collation; /* character columns; 0: unknown */
    char **names;       /* ENUM/SET: the member names, in order */
    size_t nnames;
    int pk_index; /* position in the primary key, or -1 */
} cap_column;

typedef struct cap_table {
    uint64_t id; /* the binlog's table id: valid until the next DDL */
    char db[65];
    char name[65];
    size_t ncols;
    cap_column *cols;
    size_t npk;
    size_t *pk; /* column indexes in primary-key order */
} cap_table;

/*
 * Parses a TABLE_MAP event's body (after the 19-byte header, without the
 * checksum) into *out. Returns 0, DS_ENOMEM, or DS_EINVAL with err for a
 * malformed or unsupported event (a column type this decoder does not
 * know, optional metadata missing: binlog_row_metadata must be FULL).
 */
int cap_table_parse(cap_table **out, const unsigned char *body, size_t len,
                    char *err, size_t errlen);

/* Frees t; NULL is a no-op. */
void cap_table_free(cap_table *t);

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

/* Reads a length-encoded integer; returns bytes used, 0 if malformed. */
size_t cap_lenenc(const unsigned char *p, const unsigned char *end,
                  uint64_t *out);

#endif
