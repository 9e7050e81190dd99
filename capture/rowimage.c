/* rowimage.c: decodes a binlog TABLE_MAP (with its optional metadata) and the row images of the rows events that follow it. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "error.h"
#include "rowimage.h"

/* The binlog's column types (enum_field_types of the server). */
enum {
    T_DECIMAL = 0,
    T_TINY = 1,
    T_SHORT = 2,
    T_LONG = 3,
    T_FLOAT = 4,
    T_DOUBLE = 5,
    T_NULL = 6,
    T_TIMESTAMP = 7,
    T_LONGLONG = 8,
    T_INT24 = 9,
    T_DATE = 10,
    T_TIME = 11,
    T_DATETIME = 12,
    T_YEAR = 13,
    T_NEWDATE = 14,
    T_VARCHAR = 15,
    T_BIT = 16,
    T_TIMESTAMP2 = 17,
    T_DATETIME2 = 18,
    T_TIME2 = 19,
    T_JSON = 245,
    T_NEWDECIMAL = 246,
    T_ENUM = 247,
    T_SET = 248,
    T_TINY_BLOB = 249,
    T_MEDIUM_BLOB = 250,
    T_LONG_BLOB = 251,
    T_BLOB = 252,
    T_VAR_STRING = 253,
    T_STRING = 254,
    T_GEOMETRY = 255
};

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

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* ------------------------------------------------------------------------ */
/* TABLE_MAP                                                                 */

/* STRING's metadata packs the real type (CHAR, ENUM, SET) with the length. */
static void string_meta(uint16_t meta, uint8_t *real, unsigned *len)
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

/* The columns SIGNEDNESS has a bit for. */
static bool is_numeric(const cap_column *c)
{
    switch (c->type) {
    case T_TINY:
    case T_SHORT:
    case T_INT24:
    case T_LONG:
    case T_LONGLONG:
    case T_NEWDECIMAL:
    case T_DECIMAL:
    case T_FLOAT:
    case T_DOUBLE:
        return true;
    default:
        return false;
    }
}

static bool is_enum_or_set(const cap_column *c)
{
    return c->real_type == T_ENUM || c->real_type == T_SET;
}

/* The columns (DEFAULT_)COLUMN_CHARSET lists. */
static bool is_character(const cap_column *c)
{
    switch (c->type) {
    case T_STRING:
        return !is_enum_or_set(c);
    case T_VARCHAR:
    case T_VAR_STRING:
    case T_BLOB:
    case T_TINY_BLOB:
    case T_MEDIUM_BLOB:
    case T_LONG_BLOB:
        return true;
    default:
        return false;
    }
}

