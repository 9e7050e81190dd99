#!/usr/bin/env bash
# test_capture.sh: datasync-capture reads a private MariaDB's binlog and a datasync-consumer applies its changes on the harness's MariaDB: every type round-trips, transactions, rollback, key updates, rotation, kill -9 and resume, a server restart, versions kept when read again, XA transactions, a purged position, a missing privilege, no loop.
#
# Run by tests/run.sh with the private services up (DS_TEST_* set). The
# source is a mariadbd of this test's own (binlog on, ROW, FULL image and
# metadata) in $DS_TEST_RUNDIR; the remote is database cap_dst on the
# harness's MariaDB. Own exchange and node names, so other tests' queues
# are not touched.
set -euo pipefail

TEST=test_capture
# shellcheck source=../lib/testlib.sh
source "$(dirname "$0")/../lib/testlib.sh"


require_env DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_AMQP_URL DS_TEST_MYSQL_SOCKET

work=$(mktemp -d "$DS_TEST_RUNDIR/capture.XXXXXX")
ds=$DS_TEST_BUILD/datasync
m=$work/m
sock=$m/sock
mariadbd_pid=""
capture_pid=""
consumer_pid=""
src_consumer_pid=""
snap_consumer_pid=""

client() { # SOCKET ARGS...
    local s=$1
    shift
    timeout 60 mariadb --no-defaults --protocol=socket --socket="$s" --user=root \
        --default-character-set=utf8mb4 "$@"
}
src() { client "$sock" "$@"; }
dst() { client "$DS_TEST_MYSQL_SOCKET" "$@"; }

