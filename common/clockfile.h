/* clockfile.h: the highest version a server has applied, shared through a small mapped file with the producers on the same server. */
#ifndef DS_COMMON_CLOCKFILE_H
#define DS_COMMON_CLOCKFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

/*
 * Why: a server's application writes its own rows directly, and only then
 * emits the change with the producer's hybrid logical clock. If that clock
 * runs behind another server's (clock skew) and the consumer has already
 * applied a remote change with a higher version to the same row, the
 * application's later write would lose everywhere else yet stay in the
 * local table. The consumer therefore raises this shared value to every
 * version it is about to commit, before committing, and producers never
 * stamp a change at or below it: a write that comes after an applied
 * change is always newer than it (Lamport's receive rule).
 *
 * The file holds one 64-bit value, mapped shared: readers see a raise at
 * once, with no system call per emit.
 */
typedef struct ds_clockfile ds_clockfile;

/* Opens path for reading (producers). Returns 0 and *out; DS_ENOTFOUND
 * with err when the file does not exist or is not written yet (normal until
 * this server's consumer first runs); DS_EIO with err when it is there but
 * cannot be opened or mapped (no permission: the producer's user is not in
 * the file's group). The caller carries on without it and may try again. */
int ds__clockfile_open_reader(ds_clockfile **out, const char *path, char *err,
                              size_t errlen);

/* For a caller that retries ds__clockfile_open_reader every few seconds:
 * opens path and returns the handle, or NULL. A failure other than
 * DS_ENOTFOUND is logged at warn level through lg (NULL: not logged) once:
 * *reported keeps the errno last logged (start it at 0) and a failure is
 * only counted as reported when lg actually logged it, so a logger set
 * after the first attempt still hears of it. Not thread-safe on the same
 * *reported. */
ds_clockfile *ds__clockfile_try_reader(const char *path, const ds_logger *lg,
                                       int *reported);

/* Opens path for writing (the consumer), creating it with mode 0644 and its
 * directory, if missing, with mode 0755, whatever the umask: producers of
 * other users must read it (under systemd's UMask=0027 they could not).
 * An existing file keeps its mode. Returns 0 or DS_EIO with err. */
int ds__clockfile_open_writer(ds_clockfile **out, const char *path, char *err,
                              size_t errlen);

/* The current value; 0 for NULL. Any thread, any process. */
uint64_t ds__clockfile_read(const ds_clockfile *cf);

/* Raises the value to hlc if it is higher (never lowers it). NULL is a
 * no-op. Writers only. */
void ds__clockfile_raise(ds_clockfile *cf, uint64_t hlc);

/* Opens path, creating it (mode 0640) when missing, as a counter shared by
 * every process that opens it: the producers sharing a spool directory
 * take their versions from it, so no two of them ever stamp the same one.
 * Otherwise a change made in one process right after another process's
 * change of the same row, in the same millisecond, would get the same
 * (hlc, origin), compare equal and be superseded on every other server.
 * Returns 0 or DS_EIO with err. */
int ds__clockfile_open_counter(ds_clockfile **out, const char *path, char *err,
                               size_t errlen);

/* Takes the next value of a counter, atomically across processes:
 * max(value + 1, candidate), stored and returned. Any thread. */
uint64_t ds__clockfile_next(ds_clockfile *cf, uint64_t candidate);

/* Unmaps and frees; NULL is a no-op. */
void ds__clockfile_close(ds_clockfile *cf);

#endif
