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

/* Past the string literal (quote ') that starts at i. */
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

/* One token at *i (past blanks and comments): a name, bare, `quoted` or
 * "quoted" (a name under ANSI_QUOTES; taken as one, erring on the side of
 * seeing a table), copied to name (cap bytes, cut to fit) with its length
 * returned; 0 for a string literal or a punctuation character, skipped.
 * *i moves past the token; at the end, *i is qlen and 0 is returned. */
static size_t next_token(const char *q, size_t qlen, size_t *i, char *name,
                         size_t cap)
{
    size_t len = 0, at = skip_blanks(q, qlen, *i);

    name[0] = '\0';
    if (at >= qlen) {
        *i = qlen;
        return 0;
    }
    if (q[at] == '\'') {
        *i = skip_literal(q, qlen, at);
        return 0;
    }
    if (q[at] == '`' || q[at] == '"') {
        char quote = q[at];
        for (at++; at < qlen; at++) {
            if (q[at] == quote) {
                if (!(at + 1 < qlen && q[at + 1] == quote)) {
                    at++;
                    break;
                }
                at++; /* a doubled quote stands for one */
            }
            if (len + 1 < cap)
                name[len++] = q[at];
        }
    } else if (is_word_char(q[at])) {
        for (; at < qlen && is_word_char(q[at]); at++)
            if (len + 1 < cap)
                name[len++] = q[at];
    } else {
        at++; /* punctuation */
    }
    name[len] = '\0';
    *i = at;
    return len;
}

/* Whether the next token at *i is the word (any case); moves past it if
 * so. */
static bool take_word(const char *q, size_t qlen, size_t *i, const char *word)
{
    char name[32];
    size_t at = skip_blanks(q, qlen, *i);

    if (at < qlen && (q[at] == '`' || q[at] == '"'))
        return false; /* quoted: a name, not a keyword */
    if (!next_token(q, qlen, &at, name, sizeof name) ||
        strcasecmp(name, word) != 0)
        return false;
    *i = at;
    return true;
}

/* Whether the word appears as a token from *i on. Moves *i past it. */
static bool find_word(const char *q, size_t qlen, size_t *i, const char *word)
{
    char name[32];

    while (*i < qlen) {
        size_t at = *i;
        if (take_word(q, qlen, i, word))
            return true;
        *i = at;
        next_token(q, qlen, i, name, sizeof name);
    }
    return false;
}

static bool starts_changing_rows(const char *q, size_t qlen)
{
    static const char *const verbs[] = {"INSERT", "REPLACE",  "UPDATE",
                                        "DELETE", "TRUNCATE", "LOAD"};
    size_t i = 0;

    /* SET STATEMENT var = value, ... FOR statement: the statement. */
    if (take_word(q, qlen, &i, "SET")) {
        if (!take_word(q, qlen, &i, "STATEMENT") ||
            !find_word(q, qlen, &i, "FOR"))
            return false;
    }
    for (size_t v = 0; v < sizeof verbs / sizeof *verbs; v++) {
        size_t at = i;
        if (take_word(q, qlen, &at, verbs[v]))
            return true;
    }
    /* ALTER TABLE t TRUNCATE|DROP|EXCHANGE PARTITION: rows go or move. */
    if (take_word(q, qlen, &i, "ALTER")) {
        static const char *const ops[] = {"TRUNCATE", "DROP", "EXCHANGE"};
        for (size_t o = 0; o < sizeof ops / sizeof *ops; o++) {
            size_t at = i;
            while (find_word(q, qlen, &at, ops[o]))
                if (take_word(q, qlen, &at, "PARTITION"))
                    return true;
        }
    }
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

bool cap_statement_changes(const char *q, size_t qlen, const char *default_db,
                           const char *db, const char *tables, char *table,
                           size_t cap)
{
    char name[256], qualifier[256];
    size_t i = 0;

    if (!starts_changing_rows(q, qlen))
        return false;
    while (i < qlen) {
        size_t len = next_token(q, qlen, &i, name, sizeof name);
        /* Names compare in any case, the database's too: with
         * lower_case_table_names the server takes either. */
        bool in_db = strcasecmp(default_db, db) == 0;
        if (!len)
            continue;
        /* db.table: the first name was the database's. */
        size_t dot = skip_blanks(q, qlen, i);
        if (dot < qlen && q[dot] == '.') {
            size_t at = dot + 1;
            memcpy(qualifier, name, len + 1);
            if ((len = next_token(q, qlen, &at, name, sizeof name))) {
                in_db = strcasecmp(qualifier, db) == 0;
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
    if (!next_token(q, qlen, &i, name, cap) || skip_blanks(q, qlen, i) != qlen)
        return CAP_SP_NONE;
    return op;
}