cleanup() {
    local rc=$?
    trap - EXIT
    stop_pid "$capture_pid"
    stop_pid "$consumer_pid"
    stop_pid "$src_consumer_pid"
    stop_pid "$snap_consumer_pid"
    if [[ -n "$mariadbd_pid" ]]; then
        timeout 30 mariadb-admin --no-defaults --protocol=socket --socket="$sock" \
            --user=root shutdown >/dev/null 2>&1 || true
        stop_pid "$mariadbd_pid"
    fi
    if ((rc != 0)); then
        show_logs 20 "$work"/*.log "$m"/error.log
    fi
    exit "$rc"
}
trap cleanup EXIT

# ------------------------------------------------ the source server
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

mkdir -p "$m/tmp"
port=$(free_port) || fail "no free port"
opts=(--no-defaults --datadir="$m/data" --tmpdir="$m/tmp" --user=root)
timeout 120 mariadb-install-db "${opts[@]}" --auth-root-authentication-method=normal \
    --skip-test-db >"$work/install.log" 2>&1 || fail "mariadb-install-db: $(tail -5 "$work/install.log")"
start_source() {
    mariadbd "${opts[@]}" --bind-address=127.0.0.1 --port="$port" --socket="$sock" \
        --pid-file="$m/mariadbd.pid" --log-error="$m/error.log" \
        --log-bin="$m/data/binlog" --binlog-format=ROW --binlog-row-image=FULL \
        --binlog-row-metadata=FULL --server-id=1 --innodb-buffer-pool-size=64M \
        >>"$work/mariadbd.log" 2>&1 &
    mariadbd_pid=$!
    for _ in $(seq 1 300); do
        src -e "SELECT 1" >/dev/null 2>&1 && break
        kill -0 "$mariadbd_pid" 2>/dev/null || fail "mariadbd exited: $(tail -5 "$m/error.log")"
        sleep 0.1
    done
    src -e "SELECT 1" >/dev/null || fail "mariadbd did not start"
}
start_source
say "source mariadbd on 127.0.0.1:$port"

schema="
CREATE TABLE types (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
  mi MEDIUMINT, mu MEDIUMINT UNSIGNED, ii INT, iu INT UNSIGNED,
  bi BIGINT, bu BIGINT UNSIGNED,
  de DECIMAL(30,10), dn DECIMAL(5,0), dd DECIMAL(12,4) UNSIGNED,
  fl FLOAT, db DOUBLE, gm POINT, -- before the text columns: their charsets
  ch CHAR(10), vc VARCHAR(300), tx TEXT, lt LONGTEXT, l1 CHAR(5) CHARACTER SET latin1,
  bl BLOB, bn BINARY(4), vb VARBINARY(20), mb MEDIUMBLOB,
  dt DATE, tm TIME, t6 TIME(6), t2 TIME(2), d0 DATETIME, d3 DATETIME(3),
  ts TIMESTAMP NULL DEFAULT NULL, tf TIMESTAMP(6) NULL DEFAULT NULL,
  yr YEAR, bt BIT(5), b64 BIT(64),
  en ENUM('red','green','blue'), st SET('a','b','c','d'),
  yq INT -- signed, after YEAR: the server gives YEAR a signedness bit
) CHARACTER SET utf8mb4;
CREATE TABLE pairs (k1 VARCHAR(20) NOT NULL, k2 INT NOT NULL, v VARCHAR(20),
  PRIMARY KEY (k1, k2)) CHARACTER SET utf8mb4;
-- INVISIBLE: left out of SELECT *, yet in every row image
CREATE TABLE load_rows (id INT NOT NULL PRIMARY KEY, inv INT INVISIBLE DEFAULT 5,
  v VARCHAR(40)) CHARACTER SET utf8mb4;
-- BINARY pads with 0x00, which the binlog leaves out: a key ending in 0x00
CREATE TABLE bins (k BINARY(4) NOT NULL PRIMARY KEY, v INT);
CREATE TABLE other (id INT PRIMARY KEY, v INT);
CREATE TABLE notrans (id INT PRIMARY KEY) ENGINE=MyISAM;"

src -e "CREATE DATABASE cap_src CHARACTER SET utf8mb4"
src cap_src -e "$schema"
dst -e "DROP DATABASE IF EXISTS cap_dst; CREATE DATABASE cap_dst CHARACTER SET utf8mb4"
dst cap_dst -e "$schema"

# ------------------------------------------------ datasync
write_conf() { # NODE SOCKET DB [EXTRA]
    cat >"$work/$1.conf" <<EOF
[node]
id = $1
clock_file = $work/$1.clock
[amqp]
url = $DS_TEST_AMQP_URL
exchange = datasync-cap
[mysql]
socket = $2
user = root
database = $3
[apply]
tables = types pairs load_rows bins
batch_wait_ms = 5
[producer]
spool_dir = $work/spool-$1
[log]
level = ${LOG_LEVEL:-info}
[capture]
server_id = 101
state_file = $work/$1.state
${4:-}
EOF
}
write_conf capsrc "$sock" cap_src
write_conf capdst "$DS_TEST_MYSQL_SOCKET" cap_dst
write_conf capother "$DS_TEST_MYSQL_SOCKET" cap_dst
timeout 60 "$ds" -c "$work/capdst.conf" setup --nodes capsrc,capdst >"$work/setup.log" 2>&1 ||
    fail "setup: $(cat "$work/setup.log")"

start_capture() {
    "$DS_TEST_BUILD/datasync-capture" -c "$work/capsrc.conf" >>"$work/capture.log" 2>&1 &
    capture_pid=$!
}
"$DS_TEST_BUILD/datasync-consumer" -c "$work/capdst.conf" >>"$work/consumer.log" 2>&1 &
consumer_pid=$!

# Bad settings are refused before anything runs.
rc=0
"$DS_TEST_BUILD/datasync-capture" -c /dev/null >/dev/null 2>&1 || rc=$?
((rc == 78)) || fail "a configuration without node.id exits $rc, not 78"

# A first start whose database is not up waits for it (a server that boots
# before its database needs no restart loop), and a stop meanwhile is a
# clean one.
write_conf capwait "$work/no-server.sock" cap_src
"$DS_TEST_BUILD/datasync-capture" -c "$work/capwait.conf" >"$work/capwait.log" 2>&1 &
waiting=$!
wait_log "$work/capwait.log" 10 "start-up:"
sleep 1.5
kill -0 "$waiting" 2>/dev/null || fail "a first start gave up on a database not up yet"
kill -TERM "$waiting"
rc=0
wait "$waiting" || rc=$?
((rc == 0)) || fail "stopped while waiting for its database: exit $rc, want 0"
grep -q "stopped during start-up" "$work/capwait.log" || fail "the stop during start-up is not logged"
[[ ! -e "$work/capwait.state" ]] || fail "a start that never read a position saved one"
say "a first start waits for its database, and stops cleanly meanwhile"

# Changes made before the first start are not captured: it starts at the
# server's current position.
src cap_src -e "INSERT INTO types (id, ii) VALUES (900, 1)"
start_capture
for _ in $(seq 1 100); do
    [[ -s "$work/capsrc.state" ]] && break
    sleep 0.1
done
[[ -s "$work/capsrc.state" ]] || fail "no state file after the first start"
src cap_src -e "DELETE FROM types WHERE id = 900"

# ------------------------------------------------ the workload
say "workload: every type, transactions, rollback, key updates, rotations"
src cap_src <<'EOF'
INSERT INTO types VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  -12345678901234567890.0123456789, -99999, 12345678.9999,
  -1.17549e-38, 2.2250738585072014e-308, ST_GeomFromText('POINT(1 2)'),
  'chär', REPEAT('v', 300), 'text with "quotes" \\ and \n newline', REPEAT('long ', 1000), 'déjà',
  x'00ff10', x'00000001', x'', REPEAT(x'a5', 70000),
  '1000-01-01', '-838:59:59', '-01:02:03.000004', '12:34:56.78', '9999-12-31 23:59:59', '2024-02-29 01:02:03.456',
  '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999',
  1901, b'10101', b'1111111111111111111111111111111111111111111111111111111111111111',
  'blue', 'a,d', -5),
 (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,
  0.0000000001, 0, 0, 3.40282e38, -1.7976931348623157e308, ST_GeomFromText('POINT(-3.5 4)'),
  '', '', '', '', '',
  x'', x'ff', x'00', x'',
  '2024-12-31', '00:00:00', '838:59:59.999999', '-00:00:00.01', '2000-01-01 00:00:00', '2000-01-01 00:00:00.001',
  '2024-06-30 12:00:00', '2000-01-01 00:00:00.000001',
  2155, b'0', b'0', 'red', '', 5),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO pairs VALUES ('a', 1, 'x'), ('a', 2, 'y'), ('b', 1, 'z'), ('emoji 😀', 7, 'ü');
FLUSH BINARY LOGS;
BEGIN;
INSERT INTO types (id, ii, vc) VALUES (10, 10, 'ten');
UPDATE types SET vc = 'one', de = 1.5 WHERE id = 1;
DELETE FROM types WHERE id = 3;
INSERT INTO pairs VALUES ('c', 3, 'in a transaction');
COMMIT;
INSERT INTO bins VALUES (x'ff000000', 1), (x'0a0b0000', 2), (x'01020304', 3);
UPDATE bins SET v = 20 WHERE k = x'0a0b0000';
DELETE FROM bins WHERE k = x'ff000000';
BEGIN;
INSERT INTO types (id, ii) VALUES (999, 999);
UPDATE types SET vc = 'rolled back' WHERE id = 2;
ROLLBACK;
UPDATE types SET id = 102 WHERE id = 2;
UPDATE pairs SET k1 = 'd', v = 'moved' WHERE k1 = 'a' AND k2 = 2;
FLUSH BINARY LOGS;
UPDATE pairs SET v = CONCAT(v, '!') WHERE k1 IN ('a', 'b');
DELETE FROM pairs WHERE k1 = 'b';
INSERT INTO other VALUES (1, 1);
-- A non-transactional write keeps the binlog from forgetting what a
-- savepoint rolls back: the rows stay, followed by ROLLBACK TO.
BEGIN;
INSERT INTO pairs VALUES ('sp', 1, 'kept');
SAVEPOINT a;
INSERT INTO notrans VALUES (1);
INSERT INTO pairs VALUES ('sp', 2, 'rolled back');
UPDATE pairs SET v = 'rolled back' WHERE k1 = 'sp' AND k2 = 1;
ROLLBACK TO SAVEPOINT a;
INSERT INTO pairs VALUES ('sp', 3, 'after');
COMMIT;
CREATE TABLE later (id INT PRIMARY KEY);
FLUSH BINARY LOGS;
INSERT INTO types (id, ii, tx) VALUES (11, 11, 'after three rotations'), (12, 12, NULL), (13, 13, '');
DELETE FROM types WHERE id IN (12, 13);
EOF

# Both sides read in UTC: TIMESTAMP columns print the same instant.
dump() { # SIDE DB
    "$1" -N --batch "$2" -e "SET time_zone = '+00:00';
        SELECT * FROM types ORDER BY id; SELECT * FROM pairs ORDER BY k1, k2;
        SELECT id, inv, v FROM load_rows ORDER BY id; SELECT HEX(k), v FROM bins ORDER BY k" | md5sum
}
checksums() { # SIDE DB
    "$1" -N "$2" -e "CHECKSUM TABLE types, pairs, load_rows, bins" | awk '{print $2}' | tr '\n' ' '
}
wait_same() { # WHAT
    local a b deadline=$((SECONDS + 120))
    while ((SECONDS < deadline)); do
        a=$(dump src cap_src)
        b=$(dump dst cap_dst)
        [[ "$a" == "$b" ]] && break
        sleep 0.5
    done
    if [[ "$a" != "$b" ]]; then
        src -N --batch cap_src -e "SET time_zone = '+00:00'; SELECT * FROM types ORDER BY id;
            SELECT * FROM pairs ORDER BY k1, k2; SELECT COUNT(*) FROM load_rows;
            SELECT HEX(k), v FROM bins ORDER BY k" >"$work/src.txt"
        dst -N --batch cap_dst -e "SET time_zone = '+00:00'; SELECT * FROM types ORDER BY id;
            SELECT * FROM pairs ORDER BY k1, k2; SELECT COUNT(*) FROM load_rows;
            SELECT HEX(k), v FROM bins ORDER BY k" >"$work/dst.txt"
        diff "$work/src.txt" "$work/dst.txt" | cut -c1-300 | head -n 20 >&2 || true
        fail "$1: the remote tables differ from the source after 120 s"
    fi
    a=$(checksums src cap_src)
    b=$(checksums dst cap_dst)
    [[ "$a" == "$b" ]] || fail "$1: CHECKSUM TABLE differs: source $a, remote $b"
    say "$1: source and remote identical (CHECKSUM TABLE $a)"
}
wait_same "round trip"

[[ -z "$(dst -N cap_dst -e "SELECT id FROM types WHERE id IN (999, 900)")" ]] ||
    fail "a rolled-back row or one from before the first start reached the remote"
[[ "$(dst -N cap_dst -e "SELECT COUNT(*) FROM other")" == 0 ]] ||
    fail "a table that is not captured reached the remote"
grep -q "CREATE TABLE later" "$work/capture.log" || fail "the DDL was not logged"

# ------------------------------------------------ compressed events
# log_bin_compress: rows events and statements of 10 bytes or more come
# zlib-compressed (v2 rows events; a DDL statement too).
src -e "SET GLOBAL log_bin_compress = ON, GLOBAL log_bin_compress_min_len = 10"
src cap_src <<'EOF'
INSERT INTO types (id, ii, vc, tx, mb) VALUES
 (30, 30, REPEAT('z', 250), REPEAT('compressed ', 90), REPEAT(x'5a01', 40000)),
 (31, 31, 'short', NULL, NULL), (32, 32, NULL, '', x'');
BEGIN;
UPDATE types SET tx = REPEAT('updated ', 200), de = -3.25 WHERE id = 30;
DELETE FROM types WHERE id = 31;
INSERT INTO pairs VALUES ('zip', 1, REPEAT('p', 20));
COMMIT;
CREATE TABLE later_compressed (id INT PRIMARY KEY, note VARCHAR(100));
EOF
src -e "SET GLOBAL log_bin_compress = OFF"
[[ "$(src -N -e "SHOW BINLOG EVENTS IN '$(src -N -e "SHOW MASTER STATUS" | awk '{print $1}')'" |
    grep -c '_compressed')" -gt 0 ]] || fail "the server wrote no compressed event"
wait_same "compressed rows events"
grep -q "CREATE TABLE later_compressed" "$work/capture.log" || fail "the compressed DDL statement was not logged"

# ------------------------------------------------ resume after a stop
say "a clean stop, changes while stopped, a restart"
stop_pid "$capture_pid"
capture_pid=""
grep -q "stopped at" "$work/capture.log" || fail "no clean stop in the log"
src cap_src -e "INSERT INTO types (id, ii) VALUES (20, 20); FLUSH BINARY LOGS;
    UPDATE types SET ii = 21 WHERE id = 20"
start_capture
wait_same "resume"

# ------------------------------------------------ changes nobody takes
# The broker returns the changes unroutable (no queue is bound with this
# routing key): the capture stops with the error, and its state stays before
# them, so the next start reads them again. It used to save past them on its
# way out (ds_flush reports them once).
say "changes returned unroutable: the capture stops, its position stays before them"
stop_pid "$capture_pid"
capture_pid=""
saved=$(cat "$work/capsrc.state")
sed 's/^exchange = datasync-cap$/&\nrouting_key = data.nowhere/' "$work/capsrc.conf" >"$work/capunr.conf"
grep -q "^routing_key = data.nowhere" "$work/capunr.conf" || fail "capunr.conf has no routing key"
src cap_src -e "INSERT INTO types (id, ii) VALUES (22, 22)"
rc=0
timeout 60 "$DS_TEST_BUILD/datasync-capture" -c "$work/capunr.conf" >"$work/unroutable.log" 2>&1 || rc=$?
((rc == 1)) || fail "unroutable changes: the capture exits $rc, not 1: $(tail -3 "$work/unroutable.log")"
grep -q "unroutable" "$work/unroutable.log" || fail "the unroutable changes are not named: $(tail -3 "$work/unroutable.log")"
[[ "$(cat "$work/capsrc.state")" == "$saved" ]] ||
    fail "the state moved past changes nobody took: '$saved', now '$(cat "$work/capsrc.state")'"
start_capture
wait_same "the unroutable changes read again"

# ------------------------------------------------ binlog_checksum changes
# Each binlog file says in its FORMAT_DESCRIPTION whether its events end
# with a CRC32: a file written before SET GLOBAL binlog_checksum = NONE still
# has them, and one written after has none.
say "binlog_checksum switched off and on while stopped: files of both kinds read"
stop_pid "$capture_pid"
capture_pid=""
src cap_src -e "INSERT INTO types (id, ii, vc) VALUES (23, 23, 'with crc');
    SET GLOBAL binlog_checksum = NONE;
    INSERT INTO types (id, ii, vc) VALUES (24, 24, 'without crc')"
start_capture
wait_same "checksums off"
src cap_src -e "SET GLOBAL binlog_checksum = CRC32;
    INSERT INTO types (id, ii, vc) VALUES (25, 25, 'with crc again')"
wait_same "checksums on again"

# ------------------------------------------------ kill -9 under load
say "kill -9 of datasync-capture under load, then a restart"
load() { # FROM TO
    for ((i = $1; i < $2; i++)); do
        echo "INSERT INTO load_rows (id, inv, v) VALUES ($i, $((i * 3)), 'row $i');"
        ((i % 7 == 0)) && echo "UPDATE load_rows SET v = 'updated $i' WHERE id = $((i - 3));"
        ((i % 11 == 0)) && echo "DELETE FROM load_rows WHERE id = $((i - 5));"
        ((i % 500 == 0)) && echo "FLUSH BINARY LOGS;"
    done
    return 0
}
load 1 3001 | src cap_src &
load_pid=$!
sleep 1
kill -KILL "$capture_pid"
wait "$capture_pid" 2>/dev/null || true
capture_pid=""
sleep 1
start_capture
wait "$load_pid" || fail "the load failed"
wait_same "kill -9"
n=$(src -N cap_src -e "SELECT COUNT(*) FROM load_rows")
((n > 2000)) || fail "the load wrote only $n rows"

# ------------------------------------------------ XA transactions
# A two-phase XA transaction is two groups in the binlog: its rows at XA
# PREPARE, its outcome later. Its changes go out at XA COMMIT, never at XA
# ROLLBACK, and a stop between the two must not lose them: the position
# saved stays before the prepare. Each src call is its own connection: a
# prepared transaction outlives the session that prepared it.
say "XA transactions: committed, rolled back, one phase, a restart between prepare and commit"
src cap_src -e "XA START 'xa1'; INSERT INTO pairs VALUES ('xa', 1, 'two phase');
    UPDATE load_rows SET v = 'xa1' WHERE id = 10; XA END 'xa1'; XA PREPARE 'xa1'"
src cap_src -e "XA START 'xa2'; INSERT INTO pairs VALUES ('xa', 2, 'rolled back');
    XA END 'xa2'; XA PREPARE 'xa2'"
src cap_src -e "INSERT INTO pairs VALUES ('xa', 3, 'after the prepares')"
src cap_src -e "XA START 'xa4'; INSERT INTO pairs VALUES ('xa', 4, 'one phase');
    XA END 'xa4'; XA COMMIT 'xa4' ONE PHASE"
xa_rows() { "$1" -N cap_"$2" -e "SELECT GROUP_CONCAT(k2 ORDER BY k2) FROM pairs WHERE k1 = 'xa'"; }
deadline=$((SECONDS + 60))
until [[ "$(xa_rows dst dst)" == "3,4" ]] || ((SECONDS > deadline)); do sleep 0.2; done
[[ "$(xa_rows dst dst)" == "3,4" ]] ||
    fail "XA: the remote holds pairs 'xa' $(xa_rows dst dst), not 3,4 (prepared ones must wait)"
stop_pid "$capture_pid"
capture_pid=""
src -e "XA COMMIT 'xa1'; XA ROLLBACK 'xa2'"
start_capture
wait_same "XA"
[[ "$(xa_rows dst dst)" == "1,3,4" ]] || fail "XA: the remote holds pairs 'xa' $(xa_rows dst dst), not 1,3,4"

# ------------------------------------------------ a change read again
# A restart reads again what came after the saved state and emits it
# again. It must carry the version it had the first time: with a newer one
# it would undo, everywhere, a change another server made in between.
say "a change read again after a restart keeps its version"
stop_pid "$capture_pid"
capture_pid=""
cp "$work/capsrc.state" "$work/before-ver.state"
start_capture
src cap_src -e "INSERT INTO pairs VALUES ('ver', 1, 'captured')"
deadline=$((SECONDS + 60))
until [[ "$(dst -N cap_dst -e "SELECT v FROM pairs WHERE k1 = 'ver'")" == captured ]] ||
    ((SECONDS > deadline)); do sleep 0.2; done
timeout 60 "$ds" -c "$work/capother.conf" publish --op update --table pairs \
    --key '{"k1":"ver","k2":1}' --data '{"k1":"ver","k2":1,"v":"later"}' >/dev/null ||
    fail "publish failed"
until [[ "$(dst -N cap_dst -e "SELECT v FROM pairs WHERE k1 = 'ver'")" == later ]] ||
    ((SECONDS > deadline)); do sleep 0.2; done
[[ "$(dst -N cap_dst -e "SELECT v FROM pairs WHERE k1 = 'ver'")" == later ]] ||
    fail "the remote did not take the later change of another server"
stop_pid "$capture_pid"
capture_pid=""
cp "$work/before-ver.state" "$work/capsrc.state" # as if it had crashed there
: >"$work/capture-again.log"
"$DS_TEST_BUILD/datasync-capture" -c "$work/capsrc.conf" >>"$work/capture-again.log" 2>&1 &
capture_pid=$!
sleep 3
stop_pid "$capture_pid"
capture_pid=""
cat "$work/capture-again.log" >>"$work/capture.log"
grep -Eq "stopped at .*: [1-9][0-9]* changes" "$work/capture-again.log" ||
    fail "the restart emitted nothing again: $(tail -2 "$work/capture-again.log")"
sleep 1
[[ "$(dst -N cap_dst -e "SELECT v FROM pairs WHERE k1 = 'ver'")" == later ]] ||
    fail "the change read again undid another server's later change: the remote holds '$(dst -N cap_dst -e "SELECT v FROM pairs WHERE k1 = 'ver'")'"
start_capture
# The source has no consumer here, so it never took the later change: the
# row goes, on both sides, for the comparisons that follow.
src cap_src -e "DELETE FROM pairs WHERE k1 = 'ver'"
wait_same "a change read again"

# ------------------------------------------------ the server restarts
# The binlog connection is lost under the capture: it reconnects with
# backoff and reads on from its position (it used to crash there: the
# connector frees the event of a failed fetch, and the capture freed it
# again).
say "the source server restarts under datasync-capture: it reconnects"
log_from=$(stat -c %s "$work/capture.log")
stop_pid "$mariadbd_pid"
mariadbd_pid=""
sleep 1
start_source
src cap_src -e "INSERT INTO types (id, ii) VALUES (4321, 4321)"
for _ in $(seq 1 300); do
    kill -0 "$capture_pid" 2>/dev/null ||
        fail "datasync-capture exited when the server restarted: $(tail -c +$((log_from + 1)) "$work/capture.log" | tail -3)"
    tail -c +$((log_from + 1)) "$work/capture.log" | grep "reading the binlog after" >/dev/null && break
    sleep 0.1
done
tail -c +$((log_from + 1)) "$work/capture.log" | grep "reading the binlog after" >/dev/null ||
    fail "datasync-capture did not read the binlog again within 30 s of the restart"
wait_same "server restart"

# ------------------------------------------------ no loop
# A consumer on the source applies a change of another origin there; the
# capture must not emit it again (it would come back as capsrc's, with a
# newer version).
say "a change applied by datasync-consumer on the source is not captured again"
"$DS_TEST_BUILD/datasync-consumer" -c "$work/capsrc.conf" >>"$work/src-consumer.log" 2>&1 &
src_consumer_pid=$!
timeout 60 "$ds" -c "$work/capother.conf" publish --op create --table pairs \
    --key '{"k1":"loop","k2":1}' --data '{"k1":"loop","k2":1,"v":"once"}' >/dev/null ||
    fail "publish failed"
for _ in $(seq 1 120); do
    [[ -n "$(src -N cap_src -e "SELECT v FROM pairs WHERE k1 = 'loop'")" &&
        -n "$(dst -N cap_dst -e "SELECT v FROM pairs WHERE k1 = 'loop'")" ]] && break
    sleep 0.5
done
[[ "$(src -N cap_src -e "SELECT v FROM pairs WHERE k1 = 'loop'")" == once ]] ||
    fail "the source's consumer did not apply the published change"
sleep 3 # time for a looped change to come round
origin=$(dst -N cap_dst -e "SELECT origin FROM datasync_versions WHERE tbl = 'pairs'
    ORDER BY hlc DESC LIMIT 1")
[[ "$origin" == capother ]] ||
    fail "the remote's last version of pairs is from '$origin', not capother: the change went round again"
stop_pid "$capture_pid"
capture_pid=""
grep -Eq "[1-9][0-9]* row changes of datasync-consumer not captured" "$work/capture.log" ||
    fail "the capture did not report skipping the consumer's transaction"

# ------------------------------------------------ a first start by snapshot
# capture.start = snapshot: a new server copies the source's tables as they
# are (emitted as creates), then reads the binlog from the snapshot's
# position: a change made after it arrives too.
say "a first start with capture.start = snapshot"
dst -e "DROP DATABASE IF EXISTS cap_snap; CREATE DATABASE cap_snap CHARACTER SET utf8mb4"
dst cap_snap -e "$schema"
write_conf capsnap "$DS_TEST_MYSQL_SOCKET" cap_snap
write_conf capsnapsrc "$sock" cap_src "start = snapshot"
timeout 60 "$ds" -c "$work/capsnap.conf" setup --nodes capsnap >>"$work/setup.log" 2>&1 ||
    fail "setup capsnap: $(tail -3 "$work/setup.log")"
"$DS_TEST_BUILD/datasync-consumer" -c "$work/capsnap.conf" >>"$work/snap-consumer.log" 2>&1 &
snap_consumer_pid=$!
"$DS_TEST_BUILD/datasync-capture" -c "$work/capsnapsrc.conf" >>"$work/snap-capture.log" 2>&1 &
capture_pid=$!
for _ in $(seq 1 600); do
    grep -q "rows confirmed; reading the binlog" "$work/snap-capture.log" && break
    kill -0 "$capture_pid" 2>/dev/null || fail "the snapshot capture exited: $(tail -3 "$work/snap-capture.log")"
    sleep 0.1
done
grep -q "rows confirmed; reading the binlog" "$work/snap-capture.log" || fail "the snapshot did not finish in 60 s"
[[ -s "$work/capsnapsrc.state" ]] || fail "no state saved after the snapshot"
src cap_src -e "INSERT INTO types (id, ii, vc) VALUES (40, 40, 'after the snapshot')"
deadline=$((SECONDS + 120))
while ((SECONDS < deadline)); do
    [[ "$(dump src cap_src)" == "$(dump dst cap_snap)" ]] && break
    sleep 0.5
done
[[ "$(dump src cap_src)" == "$(dump dst cap_snap)" ]] ||
    fail "the snapshot server differs from the source after 120 s"
[[ "$(checksums src cap_src)" == "$(checksums dst cap_snap)" ]] ||
    fail "snapshot: CHECKSUM TABLE differs: source $(checksums src cap_src), new server $(checksums dst cap_snap)"
stop_pid "$capture_pid"
capture_pid=""
stop_pid "$snap_consumer_pid"
snap_consumer_pid=""
say "snapshot: $(grep -o 'snapshot: [0-9]* rows confirmed' "$work/snap-capture.log"), then the binlog: new server identical (CHECKSUM TABLE $(checksums dst cap_snap))"

# ------------------------------------------------ a change by a statement
# A session in binlog_format STATEMENT changes a captured table: there is no
# row image to send, so the capture stops before it and names it (it used to
# log it as DDL and read on: the change never reached the other servers). A
# TRUNCATE of a table that is not captured is only a statement.
say "a captured table changed by a statement stops the capture before it"
log_from=$(stat -c %s "$work/capture.log")
start_capture
src cap_src -e "TRUNCATE TABLE other"
# Nor is a table of the same name in another database of the server.
src -e "CREATE DATABASE cap_side; CREATE TABLE cap_side.pairs (id INT PRIMARY KEY)"
src cap_side -e "TRUNCATE TABLE pairs"
src cap_src -e "SET SESSION binlog_format = 'STATEMENT';
    UPDATE pairs SET v = 'by statement' WHERE k1 = 'c'"
stopped_at_statement() { # WHAT REGEX: the capture stops, its error matching REGEX, before it
    local gtid log
    gtid=$(src -N -e "SELECT @@gtid_binlog_pos")
    for _ in $(seq 1 300); do
        tail -c +$((log_from + 1)) "$work/capture.log" | grep "stopped at" >/dev/null && break
        sleep 0.1
    done
    log=$(tail -c +$((log_from + 1)) "$work/capture.log")
    grep "stopped at" >/dev/null <<<"$log" ||
        fail "the capture read on past $1: $(tail -3 <<<"$log")"
    rc=0
    wait "$capture_pid" || rc=$?
    capture_pid=""
    ((rc == 1)) || fail "$1: the capture exits $rc, not 1: $(tail -3 <<<"$log")"
    grep -E "$2" >/dev/null <<<"$log" ||
        fail "$1 is not named: $(tail -3 <<<"$log")"
    [[ "$(head -n 1 "$work/capsrc.state")" != "$gtid" ]] ||
        fail "the state moved past $1, transaction $gtid"
    stmt_gtid=$gtid
}
stopped_at_statement "an UPDATE by a statement" "changed rows of pairs by a statement.*by statement"

# As datasync-capture(8) says to go on: the same change on the other
# server, the statement's GTID in the state file, a start.
dst cap_dst -e "UPDATE pairs SET v = 'by statement' WHERE k1 = 'c'"
sed -i "1s/.*/$stmt_gtid/" "$work/capsrc.state"
log_from=$(stat -c %s "$work/capture.log")
start_capture
src cap_src -e "INSERT INTO pairs VALUES ('after statement', 1, 'x')"
wait_same "after the statement, by hand"

# LOAD DATA logged as a statement is an event of its own kind, which
# Connector/C 3.3 cannot read ("Malformed packet"): a stop either way.
printf 'loaded\t1\tx\n' >"$work/load.tsv"
src --local-infile=1 cap_src -e "SET SESSION binlog_format = 'STATEMENT';
    LOAD DATA LOCAL INFILE '$work/load.tsv' INTO TABLE pairs"
stopped_at_statement "a LOAD DATA by a statement" \
    "changed rows of pairs by a statement.*LOAD DATA|Binary log error.*Malformed packet"

# ------------------------------------------------ a purged position
say "a purged position is a clear fatal error"
src -e "FLUSH BINARY LOGS"
last=$(src -N -e "SHOW BINARY LOGS" | tail -n 1 | awk '{print $1}')
src -e "PURGE BINARY LOGS TO '$last'"
echo "0-1-5" >"$work/capsrc.state"
rc=0
timeout 60 "$DS_TEST_BUILD/datasync-capture" -c "$work/capsrc.conf" >"$work/purged.log" 2>&1 || rc=$?
((rc == 1)) || fail "a purged position exits $rc, not 1: $(tail -3 "$work/purged.log")"
grep -q "purged" "$work/purged.log" || fail "the purged position is not named: $(tail -3 "$work/purged.log")"

# ------------------------------------------------ a missing privilege
# The server refuses the dump only at the first fetch: the daemon must stop
# there with the server's words, not retry for ever.
say "a user without REPLICATION SLAVE is told so"
src -e "CREATE USER 'capnopriv'@'localhost' IDENTIFIED BY 'capnopriv-pw';
    GRANT SELECT ON cap_src.* TO 'capnopriv'@'localhost'"
write_conf capnopriv "$sock" cap_src
sed -i 's/^user = root$/user = capnopriv\npassword = capnopriv-pw/' "$work/capnopriv.conf"
rc=0
timeout 60 "$DS_TEST_BUILD/datasync-capture" -c "$work/capnopriv.conf" >"$work/nopriv.log" 2>&1 || rc=$?
((rc == 1)) || fail "a user without REPLICATION SLAVE exits $rc, not 1: $(tail -3 "$work/nopriv.log")"
grep -q "REPLICATION SLAVE" "$work/nopriv.log" ||
    fail "the missing privilege is not named: $(tail -3 "$work/nopriv.log")"

say "PASS"
