#!/usr/bin/env bash
# Packs the device check for a GPU machine that has no Node.js and no network (e.g. a lent cloud
# GPU): one esbuild bundle of check.ts, koffi's linux-x64 binary only, and this machine's node
# binary (xz), into ./.devpack (git-ignored). On the GPU machine, from the repo root:
#   bash tools/device-check/run-packed.sh        # unpacks node to /tmp, then runs the same check
# Everything together stays well under 64 MiB. Needs npm ci here first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
pack=.devpack
rm -rf "$pack"
# The bundle sits three folders down so packages/proto's PROTO_ROOT (__dirname/../../../protos)
# still resolves to the repository's protos/ after bundling.
mkdir -p "$pack/dist/device-check" "$pack/node_modules/koffi/build/koffi"
node_modules/.bin/esbuild tools/device-check/check.ts --bundle --platform=node --target=node20 \
  --format=cjs --external:koffi --log-level=warning --outfile="$pack/dist/device-check/check.cjs"
# grpc-health-check and @grpc/reflection load their .proto files from __dirname/../../proto.
mkdir -p "$pack/proto"
cp -r node_modules/grpc-health-check/proto/. node_modules/@grpc/reflection/build/proto/grpc "$pack/proto/"
# The perseus CLI too (serve agent --agent-backend nvml for agent_e2e.py); better-sqlite3 (profiler,
# optimizer) stays external with its native build: this machine's build is x86-64 Linux like the GPU box.
mkdir -p "$pack/dist/cli"
node_modules/.bin/esbuild packages/cli/src/main.ts --bundle --platform=node --target=node20 \
  --format=cjs --external:koffi --external:better-sqlite3 --log-level=warning --outfile="$pack/dist/cli/main.cjs"
# The optimizer plans in a worker thread whose entry sits beside the code (planner-pool.ts).
node_modules/.bin/esbuild packages/optimizer/src/planner-worker.ts --bundle --platform=node --target=node20 \
  --format=cjs --log-level=warning --outfile="$pack/dist/cli/planner-worker-entry.cjs"
mkdir -p "$pack/node_modules/better-sqlite3/build/Release"
cp -r node_modules/better-sqlite3/{package.json,lib} "$pack/node_modules/better-sqlite3/"
cp node_modules/better-sqlite3/build/Release/better_sqlite3.node "$pack/node_modules/better-sqlite3/build/Release/"
cp -r node_modules/bindings node_modules/file-uri-to-path "$pack/node_modules/"
cp node_modules/koffi/{package.json,index.js,indirect.js} "$pack/node_modules/koffi/"
cp -r node_modules/koffi/build/koffi/linux_x64 "$pack/node_modules/koffi/build/koffi/"
xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > "$pack/node.xz"
du -sh "$pack"
