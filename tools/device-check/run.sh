#!/usr/bin/env bash
# Real-GPU check of the agent's NVML backend (issue 4 §7). On a machine with an NVIDIA GPU:
#   1. lists devices and supported clocks through our NVML binding (koffi),
#   2. locks and resets SM clocks (and checks the lock through nvidia-smi when present),
#   3. checks the energy counter is monotonic,
#   4. runs the agent itself on a temp Unix socket: session, Begin/End, reset on stream end,
#   5. times a fixed matmul workload (python3 + torch, if present) at several SM clocks and writes
#      a stage-profile CSV (stage,instruction,frequency,time,energy) plus summary.json/summary.txt.
# Everything lands under $OUT (default: a new temp dir). Bounded: ~2 minutes typical, and each
# step has its own timeout, so it finishes well inside 10 minutes. Needs root (NVML refuses clock
# locks otherwise), node ≥ 20 and the repo's node_modules (npm ci); the workload needs torch+CUDA.
#
#   sudo OUT=/tmp/perseus-device-check tools/device-check/run.sh [--device 0] [--clocks 5]
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
OUT="${OUT:-$(mktemp -d -t perseus-device-check.XXXXXX)}"
mkdir -p "$OUT"
echo "device-check: writing to $OUT"

fail() { echo "device-check: $*" | tee -a "$OUT/summary.txt" >&2; exit 2; }
command -v node >/dev/null || fail "node not found (need node >= 20)"
if [ -n "${PERSEUS_DEVICE_CHECK_BUNDLE:-}" ]; then
  runner=(node "$PERSEUS_DEVICE_CHECK_BUNDLE")   # packed by pack.sh (see run-packed.sh)
else
  [ -d "$repo/node_modules/koffi" ] || fail "node_modules missing in $repo (run npm ci)"
  runner=(node --import tsx "$here/check.ts")
fi
if command -v nvidia-smi >/dev/null; then
  timeout 30 nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,clocks.max.sm,power.limit --format=csv > "$OUT/nvidia-smi.csv" 2>&1 || true
  cat "$OUT/nvidia-smi.csv"
fi
python_bin=""
for p in "${PYTHON:-}" python3 python; do
  [ -n "$p" ] && command -v "$p" >/dev/null && "$p" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && { python_bin="$p"; break; }
done
if [ -z "$python_bin" ]; then
  echo "device-check: python3 with CUDA torch not found: the matmul workload step is SKIPPED (clock, energy and agent checks still run)" | tee -a "$OUT/summary.txt"
fi
export PERSEUS_DEVICE_CHECK_PYTHON="$python_bin"
cd "$repo" && timeout 540 "${runner[@]}" --out "$OUT" --workload "$here/workload.py" "$@"
rc=$?
echo "device-check: exit $rc; results in $OUT"
exit $rc
