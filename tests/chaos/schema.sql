-- schema.sql: the chaos run's tables, created in each server's database (tests/chaos/run.sh); tests/chaos/chaos.h describes them to the C tools.

-- Replicated (apply.tables = items accounts tags).
CREATE TABLE items (
    id INT NOT NULL PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    qty INT NOT NULL,
    price DECIMAL(10, 2) NOT NULL,
    note TEXT NULL,
    rev BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- email: a unique secondary key, always derived from id (user<id>@chaos.test)
-- so the random workload never makes two rows clash on it.
CREATE TABLE accounts (
    id INT NOT NULL PRIMARY KEY,
    email VARCHAR(80) NOT NULL,
    balance BIGINT NOT NULL,
    active TINYINT(1) NOT NULL,
    born DATE NULL,
    UNIQUE KEY accounts_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- A composite primary key with a string part.
CREATE TABLE tags (
    k1 VARCHAR(16) NOT NULL,
    k2 INT NOT NULL,
    v VARCHAR(64) NOT NULL,
    PRIMARY KEY (k1, k2)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Not replicated: the producer driver's transactional outbox. A change is
-- written here in the same transaction as the row, and deleted once
-- ds_emit_event returned 0 and the change is in the emitted log; after a
-- crash the driver emits what is left again (same id and version), as a
-- host application that must not lose a committed change would.
CREATE TABLE chaos_outbox (
    id CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
    hlc BIGINT UNSIGNED NOT NULL,
    event TEXT NOT NULL,
    logline TEXT NOT NULL,
    KEY chaos_outbox_hlc (hlc)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Not replicated nor captured: the SQL-only writer's (chaos_producer
-- --sql-only) commit record. Each of its transactions inserts its id here,
-- so the checker knows which logged transactions committed.
CREATE TABLE chaos_sqltx (
    id CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY
) ENGINE = InnoDB;
