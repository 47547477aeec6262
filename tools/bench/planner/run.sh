#!/usr/bin/env bash
# Planner benchmark: ours vs lowtime 0.3.0 (PyPI, Rust wheel) in a throwaway venv.
# Usage: tools/bench/planner/run.sh [case-name ...]   (LOWTIME_TIMEOUT_S caps each lowtime run)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="${PERSEUS_BENCH_DIR:-/tmp/perseus-bench-planner}"
venv="$work/venv"
mkdir -p "$work"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import lowtime' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q lowtime==0.3.0
fi
cd "$here/../../.."
exec node --import tsx "$here/bench.ts" "$work" "$venv/bin/python" "$@"
