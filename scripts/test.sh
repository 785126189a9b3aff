#!/usr/bin/env bash
# Set up, lint and type-check once, then run the suite on PostgreSQL + Redis and on the
# embedded default (SQLite + a broker with no server) side by side: each run has its own
# databases, queues, folders and ports. Tests that touch no backend, and browser tests marked
# `backend_independent` (how pages read does not depend on the backend), run once, in the
# embedded run (the postgres run has more to do; tests/conftest.py, run_once).
# Each run spreads its test files over two pytest-xdist workers (--dist loadfile: a file's
# tests stay together, in order, on one worker, with its module fixtures): the suite mostly
# waits (on the processes it starts, on mail, on timers), so four files at a time keep the two
# cores busy; each worker stands up its own session stack. TWOFA_TEST_WORKERS sets how many
# (0: each backend serially, as before).
# Each run writes a log, printed in full at the end; the script fails if either run fails.
# Each log ends with its 15 slowest tests. Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${CI:-}" ]; then bash scripts/services.sh || true; fi
.venv/bin/ruff check services workers tests bench
.venv/bin/mypy

logs=$(mktemp -d "${TMPDIR:-/tmp}/twofa-tests.XXXXXX")
pytest=(.venv/bin/pytest -q -p no:cacheprovider --durations=15 -n "${TWOFA_TEST_WORKERS:-2}" --dist loadfile)
TWOFA_TEST_BACKEND=postgres TWOFA_TEST_SKIP_BACKEND_FREE=1 "${pytest[@]}" "$@" \
  >"$logs/postgres.log" 2>&1 &
postgres=$!
TWOFA_TEST_BACKEND=embedded "${pytest[@]}" "$@" \
  >"$logs/embedded.log" 2>&1 &
embedded=$!
# The xdist workers (each run's children) tear their stacks down on SIGTERM, as a serial run does.
trap 'for run in "$postgres" "$embedded"; do pkill -TERM -P "$run"; kill "$run"; done 2>/dev/null || true' INT TERM
echo "pytest on postgres (pid $postgres) and embedded (pid $embedded); logs in $logs"
echo "(tests that use no backend or are backend_independent run in the embedded run only: the postgres run deselects them)"

status=0
for run in postgres embedded; do
  pid=${!run}
  rc=0; wait "$pid" || rc=$?
  # 5 is pytest's "no tests ran": fine for postgres when all that was asked is backend-free.
  if [ "$rc" -eq 0 ] || { [ "$run" = postgres ] && [ "$rc" -eq 5 ]; }; then
    result=passed
  else
    result=FAILED; status=1
  fi
  echo
  echo "===== $run: $result ($logs/$run.log) ====="
  cat "$logs/$run.log"
done
exit "$status"
