#!/usr/bin/env bash
# The whole system on a real GPU, from the pack (see pack.sh): `perseus serve` (agent on NVML,
# profiler, optimizer) on a Unix socket, then perseus_gpu_e2e.py (PipelineFrequencyOptimizer around
# real CUDA work; energy read from NVML directly). Wheels for grpcio/protobuf may travel in ./.whl.
# Results under $OUT (default a temp dir).
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$(mktemp -d -t perseus-sys-e2e.XXXXXX)}"
mkdir -p "$OUT"
cd "$repo"
. "$repo/tools/device-check/packed-env.sh"
packed_wheels && packed_node || exit 2
sock=/tmp/perseus-sys-e2e.sock
data=$(mktemp -d -t perseus-sys-data.XXXXXX)
rm -f "$sock"
node .devpack/dist/cli/main.cjs serve --listen "unix:$sock" --agent-backend nvml \
  --agent-state-file "$data/agent-state.json" --agent-audit-log "$OUT/sys-audit.log" \
  --profiler-data-dir "$data/profiler" --optimizer-data-dir "$data/optimizer" --log-level info > "$OUT/sys-server.log" 2>&1 &
server=$!
for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.2; done
PYTHONUNBUFFERED=1 timeout 400 python3 tools/device-check/perseus_gpu_e2e.py --server "unix:$sock" --out "$OUT" "$@"
rc=$?
kill -TERM "$server"; wait "$server"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=clocks.sm,clocks.applications.graphics --format=csv | tee -a "$OUT/sys-server.log"
exit $rc
