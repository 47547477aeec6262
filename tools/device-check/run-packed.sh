#!/usr/bin/env bash
# Runs the device check from the pack that pack.sh made (./.devpack), on a GPU machine without
# Node.js: unpacks node into /tmp and runs run.sh against the bundle. Same arguments as run.sh.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$repo/tools/device-check/packed-env.sh"
packed_node || exit 2
export PERSEUS_DEVICE_CHECK_BUNDLE="$repo/.devpack/dist/device-check/check.cjs"
exec bash "$repo/tools/device-check/run.sh" "$@"
