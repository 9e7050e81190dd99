/* statement.c: whether a statement read from the binlog (a QUERY event) changed rows of a captured table: a change with no row image, which the capture cannot send. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "statement.h"

/* Where the statement's next token starts: past blanks and comments. */
static size_t skip_blanks(const char *q, size_t qlen, size_t i)
{
    for (;;) {
        while (i < qlen && isspace((unsigned char)q[i]))
            i++;
        if (i + 2 < qlen && q[i] == '/' && q[i + 1] == '*' &&
            (q[i + 2] == '!' ||
             (q[i + 2] == 'M' && i + 3 < qlen && q[i + 3] == '!'))) {
            /* An executable comment is code: only its opening goes. */
            i += q[i + 2] == '!' ? 3 : 4;
            while (i < qlen && isdigit((unsigned char)q[i]))
                i++;
        } else if (i + 1 < qlen && q[i] == '/' && q[i + 1] == '*') {
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < qlen; j++)
                if (q[j] == '*' && q[j + 1] == '/') {
                    end = q + j + 2;
                    break;
                }
            i = end ? (size_t)(end - q) : qlen;
        } else if (i < qlen &&
                   (q[i] == '#' ||
                    (i + 2 < qlen && q[i] == '-' && q[i + 1] == '-' &&
                     isspace((unsigned char)q[i + 2])))) {
            while (i < qlen && q[i] != '\n')
                i++;
        } else {
            return i;
        }
    }
}

static bool is_word_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '_' || ch == '$';
}

/* Past the literal (quote ' or ") that starts at i. */
static size_t skip_literal(const char *q, size_t qlen, size_t i)
{
    char quote = q[i++];

    while (i < qlen) {
        if (q[i] == '\\' && i + 1 < qlen) {
            i += 2;
        } else if (q[i] == quote) {
            if (i + 1 < qlen && q[i + 1] == quote)
                i += 2; /* a doubled quote */
            else
                return i + 1;
        } else {
            i++;
        }
    }
    return qlen;
}

static bool starts_changing_rows(const char *q, size_t qlen)
{
    static const char *const verbs[] = {"INSERT", "REPLACE",  "UPDATE",
                                        "DELETE", "TRUNCATE", "LOAD"};
    size_t i = skip_blanks(q, qlen, 0), n = 0;

    while (i + n < qlen && is_word_char(q[i + n]))
        n++;
    for (size_t v = 0; v < sizeof verbs / sizeof *verbs; v++)
        if (n == strlen(verbs[v]) && strncasecmp(q + i, verbs[v], n) == 0)
            return true;
    return false;
}

/* Whether the name (len bytes) is a word of the list, in any case. */
static bool listed(const char *tables, const char *name, size_t len)
{
    for (const char *p = tables; *p;) {
        p += strspn(p, " \t");
        size_t k = strcspn(p, " \t");
        if (k == len && k > 0 && strncasecmp(p, name, len) == 0)
            return true;
        p += k;
    }
    return false;
}

/* Reads the name (bare or backquoted) at *i into name (cap bytes, cut
 * to fit, NUL-terminated) and moves *i past it. Returns its length, 0 when
 * no name starts there (*i unmoved). */
static size_t read_name(const char *q, size_t qlen, size_t *i, char *name,
                        size_t cap)
{
    size_t len = 0, at = *i;

    if (at < qlen && q[at] == '`') {
        /* `` stands for one backquote. */
        for (at++; at < qlen; at++) {
            if (q[at] == '`' && !(at + 1 < qlen && q[at + 1] == '`')) {
                at++;
                break;
            }
            if (q[at] == '`')
                at++;
            if (len + 1 < cap)
                name[len++] = q[at];
        }
    } else {
        while (at < qlen && is_word_char(q[at])) {
            if (len + 1 < cap)
                name[len++] = q[at];
            at++;
        }
    }
    name[len] = '\0';
    *i = at;
    return len;
}

bool cap_statement_changes(const char *q, size_t qlen, const char *default_db,
                           const char *db, const char *tables, char *table,
                           size_t cap)
{
    char name[256], qualifier[256];

    if (!starts_changing_rows(q, qlen))
        return false;
    for (size_t i = skip_blanks(q, qlen, 0); i < qlen;
         i = skip_blanks(q, qlen, i)) {
        size_t len;
        bool in_db = strcmp(default_db, db) == 0;
        if (q[i] == '\'' || q[i] == '"') {
            i = skip_literal(q, qlen, i);
            continue;
        }
        if (!(len = read_name(q, qlen, &i, name, sizeof name))) {
            i++;
            continue;
        }
        /* db.table: the first name was the database's. */
        size_t dot = skip_blanks(q, qlen, i);
        if (dot < qlen && q[dot] == '.') {
            size_t at = skip_blanks(q, qlen, dot + 1);
            memcpy(qualifier, name, len + 1);
            if ((len = read_name(q, qlen, &at, name, sizeof name))) {
                in_db = strcmp(qualifier, db) == 0;
                i = at;
            } else {
                len = strlen(qualifier);
                memcpy(name, qualifier, len + 1);
            }
        }
        if (in_db && listed(tables, name, len)) {
            snprintf(table, cap, "%s", name);
            return true;
        }
    }
    return false;
}

/* Whether the next word at *i is word (any case); moves past it if so. */
static bool take_word(const char *q, size_t qlen, size_t *i, const char *word)
{
    size_t at = skip_blanks(q, qlen, *i), n = strlen(word);

    if (at + n > qlen || strncasecmp(q + at, word, n) != 0 ||
        (at + n < qlen && is_word_char(q[at + n])))
        return false;
    *i = at + n;
    return true;
}

cap_savepoint_op cap_statement_savepoint(const char *q, size_t qlen, char *name,
                                         size_t cap)
{
    cap_savepoint_op op;
    size_t i = 0;

    if (take_word(q, qlen, &i, "SAVEPOINT")) {
        op = CAP_SP_SET;
    } else if (take_word(q, qlen, &i, "ROLLBACK")) {
        if (!take_word(q, qlen, &i, "TO"))
            return CAP_SP_NONE; /* the whole transaction's */
        take_word(q, qlen, &i, "SAVEPOINT");
        op = CAP_SP_ROLLBACK;
    } else if (take_word(q, qlen, &i, "RELEASE")) {
        if (!take_word(q, qlen, &i, "SAVEPOINT"))
            return CAP_SP_NONE;
        op = CAP_SP_RELEASE;
    } else {
        return CAP_SP_NONE;
    }
    i = skip_blanks(q, qlen, i);
    if (!read_name(q, qlen, &i, name, cap) || skip_blanks(q, qlen, i) != qlen)
        return CAP_SP_NONE;
    return op;
}
