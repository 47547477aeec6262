#!/usr/bin/env bash
# Verifies deploy/systemd: every unit passes `systemd-analyze verify` with no message (the install
# path /opt/perseus/node_modules/.bin/perseus is pointed at this checkout's built command, since
# verify checks that ExecStart exists), has an optional EnvironmentFile= under /etc/perseus, and
# every PERSEUS_* variable named in the units and example env files is one the sources read.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/perseus-units.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "systemd-units: FAIL: $*" >&2; exit 1; }

units=("$root"/deploy/systemd/*.service)
[ ${#units[@]} -ge 3 ] || fail "expected the agent, profiler and optimizer units"
for unit in "${units[@]}"; do
  name="$(basename "$unit")"
  sed "s#/opt/perseus/node_modules/.bin/perseus#$root/packages/cli/bin/perseus.cjs#g" "$unit" >"$work/$name"
  grep -q '^EnvironmentFile=-/etc/perseus/[a-z]*\.env$' "$unit" || fail "$name: no EnvironmentFile=-/etc/perseus/<role>.env"
  env_file="$(sed -n 's#^EnvironmentFile=-/etc/perseus/##p' "$unit")"
  [ -f "$root/deploy/systemd/$env_file" ] || fail "$name: no example deploy/systemd/$env_file"
done
out="$(cd "$work" && systemd-analyze verify --man=no "$work"/*.service 2>&1)" || fail "verify: $out"
# Messages about units these ones only order against (absent on a build machine) are not theirs.
msgs="$(grep -v -e 'nvidia-persistenced.service' <<<"$out" | grep -v '^$' || true)"
[ -z "$msgs" ] || fail "verify reported: $msgs"
# PERSEUS_<ROLE>_LISTEN is built from the role's name in serve.ts; every other name is literal.
for var in $(grep -ho 'PERSEUS_[A-Z0-9_]*' "$root"/deploy/systemd/* | sort -u); do
  case "$var" in
    PERSEUS_AGENT_LISTEN | PERSEUS_PROFILER_LISTEN | PERSEUS_OPTIMIZER_LISTEN)
      grep -qs 'PERSEUS_${key.toUpperCase()}_LISTEN' "$root/packages/cli/src/commands/serve.ts" ;;
    *) grep -rqs --include='*.ts' "$var" "$root"/packages/*/src ;;
  esac || fail "$var is read by no source"
done
echo "systemd-units: ${#units[@]} units verified"
