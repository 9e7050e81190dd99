#!/usr/bin/env bash
# test_history.sh: the archive and new servers: bootstrap a 4th server and rebuild a lost one while producers keep writing, replay --since windows, a restored table, and bad input.
#
# Run by tests/run.sh with the private services up (DS_TEST_* set). Three
# servers h1..h3 run datasync-consumer and a host application each
# (tests/chaos/chaos_producer: writes its own database, then emits); h4
# joins late. Every server's rows and datasync_versions must end identical.
# Own exchange and node names, so other tests' queues are not touched.
set -euo pipefail

TEST=test_history
# shellcheck source=../lib/testlib.sh
source "$(dirname "$0")/../lib/testlib.sh"


require_env DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_ROOT DS_TEST_SERVICES DS_TEST_AMQP_URL DS_TEST_MYSQL_SOCKET DS_TEST_MYSQL_PORT

work=$(mktemp -d "$DS_TEST_RUNDIR/history.XXXXXX")
ds=$DS_TEST_BUILD/datasync
sql() { timeout 60 "$DS_TEST_SERVICES" maria sql "$@"; }
# Per node: its consumer's and its application's pid ("" when stopped).
declare -A consumer=() app=()

cleanup() {
    local rc=$?
    trap - EXIT
    [[ -n "${writer_pid:-}" ]] && touch "$work/writer.stop" && wait "$writer_pid" 2>/dev/null
    for n in "${!app[@]}"; do stop_pid "${app[$n]}"; done
    for n in "${!consumer[@]}"; do stop_pid "${consumer[$n]}"; done
    if ((rc != 0)); then
        show_logs 15 "$work"/*.log
    fi
    exit "$rc"
}
trap cleanup EXIT

# ------------------------------------------------------------ the servers
write_conf() { # NODE [EXTRA]
    cat >"$work/$1.conf" <<EOF
[node]
id = $1
clock_file = $work/$1.clock
[amqp]
url = $DS_TEST_AMQP_URL
exchange = datasync-hist
[mysql]
socket = $DS_TEST_MYSQL_SOCKET
user = root
database = hist_$1
[apply]
tables = items accounts tags
batch_wait_ms = 5
[producer]
spool_dir = $work/spool-$1
${2:-}
EOF
}

create_db() { # NODE
    sql -e "DROP DATABASE IF EXISTS hist_$1; CREATE DATABASE hist_$1 CHARACTER SET utf8mb4"
    sql "hist_$1" <"$DS_TEST_ROOT/tests/chaos/schema.sql"
}

start_consumer() { # NODE
    "$DS_TEST_BUILD/datasync-consumer" -c "$work/$1.conf" >>"$work/consumer-$1.log" 2>&1 &
    consumer[$1]=$!
}

stop_consumer() { # NODE
    stop_pid "${consumer[$1]:-}"
    consumer[$1]=""
}

start_app() { # NODE SEED
    "$DS_TEST_BUILD/tools/chaos_producer" -c "$work/$1.conf" --node "$1" --db "hist_$1" \
        --host 127.0.0.1 --port "$DS_TEST_MYSQL_PORT" --emitted "$work/emitted-$1.txt" \
        --spool "$work/spool-$1" --seed "$2" --rate 1000 >>"$work/app-$1.log" 2>&1 &
    app[$1]=$!
}

stop_app() { # NODE
    stop_pid "${app[$1]:-}"
    app[$1]=""
}

emitted() { # the changes all applications emitted so far
    cat "$work"/emitted-*.txt 2>/dev/null | wc -l
}

# A server's state: its rows and its versions, in a fixed order. applied and
# updated_at say how a version came to be stored, not what it is.
state() { # NODE
    sql -N "hist_$1" -e "SELECT * FROM items ORDER BY id; SELECT * FROM accounts ORDER BY id;
        SELECT * FROM tags ORDER BY k1, k2;
        SELECT tbl, HEX(pk), hlc, origin, deleted FROM datasync_versions WHERE tbl <> '#marker' ORDER BY tbl, pk"
}

# Waits until every NODE has the same state as the first, for up to 90 s.
wait_identical() { # NODE...
    local first=$1 ref s n
    for _ in $(seq 1 180); do
        ref=$(state "$first" | md5sum)
        s=ok
        for n in "${@:2}"; do
            [[ "$(state "$n" | md5sum)" == "$ref" ]] || s=differ
        done
        [[ $s == ok ]] && return 0
        sleep 0.5
    done
    for n in "$@"; do
        state "$n" >"$work/state-$n.txt"
    done
    for n in "${@:2}"; do
        diff "$work/state-$first.txt" "$work/state-$n.txt" | head -n 10 >&2 || true
    done
    fail "servers $* differ after 90 s (states in $work/state-*.txt)"
}

rows() { # NODE TABLE
    sql -N "hist_$1" -e "SELECT COUNT(*) FROM $2"
}

for n in h1 h2 h3 h4; do
    write_conf "$n"
    create_db "$n"
done
timeout 60 "$ds" -c "$work/h1.conf" setup --nodes h1,h2,h3 >"$work/setup.log" ||
    fail "setup: $(cat "$work/setup.log")"
grep -q "archive: stream datasync-hist.archive" "$work/setup.log" ||
    fail "setup did not declare the archive: $(cat "$work/setup.log")"

# A large table the servers share, written before datasync (no versions),
# so the copy takes long enough for the applications to write meanwhile.
for n in h1 h2 h3; do
    sql "hist_$n" -e "INSERT INTO items (id, name, qty, price, note, rev)
        SELECT 1000000 + seq, CONCAT('bulk ', seq), seq % 100, seq / 100, NULL, 0
        FROM seq_1_to_200000"
done

# ------------------------------------- 1. a 4th server joins while writes go on
# Besides the three applications, a fourth origin (hx, no server of its
# own) keeps updating the large table through datasync publish, 500 changes
# a call, until told to stop: writes the copy overlaps for sure.
write_conf hx
bulk_updates() { # COUNT SEED NAME
    awk -v n="$1" -v seed="$2" -v name="$3" 'BEGIN { srand(seed); for (i = 0; i < n; i++) {
        id = 1000001 + int(rand() * 200000)
        printf "{\"op\":\"update\",\"table\":\"items\",\"key\":{\"id\":%d},\"data\":{\"id\":%d,\"name\":\"%s\",\"qty\":%d,\"price\":\"2.50\",\"note\":null,\"rev\":%d}}\n", id, id, name, i, seed }
    }'
}
writer_pid=""
start_writer() {
    rm -f "$work/writer.stop"
    (
        # Counting on from an earlier writer: writer_emitted is a total.
        b=$(cat "$work/writer.batches" 2>/dev/null || echo 0)
        while [[ ! -e "$work/writer.stop" ]]; do
            b=$((b + 1))
            bulk_updates 500 "$b" "w$b" | timeout 60 "$ds" -c "$work/hx.conf" publish - >/dev/null ||
                exit 1
            echo "$b" >"$work/writer.batches.new"
            mv "$work/writer.batches.new" "$work/writer.batches"
        done
    ) &
    writer_pid=$!
}
stop_writer() {
    touch "$work/writer.stop"
    wait "$writer_pid" || fail "the hx writer failed"
    writer_pid=""
}
writer_emitted() {
    local b
    b=$(cat "$work/writer.batches" 2>/dev/null || true)
    echo $((500 * ${b:-0}))
}

for n in h1 h2 h3; do start_consumer "$n"; done
seed=1
for n in h1 h2 h3; do
    start_app "$n" $((seed++))
done
start_writer
for _ in $(seq 1 600); do
    (($(emitted) >= 1000 && $(emitted) + $(writer_emitted) >= 10000)) && break
    sleep 0.2
done
(($(emitted) + $(writer_emitted) >= 10000)) ||
    fail "only $(emitted) + $(writer_emitted) changes emitted in 120 s"

before=$(($(emitted) + $(writer_emitted)))
t0=$(date +%s%3N)
timeout 300 "$ds" bootstrap --from "$work/h1.conf" --to "$work/h4.conf" >"$work/bootstrap-h4.log" 2>&1 ||
    fail "bootstrap of h4 failed: $(cat "$work/bootstrap-h4.log")"
t1=$(date +%s%3N)
stop_writer
# What the copy overlapped, counted by the changes' own clocks in the archive.
iso() { date -u -d "@${1:0:-3}.${1: -3}" +%Y-%m-%dT%H:%M:%S.%3NZ; }
out=$(timeout 60 "$ds" -c "$work/h1.conf" replay --since "$(iso "$t0")" --until "$(iso "$t1")" --dry-run) ||
    fail "replay --dry-run of the copy's window: $out"
during=$(echo "$out" | sed -n 's/.*, \([0-9,]*\) in the window.*/\1/p' | tr -d ,)
say "$(grep 'done:' "$work/bootstrap-h4.log")"
say "bootstrap of h4 from h1 in $((t1 - t0)) ms: $before changes before, $during emitted during the copy"
((during >= 2000)) || fail "only $during changes were emitted during the copy (2,000 wanted)"
[[ "$(rows h4 items)" -ge 200000 ]] || fail "h4 has $(rows h4 items) items after the copy"
# A finished run forgets its finished tables: a later rebuild copies all.
[[ "$(rows h4 datasync_bootstrap)" == 0 ]] || fail "a finished bootstrap left its marks in datasync_bootstrap"
start_consumer h4
sleep 2
for n in h1 h2 h3; do stop_app "$n"; done
total=$(($(emitted) + $(writer_emitted)))
wait_identical h1 h2 h3 h4
say "joined: h1..h4 identical after $total changes ($(emitted) by the applications; $(rows h1 items) items, $(rows h1 accounts) accounts, $(rows h1 tags) tags)"

# A second run keeps the finished tables.
timeout 120 "$ds" -c "$work/h4.conf" bootstrap --from "$work/h1.conf" >"$work/bootstrap-again.log" 2>&1 &&
    fail "bootstrap ran while h4's consumer runs: $(cat "$work/bootstrap-again.log")"
grep -q "stop datasync-consumer on node h4" "$work/bootstrap-again.log" ||
    fail "bootstrap with h4's consumer running: $(cat "$work/bootstrap-again.log")"

# ---------------------------------------------- 2. a server loses its database
for n in h1 h3; do
    start_app "$n" $((seed++))
done
start_writer
stop_consumer h2
create_db h2 # the database is gone: an empty schema, as after a reinstall
sleep 1
before=$(($(emitted) + $(writer_emitted)))
timeout 300 "$ds" bootstrap --from "$work/h3.conf" --to "$work/h2.conf" >"$work/bootstrap-h2.log" 2>&1 ||
    fail "rebuild of h2 failed: $(cat "$work/bootstrap-h2.log")"
say "rebuild of h2 from h3: about $(($(emitted) + $(writer_emitted) - before)) changes emitted during the copy"
stop_writer
start_consumer h2
sleep 2
for n in h1 h3; do stop_app "$n"; done
wait_identical h1 h2 h3 h4
say "rebuilt: h1..h4 identical after $(($(emitted) + $(writer_emitted))) changes in all"

# ------------------------------------------------------------ 3. replay --since
# Changes from hx, an origin no server runs, so every server applies them.
publish_items() { # FIRST LAST NAME
    local i
    for ((i = $1; i <= $2; i++)); do
        printf '{"op":"update","table":"items","key":{"id":%d},"data":{"id":%d,"name":"%s","qty":%d,"price":"1.00","note":null,"rev":1}}\n' \
            "$i" "$i" "$3" "$i"
    done | timeout 60 "$ds" -c "$work/hx.conf" publish - >/dev/null || fail "publish $1..$2"
}

window_ms=$(date +%s%3N)
window_start=$(date -u -d "@${window_ms:0:-3}.${window_ms: -3}" +%Y-%m-%dT%H:%M:%S.%3NZ)
sleep 1.1
publish_items 5000001 5000300 before
sleep 1.1
since=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
sleep 0.1
publish_items 5000301 5000500 inside
wait_identical h1 h2 h3 h4

out=$(timeout 60 "$ds" -c "$work/h1.conf" replay --since "$since" --table items --dry-run) ||
    fail "replay --dry-run failed: $out"
grep -Eq '^items +update +200$' <<<"$out" || fail "the window holds 200 updates of items, dry run says: $out"
grep -q 'dry run: nothing sent' <<<"$out" || fail "dry run summary: $out"

# The restore: h3's items and their versions come back from a dump taken
# at window_start (as a backup of the database would bring them back).
sql -e "DROP DATABASE IF EXISTS hist_backup; CREATE DATABASE hist_backup"
sql hist_backup -e "CREATE TABLE items AS SELECT * FROM hist_h3.items WHERE id < 5000001;
    CREATE TABLE versions AS SELECT * FROM hist_h3.datasync_versions WHERE tbl = 'items'
        AND hlc < $((window_ms << 16))"
stop_consumer h3
sql hist_h3 -e "SET foreign_key_checks = 0; DELETE FROM items; INSERT INTO items SELECT * FROM hist_backup.items;
    DELETE FROM datasync_versions WHERE tbl = 'items';
    INSERT INTO datasync_versions SELECT * FROM hist_backup.versions"
start_consumer h3
[[ "$(rows h3 items)" -lt "$(rows h1 items)" ]] || fail "the restore did not take h3 back"

out=$(timeout 120 "$ds" -c "$work/h1.conf" replay --since "$window_start" --node h3 --table items) ||
    fail "replay --since --node h3 failed: $out"
say "$out"
grep -Eq '^replay: [0-9,]+ read from datasync-hist.archive, 500 in the window, 500 sent to 1 node queue \(500 messages\): 500 confirmed\.' <<<"$out" ||
    fail "replay summary: $out"
wait_identical h1 h3
say "restored: h3 caught up by replay --since"

# Again: nothing changes the second time.
before_state=$(state h3 | md5sum)
out=$(timeout 120 "$ds" -c "$work/h1.conf" replay --since "$window_start" --node h3 --table items) ||
    fail "second replay failed: $out"
sleep 2
wait_identical h1 h2 h3 h4
[[ "$(state h3 | md5sum)" == "$before_state" ]] || fail "the second replay changed h3"

# The window's start is kept out: a replay since $since sends 200.
out=$(timeout 120 "$ds" -c "$work/h1.conf" replay --since "$since" --all-nodes --table items) ||
    fail "replay --all-nodes failed: $out"
grep -q ', 200 in the window, 200 sent to every node queue: 200 confirmed' <<<"$out" ||
    fail "replay --all-nodes summary: $out"
wait_identical h1 h2 h3 h4
say "replays twice and to all nodes: no change"

# ------------------------------------------------------------- 4. bad input
expect_exit() { # CODE MESSAGE-PART ARGS...
    local want=$1 part=$2 rc=0
    shift 2
    out=$(timeout 60 "$ds" "$@" 2>&1) || rc=$?
    [[ $rc == "$want" ]] || fail "datasync $*: exit $rc, want $want: $out"
    [[ "$out" == *"$part"* ]] || fail "datasync $*: says '$out', not '$part'"
    [[ "$out" != *" sent to "* ]] || fail "datasync $*: sent something: $out"
}
c1=(-c "$work/h1.conf")
expect_exit 2 "in the future" "${c1[@]}" replay --since 2099-01-01T00:00:00Z --node h1
expect_exit 2 "is not a time" "${c1[@]}" replay --since yesterday --node h1
expect_exit 2 "is not after" "${c1[@]}" replay --since -1h --until -2h --node h1
expect_exit 2 "to which servers" "${c1[@]}" replay --since -1h
expect_exit 7 "datasync.nosuch does not exist" "${c1[@]}" replay --since -1h --node nosuch
write_conf hoff "[archive]
enabled = false"
expect_exit 3 "archive.enabled = false" -c "$work/hoff.conf" replay --since -1h --dry-run
expect_exit 2 "--from PEER.conf is required" "${c1[@]}" bootstrap
expect_exit 3 "the peer must be another server" "${c1[@]}" bootstrap --from "$work/h1.conf"
write_conf hmore "[apply]
tables = extra"
expect_exit 3 "node h1 does not apply extra" -c "$work/hmore.conf" bootstrap --from "$work/h1.conf"
say "bad input refused, nothing sent"
say "ok"
