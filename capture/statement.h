/* statement.h: whether a statement read from the binlog (a QUERY event) changed rows of a captured table: a change with no row image, which the capture cannot send. */
#ifndef DS_CAPTURE_STATEMENT_H
#define DS_CAPTURE_STATEMENT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * When q (qlen bytes, not NUL-terminated) is a statement that changes rows
 * (INSERT, REPLACE, UPDATE, DELETE, TRUNCATE, LOAD) and names one of the
 * tables of the space-separated list tables in database db anywhere outside
 * its string literals and comments (any case, backquoted or not: qualified
 * by db, or unqualified while default_db, the session's, is db), copies
 * that name to table (cap bytes) and returns true. Erring on the side of
 * true: a statement that only reads a captured table while it writes
 * another one counts too.
 */
bool cap_statement_changes(const char *q, size_t qlen, const char *default_db,
                           const char *db, const char *tables, char *table,
                           size_t cap);

typedef enum {
    CAP_SP_NONE = 0, /* not a savepoint statement */
    CAP_SP_SET,      /* SAVEPOINT name */
    CAP_SP_ROLLBACK, /* ROLLBACK TO [SAVEPOINT] name */
    CAP_SP_RELEASE   /* RELEASE SAVEPOINT name */
} cap_savepoint_op;

/*
 * Which savepoint statement q is, with the savepoint's name in name (cap
 * bytes, unquoted). The binlog keeps them only when a transaction also
 * wrote a non-transactional table: then the rows a ROLLBACK TO undid are
 * still in the log before it.
 */
cap_savepoint_op cap_statement_savepoint(const char *q, size_t qlen, char *name,
                                         size_t cap);

#endif
