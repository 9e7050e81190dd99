#!/usr/bin/env bash
# run.sh: runs the tests (what `make test` calls): unit programs, the schema agreement check, then integration tests against private RabbitMQ and MariaDB.
#
#   BUILD=build tests/run.sh [all|unit|integration] [GLOB]
#
# all (the default) runs every $BUILD/tests/test_* program, then
# tests/schema/check_examples.sh, then starts private services
# (tests/lib/services.sh) and runs every $BUILD/itests/* program and every
# tests/integration/*.sh script; unit stops after the schema check;
# integration runs only the last part. GLOB keeps the tests whose name
# matches (test_smoke, test_*producer*).
#
# Each test runs under `timeout $DS_TEST_TIMEOUT` (600 s) and is counted as
# one; the last line is "N passed, M failed" and the exit status is 1 if any
# failed. The services' run dir (logs) is removed on success and kept, with its
# path printed, on failure or with DS_TEST_KEEP=1. A trap takes the services
# down on any exit, Ctrl-C included, and a detached watchdog does it if this
# script is killed outright.
set -euo pipefail
shopt -s nullglob

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${BUILD:-build}
[[ "$build" == /* ]] || build=$root/$build
mode=${1:-all}
glob=${2:-*}
timeout_s=${DS_TEST_TIMEOUT:-600}
services=$root/tests/lib/services.sh

case "$mode" in
all | unit | integration) ;;
*)
    echo "usage: BUILD=build tests/run.sh [all|unit|integration] [GLOB]" >&2
    exit 2
    ;;
esac

passed=0
failed=0
failed_names=()
rundir=""
services_up=0
current=""

now_us() {
    local t=${EPOCHREALTIME/[.,]/}
    printf '%s' "$((10#$t))"
}

since() {
    local us=$(($(now_us) - $1))
    printf '%d.%01d s' $((us / 1000000)) $((us / 100000 % 10))
}

# run_one NAME COMMAND...: one test, counted, with a header and a verdict.
run_one() {
    local name=$1 t0 rc=0 note=""
    shift
    printf '\n=== %s\n' "$name"
    t0=$(now_us)
    # In the background with `wait`, so a signal to this script runs its trap
    # at once (bash defers traps while a foreground child runs, and ignores
    # SIGINT when that child exits without dying of it); the trap ends the
    # test. timeout puts the test in a process group of its own and, on
    # expiry, signals that whole group.
    timeout --kill-after=10 "$timeout_s" "$@" &
    current=$!
    wait "$current" || rc=$?
    current=""
    if ((rc == 0)); then
        passed=$((passed + 1))
        printf -- '--- PASS %s (%s)\n' "$name" "$(since "$t0")"
    else
        ((rc == 124 || rc == 137)) && note=", timed out after ${timeout_s} s"
        failed=$((failed + 1))
        failed_names+=("$name")
        printf -- '--- FAIL %s (exit %d%s, %s)\n' "$name" "$rc" "$note" "$(since "$t0")"
    fi
}

not_run() {
    failed=$((failed + 1))
    failed_names+=("$1")
    printf '\n=== %s\n--- FAIL %s (not run: %s)\n' "$1" "$1" "$2"
}

# Takes the services down and keeps or removes the run dir. Runs once, from
# the normal end or from the trap.
teardown() {
    [[ -n "$rundir" ]] || return 0
    if ((services_up)); then
        services_up=0
        DS_TEST_RUNDIR=$rundir timeout 120 "$services" down || true
    fi
    if ((failed > 0)) || [[ "${DS_TEST_KEEP:-0}" == 1 ]]; then
        echo "run dir kept (service logs, test scratch): $rundir"
    else
        rm -rf "$rundir"
    fi
    rundir=""
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [[ -n "$current" ]]; then
        # timeout made itself the leader of the test's process group.
        echo "run.sh: interrupted, stopping the running test" >&2
        kill -TERM -- "-$current" 2>/dev/null || true
        for _ in {1..50}; do
            kill -0 "$current" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$current" 2>/dev/null || true
        current=""
    fi
    if [[ -n "$rundir" ]]; then
        echo "run.sh: interrupted (exit $rc), taking the services down" >&2
        ((failed > 0)) || failed=1
        teardown
    fi
    exit "$rc"
}

# True when test name $1 (".sh" dropped) matches the GLOB argument.
selected_name() {
    # shellcheck disable=SC2053 # a glob match on purpose
    [[ "$1" == $glob || "${1%.sh}" == $glob ]]
}

executables() {
    local f
    for f in "$@"; do
        [[ -f "$f" && -x "$f" ]] && printf '%s\n' "$f"
    done
    return 0
}

trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- unit
t_start=$(now_us)
if [[ "$mode" != integration ]]; then
    mapfile -t units < <(executables "$build"/tests/test_*)
    if ((${#units[@]} == 0)); then
        echo "run.sh: no unit test programs in $build/tests (make BUILD=... build-tests)" >&2
    fi
    for t in "${units[@]}"; do
        name=$(basename "$t")
        selected_name "$name" || continue
        run_one "$name" "$t"
    done

    if [[ -f tests/schema/check_examples.sh ]] && selected_name check_examples; then
        run_one check_examples env BUILD="$build" bash tests/schema/check_examples.sh
    fi
fi

# --------------------------------------------------------- integration
if [[ "$mode" != unit ]]; then
    mapfile -t itests < <(executables "$build"/itests/*)
    selected=()
    for t in "${itests[@]}" tests/integration/*.sh; do
        selected_name "$(basename "$t")" && selected+=("$t")
    done

    if ((${#selected[@]} == 0)); then
        echo "run.sh: no integration tests to run (programs in $build/itests, scripts in tests/integration)" >&2
    else
        rundir=$(mktemp -d "${TMPDIR:-/tmp}/ds-test.XXXXXX")
        export DS_TEST_RUNDIR=$rundir
        printf '\n=== services (run dir %s)\n' "$rundir"
        services_up=1
        "$services" watch $$
        if "$services" up; then
            eval "$("$services" env)"
            export DS_TEST_BUILD=$build DS_TEST_ROOT=$root
            for ((i = 0; i < ${#selected[@]}; i++)); do
                t=${selected[i]}
                name=$(basename "$t")
                if [[ "$t" == *.sh ]]; then
                    run_one "$name" bash "$t"
                else
                    run_one "$name" "$t"
                fi
                # A test that left a service down must not fail the next one.
                if ! "$services" status >/dev/null 2>&1; then
                    echo "run.sh: $name left a service down; starting it again"
                    if ! "$services" up; then
                        for rest in "${selected[@]:i+1}"; do
                            not_run "$(basename "$rest")" "the services did not start again"
                        done
                        break
                    fi
                fi
            done
        else
            for t in "${selected[@]}"; do
                not_run "$(basename "$t")" "the services did not start (logs under $rundir)"
            done
        fi
        teardown
    fi
fi
trap - EXIT

echo
if ((failed > 0)); then
    echo "failed: ${failed_names[*]}"
fi
echo "time: $(since "$t_start")"
echo "$passed passed, $failed failed"
((failed == 0))
