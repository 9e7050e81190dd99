/* spool.h: the producer's local journal of changes the broker has not confirmed, shared safely by several processes. */
#ifndef DS_PRODUCER_SPOOL_H
#define DS_PRODUCER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Files in the spool directory:
 *   spool.log   append-only records: header (magic, length, crc32) +
 *               payload + trailer (length, magic); one write() per batch,
 *               fsynced before an append returns.
 *   spool.head  offset of the first record not yet confirmed by a broker.
 *   drain.lock  held (flock) by the one process draining.
 * Appends and recovery hold an exclusive flock on spool.log, so processes
 * sharing a directory never interleave or read half a record.
 */
typedef struct ds_spool ds_spool;

/* Opens (creating the directory and files as needed) and recovers: a torn
 * last record is dropped, records before it are kept. Returns 0 or
 * DS_ESPOOL/DS_ENOMEM with err. */
int ds__spool_open(ds_spool **out, const char *dir, char *err, size_t errlen);

/* Closes; NULL is a no-op. */
void ds__spool_close(ds_spool *s);

/* Closes the descriptors a forked child inherited without releasing the
 * locks they carry: those belong to the parent. NULL is a no-op. */
void ds__spool_forget(ds_spool *s);

/* Appends n payloads durably (fsync) in one write. Returns 0 or DS_ESPOOL;
 * on failure nothing of the batch is left in the file. */
int ds__spool_append(ds_spool *s, const char *const *payloads,
                     const size_t *lens, size_t n, char *err, size_t errlen);

/* Bytes of records not yet confirmed (0: nothing to drain). */
int ds__spool_backlog(ds_spool *s, uint64_t *bytes);

/* Takes the drain lock without waiting. *got is false when another
 * process drains. On success the read cursor is at the head. */
int ds__spool_drain_begin(ds_spool *s, bool *got, char *err, size_t errlen);

/* Reads the record at the cursor into a malloc'd *payload (caller frees)
 * and advances. *payload is NULL at the end. A corrupt record in the middle
 * is skipped (counted in *skipped) up to the next valid one; a torn tail (a
 * writer died mid-record) is cut, never stepped over. Returns 0, or
 * DS_ESPOOL with err when the tail cannot be cut. */
int ds__spool_read(ds_spool *s, char **payload, size_t *len, int *skipped,
                   char *err, size_t errlen);

/* The cursor: where the next ds__spool_read starts. */
uint64_t ds__spool_cursor(const ds_spool *s);

/* Marks everything before offset confirmed (durably). When that is the whole
 * file, the file is emptied. */
int ds__spool_commit(ds_spool *s, uint64_t offset, char *err, size_t errlen);

/* Releases the drain lock. */
void ds__spool_drain_end(ds_spool *s);

/* Records why the broker does not take this directory's changes (problem),
 * or clears it (NULL), for ds__spool_peek in another process. Best effort:
 * errors are ignored. */
void ds__spool_set_problem(const char *dir, const char *problem);

/* For datasync status: the bytes waiting in dir's journal (0 when empty)
 * and the last problem recorded ("" when none), without opening the spool
 * for writing or changing anything. Returns 0, DS_ENOTFOUND when dir holds
 * no journal, or DS_EIO. */
int ds__spool_peek(const char *dir, uint64_t *bytes, char *problem,
                   size_t problen);

#endif
