#!/usr/bin/env bash
# Straggler detection delay under data parallelism, through the real services and the real Python
# emulated trainer (simulated GPUs, time-scaled sleeps: the delays are in iterations, emulated).
#
#   tools/bench/optimizer/dp-detect.sh [--margin 0.05] [--window 5] [--straggler 1.2] [--runs 3] [--intrinsic 8]
#
# Each run starts `bin/perseus serve` (agent, profiler, optimizer in one process; fresh state, the
# given --optimizer-straggler-margin/-window, the simulated GPUs on the trainer's --time-scale),
# then `python -m perseus.emulate.demo --detect` (2 stages × dp 2, M=4): baseline, online
# profiling, then --intrinsic clean iterations with no straggler (any straggler verdict there is a
# false positive), then pipeline 1 slows by --straggler× and nobody calls ReportStraggler. It
# prints one RESULT line per run: detection delay (iterations from the first slowed iteration to
# the first iteration that ran the extrinsic plan), clear delay (iterations from recovery to the
# first iteration back on one non-straggler plan), the false positives over the no-straggler
# iterations, and the planned profile's all-max iteration time next to the measured baseline's,
# with the largest measured-vs-predicted saving gap (a profile that does not explain the
# iterations shows there). A run is bounded by --timeout-s (default 150 s).
# DP_DETECT_KEEP=<dir> keeps each run's summary.json (per-iteration plans, reasons, events) there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
margin=0.05 window=5 straggler=1.2 runs=3 intrinsic=8 timeout_s=150 detect_within=40 time_scale=0.25
while [ $# -gt 0 ]; do
  case "$1" in
    --margin) margin="$2"; shift 2 ;;
    --window) window="$2"; shift 2 ;;
    --straggler) straggler="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --intrinsic) intrinsic="$2"; shift 2 ;;
    --timeout-s) timeout_s="$2"; shift 2 ;;
    --detect-within) detect_within="$2"; shift 2 ;;
    --time-scale) time_scale="$2"; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
py="${PERSEUS_PYTHON:-$root/.venv/bin/python}"
profile_dir="$root/data/sosp24/stage_profile"
cd "$root"
echo "# dp-detect: margin $margin window $window straggler ${straggler}x runs $runs; load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
for run in $(seq 1 "$runs"); do
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/perseus-dp-detect.XXXXXX")"
  port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  PERSEUS_LOG_LEVEL=error "$root/bin/perseus" serve --listen "127.0.0.1:$port" \
    --agent-backend simulated --agent-sim-model a100-sxm --agent-sim-devices 4 --agent-sim-time-scale "$time_scale" \
    --agent-profile-dir "$profile_dir" --agent-state-file "$tmp/agent-state.json" \
    --profiler-data-dir "$tmp/profiler" --optimizer-data-dir "$tmp/optimizer" \
    --optimizer-straggler-margin "$margin" --optimizer-straggler-window "$window" >"$tmp/serve.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq 1 120); do
    "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.5)" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; exit 1; }
    sleep 0.5
  done
  t0=$(date +%s)
  rc=0
  timeout "$timeout_s" "$py" -m perseus.emulate.demo --server "127.0.0.1:$port" --detect --quiet \
    --profile "$profile_dir/gpt3-175b+a100_sxm_bf16.csv" --out "$tmp/out" --stages 2 --dp 2 \
    --microbatches 4 --time-scale "$time_scale" --window 3 --time-tolerance 10 --busy-tolerance 10 --iterations-per-frequency 2 --frequency-stride 4 \
    --straggler "$straggler" --intrinsic "$intrinsic" --detect-within "$detect_within" \
    --timeout "$((timeout_s - 10))" >"$tmp/demo.log" 2>&1 || rc=$?
  kill "$serve_pid" 2>/dev/null || true
  wait "$serve_pid" 2>/dev/null || true
  "$py" - "$tmp/out/summary.json" "$run" "$rc" "$(($(date +%s) - t0))" "$margin" "$straggler" <<'EOF'
import json, sys
path, run, rc, wall, margin, straggler = sys.argv[1:]
try:
    s = json.load(open(path))
except OSError:
    print(f"RESULT run={run} rc={rc} wall_s={wall} margin={margin} straggler={straggler} error=no-summary")
    sys.exit(0)
rows = s["iterations"]
calm = [r for r in rows if r["label"] == "intrinsic"]
false_pos = sum("straggler" in r["reason"] for r in calm)
ev = {e["event"]: e for e in s["events"]}
missed = f" not_detected_within={ev['straggler_not_detected']['iterations']}" if "straggler_not_detected" in ev else ""
timeout = f" timeout_in={ev['timeout']['stage']}" if "timeout" in ev else ""
# The planned profile's all-max iteration time next to the measured baseline's: a profile that does
# not explain the iterations (e.g. the trainer and agent on different time scales) shows here.
base = next((p for p in s["phases"] if p["phase"] == "baseline"), {})
gap = s["max_saving_gap_pp"]
fmt = lambda x, d: None if x is None else round(x, d)
print(f"RESULT run={run} rc={rc} wall_s={wall} margin={margin} straggler={straggler}"
      f" detect_delay={s['detection_delay_iterations']} clear_delay={s['recovery_delay_iterations']}"
      f" no_straggler_iterations={len(calm)} false_positives={false_pos}"
      f" profile_all_max_s={fmt((s.get('frontier') or {}).get('all_max_time_s'), 3)}"
      f" baseline_iter_s={fmt(base.get('iteration_time_s'), 3)} max_saving_gap_pp={fmt(gap, 2)}{missed}{timeout}")
EOF
  if [ -n "${DP_DETECT_KEEP:-}" ] && [ -f "$tmp/out/summary.json" ]; then
    mkdir -p "$DP_DETECT_KEEP" && cp "$tmp/out/summary.json" "$DP_DETECT_KEEP/m$margin-s$straggler-run$run.json"
  fi
  if [ "$rc" = 0 ]; then rm -rf "$tmp"; else echo "# run $run kept $tmp (demo.log, serve.log)"; fi
done
