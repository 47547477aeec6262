#!/usr/bin/env bash
# `npm start`: the one-command demo. Bootstraps the Python venv (idempotent), then runs
# `perseus demo`: agent (simulated A100 SXM GPUs from the GPT-3 175B profile in data/),
# profiler and optimizer in one process, and the emulated trainer through every phase. Extra
# arguments go to `perseus demo` (see `--help`); outputs land in ./demo-out by default.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/bootstrap-python.sh
exec node --import tsx packages/cli/src/commands/demo-main.ts "$@"
