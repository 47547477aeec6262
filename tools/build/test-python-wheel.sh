#!/usr/bin/env bash
# The Python client as users install it: `pip wheel packages/client-python`, then for each end of
# the supported dependency ranges (lowest: the lower bounds in pyproject.toml, pinned; newest: what
# pip resolves today) a fresh venv outside the repository installs the wheel, and wheel-smoke.py,
# run from outside the repository, imports it and talks to the built `perseus serve`.
# Usage: tools/build/test-python-wheel.sh [lowest|newest ...]   (default: both). Needs npm run build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ends=("$@")
[ ${#ends[@]} -gt 0 ] || ends=(lowest newest)
python="${PERSEUS_PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/perseus-wheel.XXXXXX")"
server=""
cleanup() {
  [ -z "$server" ] || kill -TERM "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "python-wheel: FAIL: $*" >&2; exit 1; }

version="$(node -p "require('$root/packages/cli/package.json').version")"
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$work/dist" "$root/packages/client-python"
rm -rf "$root/packages/client-python/build"
wheel="$(ls "$work"/dist/perseus_ts_client-"$version"-*.whl)" || fail "no perseus_ts_client $version wheel built"
echo "python-wheel: built $(basename "$wheel")"

# The lower bounds of pyproject.toml's ranges, read from it (so the test follows the declared range).
lowest="$work/lowest.txt"
sed -n '/^dependencies = \[/,/^\]/p' "$root/packages/client-python/pyproject.toml" |
  sed -n 's/^ *"\([A-Za-z0-9_.-]*\)>=\([0-9.]*\).*/\1==\2/p' >"$lowest"
[ -s "$lowest" ] || fail "no lower bounds found in pyproject.toml"

mkdir -p "$work/state"
(cd "$work/state" && PERSEUS_AGENT_BACKEND=simulated PERSEUS_LOG_LEVEL=warn \
  PERSEUS_AGENT_STATE_FILE="$work/state/agent.json" PERSEUS_PROFILER_DATA_DIR="$work/state/p" \
  PERSEUS_OPTIMIZER_DATA_DIR="$work/state/o" \
  exec node "$root/packages/cli/bin/perseus.cjs" serve --listen 127.0.0.1:0) >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 300); do
  grep -q '"event":"serving"' "$work/serve.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.err" >&2; fail "perseus serve exited"; }
  sleep 0.1
done
address="$(sed -n 's/.*"event":"serving","address":"\([^"]*\)".*/\1/p' "$work/serve.out" | head -1)"
[ -n "$address" ] || fail "perseus serve did not report its address"

for end in "${ends[@]}"; do
  venv="$work/venv-$end"
  "$python" -m venv "$venv"
  case "$end" in
    lowest) "$venv/bin/pip" install --quiet --disable-pip-version-check -c "$lowest" "$wheel" ;;
    newest) "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade "$wheel" ;;
    *) fail "unknown end $end" ;;
  esac
  echo "python-wheel: $end: $("$venv/bin/pip" list --disable-pip-version-check 2>/dev/null |
    grep -iE '^(grpcio|protobuf|grpcio-status|grpcio-health-checking|googleapis-common-protos) ' | tr -s ' ' | paste -sd, -)"
  if [ "$end" = lowest ]; then
    while IFS='=' read -r name _ want; do
      got="$("$venv/bin/pip" show "$name" 2>/dev/null | sed -n 's/^Version: //p')"
      [ "$got" = "$want" ] || fail "lowest: $name is $got, want $want"
    done <"$lowest"
  fi
  (cd "$work" && "$venv/bin/python" "$root/tools/build/wheel-smoke.py" "$address" "$version" "$venv")
done
echo "python-wheel: OK"
