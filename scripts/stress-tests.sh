#!/usr/bin/env bash
# Run the test suite (or the tests named) N times in a row, stopping at the first failing round: a hunt for
# flaky tests on a busy machine. Not for CI; each round is a whole pytest run.
#
#   scripts/stress-tests.sh N [pytest arguments...]
#   scripts/stress-tests.sh 20                                   # the whole suite, 20 times
#   scripts/stress-tests.sh 50 tests/quality tests/loading -m 'not slow'
#   STRESS_NICE=10 STRESS_HYPOTHESIS_PROFILE=deep scripts/stress-tests.sh 5 tests/core
#
# Every round runs with `-p no:randomly` (the suite's own order, so a failure can be replayed), `-x` (stop
# at the first failing test) and the deterministic `ci` Hypothesis profile unless STRESS_HYPOTHESIS_PROFILE
# names another. Each round's output goes to $STRESS_LOG_DIR/round-K.log (default: a new temporary folder);
# the first failing round's log is printed and the script exits with pytest's code.
set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 N [pytest arguments...]   (N >= 1 rounds)" >&2
    exit 2
fi
rounds=$1
shift

cd "$(dirname "$0")/.."
log_dir=${STRESS_LOG_DIR:-$(mktemp -d -t clinic-outcomes-stress.XXXXXX)}
mkdir -p "$log_dir"
export HYPOTHESIS_PROFILE=${STRESS_HYPOTHESIS_PROFILE:-ci}
# sync once (uv.lock as committed) with bytecode compiled (these machines set PYTHONDONTWRITEBYTECODE), then
# run every round without re-syncing
uv sync --frozen --quiet --compile-bytecode
runner=(uv run --frozen --no-sync python -m pytest -p no:randomly -x "$@")
if [[ -n "${STRESS_NICE:-}" ]]; then
    runner=(nice -n "$STRESS_NICE" "${runner[@]}")
fi

echo "stress: $rounds round(s) of: ${runner[*]}  (logs in $log_dir)"
for ((round = 1; round <= rounds; round++)); do
    log="$log_dir/round-$round.log"
    start=$SECONDS
    if "${runner[@]}" >"$log" 2>&1; then
        echo "round $round/$rounds passed in $((SECONDS - start)) s"
    else
        code=$?
        echo "round $round/$rounds FAILED (exit $code) after $((SECONDS - start)) s; its log, $log:" >&2
        tail -n 80 "$log" >&2
        echo "stress: $((round - 1)) round(s) in a row passed, then round $round failed" >&2
        exit "$code"
    fi
done
echo "stress: all $rounds round(s) passed"
