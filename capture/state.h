/* state.h: the capture's state file, the GTID position after the last change the broker confirmed or the spool holds, and the capture's clock there. */
#ifndef DS_CAPTURE_STATE_H
#define DS_CAPTURE_STATE_H

#include <stddef.h>
#include <stdint.h>

/* Longest GTID position kept ("domain-server-seq" lists). */
#define CAP_GTID_MAX 1024

/*
 * Reads the state saved in path: the position into buf and the capture's
 * clock there into *hlc (0 in a state file of an earlier release, which
 * holds the position only). Returns 0 (buf may be "" for an empty
 * position), DS_ENOTFOUND when the file does not exist (a first start),
 * DS_EIO or DS_EINVAL (not a GTID position, a bad clock line) with err.
 */
int cap_state_read(const char *path, char *buf, size_t cap, uint64_t *hlc,
                   char *err, size_t errlen);

/* Saves gtid and the clock hlc there in path: a temporary file, fsync,
 * rename, fsync of the directory, so a crash leaves the old state or the
 * new one. Returns 0 or DS_EIO with err. */
int cap_state_write(const char *path, const char *gtid, uint64_t hlc, char *err,
                    size_t errlen);

#endif
