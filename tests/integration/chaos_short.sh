#!/usr/bin/env bash
# chaos_short.sh: the short chaos run of `make test`: 30 s of faults against the running private services (tests/chaos/run.sh).
#
# tests/run.sh runs it with the services up and DS_TEST_* exported; the
# seed is random and printed (DS_CHAOS_SEED fixes it). The run folder is
# kept, under DS_TEST_RUNDIR, when it fails or with DS_TEST_KEEP=1.
set -euo pipefail
root=${DS_TEST_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export BUILD=${DS_TEST_BUILD:-${BUILD:-build}}
args=(--duration "${DS_CHAOS_DURATION:-30}")
[[ -n "${DS_CHAOS_SEED:-}" ]] && args+=(--seed "$DS_CHAOS_SEED")
exec bash "$root/tests/chaos/run.sh" "${args[@]}"
