-- datasync-meta.sql: the consumer's metadata tables, created at start-up (idempotent).
--
-- The consumer runs this file as it is on every start (it is compiled into
-- the daemon), so every statement must be safe to run again.

-- One row per (table, key) a change was ever accepted for on this server:
-- the version of that change, deletes included (tombstones), so a late or
-- duplicate delivery can be recognised and ignored.
CREATE TABLE IF NOT EXISTS datasync_versions (
    -- The application table's name, exactly as in the change event.
    -- Binary collation: table names compare byte for byte.
    tbl VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- The row's primary key: a compact JSON array of the key's values in
    -- primary-key column order, integers normalised, strings JSON-escaped,
    -- binary values as {"base64": ...}. VARBINARY so equal keys compare
    -- equal byte for byte, whatever the server's default collation.
    pk VARBINARY(2048) NOT NULL,
    -- The version of the last change accepted: (hlc, origin), compared by
    -- hlc, then by origin byte for byte.
    hlc BIGINT UNSIGNED NOT NULL,
    origin VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- 1 when that change was a delete: the row is gone, its version stays
    -- as a tombstone until pruned.
    deleted TINYINT NOT NULL DEFAULT 0,
    -- 1 when the consumer wrote the row for this version; 0 when the change
    -- was this server's own and only recorded, so the table holds the
    -- application's write. Decides whether a later own change must be
    -- written again (consumer/decide.h).
    applied TINYINT NOT NULL DEFAULT 1,
    -- When the key was first stored or last deleted, for pruning old
    -- tombstones (apply.tombstone_retention_hours). A live key's later
    -- versions leave it alone: the index below then needs no change on
    -- every applied change (docs/design.md, Performance).
    updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (tbl, pk),
    KEY datasync_tombstones (deleted, updated_at)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;
