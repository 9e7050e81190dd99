/* snapshot.h: a first start's copy: the captured tables as they are at one consistent snapshot, emitted as creates, and the binlog position it stands for. */
#ifndef DS_CAPTURE_SNAPSHOT_H
#define DS_CAPTURE_SNAPSHOT_H

#include <signal.h>
#include <stddef.h>

#include "config.h"
#include "datasync.h"
#include "log.h"

/*
 * Opens a consistent snapshot (START TRANSACTION WITH CONSISTENT
 * SNAPSHOT, InnoDB) of cfg's [mysql] database, reads the binlog position
 * that snapshot stands for (binlog_snapshot_file/position, as a GTID
 * position with BINLOG_GTID_POS), and emits every row of the captured
 * tables through p as a create (key: the primary key; data: the row, its
 * values as datasync-capture sends binlog rows), each a version above the
 * capture's clock *clk, which it moves. Waits until p has them
 * confirmed or spooled, then writes gtid (cap bytes): the position from
 * which the binlog continues without a gap. Logs progress on lg. Returns
 * 0; DS_EINVAL when *stop was set; DS_EDBCONNECT, DS_EMYSQL, DS_ECONFIG (a
 * table without a primary key or missing, no binlog), or ds_emit's error,
 * with err.
 * Nothing is saved on failure: the next start copies again (a change
 * emitted twice is harmless).
 */
int cap_snapshot(const ds_config *cfg, ds_producer *p, const ds_logger *lg,
                 volatile sig_atomic_t *stop, uint64_t *clk, char *gtid,
                 size_t cap, char *err, size_t errlen);

#endif
