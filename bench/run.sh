#!/usr/bin/env bash
# run.sh: runs every benchmark in $BUILD/bench against private RabbitMQ and MariaDB instances (make bench).
#
#   bench/run.sh            every bench, then the cluster section
#   bench/run.sh cluster    the cluster section only
#
# After the benches, bench_consumer runs once more with MariaDB's binlog on
# and sync_binlog=1 (DS_BENCH_BINLOG=0 skips it).
#
# The cluster section starts a 3-node RabbitMQ cluster (services.sh
# cluster) beside the single node and, in alternating rounds so drift on a
# shared machine hits both alike, measures libdatasync's async emit rate
# and datasync-consumer's apply rate on the cluster with quorum queues and
# on the single node with classic queues; it prints the ratios of the
# medians, then bench/cluster_failover's kill -9 failover times.
# DS_BENCH_CLUSTER=0 skips it; DS_BENCH_CLUSTER_ROUNDS (3),
# DS_BENCH_CLUSTER_EMITS (10000), DS_BENCH_CLUSTER_EVENTS (20000) and
# DS_BENCH_KILLS (10) size it.
set -euo pipefail
only=${1:-all}
case $only in all | cluster) ;; *) echo "usage: bench/run.sh [cluster]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac

export DS_TEST_RUNDIR
DS_TEST_RUNDIR=$(mktemp -d /tmp/datasync-bench.XXXXXX)
# MariaDB sized as a server would run it, not with the tests' minimal pool
# and redo log: the consumer and the naive baseline both write through it.
export DS_SVC_MARIA_POOL=${DS_SVC_MARIA_POOL:-512M} DS_SVC_MARIA_LOG=${DS_SVC_MARIA_LOG:-256M}
trap '"$root/tests/lib/services.sh" down >/dev/null 2>&1 || true; rm -rf "$DS_TEST_RUNDIR"' EXIT INT TERM
"$root/tests/lib/services.sh" up
eval "$("$root/tests/lib/services.sh" env)"
export DS_TEST_BUILD=$BUILD DS_TEST_ROOT=$root

out=$DS_TEST_RUNDIR/outputs
mkdir -p "$out"
[ "$only" = cluster ] || for bench in "$BUILD"/bench/bench_*; do
    [ -x "$bench" ] || continue
    echo "== $(basename "$bench")"
    "$bench" | tee "$out/$(basename "$bench").txt"
done
if [ "$only" = all ]; then
    echo "== history.sh"
    "$root/bench/history.sh" | tee "$out/history.txt"
    echo "== capture.sh"
    "$root/bench/capture.sh" | tee "$out/capture.txt"
    # The consumer benchmark again on MariaDB as a replicating server runs
    # it: binlog on, each commit fsynced to it (sync_binlog=1; MySQL 8.0's
    # defaults, and what datasync-capture needs). A commit per change, as
    # the seed's consumer makes, costs more there than a batch's commit.
    if [ "${DS_BENCH_BINLOG:-1}" != 0 ] && [ -x "$BUILD/bench/bench_consumer" ]; then
        echo "== bench_consumer, binlog on and sync_binlog=1"
        "$root/tests/lib/services.sh" maria stop >/dev/null
        DS_SVC_MARIA_BINLOG=1 DS_SVC_MARIA_EXTRA=--sync-binlog=1 \
            "$root/tests/lib/services.sh" maria start
        DS_BENCH_NO_DEFAULT=1 "$BUILD/bench/bench_consumer" | tee "$out/bench_consumer_binlog.txt"
        "$root/tests/lib/services.sh" maria stop >/dev/null
        "$root/tests/lib/services.sh" maria start
    fi
fi

# Side by side, from this one run: the bootstrap copy and the consumer's
# apply speed (the bootstrap writes rows without deciding versions).
copy=$(sed -n 's/^BENCH_BOOTSTRAP_ROWS_PER_S=//p' "$out/history.txt" 2>/dev/null || true)
apply=$(sed -n 's/^| (a) [^|]*| *\([0-9]*\) ev\/s.*/\1/p' "$out/bench_consumer.txt" 2>/dev/null | head -n 1 || true)
if [ "$only" = all ] && [ -n "$copy" ] && [ -n "$apply" ]; then
    printf '\nbootstrap copy %s rows/s beside consumer apply %s ev/s: %s x\n' "$copy" "$apply" \
        "$(awk -v a="$copy" -v b="$apply" 'BEGIN { printf "%.2f", a / b }')"
