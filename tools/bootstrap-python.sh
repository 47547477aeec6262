#!/usr/bin/env bash
# Creates (or refreshes) the repo-local Python venv at .venv from pinned requirements (runtime and
# test: requirements.txt; lint and type-check tools: requirements-dev.txt) and installs the perseus
# client in editable mode. Idempotent: a venv whose requirements did not change is
# left alone (a stamp file holds the hash of both requirements files + pyproject.toml).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
pkg="$root/packages/client-python"
python="${PERSEUS_PYTHON:-python3}"
stamp="$venv/.perseus-requirements.sha256"
want="$(cat "$pkg/requirements.txt" "$pkg/requirements-dev.txt" "$pkg/pyproject.toml" | sha256sum | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap-python: creating $venv" >&2
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$pkg/requirements.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$pkg/requirements-dev.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$pkg"
echo "$want" > "$stamp"
