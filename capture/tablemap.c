/* tablemap.c: a binlog TABLE_MAP event and its optional metadata (names, primary key, signedness, character sets, ENUM/SET members). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tablemap.h"

/* TABLE_MAP's optional metadata fields. */
enum {
    OM_SIGNEDNESS = 1,
    OM_DEFAULT_CHARSET = 2,
    OM_COLUMN_CHARSET = 3,
    OM_COLUMN_NAME = 4,
    OM_SET_STR_VALUE = 5,
    OM_ENUM_STR_VALUE = 6,
    OM_GEOMETRY_TYPE = 7,
    OM_SIMPLE_PRIMARY_KEY = 8,
    OM_PRIMARY_KEY_WITH_PREFIX = 9,
    OM_ENUM_AND_SET_DEFAULT_CHARSET = 10,
    OM_ENUM_AND_SET_COLUMN_CHARSET = 11
};

size_t cap_lenenc(const unsigned char *p, const unsigned char *end,
                  uint64_t *out)
{
    size_t n;

    if (p >= end)
        return 0;
    if (*p < 251) {
        *out = *p;
        return 1;
    }
    switch (*p) {
    case 252:
        n = 2;
        break;
    case 253:
        n = 3;
        break;
    case 254:
        n = 8;
        break;
    default:
        return 0; /* 251 is NULL, 255 unused: neither is valid here */
    }
    if ((size_t)(end - p) < n + 1)
        return 0;
    *out = 0;
    for (size_t i = 0; i < n; i++)
        *out |= (uint64_t)p[1 + i] << (8 * i);
    return n + 1;
}

static uint64_t le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ------------------------------------------------------------------------ */
/* TABLE_MAP                                                                 */

/* STRING's metadata packs the real type (CHAR, ENUM, SET) with the length. */
void cap_string_meta(uint16_t meta, uint8_t *real, unsigned *len)
{
    unsigned b0 = meta >> 8, b1 = meta & 0xff;

    if ((b0 & 0x30) != 0x30) {
        *len = b1 | (((b0 & 0x30) ^ 0x30) << 4);
        *real = (uint8_t)(b0 | 0x30);
    } else {
        *real = (uint8_t)b0;
        *len = b1;
    }
}

/* The columns SIGNEDNESS has a bit for: MariaDB gives one to every
 * numeric field, YEAR included (it is a TINYINT underneath, logged as
 * unsigned); leaving it out shifts the bits of the columns after it. */
static bool is_numeric(const cap_column *c)
{
    switch (c->type) {
    case CAP_T_YEAR:
    case CAP_T_TINY:
    case CAP_T_SHORT:
    case CAP_T_INT24:
    case CAP_T_LONG:
    case CAP_T_LONGLONG:
    case CAP_T_NEWDECIMAL:
    case CAP_T_DECIMAL:
    case CAP_T_FLOAT:
    case CAP_T_DOUBLE:
        return true;
    default:
        return false;
    }
}

static bool is_enum_or_set(const cap_column *c)
{
    return c->real_type == CAP_T_ENUM || c->real_type == CAP_T_SET;
}

/* The columns (DEFAULT_)COLUMN_CHARSET lists: leaving one out shifts the
 * charsets of the columns after it. */
static bool is_character(const cap_column *c)
{
    switch (c->type) {
    case CAP_T_STRING:
        return !is_enum_or_set(c);
    case CAP_T_VARCHAR:
    case CAP_T_VAR_STRING:
    case CAP_T_BLOB:
    case CAP_T_TINY_BLOB:
    case CAP_T_MEDIUM_BLOB:
    case CAP_T_LONG_BLOB:
    case CAP_T_GEOMETRY: /* a BLOB underneath: MariaDB lists its charset */
        return true;
    default:
        return false;
    }
}

/* Bytes of metadata the type has in TABLE_MAP; -1 for a type not known. */
static int meta_size(uint8_t type)
{
    switch (type) {
    case CAP_T_FLOAT:
    case CAP_T_DOUBLE:
    case CAP_T_BLOB:
    case CAP_T_TINY_BLOB:
    case CAP_T_MEDIUM_BLOB:
    case CAP_T_LONG_BLOB:
    case CAP_T_GEOMETRY:
    case CAP_T_JSON:
    case CAP_T_TIMESTAMP2:
    case CAP_T_DATETIME2:
    case CAP_T_TIME2:
        return 1;
    case CAP_T_VARCHAR:
    case CAP_T_VAR_STRING:
    case CAP_T_BIT:
    case CAP_T_NEWDECIMAL:
    case CAP_T_STRING:
    case CAP_T_ENUM:
    case CAP_T_SET:
        return 2;
    case CAP_T_TINY:
    case CAP_T_SHORT:
    case CAP_T_INT24:
    case CAP_T_LONG:
    case CAP_T_LONGLONG:
    case CAP_T_YEAR:
    case CAP_T_DATE:
    case CAP_T_NEWDATE:
    case CAP_T_TIMESTAMP:
    case CAP_T_NULL:
        return 0;
    default:
        return -1;
    }
}

