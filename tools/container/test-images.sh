#!/usr/bin/env bash
# Builds the agent and control images from deploy/container/Containerfile and tests them:
#   - each image starts; its HEALTHCHECK passes (`podman healthcheck run`);
#   - from the host, grpc.health.v1 reports SERVING: the agent over its Unix socket (a host folder
#     mounted at /run/perseus, as a pod shares it with trainers), the profiler and optimizer over
#     published TCP ports; the optimizer finds the profiler by name on a podman network;
#   - the control containers listen on 0.0.0.0, so they need TLS and a token file: a control
#     container without them refuses to start; with a self-signed certificate and a 0600 token file
#     (generated here, mounted read-only, configured through PERSEUS_TLS_CERT/_KEY and
#     PERSEUS_{PROFILER,OPTIMIZER}_TOKEN_FILE) health is SERVING over TLS only, and the image's
#     HEALTHCHECK passes over TLS;
#   - the control containers run as uid 10001 and keep their SQLite files in the volume;
#   - SIGTERM (`podman stop`) drains: exit status 0, the agent's "reset.shutdown" audit line.
# Prints build time, image sizes and the test's duration. Registries are not needed: BASE defaults to
# a local Debian + this machine's node (tools/container/make-local-base.sh); set PERSEUS_BASE_IMAGE
# to test another base (e.g. docker.io/library/node:20-bookworm-slim where a registry is reachable).
# Needs root, podman, runc, debootstrap, openssl (tools/install-system-deps.sh with PERSEUS_TEST_IMAGES=1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$root/tools/container/containers.conf}"
podman=(podman --runtime runc)
base="${PERSEUS_BASE_IMAGE:-localhost/perseus-test-base:latest}"
tag="test-$$"
work="$(mktemp -d "${TMPDIR:-/tmp}/perseus-images.XXXXXX")"
net="perseus-test-$$"
containers=()
cleanup() {
  for c in "${containers[@]}"; do "${podman[@]}" rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  "${podman[@]}" network rm -f "$net" >/dev/null 2>&1 || true
  "${podman[@]}" volume rm -f "perseus-data-$$" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "images: FAIL: $*" >&2; exit 1; }
t0=$(date +%s)

PERSEUS_BASE_IMAGE="$base" bash "$root/tools/container/make-local-base.sh"
t_base=$(date +%s)

cd "$root"
npx nx run-many -t build --outputStyle=static >/dev/null
ctx="$work/context"
mkdir -p "$ctx"
for p in proto service-kit planner gpu-agent profiler optimizer cli; do
  npm pack --silent --workspace "packages/$p" --pack-destination "$ctx" >/dev/null
