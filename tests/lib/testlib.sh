# testlib.sh: what the integration scripts share: fail and say in the test's name, the runner's environment checked, stopping a process, waiting for a log line, log tails on failure.
#
# A script sets TEST to its name and sources this file:
#   TEST=test_x
#   source "$(dirname "$0")/../lib/testlib.sh"
#   require_env DS_TEST_RUNDIR DS_TEST_BUILD ...
# Sourcing defines functions only; it changes no shell option.

fail() {
    echo "$TEST: FAIL: $*" >&2
    exit 1
}

say() { echo "$TEST: $*"; }

# Each named variable must be set: tests/run.sh exports them.
require_env() {
    local v
    for v in "$@"; do
        [[ -n "${!v:-}" ]] || fail "$v is not set: run me through tests/run.sh"
    done
}

# SIGTERM to PID ("" is a no-op), up to SECONDS (30) for it to end, then
# SIGKILL; reaps it.
stop_pid() {
    local pid=$1 secs=${2:-30}
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Waits up to SECONDS for FILE to contain TEXT (fixed string), else fails.
wait_log() {
    local file=$1 secs=$2 text=$3
    for _ in $(seq 1 $((secs * 10))); do
        grep -qF -- "$text" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "$file does not say '$text' after $secs s"
}

# The last LINES lines of each non-empty FILE, to stderr: what a failed
# test leaves for its reader.
show_logs() {
    local lines=$1 f
    shift
    for f in "$@"; do
        [[ -s "$f" ]] || continue
        echo "---- $f ----" >&2
        tail -n "$lines" "$f" >&2
    done
}
