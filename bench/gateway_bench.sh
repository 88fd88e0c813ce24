#!/usr/bin/env bash
# Gateway overhead benchmark: firstright serve --upstream next to LiteLLM and the bare fake
# upstream, in one interleaved run of the harness in bench/gateway/ (run.sh: fake upstream, LiteLLM
# pinned, wrk, CPU from /proc). The measured path is `firstright serve --upstream URL` with its
# defaults: routing, metering to SQLite and the canonical log line all on.
#
#   bash bench/gateway_bench.sh setup        # once: wrk + LiteLLM venv (a few minutes)
#   bash bench/gateway_bench.sh              # full run (DURATION=20 REPS=3)
#   DURATION=10 REPS=2 bash bench/gateway_bench.sh
#
# Results: .bench/gw-run-<timestamp>/summary.md (and summary.json).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${HARNESS:-$ROOT/bench/gateway/run.sh}
[ -f "$HARNESS" ] || { echo "harness not found: $HARNESS (set HARNESS=.../run.sh)" >&2; exit 2; }
mkdir -p "$ROOT/.bench"
export VENV=${VENV:-$ROOT/.bench/gw-venv}
if [ "${1:-}" = "setup" ]; then
  OUT=$ROOT/.bench/gw-setup bash "$HARNESS" setup
  exit 0
fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
export OUT=${OUT:-$ROOT/.bench/gw-run-$STAMP}
DB=$ROOT/.bench/gw-bench-$STAMP.db
export THIRD_NAME=firstright THIRD_PORT=${THIRD_PORT:-15000}
export THIRD_CMD="exec $ROOT/.venv/bin/firstright serve --upstream \$UPSTREAM_URL --host 127.0.0.1 --port \$PORT --database sqlite:///$DB"
bash "$HARNESS"
echo "usage records stored: $("$ROOT/.venv/bin/python" -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from usage_records').fetchone()[0])" "$DB")"