void cap_table_free(cap_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncols; i++) {
        free(t->cols[i].name);
        for (size_t j = 0; j < t->cols[i].nnames; j++)
            free(t->cols[i].names[j]);
        free(t->cols[i].names);
    }
    free(t->cols);
    free(t->pk);
    free(t);
}

/* Reads "lenenc length, bytes" into a new string. */
static int read_str(const unsigned char **p, const unsigned char *end,
                    char **out)
{
    uint64_t n;
    size_t used = cap_lenenc(*p, end, &n);

    if (!used || n > (uint64_t)(end - *p - (ptrdiff_t)used))
        return DS_EINVAL;
    *out = strndup((const char *)*p + used, (size_t)n);
    if (!*out)
        return DS_ENOMEM;
    *p += used + n;
    return 0;
}

/* SET_STR_VALUE, ENUM_STR_VALUE: for each such column, its member names. */
static int parse_names(cap_table *t, uint8_t real, const unsigned char *p,
                       const unsigned char *end)
{
    for (size_t i = 0; i < t->ncols && p < end; i++) {
        cap_column *c = &t->cols[i];
        uint64_t n;
        size_t used;

        if (c->real_type != real)
            continue;
        if (!(used = cap_lenenc(p, end, &n)) || n > (uint64_t)(end - p))
            return DS_EINVAL;
        p += used;
        c->names = calloc(n ? n : 1, sizeof *c->names);
        if (!c->names)
            return DS_ENOMEM;
        for (uint64_t j = 0; j < n; j++) {
            int rc = read_str(&p, end, &c->names[j]);
            if (rc)
                return rc;
            c->nnames++;
        }
    }
    return 0;
}

/* DEFAULT_CHARSET: a default, then (index, collation) pairs for the
 * columns that differ; COLUMN_CHARSET: one collation per column. Indexes
 * count the columns that match. */
static int parse_charsets(cap_table *t, bool enum_set, bool with_default,
                          const unsigned char *p, const unsigned char *end)
{
    uint64_t v, idx;
    size_t used, k = 0;

    if (with_default) {
        if (!(used = cap_lenenc(p, end, &v)))
            return DS_EINVAL;
        p += used;
        for (size_t i = 0; i < t->ncols; i++) {
            cap_column *c = &t->cols[i];
            if (enum_set ? is_enum_or_set(c) : is_character(c))
                c->collation = (uint16_t)v;
        }
    }
    while (p < end) {
        if (with_default) {
            if (!(used = cap_lenenc(p, end, &idx)))
                return DS_EINVAL;
            p += used;
        } else {
            idx = k++;
        }
        if (!(used = cap_lenenc(p, end, &v)))
            return DS_EINVAL;
        p += used;
        for (size_t i = 0, n = 0; i < t->ncols; i++) {
            cap_column *c = &t->cols[i];
            if (!(enum_set ? is_enum_or_set(c) : is_character(c)))
                continue;
            if (n++ == idx) {
                c->collation = (uint16_t)v;
                break;
            }
        }
    }
    return 0;
}

static int parse_pk(cap_table *t, bool with_prefix, const unsigned char *p,
                    const unsigned char *end)
{
    uint64_t idx, prefix;
    size_t used;

    while (p < end) {
        if (!(used = cap_lenenc(p, end, &idx)) || idx >= t->ncols)
            return DS_EINVAL;
        p += used;
        if (with_prefix) {
            if (!(used = cap_lenenc(p, end, &prefix)))
                return DS_EINVAL;
            p += used;
        }
        size_t *pk = realloc(t->pk, (t->npk + 1) * sizeof *pk);
        if (!pk)
            return DS_ENOMEM;
        t->pk = pk;
        t->cols[idx].pk_index = (int)t->npk;
        t->pk[t->npk++] = (size_t)idx;
    }
    return 0;
}

