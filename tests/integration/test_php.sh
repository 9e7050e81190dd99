#!/usr/bin/env bash
# test_php.sh: PHP emits changes through examples/php/Datasync.php (FFI to libdatasync) and a real consumer applies them.
#
# Run by tests/run.sh with the private services up (DS_TEST_* set). Node
# php-a is the PHP application; node php-b runs datasync-consumer on database
# phptest_b. Own exchange and node names, so other tests' queues are not
# touched. Needs Debian's php-cli (FFI is in php8.x-common, on by default in
# the CLI): when php is missing this test fails, it never installs anything.
set -euo pipefail

fail() {
    echo "test_php: FAIL: $*" >&2
    exit 1
}

for v in DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_ROOT DS_TEST_SERVICES DS_TEST_AMQP_URL DS_TEST_MYSQL_SOCKET; do
    [[ -n "${!v:-}" ]] || fail "$v is not set: run me through tests/run.sh"
done

if ! command -v php >/dev/null; then
    fail "php is not installed: scripts/install-deps.sh installs php-cli (make deps)"
fi
if ! php -m | grep -x FFI >/dev/null; then
    fail "PHP has no FFI extension (php -m): Debian's php-cli brings it (php8.x-common)"
fi
for bin in datasync datasync-consumer libdatasync.so.0; do
    [[ -e "$DS_TEST_BUILD/$bin" ]] || fail "$DS_TEST_BUILD/$bin is not built (make build-tests)"
done

work=$(mktemp -d "$DS_TEST_RUNDIR/php.XXXXXX")
services=$DS_TEST_SERVICES
sql() { timeout 30 "$services" maria sql "$@"; }
rabbitctl() { timeout 60 "$services" rabbit ctl "$@"; }

