/* rowimage.c: the values of a row image of a rows event, decoded by the columns of its TABLE_MAP and printed as MySQL prints them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "error.h"
#include "rowimage.h"

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

json_object *cap_json_base64(const unsigned char *s, size_t n)
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
static int charset_class(const cap_charsets *cs, const cap_column *c)
{
    return c->collation < CAP_MAX_COLLATION && cs ? cs->cls[c->collation]
                                                  : CAP_CS_UNKNOWN;
}

static json_object *new_bytes(const cap_charsets *cs, const cap_column *c,
                              const unsigned char *s, size_t n)
{
    int cls = charset_class(cs, c);
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
                : cap_json_base64(s, n);
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
    case CAP_T_TINY:
    case CAP_T_SHORT:
    case CAP_T_INT24:
    case CAP_T_LONG:
    case CAP_T_LONGLONG: {
        static const size_t width[] = {[CAP_T_TINY] = 1,
                                       [CAP_T_SHORT] = 2,
                                       [CAP_T_INT24] = 3,
                                       [CAP_T_LONG] = 4,
                                       [CAP_T_LONGLONG] = 8};
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
    case CAP_T_YEAR:
        n = 1;
        NEED(n);
        o = json_object_new_int(p[0] ? 1900 + p[0] : 0);
        break;
    case CAP_T_FLOAT: {
        float f;
        n = 4;
        NEED(n);
        uint32_t u = (uint32_t)le(p, 4);
        memcpy(&f, &u, sizeof f);
        o = new_real(f, true);
        break;
    }
    case CAP_T_DOUBLE: {
        double d;
        n = 8;
        NEED(n);
        v = le(p, 8);
        memcpy(&d, &v, sizeof d);
        o = new_real(d, false);
        break;
    }
    case CAP_T_NEWDECIMAL: {
        unsigned prec = c->meta >> 8, scale = c->meta & 0xff;
        n = decimal_size(prec, scale);
        if (n == 0)
            return 0;
        NEED(n);
        o = new_decimal(prec, scale, p);
        break;
    }
    case CAP_T_DATE: {
        char buf[16];
        n = 3;
        NEED(n);
        v = le(p, 3);
        snprintf(buf, sizeof buf, "%04u-%02u-%02u", (unsigned)(v >> 9),
                 (unsigned)((v >> 5) & 15), (unsigned)(v & 31));
        o = json_object_new_string(buf);
        break;
    }
    case CAP_T_TIME2:
        n = 3 + (c->meta + 1) / 2;
        NEED(n);
        o = new_time2(p, c->meta);
        break;
    case CAP_T_DATETIME2:
        n = 5 + (c->meta + 1) / 2;
        NEED(n);
        o = new_datetime2(p, c->meta);
        break;
    case CAP_T_TIMESTAMP2:
        n = 4 + (c->meta + 1) / 2;
        NEED(n);
        o = new_timestamp(be(p, 4), c->meta, frac_part(p + 4, c->meta, false));
        break;
    case CAP_T_TIMESTAMP:
        n = 4;
        NEED(n);
        o = new_timestamp(le(p, 4), 0, 0);
        break;
    case CAP_T_BIT: {
        unsigned bytes = c->meta & 0xff, bits = c->meta >> 8;
        n = bytes + (bits ? 1 : 0);
        if (n > 8)
            return 0;
        NEED(n);
        o = json_object_new_uint64(be(p, n));
        break;
    }
    case CAP_T_VARCHAR:
    case CAP_T_VAR_STRING:
    case CAP_T_STRING: {
        if (c->type == CAP_T_STRING &&
            (c->real_type == CAP_T_ENUM || c->real_type == CAP_T_SET)) {
            unsigned len;
            uint8_t real;
            cap_string_meta(c->meta, &real, &len);
            n = len;
            if (n < 1 || n > 8)
                return 0;
            NEED(n);
            v = le(p, n);
            if (real == CAP_T_SET) {
                o = new_set(c, v);
            } else if (v == 0 || v > c->nnames) {
                o = json_object_new_string(""); /* the error value */
            } else {
                o = json_object_new_string(c->names[v - 1]);
            }
            break;
        }
        size_t maxlen, pre;
        if (c->type == CAP_T_STRING) {
            unsigned len;
            uint8_t real;
            cap_string_meta(c->meta, &real, &len);
            maxlen = len;
        } else {
            maxlen = c->meta;
        }
        pre = maxlen < 256 ? 1 : 2;
        NEED(pre);
        size_t len = (size_t)le(p, pre);
        NEED(pre + len);
        n = pre + len;
        if (c->type == CAP_T_STRING && len < maxlen &&
            charset_class(cs, c) == CAP_CS_BINARY) {
            /* BINARY(n) is logged without the 0x00 bytes that pad it, yet
             * they are part of its value: a key without them matches no
             * row, and would not be the key the snapshot reads. */
            unsigned char full[1024]; /* CHAR's length has 10 bits */
            memcpy(full, p + pre, len);
            memset(full + len, 0, maxlen - len);
            o = cap_json_base64(full, maxlen);
            break;
        }
        o = new_bytes(cs, c, p + pre, len);
        break;
    }
    case CAP_T_BLOB:
    case CAP_T_TINY_BLOB:
    case CAP_T_MEDIUM_BLOB:
    case CAP_T_LONG_BLOB:
    case CAP_T_GEOMETRY:
    case CAP_T_JSON: {
        size_t pre = c->meta;
        if (pre < 1 || pre > 4)
            return 0;
        NEED(pre);
        size_t len = (size_t)le(p, pre);
        NEED(pre + len);
        n = pre + len;
        o = c->type == CAP_T_GEOMETRY ? cap_json_base64(p + pre, len)
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
