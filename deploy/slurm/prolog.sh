#!/usr/bin/env bash
# Slurm Prolog (slurm.conf: Prolog=/opt/perseus/deploy/slurm/prolog.sh, PrologFlags=Alloc): before
# a job starts on this node, the node's Perseus GPU agent must answer and list its devices. If it
# does not, the prolog exits 1: Slurm drains the node ("Prolog error") and requeues the job held, and
# the log line says why (slurmd's log, and PERSEUS_SLURM_LOG). A job never starts on a node whose
# agent could not reset its GPUs afterwards. Settings: deploy/slurm/perseus-slurm.env.
set -uo pipefail
HOOK=prolog
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
if ! out="$("$PERSEUS_BIN" agent check --agent "$PERSEUS_AGENT_URL" --timeout-s "$PERSEUS_SLURM_TIMEOUT_S" 2>&1)"; then
  perseus_log "FAILED: the Perseus GPU agent at $PERSEUS_AGENT_URL is not serving; the job must not start here (is perseus-agent.service running?): $(echo "$out" | tr '\n' ' ')"
  exit 1
fi
perseus_log "ok: $(echo "$out" | head -n 1)"