done
cp deploy/container/Containerfile deploy/container/healthcheck.cjs "$ctx/"
# The build runs without a registry: npm's cache for both roles is filled here (scripts off; the
# container compiles better-sqlite3 itself) and the image installs from it with --offline.
mkdir -p "$ctx/npm-cache" "$work/fill"
printf '{"name":"fill","private":true}\n' >"$work/fill/package.json"
(cd "$work/fill" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
  --cache "$ctx/npm-cache" "$ctx"/*.tgz >/dev/null)
for target in agent control; do
  s=$(date +%s)
  "${podman[@]}" build --format docker --network=host --build-arg "BASE=$base" --target "$target" \
    --build-arg "NPM_FLAGS=--offline --cache /npm-cache --build-from-source" \
    -t "localhost/perseus-$target:$tag" -f "$ctx/Containerfile" "$ctx" >"$work/build-$target.log" 2>&1 ||
    { tail -30 "$work/build-$target.log" >&2; fail "build $target"; }
  size=$("${podman[@]}" image inspect --format '{{.Size}}' "localhost/perseus-$target:$tag")
  echo "images: built perseus-$target in $(( $(date +%s) - s )) s, $(( size / 1048576 )) MiB"
done
t_build=$(date +%s)

# Health over gRPC from the host, with the repo's Python client environment.
# health ADDRESS [CA]: with CA, over TLS trusting it.
health() {
  "$root/.venv/bin/python" - "$@" <<'PY'
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
if len(sys.argv) > 2:
    with open(sys.argv[2], "rb") as f:
        ch = grpc.secure_channel(sys.argv[1], grpc.ssl_channel_credentials(root_certificates=f.read()))
else:
    ch = grpc.insecure_channel(sys.argv[1])
with ch:
    r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
print(health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))
PY
}
wait_health() {
  local address="$1" got=""
  for _ in $(seq 60); do
    got="$(health "$@" 2>/dev/null || true)"
    [ "$got" = SERVING ] && return 0
    sleep 1
  done
  fail "$address: health $got, want SERVING"
}
stop_drained() {
  local name="$1" want_log="$2"
  "${podman[@]}" stop -t 30 "$name" >/dev/null
  local code
  code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
  [ "$code" = 0 ] || { "${podman[@]}" logs "$name" | tail -20 >&2; fail "$name: exit status $code after SIGTERM"; }
  "${podman[@]}" logs "$name" 2>&1 | grep -q "$want_log" || fail "$name: no '$want_log' in its log after SIGTERM"
  echo "images: $name: SIGTERM → exit 0, '$want_log' logged"
}

# Agent: simulated GPUs; its socket in a host folder.
sock="$work/run"
mkdir -p "$sock"
"${podman[@]}" run -d --name "perseus-agent-$$" -v "$sock:/run/perseus" \
  -e PERSEUS_AGENT_BACKEND=simulated -e PERSEUS_AGENT_SIM_DEVICES=4 \
  "localhost/perseus-agent:$tag" >/dev/null
containers+=("perseus-agent-$$")
wait_health "unix:$sock/agent.sock"
"${podman[@]}" healthcheck run "perseus-agent-$$" >/dev/null || fail "agent HEALTHCHECK failed"
echo "images: agent: SERVING over unix:$sock/agent.sock from the host; HEALTHCHECK passes"

# Control: profiler and optimizer from the same image on one network, state in one volume. They
# listen on 0.0.0.0: without TLS and a token file they must refuse to start.
if out=$("${podman[@]}" run --rm "localhost/perseus-control:$tag" serve profiler 2>&1); then
  fail "profiler started on 0.0.0.0 without TLS"
fi
grep -qi "tls" <<<"$out" || fail "profiler's refusal does not mention TLS: $out"
echo "images: control without TLS on 0.0.0.0: refuses to start"
# Self-signed certificate for the names the containers are reached by, and a 0600 token file; both
# owned by the control image's user (10001), mounted read-only.
secrets="$work/secrets"
mkdir -p "$secrets"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=perseus-test \
  -addext "subjectAltName=DNS:profiler,DNS:optimizer,DNS:localhost,IP:127.0.0.1" \
  -keyout "$secrets/tls.key" -out "$secrets/tls.crt" 2>/dev/null
printf 'ops read,report,control %s\n' "$(openssl rand -hex 24)" >"$secrets/tokens"
chmod 600 "$secrets/tokens" "$secrets/tls.key"
chown -R 10001:10001 "$secrets"
tls=(-v "$secrets:/etc/perseus:ro" -e PERSEUS_TLS_CERT=/etc/perseus/tls.crt
  -e PERSEUS_TLS_KEY=/etc/perseus/tls.key)
"${podman[@]}" network create "$net" >/dev/null
"${podman[@]}" volume create "perseus-data-$$" >/dev/null
"${podman[@]}" run -d --name "perseus-profiler-$$" --network "$net" --network-alias profiler \
  -p 127.0.0.1::50052 -v "perseus-data-$$:/var/lib/perseus" "${tls[@]}" \
  -e PERSEUS_PROFILER_TOKEN_FILE=/etc/perseus/tokens "localhost/perseus-control:$tag" \
  serve profiler >/dev/null
containers+=("perseus-profiler-$$")
"${podman[@]}" run -d --name "perseus-optimizer-$$" --network "$net" \
  -p 127.0.0.1::50051 -v "perseus-data-$$:/var/lib/perseus" "${tls[@]}" \
  -e PERSEUS_OPTIMIZER_TOKEN_FILE=/etc/perseus/tokens "localhost/perseus-control:$tag" >/dev/null
containers+=("perseus-optimizer-$$")
pport=$("${podman[@]}" port "perseus-profiler-$$" 50052/tcp | sed 's/.*://')
oport=$("${podman[@]}" port "perseus-optimizer-$$" 50051/tcp | sed 's/.*://')
wait_health "127.0.0.1:$pport" "$secrets/tls.crt"
wait_health "127.0.0.1:$oport" "$secrets/tls.crt"
for p in "$pport" "$oport"; do
  got="$(health "127.0.0.1:$p" 2>/dev/null || true)"
  [ -z "$got" ] || fail "127.0.0.1:$p answered $got without TLS"
done
for c in profiler optimizer; do
  "${podman[@]}" healthcheck run "perseus-$c-$$" >/dev/null || fail "$c HEALTHCHECK (TLS) failed"
  uid=$("${podman[@]}" exec "perseus-$c-$$" node -p 'process.getuid()')
  [ "$uid" = 10001 ] || fail "$c runs as uid $uid, want 10001"
done
"${podman[@]}" exec "perseus-optimizer-$$" node -e "
  const fs = require('fs');
  for (const f of ['/var/lib/perseus/profiler/profiler.db', '/var/lib/perseus/optimizer/optimizer.sqlite'])
    if (!fs.existsSync(f)) { console.error('missing ' + f); process.exit(1); }" ||
  fail "state files not in the volume"
# The optimizer's container reaches the profiler by its network name, over TLS (the image's health
# check run against profiler:50052 only).
"${podman[@]}" exec "perseus-optimizer-$$" printenv PERSEUS_OPTIMIZER_PROFILER_URL | grep -qx 'profiler:50052' ||
  fail "optimizer is not configured for the profiler at profiler:50052"
"${podman[@]}" exec -e PERSEUS_OPTIMIZER_LISTEN= -e PERSEUS_PROFILER_LISTEN=profiler:50052 \
  "perseus-optimizer-$$" node /opt/perseus/healthcheck.cjs ||
  fail "the optimizer's container does not reach the profiler at profiler:50052 over TLS"
echo "images: profiler, optimizer: SERVING over TLS on 127.0.0.1:$pport / :$oport (plaintext refused); HEALTHCHECK passes over TLS; uid 10001; SQLite files in the volume; profiler:50052 reachable over TLS from the optimizer's container"

stop_drained "perseus-optimizer-$$" '"msg":"stopped"'
stop_drained "perseus-profiler-$$" '"msg":"stopped"'
stop_drained "perseus-agent-$$" 'reset.shutdown'
t_end=$(date +%s)
for target in agent control; do "${podman[@]}" rmi -f "localhost/perseus-$target:$tag" >/dev/null 2>&1 || true; done
echo "images: OK in $(( t_end - t0 )) s (local base $(( t_base - t0 )) s, builds $(( t_build - t_base )) s, run checks $(( t_end - t_build )) s)"
