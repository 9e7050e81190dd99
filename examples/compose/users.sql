-- users.sql: the application table of every node database in compose.yaml, as `make demo` creates it.
--
-- The MariaDB image runs this once, on an empty data directory, in the
-- database named by MARIADB_DATABASE (demo_a, demo_b, demo_c).
-- tests/integration/test_compose.sh checks it against scripts/demo.sh.
ALTER DATABASE CHARACTER SET utf8mb4;
CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL,
  email VARCHAR(200) NOT NULL UNIQUE, balance DECIMAL(12,2) NOT NULL);