fi

# ------------------------------------------------------------ the cluster
[ "${DS_BENCH_CLUSTER:-1}" != 0 ] || exit 0
echo
echo "== cluster: 3 nodes with quorum queues beside 1 node with classic queues"
"$root/tests/lib/services.sh" cluster start
eval "$("$root/tests/lib/services.sh" cluster env)"
export DS_TEST_CLUSTER_URLS DS_TEST_CLUSTER_PORTS DS_TEST_SERVICES="$root/tests/lib/services.sh"
single=$DS_TEST_AMQP_URL
crounds=${DS_BENCH_CLUSTER_ROUNDS:-3}
emits=${DS_BENCH_CLUSTER_EMITS:-10000}
events=${DS_BENCH_CLUSTER_EVENTS:-20000}

# measure WHAT URL QUEUE_TYPE: one round of one bench, its rate on stdout.
measure() {
    case $1 in
    producer)
        DS_TEST_AMQP_URL=$2 DS_BENCH_QUEUE_TYPE=$3 DS_BENCH_ONLY=async DS_BENCH_ROUNDS=1 \
            "$BUILD/bench/bench_producer" "$emits" | sed -n 's/^BENCH_ASYNC_EV_S=//p'
        ;;
    consumer)
        DS_TEST_AMQP_URL=$2 DS_BENCH_QUEUE_TYPE=$3 DS_BENCH_ONLY=consumer DS_BENCH_ROUNDS=1 \
            DS_BENCH_EVENTS=$events DS_BENCH_NAIVE=100 "$BUILD/bench/bench_consumer" 2>/dev/null |
            sed -n 's/^BENCH_CONSUMER_EV_S=//p'
        ;;
    esac
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

p1="" p3="" c1="" c3=""
for ((r = 1; r <= crounds; r++)); do
    a=$(measure producer "$single" classic || true)
    b=$(measure producer "$DS_TEST_CLUSTER_URLS" quorum || true)
    c=$(measure consumer "$single" classic || true)
    d=$(measure consumer "$DS_TEST_CLUSTER_URLS" quorum || true)
    if [ -z "$a" ] || [ -z "$b" ] || [ -z "$c" ] || [ -z "$d" ]; then
        echo "cluster bench: a measurement failed (round $r: '$a' '$b' '$c' '$d')" >&2
        exit 1
    fi
    echo "round $r: producer async $a ev/s (1 node) / $b ev/s (cluster); consumer $c ev/s (1 node) / $d ev/s (cluster)" >&2
    p1+=" $a" p3+=" $b" c1+=" $c" c3+=" $d"
done
mp1=$(median <<<"$p1") mp3=$(median <<<"$p3") mc1=$(median <<<"$c1") mc3=$(median <<<"$c3")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
    printf '\ncluster benchmark (%d rounds, medians): %d async emits, %d events consumed per round\n' \
        "$crounds" "$emits" "$events"
    printf '| measure                                   | 1 node, classic | 3 nodes, quorum | ratio (target >= 0.5) |\n'
    printf '|-------------------------------------------|-----------------|-----------------|-----------------------|\n'
    printf '| ds_emit async + ds_flush                  | %10s ev/s | %10s ev/s | %19s x |\n' "$mp1" "$mp3" "$(ratio "$mp3" "$mp1")"
    printf '| datasync-consumer, start to all committed | %10s ev/s | %10s ev/s | %19s x |\n' "$mc1" "$mc3" "$(ratio "$mc3" "$mc1")"
} | tee "$out/cluster.txt"

"$BUILD/bench/cluster_failover" | tee "$out/cluster_failover.txt"
"$root/tests/lib/services.sh" cluster down >/dev/null 2>&1 || true
