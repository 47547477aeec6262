#!/usr/bin/env bash
# Real-GPU end to end from the pack (see pack.sh): `perseus serve agent --agent-backend nvml` on a Unix
# socket, then agent_e2e.py (Python stubs → agent around real CUDA matmuls, checked against NVML
# read directly). Wheels for grpcio/protobuf may be carried in ./.whl (installed to /tmp/site).
# Results under $OUT (default a temp dir).
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$(mktemp -d -t perseus-e2e.XXXXXX)}"
mkdir -p "$OUT"
cd "$repo"
. "$repo/tools/device-check/packed-env.sh"
packed_wheels && packed_node || exit 2
sock=/tmp/perseus-e2e-agent.sock
rm -f "$sock"
node .devpack/dist/cli/main.cjs serve agent --listen "unix:$sock" --agent-backend nvml \
  --agent-state-file /tmp/perseus-e2e-state.json --agent-audit-log "$OUT/e2e-audit.log" --log-level info > "$OUT/e2e-agent.log" 2>&1 &
agent=$!
for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.2; done
PYTHONUNBUFFERED=1 timeout 300 python3 tools/device-check/agent_e2e.py --agent "unix:$sock" --out "$OUT" "$@"
rc=$?
kill -TERM "$agent"; wait "$agent"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=clocks.sm,clocks.applications.graphics --format=csv | tee -a "$OUT/e2e-agent.log"
exit $rc