/* Bytes of metadata the type has in TABLE_MAP; -1 for a type not known. */
static int meta_size(uint8_t type)
{
    switch (type) {
    case T_FLOAT:
    case T_DOUBLE:
    case T_BLOB:
    case T_TINY_BLOB:
    case T_MEDIUM_BLOB:
    case T_LONG_BLOB:
    case T_GEOMETRY:
    case T_JSON:
    case T_TIMESTAMP2:
    case T_DATETIME2:
    case T_TIME2:
        return 1;
    case T_VARCHAR:
    case T_VAR_STRING:
    case T_BIT:
    case T_NEWDECIMAL:
    case T_STRING:
    case T_ENUM:
    case T_SET:
        return 2;
    case T_TINY:
    case T_SHORT:
    case T_INT24:
    case T_LONG:
    case T_LONGLONG:
    case T_YEAR:
    case T_DATE:
    case T_NEWDATE:
    case T_TIMESTAMP:
    case T_NULL:
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
            rc = parse_names(t, T_SET, f, fend);
            break;
        case OM_ENUM_STR_VALUE:
            rc = parse_names(t, T_ENUM, f, fend);
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
        if (c->type == T_STRING || c->type == T_ENUM || c->type == T_SET) {
            unsigned slen;
            c->meta = (uint16_t)(m[0] << 8 | m[1]);
            string_meta(c->meta, &c->real_type, &slen);
        } else if (c->type == T_BIT || c->type == T_NEWDECIMAL) {
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

/* ------------------------------------------------------------------------ */
/* Values                                                                    */

/* True when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
static bool is_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += k + 1;
    }
    return true;
}

static bool is_ascii(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0x80)
            return false;
    return true;
}

static json_object *new_base64(const unsigned char *s, size_t n)
{
    char *b = malloc(ds__base64_encoded_len(n) + 1);
    json_object *o = NULL, *v = NULL;

    if (!b)
        return NULL;
    ds__base64_encode(s, n, b);
    if ((o = json_object_new_object()) && (v = json_object_new_string(b)) &&
        json_object_object_add(o, "base64", v) == 0) {
        free(b);
        return o;
    }
    json_object_put(v);
    json_object_put(o);
    free(b);
    return NULL;
}

/* Text or bytes by the column's character set. */
static json_object *new_bytes(const cap_charsets *cs, const cap_column *c,
                              const unsigned char *s, size_t n)
{
    int cls = c->collation < CAP_MAX_COLLATION && cs ? cs->cls[c->collation]
                                                     : CAP_CS_UNKNOWN;
    bool text;

    switch (cls) {
    case CAP_CS_BINARY:
        text = false;
        break;
    case CAP_CS_OTHER:
        text = is_ascii(s, n); /* ASCII means the same in every set */
        break;
    default:
        text = is_utf8(s, n);
        break;
    }
    return text ? json_object_new_string_len((const char *)s, (int)n)
                : new_base64(s, n);
}

/* The shortest text that reads back to the same double (float when
 * single), as MySQL prints: 1.5, not 1.5000000000000000. */
static json_object *new_real(double d, bool single)
{
    char buf[40];

    for (int prec = single ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (single ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
            break;
    }
    return json_object_new_double_s(d, buf);
}

static const unsigned dig2bytes[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};

/* Bytes of a DECIMAL(precision, scale) in the image; 0 when malformed. */
static size_t decimal_size(unsigned prec, unsigned scale)
{
    if (prec == 0 || prec > 65 || scale > prec || scale > 38)
        return 0;
    unsigned intg = prec - scale;
    return intg / 9 * 4 + dig2bytes[intg % 9] + scale / 9 * 4 +
           dig2bytes[scale % 9];
}

/* DECIMAL(precision, scale) in the server's binary form (decimal_size
 * bytes at p), as a string. */
static json_object *new_decimal(unsigned prec, unsigned scale,
                                const unsigned char *p)
{
    unsigned intg = prec - scale, intg0 = intg / 9, intg0x = intg % 9;
    unsigned frac0 = scale / 9, frac0x = scale % 9;
    unsigned char buf[64];
    char out[100];
    size_t n = decimal_size(prec, scale);
    size_t at = 0, o = 0;

    if (n == 0 || n > sizeof buf)
        return NULL;
    memcpy(buf, p, n);
    uint32_t mask = (buf[0] & 0x80) ? 0 : 0xffffffffu;
    buf[0] ^= 0x80;
    if (mask)
        out[o++] = '-';
    size_t int_start = o;
    /* One group of up to 9 digits: w bytes, printed with d digits. */
#define GROUP(w, d)                                                            \
    do {                                                                       \
        uint32_t g = (uint32_t)be(buf + at, (w)) ^ (mask >> (32 - 8 * (w)));   \
        at += (w);                                                             \
        o += (size_t)snprintf(out + o, sizeof out - o, "%0*" PRIu32, (int)(d), \
                              g);                                              \
    } while (0)
    if (intg0x)
        GROUP(dig2bytes[intg0x], intg0x);
    for (unsigned i = 0; i < intg0; i++)
        GROUP(4, 9);
    /* Leading zeros of the integer part go; "0" stays. */
    size_t z = int_start;
    while (z < o && out[z] == '0' && z + 1 < o)
        z++;
    if (o == int_start) {
        out[o++] = '0';
    } else if (z > int_start) {
        memmove(out + int_start, out + z, o - z);
        o -= z - int_start;
    }
    if (scale) {
        out[o++] = '.';
        for (unsigned i = 0; i < frac0; i++)
            GROUP(4, 9);
        if (frac0x)
            GROUP(dig2bytes[frac0x], frac0x);
    }
#undef GROUP
    out[o] = '\0';
    return json_object_new_string(out);
}

/* ".ffffff" cut to fsp digits, or "" for fsp 0. */
static void frac_text(char *buf, size_t cap, unsigned fsp, long usec)
{
    static const long div[7] = {1000000, 100000, 10000, 1000, 100, 10, 1};
    if (fsp == 0 || fsp > 6) {
        buf[0] = '\0';
        return;
    }
    long v = (usec < 0 ? -usec : usec) % 1000000 / div[fsp];
    char digits[8];
    snprintf(digits, sizeof digits, "%06ld", v * div[fsp]);
    snprintf(buf, cap, ".%.*s", (int)fsp, digits);
}

/* The fractional part of TIME2/DATETIME2 (signed) or TIMESTAMP2, in
 * microseconds. */
static long frac_part(const unsigned char *p, unsigned fsp, bool is_signed)
{
    switch ((fsp + 1) / 2) {
    case 1:
        return (is_signed ? (long)(int8_t)p[0] : (long)p[0]) * 10000;
    case 2:
        return (is_signed ? (long)(int16_t)be(p, 2) : (long)be(p, 2)) * 100;
    case 3: {
        long v = (long)be(p, 3);
        return is_signed && v >= 0x800000 ? v - 0x1000000 : v;
    }
    default:
        return 0;
    }
}

static json_object *new_time2(const unsigned char *p, unsigned fsp)
{
    int64_t intpart = (int64_t)be(p, 3) - 0x800000, packed;
    long frac = 0;
    char buf[48], fr[16];

    switch (fsp) {
    case 1:
    case 2:
        /* Unsigned, then borrowed from the integer part when negative:
         * the server's own reading (my_time_packed_from_binary). */
        frac = p[3];
        if (intpart < 0 && frac) {
            intpart++;
            frac -= 0x100;
        }
        packed = intpart * (1 << 24) + frac * 10000;
        break;
    case 3:
    case 4:
        frac = (long)be(p + 3, 2);
        if (intpart < 0 && frac) {
            intpart++;
            frac -= 0x10000;
        }
        packed = intpart * (1 << 24) + frac * 100;
        break;
    case 5:
    case 6:
        packed = (int64_t)be(p, 6) - 0x800000000000LL;
        break;
    default:
        packed = intpart * (1 << 24);
        break;
    }
    bool neg = packed < 0;
    if (neg)
        packed = -packed;
    int64_t hms = packed >> 24;
    long usec = (long)(packed % (1 << 24));
    frac_text(fr, sizeof fr, fsp, usec);
    snprintf(buf, sizeof buf, "%s%02u:%02u:%02u%s", neg ? "-" : "",
             (unsigned)((hms >> 12) & 0x3ff), (unsigned)((hms >> 6) & 0x3f),
             (unsigned)(hms & 0x3f), fr);
    return json_object_new_string(buf);
}

static json_object *new_datetime2(const unsigned char *p, unsigned fsp)
{
    int64_t v = (int64_t)be(p, 5) - 0x8000000000LL;
    char buf[48], fr[16];

    if (v < 0)
        v = -v; /* not stored by the server; printed as its magnitude */
    int64_t ymd = v >> 17, ym = ymd >> 5, hms = v % (1 << 17);
    frac_text(fr, sizeof fr, fsp, frac_part(p + 5, fsp, true));
    snprintf(buf, sizeof buf, "%04u-%02u-%02u %02u:%02u:%02u%s",
             (unsigned)(ym / 13), (unsigned)(ym % 13), (unsigned)(ymd % 32),
             (unsigned)(hms >> 12), (unsigned)((hms >> 6) % 64),
             (unsigned)(hms % 64), fr);
    return json_object_new_string(buf);
}

/* Seconds since the epoch in UTC: the consumer's session zone is +00:00. */
static json_object *new_timestamp(uint64_t sec, unsigned fsp, long usec)
{
    char buf[48], fr[16];
    struct tm tm;
    time_t t = (time_t)sec;

    frac_text(fr, sizeof fr, fsp, usec);
    if (sec == 0) {
        snprintf(buf, sizeof buf, "0000-00-00 00:00:00%s", fr);
    } else {
        gmtime_r(&t, &tm);
        snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d%s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, fr);
    }
    return json_object_new_string(buf);
}

static json_object *new_set(const cap_column *c, uint64_t bits)
{
    size_t cap = 1, at = 0;
    char *s;

    for (size_t i = 0; i < c->nnames && i < 64; i++)
        if (bits >> i & 1)
            cap += strlen(c->names[i]) + 1;
    if (!(s = malloc(cap)))
        return NULL;
    for (size_t i = 0; i < c->nnames && i < 64; i++) {
        if (!(bits >> i & 1))
            continue;
        if (at)
            s[at++] = ',';
        size_t n = strlen(c->names[i]);
        memcpy(s + at, c->names[i], n);
        at += n;
    }
    s[at] = '\0';
    json_object *o = json_object_new_string(s);
    free(s);
    return o;
}

/*
 * One value of column c at p (avail bytes). Returns its size in the image
 * and *out, or 0 when the image is cut or the value is malformed
 * (*out NULL), or SIZE_MAX when out of memory.
 */
static size_t decode_value(const cap_column *c, const cap_charsets *cs,
                           const unsigned char *p, size_t avail,
                           json_object **out)
{
    size_t n = 0;
    uint64_t v;
    json_object *o = NULL;

    *out = NULL;
#define NEED(k)                                                                \
    do {                                                                       \
        if (avail < (k))                                                       \
            return 0;                                                          \
    } while (0)
    switch (c->type) {
    case T_TINY:
    case T_SHORT:
    case T_INT24:
    case T_LONG:
    case T_LONGLONG: {
        static const size_t width[] = {[T_TINY] = 1,
                                       [T_SHORT] = 2,
                                       [T_INT24] = 3,
                                       [T_LONG] = 4,
                                       [T_LONGLONG] = 8};
        n = width[c->type];
        NEED(n);
        v = le(p, n);
        if (c->is_unsigned) {
            o = json_object_new_uint64(v);
        } else {
            if (n < 8 && (v >> (8 * n - 1)) & 1)
                v |= ~(uint64_t)0 << (8 * n); /* sign extension */
            o = json_object_new_int64((int64_t)v);
        }
        break;
    }
    case T_YEAR:
        n = 1;
        NEED(n);
        o = json_object_new_int(p[0] ? 1900 + p[0] : 0);
        break;
    case T_FLOAT: {
        float f;
        n = 4;
        NEED(n);
        uint32_t u = (uint32_t)le(p, 4);
        memcpy(&f, &u, sizeof f);
        o = new_real(f, true);
        break;
    }
    case T_DOUBLE: {
        double d;
        n = 8;
        NEED(n);
        v = le(p, 8);
        memcpy(&d, &v, sizeof d);
        o = new_real(d, false);
        break;
    }
    case T_NEWDECIMAL: {
        unsigned prec = c->meta >> 8, scale = c->meta & 0xff;
        n = decimal_size(prec, scale);
        if (n == 0)
            return 0;
        NEED(n);
        o = new_decimal(prec, scale, p);
        break;
    }
    case T_DATE: {
        char buf[16];
        n = 3;
        NEED(n);
        v = le(p, 3);
        snprintf(buf, sizeof buf, "%04u-%02u-%02u", (unsigned)(v >> 9),
                 (unsigned)((v >> 5) & 15), (unsigned)(v & 31));
        o = json_object_new_string(buf);
        break;
    }
    case T_TIME2:
        n = 3 + (c->meta + 1) / 2;
        NEED(n);
        o = new_time2(p, c->meta);
        break;
    case T_DATETIME2:
        n = 5 + (c->meta + 1) / 2;
        NEED(n);
        o = new_datetime2(p, c->meta);
        break;
    case T_TIMESTAMP2:
        n = 4 + (c->meta + 1) / 2;
        NEED(n);
        o = new_timestamp(be(p, 4), c->meta, frac_part(p + 4, c->meta, false));
        break;
    case T_TIMESTAMP:
        n = 4;
        NEED(n);
        o = new_timestamp(le(p, 4), 0, 0);
        break;
    case T_BIT: {
        unsigned bytes = c->meta & 0xff, bits = c->meta >> 8;
        n = bytes + (bits ? 1 : 0);
        if (n > 8)
            return 0;
        NEED(n);
        o = json_object_new_uint64(be(p, n));
        break;
    }
    case T_VARCHAR:
    case T_VAR_STRING:
    case T_STRING: {
        if (c->type == T_STRING &&
            (c->real_type == T_ENUM || c->real_type == T_SET)) {
            unsigned len;
            uint8_t real;
            string_meta(c->meta, &real, &len);
            n = len;
            if (n < 1 || n > 8)
                return 0;
            NEED(n);
            v = le(p, n);
            if (real == T_SET) {
                o = new_set(c, v);
            } else if (v == 0 || v > c->nnames) {
                o = json_object_new_string(""); /* the error value */
            } else {
                o = json_object_new_string(c->names[v - 1]);
            }
            break;
        }
        size_t maxlen, pre;
        if (c->type == T_STRING) {
            unsigned len;
            uint8_t real;
            string_meta(c->meta, &real, &len);
            maxlen = len;
        } else {
            maxlen = c->meta;
        }
        pre = maxlen < 256 ? 1 : 2;
        NEED(pre);
        size_t len = (size_t)le(p, pre);
        NEED(pre + len);
        n = pre + len;
        o = new_bytes(cs, c, p + pre, len);
        break;
    }
    case T_BLOB:
    case T_TINY_BLOB:
    case T_MEDIUM_BLOB:
    case T_LONG_BLOB:
    case T_GEOMETRY:
    case T_JSON: {
        size_t pre = c->meta;
        if (pre < 1 || pre > 4)
            return 0;
        NEED(pre);
        size_t len = (size_t)le(p, pre);
        NEED(pre + len);
        n = pre + len;
        o = c->type == T_GEOMETRY ? new_base64(p + pre, len)
                                  : new_bytes(cs, c, p + pre, len);
        break;
    }
    default:
        return 0;
    }
#undef NEED
    if (!o)
        return SIZE_MAX;
    *out = o;
    return n;
}

int cap_row_decode(const cap_table *t, const cap_charsets *cs,
                   const unsigned char *present, const unsigned char **pos,
                   const unsigned char *end, json_object **vals, bool *have,
                   char *err, size_t errlen)
{
    const unsigned char *p = *pos, *nulls = p;
    size_t npresent = 0, k = 0;

    for (size_t i = 0; i < t->ncols; i++) {
        vals[i] = NULL;
        have[i] = (present[i / 8] >> (i % 8)) & 1;
        npresent += have[i];
    }
    if ((size_t)(end - p) < (npresent + 7) / 8)
        goto cut;
    p += (npresent + 7) / 8;
    for (size_t i = 0; i < t->ncols; i++) {
        if (!have[i])
            continue;
        bool is_null = (nulls[k / 8] >> (k % 8)) & 1;
        k++;
        if (is_null)
            continue;
        size_t n =
            decode_value(&t->cols[i], cs, p, (size_t)(end - p), &vals[i]);
        if (n == SIZE_MAX)
            goto nomem;
        if (n == 0)
            goto bad;
        p += n;
    }
    *pos = p;
    return 0;
nomem:
    for (size_t i = 0; i < t->ncols; i++)
        json_object_put(vals[i]), vals[i] = NULL;
    return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
bad:
    for (size_t i = 0; i < t->ncols; i++)
        json_object_put(vals[i]), vals[i] = NULL;
    return ds__seterr(err, errlen, DS_EINVAL,
                      "%s.%s: a value of a type datasync-capture cannot "
                      "decode, or a cut row image",
                      t->db, t->name);
cut:
    for (size_t i = 0; i < t->ncols; i++)
        json_object_put(vals[i]), vals[i] = NULL;
    return ds__seterr(err, errlen, DS_EINVAL, "%s.%s: the row image is cut",
                      t->db, t->name);
}