consumer_pid=""
cleanup() {
    local rc=$?
    trap - EXIT
    if [[ -n "$consumer_pid" ]]; then
        kill -TERM "$consumer_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$consumer_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$consumer_pid" 2>/dev/null || true
        wait "$consumer_pid" 2>/dev/null || true
    fi
    if ((rc != 0)) && [[ -s "$work/consumer-b.log" ]]; then
        echo "---- consumer log ($work/consumer-b.log) ----" >&2
        tail -n 30 "$work/consumer-b.log" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT

# ------------------------------------------------------------- databases
sql -e "DROP DATABASE IF EXISTS phptest_b; CREATE DATABASE phptest_b CHARACTER SET utf8mb4;
  CREATE TABLE phptest_b.items (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL,
    price DECIMAL(10,2) NOT NULL, photo BLOB NULL, note TEXT NULL, made DATETIME NULL);
  CREATE TABLE phptest_b.tags (item_id INT, tag VARCHAR(32), PRIMARY KEY (item_id, tag));
  CREATE TABLE phptest_b.users (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL,
    email VARCHAR(200) NOT NULL UNIQUE, balance DECIMAL(12,2) NOT NULL);"

for n in a b; do
    cat >"$work/node-$n.conf" <<EOF
[node]
id = php-$n
[amqp]
url = $DS_TEST_AMQP_URL
exchange = datasync-php
[mysql]
socket = $DS_TEST_MYSQL_SOCKET
user = root
database = phptest_$n
[apply]
tables = items tags users
[producer]
spool_dir = $work/spool-$n
confirm_timeout_ms = 5000
EOF
done

# ------------------------------------------------ broker topology, consumer
timeout 60 "$DS_TEST_BUILD/datasync" -c "$work/node-a.conf" setup --nodes php-a,php-b ||
    fail "datasync setup --nodes php-a,php-b failed"
# Node a has no consumer here: its queue keeps what was published, which
# tells how many changes reached the broker. Empty it in case of a rerun.
rabbitctl purge_queue datasync.php-a >/dev/null || fail "purge_queue datasync.php-a"

"$DS_TEST_BUILD/datasync-consumer" -c "$work/node-b.conf" >"$work/consumer-b.log" 2>&1 &
consumer_pid=$!

# ---------------------------------------------------------- PHP emits
cat >"$work/emit.php" <<'PHP'
<?php
declare(strict_types=1);
require getenv('DS_TEST_ROOT') . '/examples/php/Datasync.php';

use Datasync\Binary;
use Datasync\DatasyncException;
use Datasync\Producer;

function check(bool $ok, string $what): void
{
    if (!$ok) {
        fwrite(STDERR, "emit.php: FAIL: $what\n");
        exit(1);
    }
}

// $fn must throw a DatasyncException whose message names $field.
function refused(string $what, string $field, callable $fn): void
{
    try {
        $fn();
    } catch (DatasyncException $e) {
        check($e->getCode() < 0, "$what: code " . $e->getCode() . ' is not a negative DS_E* code');
        check(preg_match('/^E[A-Z]+$/', $e->errorName()) === 1, "$what: error name " . $e->errorName());
        check(strpos($e->getMessage(), $field) !== false,
            "$what: the message does not name $field: " . $e->getMessage());
        echo "refused $what: {$e->getMessage()}\n";
        return;
    }
    check(false, "$what: no exception");
}

$p = new Producer($argv[1]);
check(Producer::libraryVersion() !== '', 'libraryVersion');

$photo = "\x00\xff\x10\x80bin\n\x00\"\\";
$p->emit('create', 'items', ['id' => 1], ['id' => 1, 'name' => 'Ada', 'price' => '10.50',
    'photo' => new Binary($photo), 'note' => "h\u{e9}llo \u{2603} \"q\" ; x",
    'made' => new DateTimeImmutable('2024-02-29 13:14:15')]);
$p->emit('create', 'items', ['id' => 2], ['id' => 2, 'name' => 'Bob', 'price' => '2.00',
    'photo' => null, 'note' => null, 'made' => null]);
$p->emit('create', 'items', ['id' => 3], ['id' => 3, 'name' => 'Cy', 'price' => 3,
    'photo' => new Binary(''), 'note' => '', 'made' => null]);
$p->emit(Producer::UPDATE, 'items', ['id' => 1], ['id' => 1, 'name' => 'Ada L.', 'price' => '11.00',
    'photo' => new Binary($photo), 'note' => "h\u{e9}llo \u{2603} \"q\" ; x",
    'made' => '2024-02-29 13:14:15']);
$p->emit('delete', 'items', ['id' => 2], null);
$p->emit('create', 'tags', ['item_id' => 1, 'tag' => 'red'], ['item_id' => 1, 'tag' => 'red']);
$p->emit('create', 'tags', ['item_id' => 1, 'tag' => 'blue'], ['item_id' => 1, 'tag' => 'blue']);
$p->emit('delete', 'tags', ['item_id' => 1, 'tag' => 'blue'], null);

// A whole event, as a replay would send it: kept as it is.
$hlc = (int)(microtime(true) * 1000) << 16;
$event = json_encode(['v' => 1, 'id' => '0190a5e4-7c1d-7b2a-9f3e-4d5c6b7a8e9f', 'origin' => 'php-a',
    'hlc' => $hlc, 'ts' => gmdate('Y-m-d\TH:i:s\Z'), 'op' => 'create', 'table' => 'items',
    'key' => ['id' => 4], 'data' => ['id' => 4, 'name' => 'Dee', 'price' => '4.40',
    'photo' => ['base64' => base64_encode("\x01\x02")], 'note' => null, 'made' => null]]);
$p->emitEvent($event);

// Bad input: an exception naming the field, and nothing published.
refused('an empty key', 'key', fn() => $p->emit('create', 'items', [], ['id' => 9, 'name' => 'x']));
refused('a null key value', 'key', fn() => $p->emit('create', 'items', ['id' => null], ['id' => 9]));
refused('bytes that are not UTF-8', 'data.photo',
    fn() => $p->emit('create', 'items', ['id' => 9], ['id' => 9, 'name' => 'x', 'photo' => "\xff\xfe"]));
refused('an array as a value', 'data.tags',
    fn() => $p->emit('create', 'items', ['id' => 9], ['id' => 9, 'tags' => [1, 2]]));
refused('an unknown op', 'op', fn() => $p->emit('upsert', 'items', ['id' => 9], ['id' => 9]));
refused('a bad table name', 'table', fn() => $p->emit('create', 'bad table', ['id' => 9], ['id' => 9]));
refused('a create without data', 'data', fn() => $p->emit('create', 'items', ['id' => 9], null));
refused('an event missing fields', 'id', fn() => $p->emitEvent('{"v": 1}'));
refused('an event that is not JSON', 'JSON', fn() => $p->emitEvent('{"v": 1,'));
try {
    $p->emit('create', 'items', [], ['id' => 9]);
} catch (DatasyncException $e) {
    check($e->errorName() === 'ESCHEMA' && $e->getCode() === -4,
        'an empty key is ESCHEMA (-4), got ' . $e->errorName() . ' ' . $e->getCode());
}

$p->flush(10000);
$s = $p->stats();
echo 'stats ', json_encode($s), "\n";
check($s['emitted'] === 9 && $s['confirmed'] === 9, 'emitted and confirmed 9: ' . json_encode($s));
check($s['spooled'] === 0 && $s['unroutable'] === 0 && $s['nacked'] === 0, 'nothing spooled: ' . json_encode($s));
// Every counter of ds_producer_stats, as an int, in the header's order.
check(array_keys($s) === ['emitted', 'confirmed', 'spooled', 'unroutable', 'nacked', 'reconnects',
    'refused', 'spool_bytes', 'lost'], 'stats keys: ' . json_encode(array_keys($s)));
check(count(array_filter($s, 'is_int')) === 9, 'stats values are ints: ' . json_encode($s));
check($s['reconnects'] === 0 && $s['refused'] === 0 && $s['spool_bytes'] === 0 && $s['lost'] === 0,
    'no reconnect, refusal or spool: ' . json_encode($s));

// A producer the broker refuses (wrong password): the change is spooled,
// and stats() says so: refused, spooled, spool_bytes.
$bad = new Producer($argv[1], ['amqp.url' => preg_replace('#//[^@]*@#', '//guest:wrong@', getenv('DS_TEST_AMQP_URL')),
    'producer.spool_dir' => $argv[2], 'producer.confirm_timeout_ms' => '1000']);
$bad->emit('delete', 'items', ['id' => 99], null);
// The refusal is counted by the library's I/O thread as it tries.
for ($i = 0; $i < 100 && ($b = $bad->stats())['refused'] === 0; $i++) {
    usleep(50000);
}
echo 'refused stats ', json_encode($b), "\n";
check($b['emitted'] === 1 && $b['confirmed'] === 0 && $b['spooled'] === 1 && $b['spool_bytes'] > 0,
    'a refused producer spools: ' . json_encode($b));
check($b['refused'] >= 1, 'the refusal is counted: ' . json_encode($b));
$bad->close();
$p->close();
refused('an emit after close', 'closed', fn() => $p->emit('delete', 'items', ['id' => 1], null));
try {
    new Producer($argv[1], ['amqp.prefetch' => '0']);
    check(false, 'a bad option was accepted');
} catch (DatasyncException $e) {
    check($e->errorName() === 'ECONFIG' && strpos($e->getMessage(), 'amqp.prefetch') !== false,
        'a bad option: ' . $e->getMessage());
}
echo "emit.php: ok\n";
PHP

echo "test_php: PHP emits as node php-a"
DATASYNC_LIB=$DS_TEST_BUILD/libdatasync.so.0 timeout 60 php "$work/emit.php" "$work/node-a.conf" "$work/spool-refused" ||
    fail "emit.php failed"

# The example, as a user runs it: the library found by its soname.
echo "test_php: examples/php/example.php"
LD_LIBRARY_PATH=$DS_TEST_BUILD timeout 60 php "$DS_TEST_ROOT/examples/php/example.php" "$work/node-a.conf" \
    >"$work/example.out" 2>&1 || {
    cat "$work/example.out" >&2
    fail "examples/php/example.php failed"
}
cat "$work/example.out"
grep -q '^emitted 5, confirmed 5, spooled 0$' "$work/example.out" ||
    fail "example.php did not report 5 changes emitted and confirmed"

# ------------------------------------------------- applied on node b?
# HEX() of emit.php's $photo: "\x00\xff\x10\x80bin\n\x00\"\\".
hex_photo=00FF108062696E0A00225C
expected_items=$(printf '%s\n' \
    "1	Ada L.	11.00	$hex_photo	héllo ☃ \"q\" ; x	2024-02-29 13:14:15" \
    "3	Cy	3.00		\"\"	NULL" \
    "4	Dee	4.40	0102	NULL	NULL")
expected_tags="1	red"
expected_users=$(printf '%s\n' "101	Rasmus	10.00" "102	Zeev	25.50")

items() {
    sql -N -B -e "SELECT id, name, price, IFNULL(HEX(photo), 'NULL'),
        IFNULL(IF(note = '', '\"\"', note), 'NULL'), IFNULL(made, 'NULL')
        FROM phptest_b.items ORDER BY id" 2>/dev/null
}
tags() { sql -N -B -e "SELECT item_id, tag FROM phptest_b.tags ORDER BY item_id, tag" 2>/dev/null; }
users() { sql -N -B -e "SELECT id, name, balance FROM phptest_b.users ORDER BY id" 2>/dev/null; }

echo "test_php: waiting for the consumer of php-b to apply them"
ok=0
for _ in $(seq 1 150); do
    kill -0 "$consumer_pid" 2>/dev/null || fail "datasync-consumer exited early"
    if [[ "$(items)" == "$expected_items" && "$(tags)" == "$expected_tags" &&
        "$(users)" == "$expected_users" ]]; then
        ok=1
        break
    fi
    sleep 0.2
done
if ((!ok)); then
    echo "---- items: expected ----"; echo "$expected_items"
    echo "---- items: found ----"; items || true
    echo "---- tags: expected / found ----"; echo "$expected_tags"; tags || true
    echo "---- users: expected / found ----"; echo "$expected_users"; users || true
    fail "node php-b's tables do not hold the changes PHP emitted"
fi
echo "test_php: node php-b holds every change"

# The refused inputs were never published: the queue of node a (no
# consumer) holds exactly the 9 + 5 good changes; nothing was dead-lettered.
queue_depth() {
    rabbitctl list_queues -q --no-table-headers name messages 2>/dev/null |
        awk -v q="$1" '$1 == q { print $2 }'
}
depth_a="" depth_dead=""
for _ in $(seq 1 50); do
    depth_a=$(queue_depth datasync.php-a)
    depth_dead=$(queue_depth datasync.php-b.dead)
    [[ "$depth_a" == 14 && "$depth_dead" == 0 ]] && break
    sleep 0.2
done
[[ "$depth_a" == 14 ]] || fail "datasync.php-a holds '$depth_a' messages, expected 14 (9 from emit.php, 5 from example.php)"
[[ "$depth_dead" == 0 ]] || fail "datasync.php-b.dead holds '$depth_dead' messages, expected 0"

# The contract: SIGTERM finishes the batch, acks, exits 0.
kill -TERM "$consumer_pid"
rc=0
timeout 15 tail --pid="$consumer_pid" -f /dev/null || fail "datasync-consumer still runs 15 s after SIGTERM"
wait "$consumer_pid" || rc=$?
consumer_pid=""
((rc == 0)) || fail "datasync-consumer exited $rc after SIGTERM, expected 0"
rabbitctl delete_queue datasync.php-a >/dev/null 2>&1 || true
echo "test_php: ok"
