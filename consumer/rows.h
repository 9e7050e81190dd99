/* rows.h: the SQL that writes rows by primary key: one at a time, or a group of
 * rows in multi-row statements. */
#ifndef DS_CONSUMER_ROWS_H
#define DS_CONSUMER_ROWS_H

#include <stdbool.h>
#include <stddef.h>

#include "apply.h"
#include "stmt.h"

/* Deletes c's row by its primary key. Returns 0, or a DS_E code with err;
 * *errnum is the MySQL error number of a failed execution (0 otherwise). */
int dsc_row_delete(dsc_stmts *s, const dsc_change *c, unsigned int *errnum,
                   char *err, size_t errlen);

/* Writes c's row, matching the primary key only: UPDATE, and INSERT when no
 * row matched, so a clash on another unique key is an error, never an
 * overwrite of another row. Returns as dsc_row_delete. */
int dsc_row_upsert(dsc_stmts *s, const dsc_change *c, unsigned int *errnum,
                   char *err, size_t errlen);

/* Whether c (a create or update) sets every column it can: the whole row. */
bool dsc_row_is_whole(const dsc_change *c);

/* Writes todo[0..n) a group at a time (one table, one op, the same
 * columns), groups in the order of their first change: deletes by key IN
 * (...), upserts as INSERT ... ON DUPLICATE KEY UPDATE for tables whose one
 * unique index is the primary key, else row by row. wipe: delete every
 * change's row instead. group is scratch space of n entries; todo is
 * consumed. Returns 0 or a DS_E code with err. */
int dsc_rows_write(dsc_stmts *s, dsc_change **todo, dsc_change **group,
                   size_t n, bool wipe, char *err, size_t errlen);

#endif
