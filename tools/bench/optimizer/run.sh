#!/usr/bin/env bash
# Optimizer benchmarks; each prints RESULT lines. Usage: tools/bench/optimizer/run.sh [fanout|rpc|deploy ...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../../.."
export PERSEUS_LOG_LEVEL="${PERSEUS_LOG_LEVEL:-error}"
want=("${@:-fanout rpc deploy}")
for b in ${want[*]}; do
  case "$b" in
    fanout) node --import tsx "$here/fanout.ts" --ranks 4096 --procs 2 --rounds 10 ;;
    rpc) node --import tsx "$here/rpc-latency.ts" --microbatches 96 ;;
    deploy) node --import tsx "$here/profiling-to-deploy.ts" --microbatches 96 --repeat 3 ;;
    *) echo "unknown benchmark $b" >&2; exit 2 ;;
  esac
done
