#!/usr/bin/env bash
# run.sh: runs every benchmark in $BUILD/bench against private RabbitMQ and MariaDB instances (make bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac

export DS_TEST_RUNDIR
DS_TEST_RUNDIR=$(mktemp -d /tmp/datasync-bench.XXXXXX)
trap '"$root/tests/lib/services.sh" down >/dev/null 2>&1 || true; rm -rf "$DS_TEST_RUNDIR"' EXIT INT TERM
"$root/tests/lib/services.sh" up
eval "$("$root/tests/lib/services.sh" env)"
export DS_TEST_BUILD=$BUILD DS_TEST_ROOT=$root

for bench in "$BUILD"/bench/*; do
    [ -x "$bench" ] || continue
    echo "== $(basename "$bench")"
    "$bench"
done
