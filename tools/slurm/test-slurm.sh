#!/usr/bin/env bash
# The Perseus Slurm integration test, on a real one-node Slurm cluster (Debian's slurm-wlm + munge,
# tools/slurm/cluster.sh) with the Perseus prolog and epilog of deploy/slurm:
#   0. with no agent serving, a job's prolog fails: the job does not start (requeued held), the node
#      drains with "Prolog error" and the log says why (the node is resumed for what follows);
#   1. the agent (8 simulated A100 GPUs on a Unix socket, as perseus-agent.service runs it), the
#      profiler and the optimizer start; `sbatch -O -n 8` runs the emulated training job through
#      `srun` (2 pipelines × 4 stages; ranks from SLURM_PROCID/SLURM_LOCALID, job id slurm-<id>.0;
#      no Perseus arguments beyond the service URLs and the pipeline degree): online profiling →
#      plan deployed → a 1.2× straggler → extrinsic plan, then the job's energy is checked
#      (tools/slurm/drive_job.py: measured vs predicted per pipeline, the extrinsic saving);
#   2. a second job (1 pipeline × 4 stages, plus a process that escapes the job and holds GPU 7 at
#      1005 MHz) is scancelled mid-iteration; its epilog must reset every GPU it held: afterwards the
#      agent reports default clocks and no lease on all 8, and the escaped session ended ABORTED.
# Every daemon it started is stopped on exit. Needs root (munged runs as `munge`, slurmd as root).
# All energies are emulated (simulated GPUs). PERSEUS_SLURM_KEEP=1 keeps the temp folder.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
cd "$root"
[ "$(id -u)" = 0 ] || { echo "test-slurm: needs root (munged, slurmctld, slurmd)" >&2; exit 1; }
bash tools/slurm/install-slurm.sh
python="${PERSEUS_PYTHON:-$root/.venv/bin/python}"
profile="$root/data/sosp24/stage_profile/gpt3-175b+a100_sxm_bf16.csv"
start=$(date +%s)
tmp="$(mktemp -d /tmp/perseus-slurm.XXXXXX)"
chmod 0755 "$tmp"
export SLURM_TEST_DIR="$tmp/cluster"
export PERSEUS_PROLOG="$tmp/hooks/prolog" PERSEUS_EPILOG="$tmp/hooks/epilog"
# shellcheck source=tools/slurm/cluster.sh
. "$root/tools/slurm/cluster.sh"
service_pids=()
say() { echo "test-slurm [$(($(date +%s) - start)) s]: $*" >&2; }
fail() {
  echo "test-slurm: FAIL: $*" >&2
  for f in "$tmp"/hooks.log "$tmp"/*.log "$SLURM_TEST_DIR"/log/*.log; do
    [ -f "$f" ] && { echo "--- $f (last 15 lines)" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}
cleanup() {
  local rc=$?
  if [ -n "${SLURM_CONF:-}" ] && [ -f "${SLURM_CONF}" ]; then scancel --full --quiet --user=root 2>/dev/null || true; fi
  if [ -s "$tmp/job2/holder-ready" ]; then kill "$(cat "$tmp/job2/holder-ready")" 2>/dev/null || true; fi
  cluster_stop
  for pid in "${service_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${service_pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "${PERSEUS_SLURM_KEEP:-0}" = 1 ]; then echo "test-slurm: kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# The hooks are deploy/slurm's scripts; slurmd runs them with a bare environment, so their settings
# come from an env file (deploy/slurm/perseus-slurm.env), here the test's own.
agent_sock="$tmp/run/agent.sock"
mkdir -p "$tmp/hooks" "$tmp/run" "$tmp/job1" "$tmp/job2"
cat >"$tmp/slurm.env" <<EOF
PATH=$(dirname "$(command -v node)"):/usr/local/bin:/usr/bin:/bin
PERSEUS_BIN=$root/bin/perseus
PERSEUS_AGENT_URL=unix:$agent_sock
PERSEUS_SLURM_LOG=$tmp/hooks.log
EOF
for hook in prolog epilog; do
  printf '#!/bin/sh\nPERSEUS_SLURM_ENV=%s exec %s\n' "$tmp/slurm.env" "$root/deploy/slurm/$hook.sh" >"$tmp/hooks/$hook"
  chmod 0755 "$tmp/hooks/$hook"
done

cluster_start || fail "the Slurm cluster did not start"
node="$(hostname -s)"
say "slurm $(sinfo -V | awk '{print $2}') up: node $node, $(nproc) CPUs (jobs overcommit with -O)"

# 0. No agent yet: the prolog must refuse the job and drain the node, saying why.
j0="$(sbatch --parsable -O -n 1 -J perseus-no-agent -o /dev/null --wrap 'true')"
deadline=$((SECONDS + 90))
until grep -q "perseus-prolog job=$j0 .*FAILED: the Perseus GPU agent at unix:$agent_sock is not serving" "$tmp/hooks.log" 2>/dev/null &&
  sinfo -h -N -o '%E' | grep -q 'Prolog error'; do
  [ $SECONDS -lt $deadline ] || fail "the prolog did not refuse job $j0 without an agent"
  sleep 0.5
done
until squeue -h -j "$j0" -o '%T %r' | grep -q '^PENDING launch failed requeued held'; do
  [ $SECONDS -lt $deadline ] || fail "job $j0 was not requeued held: $(squeue -h -j "$j0" -o '%T %r')"
  sleep 0.5
done
say "0. without an agent the prolog refused job $j0 ($(squeue -h -j "$j0" -o '%T, %r')) and Slurm drained the node: '$(sinfo -h -N -o '%E')'"
scancel "$j0" 2>/dev/null || true
# Its epilog fails too (no agent to reset through): the node stays drained until an operator resumes it.
until grep -q "perseus-epilog job=$j0 .*done (exit 1)" "$tmp/hooks.log" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "job $j0's epilog did not run"
  sleep 0.5
done
until ! squeue -h -j "$j0" 2>/dev/null | grep -q .; do sleep 0.5; done
scontrol update nodename="$node" state=resume
until sinfo -h -o '%t' | grep -qE '^idle'; do
  [ $SECONDS -lt $deadline ] || fail "the node did not return to idle"
  sleep 0.5
done

# 1. The services, as on a cluster: the node's agent on its socket; profiler and optimizer on TCP.
serving_address() { # <log file>: waits for the server's {"event":"serving"} line; prints its address
  local deadline=$((SECONDS + 120)) line
  while [ $SECONDS -lt $deadline ]; do
    line="$(grep -m1 '"event":"serving"' "$1" 2>/dev/null || true)"
    if [ -n "$line" ]; then python3 -c 'import json,sys; print(json.loads(sys.argv[1])["address"])' "$line"; return 0; fi
    sleep 0.3
  done
  return 1
}
bin/perseus serve agent --listen "unix:$agent_sock" --agent-backend simulated --agent-sim-devices 8 \
  --agent-state-file "$tmp/agent/state.json" --agent-audit-log "$tmp/agent-audit.log" >"$tmp/agent.log" 2>&1 &
service_pids+=($!)
bin/perseus serve profiler --listen 127.0.0.1:0 --profiler-data-dir "$tmp/profiler" >"$tmp/profiler.log" 2>&1 &
service_pids+=($!)
profiler="$(serving_address "$tmp/profiler.log")" || fail "the profiler did not start"
bin/perseus serve optimizer --listen 127.0.0.1:0 --optimizer-data-dir "$tmp/optimizer" \
  --optimizer-profiler-url "$profiler" >"$tmp/optimizer.log" 2>&1 &
service_pids+=($!)
optimizer="$(serving_address "$tmp/optimizer.log")" || fail "the optimizer did not start"
serving_address "$tmp/agent.log" >/dev/null || fail "the agent did not start"
export PERSEUS_AGENT_URL="unix:$agent_sock" PERSEUS_PROFILER_URL="$profiler" PERSEUS_OPTIMIZER_URL="$optimizer"
say "services up: agent unix:$agent_sock (8 simulated A100), profiler $profiler, optimizer $optimizer"

rank_cmd=("$python" "$root/tools/slurm/emulated_rank.py" --pp 4 --microbatches 4 --profile "$profile")
j1="$(sbatch --parsable -O -n 8 -J perseus-train -o "$tmp/job1.out" \
  --wrap "srun -O -n 8 ${rank_cmd[*]} --run-dir $tmp/job1")"
say "1. job $j1 submitted: srun -O -n 8 (2 pipelines x 4 stages), Perseus job id slurm-$j1.0"
"$python" tools/slurm/drive_job.py --optimizer "$optimizer" --job-id "slurm-$j1.0" --run-dir "$tmp/job1" \
  --pp 4 --dp 2 --microbatches 4 || fail "job $j1 did not go through profiling, plan, straggler, extrinsic plan"
deadline=$((SECONDS + 120))
while squeue -h -j "$j1" 2>/dev/null | grep -q .; do
  [ $SECONDS -lt $deadline ] || fail "job $j1 did not end after its stop"
  sleep 0.5
done
"$python" tools/slurm/drive_job.py --check --optimizer "$optimizer" --job-id "slurm-$j1.0" --run-dir "$tmp/job1" \
  --pp 4 --dp 2 --microbatches 4 | tee "$tmp/job1-summary.json" || fail "job $j1's energy figures"
grep -q "perseus-prolog job=$j1 .*ok: agent unix:$agent_sock: serving 8 devices" "$tmp/hooks.log" || fail "job $j1's prolog did not run"
say "1. job $j1: profiling, plan, straggler and extrinsic plan checked"

# 2. scancel mid-iteration; the epilog resets every GPU the job held, the escaped process's too.
j2="$(sbatch --parsable -O -n 4 -J perseus-cancel -o "$tmp/job2.out" --wrap "
setsid -f $python $root/tools/slurm/escaped_holder.py --job-id slurm-\$SLURM_JOB_ID --device 7 --clock 1005 --run-dir $tmp/job2
srun -O -n 4 ${rank_cmd[*]} --run-dir $tmp/job2")"
deadline=$((SECONDS + 180))
until [ -s "$tmp/job2/holder-ready" ] && [ "$(cat "$tmp"/job2/rank-*.jsonl 2>/dev/null | wc -l)" -ge 8 ]; do
  [ $SECONDS -lt $deadline ] || fail "job $j2 did not start iterating"
  sleep 0.5
done
before="$(bin/perseus agent check --agent "unix:$agent_sock" --json)"
"$python" - "$before" "$j2" <<'EOF' || fail "job $j2 does not hold its GPUs before the scancel"
import json, sys
devices, job = json.loads(sys.argv[1]), sys.argv[2]
held = {d["index"]: (d["lease"] or {}).get("job_id") for d in devices}
want = {0: f"slurm-{job}.0", 1: f"slurm-{job}.0", 2: f"slurm-{job}.0", 3: f"slurm-{job}.0", 7: f"slurm-{job}"}
assert all(held[i] == j for i, j in want.items()), held
assert next(d for d in devices if d["index"] == 7)["locked_sm_clock_mhz"] == 1005, devices
EOF
scancel "$j2"
say "2. job $j2 scancelled mid-iteration (devices 0-3 leased by slurm-$j2.0, device 7 by its escaped process at 1005 MHz)"
deadline=$((SECONDS + 120))
until grep -q "perseus-epilog job=$j2 .*done (exit 0)" "$tmp/hooks.log" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "job $j2's epilog did not finish cleanly"
  sleep 0.5
done
grep "perseus-epilog job=$j2 " "$tmp/hooks.log" | grep -q "device 7: reset ok, default clocks (ended job slurm-$j2 rank 0)" ||
  fail "job $j2's epilog did not reset device 7"
deadline=$((SECONDS + 30))
until [ -s "$tmp/job2/holder-ended" ]; do [ $SECONDS -lt $deadline ] || fail "the escaped process's session did not end"; sleep 0.3; done
[ "$(cat "$tmp/job2/holder-ended")" = ABORTED ] || fail "the escaped session ended $(cat "$tmp/job2/holder-ended"), not ABORTED"
after="$(bin/perseus agent check --agent "unix:$agent_sock" --json)"
"$python" - "$after" <<'EOF' || fail "a GPU is still locked or leased after job $j2's epilog"
import json, sys
devices = json.loads(sys.argv[1])
bad = [d for d in devices if d["locked_sm_clock_mhz"] != 0 or d["lease"]]
assert len(devices) == 8 and not bad, bad
EOF
grep -q '"action":"reset.admin"' "$tmp/agent-audit.log" || fail "no reset.admin line in the agent's audit log"
say "2. job $j2's epilog: $(grep "perseus-epilog job=$j2 .*reset --job" "$tmp/hooks.log" | sed 's/.*reset --job/reset --job/')"
say "2. after the epilog all 8 GPUs are at default clocks with no lease; the escaped session ended ABORTED"
echo "test-slurm: OK in $(($(date +%s) - start)) s (emulated energies, simulated GPUs)"
