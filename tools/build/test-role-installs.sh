#!/usr/bin/env bash
# Packs every @perseus package (npm pack of the built dist/) and installs each role into an empty
# folder with production dependencies only, then runs it from there:
#   agent   = cli + gpu-agent (+ proto, service-kit, planner): must not contain better-sqlite3
#   control = cli + profiler + optimizer (+ proto, service-kit, planner): the planner worker thread runs
# (koffi is in both: service-kit reads Unix-socket peer credentials through it.)
# Checks: no dev tooling (tsx, typescript) installed, `perseus --version` is the suite version,
# each role's `serve <role>` binds and prints its serving line with the version, SIGTERM exits 0,
# and a role that is not installed is refused with a message naming its package.
# Prints install time (s) and size (MiB of node_modules) per role.
# Usage: tools/build/test-role-installs.sh [agent|control ...]   (default: both)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
roles=("$@")
[ ${#roles[@]} -gt 0 ] || roles=(agent control)
work="$(mktemp -d "${TMPDIR:-/tmp}/perseus-roles.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "role-installs: FAIL: $*" >&2; exit 1; }

cd "$root"
version="$(node -p "require('./packages/cli/package.json').version")"
npx nx run-many -t build --outputStyle=static >/dev/null
mkdir -p "$work/tgz"
for p in proto service-kit planner gpu-agent profiler optimizer cli; do
  npm pack --silent --workspace "packages/$p" --pack-destination "$work/tgz" >/dev/null
done
tgz() { for p in "$@"; do echo "$work/tgz/perseus-$p-$version.tgz"; done; }

# Starts `perseus serve <role> ...` from an install and waits for its serving line (30 s).
serve_check() {
  local dir="$1" role="$2"; shift 2
  local log="$work/$role-serve.log"
  (cd "$dir" && exec node_modules/.bin/perseus serve "$role" --listen 127.0.0.1:0 "$@") >"$log" 2>"$log.err" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do
    grep -q '"event":"serving"' "$log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$log.err" >&2; fail "serve $role exited before serving"; }
    sleep 0.1
  done
  grep -q "\"event\":\"serving\".*\"version\":\"$version\"" "$log" ||
    { cat "$log" "$log.err" >&2; fail "serve $role: no serving line with version $version"; }
  if [ -n "${metrics_port:-}" ]; then
    node -e "fetch('http://127.0.0.1:$metrics_port/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))" |
      grep -q "^perseus_build_info{version=\"$version\"" || fail "serve $role: no perseus_build_info $version on /metrics"
    echo "  serve $role: /metrics has perseus_build_info version $version"
  fi
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$log.err" >&2; fail "serve $role: exit status $rc after SIGTERM"; }
  echo "  serve $role: serving, version $version, SIGTERM exit 0"
}

for role in "${roles[@]}"; do
  dir="$work/$role"
  mkdir -p "$dir"
  # npm 11 runs dependency install scripts only when allowed: koffi's and better-sqlite3's.
  printf '{"name":"perseus-%s","private":true,"allowScripts":{"koffi":true,"better-sqlite3":true}}\n' \
    "$role" >"$dir/package.json"
  case "$role" in
    agent) pkgs=(proto service-kit planner cli gpu-agent) ;;
    control) pkgs=(proto service-kit planner cli profiler optimizer) ;;
    *) fail "unknown role $role" ;;
  esac
  start=$(date +%s%N)
  (cd "$dir" && npm install --omit=dev --no-audit --no-fund --loglevel=error $(tgz "${pkgs[@]}") >/dev/null)
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  size=$(du -sm "$dir/node_modules" | cut -f1)
  printf 'role %s: install %d.%01d s, node_modules %s MiB\n' "$role" $((ms / 1000)) $((ms % 1000 / 100)) "$size"
  for dev in tsx typescript jest nx; do
    [ ! -e "$dir/node_modules/$dev" ] || fail "$role install contains dev dependency $dev"
  done
  got="$(cd "$dir" && node_modules/.bin/perseus --version)"
  [ "$got" = "$version" ] || fail "$role: perseus --version printed '$got', want $version"
  case "$role" in
    agent)
      [ ! -e "$dir/node_modules/better-sqlite3" ] || fail "agent install contains better-sqlite3"
      (cd "$dir" && node_modules/.bin/perseus serve agent --help >/dev/null)
      # A local name: a global metrics_port would make the control role's checks scrape this port.
      agent_metrics_port="$(node -e "const s = require('net').createServer().listen(0, () => { console.log(s.address().port); s.close(); })")"
      metrics_port=$agent_metrics_port serve_check "$dir" agent --agent-backend simulated \
        --agent-state-file "$work/agent-state.json" --agent-metrics-listen "127.0.0.1:$agent_metrics_port"
      out="$(cd "$dir" && node_modules/.bin/perseus serve profiler 2>&1)" &&
        fail "agent install: serve profiler succeeded"
      grep -q "needs the @perseus/profiler package" <<<"$out" || fail "agent install: serve profiler: $out"
      echo "  serve profiler refused (not installed)"
      out="$(cd "$dir" && node_modules/.bin/perseus plan 2>&1)" && fail "agent install: plan succeeded"
      grep -q "needs the @perseus/optimizer package" <<<"$out" || fail "agent install: plan: $out"
      echo "  plan refused (needs the optimizer package)"
      ;;
    control)
      [ -e "$dir/node_modules/better-sqlite3" ] || fail "control install lacks better-sqlite3"
      PERSEUS_PROFILER_DATA_DIR="$work/profiler" serve_check "$dir" profiler
      PERSEUS_OPTIMIZER_DATA_DIR="$work/optimizer" serve_check "$dir" optimizer
      (cd "$dir" && node -e "$(cat "$root/tools/build/check-worker.cjs")") | grep -q 'frontier points: [1-9]' ||
        fail "control: planner worker thread did not plan from dist/"
      echo "  planner worker thread: planned from dist/"
      ;;
  esac
done
echo "role-installs: OK"
