#!/usr/bin/env bash
# test_archive_start.sh: a producer publishes nothing while the archive stream is declared but not running (RabbitMQ starting its streams), so the archive lacks no confirmed change; a broker with no archive does not hold it back.
#
# Run by tests/run.sh with the private services up (DS_TEST_* set).
# RabbitMQ 3.10 accepts connections after a restart or a kill before its
# streams run again (0.1-1 s here, longer for a big stream): meanwhile a
# change routed to the node queues and the archive goes to the node queues
# only, and is confirmed. This test holds the broker in that state (the
# stream's live queue record removed, its durable one kept: a passive
# declare says "home node ... is down or inaccessible", as it does then),
# for as long as it needs, instead of racing a real start.
set -euo pipefail

TEST=test_archive_start
# shellcheck source=../lib/testlib.sh
source "$(dirname "$0")/../lib/testlib.sh"

require_env DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_SERVICES DS_TEST_AMQP_URL

work=$(mktemp -d "$DS_TEST_RUNDIR/archive-start.XXXXXX")
ds=$DS_TEST_BUILD/datasync
ex=datasync-astart
node=as1
queue=datasync.$node
stream=$ex.archive
ctl() { timeout 60 "$DS_TEST_SERVICES" rabbit ctl "$@"; }
hold_pid=""

cleanup() {
    local rc=$?
    trap - EXIT
    # The held stream comes back whatever happened.
    touch "$work/go"
    [[ -n "$hold_pid" ]] && wait "$hold_pid" 2>/dev/null
    ((rc == 0)) || show_logs 30 "$work"/*.log
    exit "$rc"
}
trap cleanup EXIT

write_conf() { # NAME [EXTRA]
    cat >"$work/$1.conf" <<EOF
[node]
id = $node
[amqp]
url = $DS_TEST_AMQP_URL
exchange = $ex
[producer]
spool_dir = $work/spool
confirm_timeout_ms = 1000
[log]
level = info
${2:-}
EOF
}
write_conf app
write_conf noarchive "[archive]
enabled = false"

depth() { # QUEUE: its message count
    ctl list_queues -q --no-table-headers name messages | awk -v q="$1" '$1 == q { print $2 }'
}

publish() { # ID: one change, through libdatasync (the spool drains first)
    timeout 60 "$ds" -c "$work/app.conf" publish --op create --table users \
        --key "{\"id\":$1}" --data "{\"id\":$1,\"name\":\"n$1\"}" 2>>"$work/publish.log"
}

# A run before this one left its queues: they go first.
for q in "$queue" "$queue.dead" "$stream"; do
    ctl delete_queue "$q" >/dev/null 2>&1 || true
done

# 1. No archive on the broker (setup with archive.enabled = false): the
# producer, whose own configuration keeps the archive on, publishes at once.
"$ds" -c "$work/noarchive.conf" setup --nodes "$node" >"$work/setup.log" 2>&1 ||
    fail "setup without the archive failed"
out=$(publish 1) || fail "publish with no archive on the broker: $out"
[[ "$out" == *"published 1, spooled 0"* ]] ||
    fail "with no archive on the broker, the change was not published at once: $out"
[[ "$(depth "$queue")" == 1 ]] || fail "$queue holds $(depth "$queue") messages, not 1"
say "no archive on the broker: published at once"

# 2. The archive declared, then held as while the broker starts it.
"$ds" -c "$work/app.conf" setup --nodes "$node" >>"$work/setup.log" 2>&1 ||
    fail "setup with the archive failed"
ctl eval "Q = rabbit_misc:r(<<\"/\">>, queue, <<\"$stream\">>),
    {ok, R} = rabbit_amqqueue:lookup(Q),
    ok = mnesia:dirty_delete(rabbit_queue, Q),
    ok = file:write_file(\"$work/held\", <<>>),
    Wait = fun W(0) -> timeout;
               W(N) -> case filelib:is_file(\"$work/go\") of
                           true -> ok;
                           false -> timer:sleep(50), W(N - 1)
                       end
           end,
    Res = Wait(1200),
    ok = mnesia:dirty_write(rabbit_queue, R),
    Res." >"$work/hold.log" 2>&1 &
hold_pid=$!
for _ in $(seq 1 200); do
    [[ -e "$work/held" ]] && break
    sleep 0.1
done
[[ -e "$work/held" ]] || fail "the stream could not be held (see hold.log)"

rc=0
out=$(publish 2) || rc=$?
((rc == 6)) || fail "publish while the archive is not running: exit $rc, not 6 (spooled): $out"
[[ "$out" == *"published 0, spooled 1"* ]] ||
    fail "a change was published while the archive stream was not running (RabbitMQ puts it in the node queues only and confirms it): $out"
[[ "$(depth "$queue")" == 1 ]] ||
    fail "$queue holds $(depth "$queue") messages while the archive was not running, not 1"
# The state held is the one of a starting broker, and the log says why.
grep -q "archive stream $stream not running yet: 404 NOT_FOUND - home node .* is down or inaccessible" "$work/publish.log" ||
    fail "the producer's log does not say why it waits"
say "archive not running: the change waits in the spool"

# 3. The stream runs again: the spooled change and a new one reach both.
touch "$work/go"
wait "$hold_pid" || fail "the held stream did not come back (see hold.log)"
hold_pid=""
grep -q '^ok$' "$work/hold.log" || fail "the stream was held too long: $(cat "$work/hold.log")"
out=$(publish 3) || fail "publish after the archive came back: $out"
[[ "$out" == *"published 1, spooled 0"* ]] || fail "publish after the archive came back: $out"
[[ "$(depth "$queue")" == 3 ]] || fail "$queue holds $(depth "$queue") messages, not 3"
out=$(timeout 60 "$ds" -c "$work/app.conf" replay --since -1h --dry-run 2>&1) ||
    fail "replay --dry-run: $out"
[[ "$out" == *"replay: 2 read from $stream, 2 in the window"* ]] ||
    fail "the archive does not hold the 2 changes made since it was declared: $out"
say "PASS: the archive holds every change confirmed since it was declared"
