#!/usr/bin/env bash
# Runs the device check from the pack that pack.sh made (./.devpack), on a GPU machine without
# Node.js: unpacks node into /tmp and runs run.sh against the bundle. Same arguments as run.sh.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[ -f "$repo/.devpack/node.xz" ] || { echo "run-packed: $repo/.devpack missing (run tools/device-check/pack.sh first)" >&2; exit 2; }
mkdir -p /tmp/perseus-node
xz -dc "$repo/.devpack/node.xz" > /tmp/perseus-node/node && chmod +x /tmp/perseus-node/node
export PATH="/tmp/perseus-node:$PATH"
export PERSEUS_DEVICE_CHECK_BUNDLE="$repo/.devpack/dist/device-check/check.cjs"
exec bash "$repo/tools/device-check/run.sh" "$@"
