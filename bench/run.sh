#!/usr/bin/env bash
# run.sh: runs every benchmark in $BUILD/bench against private RabbitMQ and MariaDB instances (make bench).
set -euo pipefail
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
for bench in "$BUILD"/bench/bench_*; do
    [ -x "$bench" ] || continue
    echo "== $(basename "$bench")"
    "$bench" | tee "$out/$(basename "$bench").txt"
done
echo "== history.sh"
"$root/bench/history.sh" | tee "$out/history.txt"
echo "== capture.sh"
"$root/bench/capture.sh" | tee "$out/capture.txt"

# Side by side, from this one run: the bootstrap copy and the consumer's
# apply speed (the bootstrap writes rows without deciding versions).
copy=$(sed -n 's/^BENCH_BOOTSTRAP_ROWS_PER_S=//p' "$out/history.txt")
apply=$(sed -n 's/^| (a) [^|]*| *\([0-9]*\) ev\/s.*/\1/p' "$out/bench_consumer.txt" | head -n 1)
if [ -n "$copy" ] && [ -n "$apply" ]; then
    printf '\nbootstrap copy %s rows/s beside consumer apply %s ev/s: %s x\n' "$copy" "$apply" \
        "$(awk -v a="$copy" -v b="$apply" 'BEGIN { printf "%.2f", a / b }')"
fi
