#!/usr/bin/env bash
# Slurm Epilog (slurm.conf: Epilog=/opt/perseus/deploy/slurm/epilog.sh): after a job ends on this
# node — normally, by scancel, time limit or node failure of a step — every GPU it held is reset to
# default clocks with the agent's privileged AdminReset (root on the agent's socket): the devices
# leased by the job's Perseus job id `slurm-<id>` and its steps `slurm-<id>.<step>` (the Python
# client's default under Slurm), and with GRES GPUs (SLURM_JOB_GPUS) the job's GPUs by index,
# whoever holds them. A process that escaped the job's process tracking and still holds a lease has
# its session ended. Exit 1 when a reset fails or a clock stays locked: Slurm drains the node
# ("Epilog error") rather than hand a GPU at a lowered clock to the next job.
set -uo pipefail
HOOK=epilog
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
job="${SLURM_JOB_ID:?the epilog needs SLURM_JOB_ID}"
status=0
reset() {
  local out
  if out="$("$PERSEUS_BIN" agent reset --agent "$PERSEUS_AGENT_URL" --timeout-s "$PERSEUS_SLURM_TIMEOUT_S" --reason "slurm epilog job $job" "$@" 2>&1)"; then
    perseus_log "reset $*: $(echo "$out" | tr '\n' ';')"
  else
    perseus_log "FAILED: reset $* at $PERSEUS_AGENT_URL: $(echo "$out" | tr '\n' ';')"
    status=1
  fi
}
reset --job "slurm-$job"
# GRES GPUs: the job's devices by index (a job that set its own PERSEUS_JOB_ID is found this way).
gpus="${SLURM_JOB_GPUS:-}"
if [[ "$gpus" =~ ^[0-9]+(,[0-9]+)*$ ]]; then reset --devices "$gpus"; fi
perseus_log "done (exit $status)"
exit "$status"
