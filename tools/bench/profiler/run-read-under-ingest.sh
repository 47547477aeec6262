#!/usr/bin/env bash
# Reads under ingest, baseline vs this checkout (issue 13). The baseline is commit 7e78e2a (main
# before the fix), checked out as a git worktree under /tmp with its own node_modules copy.
# Usage: tools/bench/profiler/run-read-under-ingest.sh [--rate 30000] [--duration-s 30] [--runs 1] ...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
base_commit="${PERSEUS_BASELINE_COMMIT:-7e78e2a}"
base="${PERSEUS_BASELINE_DIR:-/tmp/perseus-baseline-$base_commit}"
if [[ ! -x "$base/bin/perseus" ]]; then
  git -C "$repo" worktree add --detach "$base" "$base_commit" >&2
fi
if [[ ! -d "$base/node_modules/tsx" ]]; then
  # A copy, not a link: the workspace links inside node_modules are relative and must resolve to
  # the baseline's own packages.
  cp -a "$repo/node_modules" "$base/node_modules"
fi
cd "$repo"
exec node --import tsx "$here/read-under-ingest.ts" --baseline-root "$base" "$@"
