/* timearg.c: the points in time that --since and --until take: RFC 3339, or an age such as -2h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* "-90s", "-30m", "-2h", "-7d", "-1w": now minus the age. */
static int parse_age(const char *s, int64_t now_ms, int64_t *out)
{
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'s', 1000},
                 {'m', 60 * 1000},
                 {'h', 3600 * 1000},
                 {'d', 86400 * 1000},
                 {'w', 7 * 86400 * 1000}};
    size_t digits = strspn(s + 1, "0123456789");

    if (digits == 0 || digits > 9 || s[1 + digits] == '\0' ||
        s[1 + digits + 1] != '\0')
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (s[1 + digits] == units[i].unit) {
            *out = now_ms - strtoll(s + 1, NULL, 10) * units[i].ms;
            return 0;
        }
    }
    return -1;
}

/* Reads n digits as a number, or -1. */
static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* YYYY-MM-DD[Thh:mm[:ss[.fff]]](Z|±hh:mm), 'T' or a space; a date alone is
 * midnight UTC. Fields are range-checked, then timegm normalises nothing:
 * a 31st of February is refused by the round trip. */
static int parse_rfc3339(const char *s, int64_t *out)
{
    struct tm tm = {0};
    int64_t ms = 0, offset_s = 0;
    const char *p = s + 10;

    /* Each part is read only once the string is known to be that long. */
    if (strlen(s) < 10)
        return -1;
    tm.tm_year = digits(s, 4) - 1900;
    tm.tm_mon = digits(s + 5, 2) - 1;
    tm.tm_mday = digits(s + 8, 2);
    if (s[4] != '-' || s[7] != '-' || tm.tm_year < 70 || tm.tm_mon < 0 ||
        tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31)
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (strlen(p) < 6)
            return -1;
        tm.tm_hour = digits(p + 1, 2);
        tm.tm_min = digits(p + 4, 2);
        if (p[3] != ':' || tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 ||
            tm.tm_min > 59)
            return -1;
        p += 6;
        if (*p == ':') {
            if (strlen(p) < 3)
                return -1;
            tm.tm_sec = digits(p + 1, 2);
            if (tm.tm_sec < 0 || tm.tm_sec > 60)
                return -1;
            p += 3;
            if (*p == '.') {
                int scale = 100;
                for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                    ms += (*p - '0') * scale;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            if (strlen(p) < 6)
                return -1;
            int h = digits(p + 1, 2), m = digits(p + 4, 2);
            if (h < 0 || h > 23 || p[3] != ':' || m < 0 || m > 59)
                return -1;
            offset_s = (h * 3600 + m * 60) * (*p == '+' ? 1 : -1);
            p += 6;
        } else {
            return -1; /* a time needs its zone */
        }
    }
    if (*p != '\0')
        return -1;
    int mday = tm.tm_mday, mon = tm.tm_mon;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != mday || tm.tm_mon != mon)
        return -1;
    *out = ((int64_t)t - offset_s) * 1000 + ms;
    return 0;
}

int cli_parse_time(const char *s, int64_t now_ms, int64_t *out_ms)
{
    if (s[0] == '-')
        return parse_age(s, now_ms, out_ms);
    return parse_rfc3339(s, out_ms);
}
