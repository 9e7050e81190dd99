/* tablemap.h: a binlog TABLE_MAP's columns, with the optional metadata binlog_row_metadata=FULL adds. */
#ifndef DS_CAPTURE_TABLEMAP_H
#define DS_CAPTURE_TABLEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The binlog's column types (enum_field_types of the server). */
enum {
    CAP_T_DECIMAL = 0,
    CAP_T_TINY = 1,
    CAP_T_SHORT = 2,
    CAP_T_LONG = 3,
    CAP_T_FLOAT = 4,
    CAP_T_DOUBLE = 5,
    CAP_T_NULL = 6,
    CAP_T_TIMESTAMP = 7,
    CAP_T_LONGLONG = 8,
    CAP_T_INT24 = 9,
    CAP_T_DATE = 10,
    CAP_T_TIME = 11,
    CAP_T_DATETIME = 12,
    CAP_T_YEAR = 13,
    CAP_T_NEWDATE = 14,
    CAP_T_VARCHAR = 15,
    CAP_T_BIT = 16,
    CAP_T_TIMESTAMP2 = 17,
    CAP_T_DATETIME2 = 18,
    CAP_T_TIME2 = 19,
    CAP_T_JSON = 245,
    CAP_T_NEWDECIMAL = 246,
    CAP_T_ENUM = 247,
    CAP_T_SET = 248,
    CAP_T_TINY_BLOB = 249,
    CAP_T_MEDIUM_BLOB = 250,
    CAP_T_LONG_BLOB = 251,
    CAP_T_BLOB = 252,
    CAP_T_VAR_STRING = 253,
    CAP_T_STRING = 254,
    CAP_T_GEOMETRY = 255
};

typedef struct cap_column {
    char *name;         /* from the optional metadata (required) */
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

/* Reads a length-encoded integer; returns bytes used, 0 if malformed. */
size_t cap_lenenc(const unsigned char *p, const unsigned char *end,
                  uint64_t *out);

/* A STRING column's metadata: its real type (CAP_T_STRING, CAP_T_ENUM,
 * CAP_T_SET) and length (bytes of CHAR; pack length of ENUM/SET). */
void cap_string_meta(uint16_t meta, uint8_t *real, unsigned *len);

#endif