static int parse_optional(cap_table *t, const unsigned char *p,
                          const unsigned char *end, char *err, size_t errlen)
{
    bool have_names = false;

    while (p < end) {
        uint8_t type = *p++;
        uint64_t len;
        size_t used = cap_lenenc(p, end, &len);
        int rc = 0;

        if (!used || len > (uint64_t)(end - p - (ptrdiff_t)used))
            return ds__seterr(err, errlen, DS_EINVAL,
                              "%s.%s: TABLE_MAP's optional metadata is cut",
                              t->db, t->name);
        p += used;
        const unsigned char *f = p, *fend = p + len;
        p = fend;
        switch (type) {
        case OM_SIGNEDNESS:
            for (size_t i = 0, n = 0; i < t->ncols; i++) {
                if (!is_numeric(&t->cols[i]))
                    continue;
                if (n / 8 < len)
                    t->cols[i].is_unsigned = (f[n / 8] >> (7 - n % 8)) & 1;
                n++;
            }
            break;
        case OM_DEFAULT_CHARSET:
        case OM_COLUMN_CHARSET:
            rc = parse_charsets(t, false, type == OM_DEFAULT_CHARSET, f, fend);
            break;
        case OM_ENUM_AND_SET_DEFAULT_CHARSET:
        case OM_ENUM_AND_SET_COLUMN_CHARSET:
            rc = parse_charsets(
                t, true, type == OM_ENUM_AND_SET_DEFAULT_CHARSET, f, fend);
            break;
        case OM_COLUMN_NAME:
            for (size_t i = 0; i < t->ncols && rc == 0; i++) {
                free(t->cols[i].name);
                t->cols[i].name = NULL;
                rc = read_str(&f, fend, &t->cols[i].name);
            }
            have_names = rc == 0;
            break;
        case OM_SET_STR_VALUE:
            rc = parse_names(t, CAP_T_SET, f, fend);
            break;
        case OM_ENUM_STR_VALUE:
            rc = parse_names(t, CAP_T_ENUM, f, fend);
            break;
        case OM_SIMPLE_PRIMARY_KEY:
        case OM_PRIMARY_KEY_WITH_PREFIX:
            rc = parse_pk(t, type == OM_PRIMARY_KEY_WITH_PREFIX, f, fend);
            break;
        default:
            break; /* GEOMETRY_TYPE and later fields: not needed */
        }
        if (rc == DS_ENOMEM)
            return ds__seterr(err, errlen, rc, "out of memory");
        if (rc)
            return ds__seterr(err, errlen, rc,
                              "%s.%s: malformed optional metadata field %u",
                              t->db, t->name, type);
    }
    if (!have_names)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "%s.%s: TABLE_MAP without column names: the server "
                          "needs binlog_row_metadata=FULL",
                          t->db, t->name);
    return 0;
}

/* "len, name, NUL" of the database and the table. */
static int read_name(const unsigned char **p, const unsigned char *end,
                     char *out, size_t cap)
{
    if (*p >= end)
        return DS_EINVAL;
    size_t n = **p;
    if ((size_t)(end - *p) < n + 2 || n >= cap)
        return DS_EINVAL;
    memcpy(out, *p + 1, n);
    out[n] = '\0';
    *p += n + 2;
    return 0;
}

int cap_table_parse(cap_table **out, const unsigned char *body, size_t len,
                    char *err, size_t errlen)
{
    const unsigned char *p = body, *end = body + len;
    cap_table *t = NULL;
    uint64_t ncols, mlen;
    size_t used;
    int rc;

    *out = NULL;
    if (len < 8)
        goto cut;
    t = calloc(1, sizeof *t);
    if (!t)
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    t->id = le(p, 6);
    p += 8; /* table id, flags */
    if (read_name(&p, end, t->db, sizeof t->db) ||
        read_name(&p, end, t->name, sizeof t->name))
        goto cut;
    if (!(used = cap_lenenc(p, end, &ncols)) || ncols == 0 ||
        ncols > (uint64_t)(end - p))
        goto cut;
    p += used;
    t->cols = calloc((size_t)ncols, sizeof *t->cols);
    if (!t->cols) {
        cap_table_free(t);
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    }
    t->ncols = (size_t)ncols;
    if ((size_t)(end - p) < t->ncols)
        goto cut;
    for (size_t i = 0; i < t->ncols; i++) {
        t->cols[i].type = p[i];
        t->cols[i].real_type = p[i];
        t->cols[i].pk_index = -1;
    }
    p += t->ncols;
    if (!(used = cap_lenenc(p, end, &mlen)) ||
        mlen > (uint64_t)(end - p - (ptrdiff_t)used))
        goto cut;
    p += used;
    const unsigned char *m = p, *mend = p + mlen;
    for (size_t i = 0; i < t->ncols; i++) {
        cap_column *c = &t->cols[i];
        int n = meta_size(c->type);
        if (n < 0) {
            rc = ds__seterr(err, errlen, DS_EINVAL,
                            "%s.%s: column %zu has a binlog type (%u) "
                            "datasync-capture does not decode",
                            t->db, t->name, i + 1, c->type);
            cap_table_free(t);
            return rc;
        }
        if (mend - m < n)
            goto cut;
        if (c->type == CAP_T_STRING || c->type == CAP_T_ENUM ||
            c->type == CAP_T_SET) {
            unsigned slen;
            c->meta = (uint16_t)(m[0] << 8 | m[1]);
            cap_string_meta(c->meta, &c->real_type, &slen);
        } else if (c->type == CAP_T_BIT || c->type == CAP_T_NEWDECIMAL) {
            c->meta = (uint16_t)(m[0] << 8 | m[1]); /* bits/precision high */
        } else if (n == 2) {
            c->meta = (uint16_t)le(m, 2);
        } else if (n == 1) {
            c->meta = m[0];
        }
        m += n;
    }
    p = mend;
    if ((size_t)(end - p) < (t->ncols + 7) / 8)
        goto cut;
    p += (t->ncols + 7) / 8; /* nullability: not needed */
    rc = parse_optional(t, p, end, err, errlen);
    if (rc) {
        cap_table_free(t);
        return rc;
    }
    *out = t;
    return 0;
cut:
    rc = ds__seterr(err, errlen, DS_EINVAL, "%s%s%s: malformed TABLE_MAP event",
                    t ? t->db : "", t ? "." : "", t ? t->name : "");
    cap_table_free(t);
    return rc;
}
