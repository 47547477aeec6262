#!/usr/bin/env bash
# The test command (`npm test`): codegen freshness, lint, formatting, typecheck, jest (every package, through
# nx), and pytest (the Python client against the real TypeScript servers).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false

step() { printf '\n== %s\n' "$*"; }

step "python venv"
bash tools/bootstrap-python.sh

step "codegen freshness (regenerating must change nothing)"
bash tools/codegen/generate.sh --check

step "project graph (nx)"
node tools/check-graph.cjs

step "lint (eslint)"
npx eslint .

step "format (prettier --check; fix with npm run format)"
npx prettier --check . --log-level warn

step "typecheck (tsc, sources and tests)"
npx tsc -p tsconfig.json --noEmit

step "jest (nx run-many -t test)"
npx nx run-many -t test --parallel=1 --outputStyle=stream

step "python lint and types (ruff; mypy --strict on the hand-written client)"
(cd packages/client-python && ../../.venv/bin/ruff check . && ../../.venv/bin/mypy)

step "pytest"
.venv/bin/python -m pytest packages/client-python/tests -q
