#!/usr/bin/env bash
# Debian packages the build and tests need (chromium: the dashboard browser test). Installs only what is missing (needs root for apt).
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3 python3-venv)
[ -e /usr/include/node/node.h ] || need+=(libnode-dev)
# The optimizer dashboard's browser test drives Debian's chromium (playwright-core, no download).
command -v chromium >/dev/null || need+=(chromium)
command -v systemd-analyze >/dev/null || need+=(systemd)   # tools/build/test-systemd-units.sh
python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)   # deploy/helm/check_rendered.py
# Heavy, opt-in tests (.ci/run runs them when asked): podman images.
if [ "${PERSEUS_TEST_IMAGES:-0}" = 1 ]; then
  command -v podman >/dev/null || need+=(podman runc)
  command -v debootstrap >/dev/null || need+=(debootstrap)
fi
if [ "${#need[@]}" -gt 0 ]; then
  echo "install-system-deps: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Slurm and MUNGE for tools/slurm/test-slurm.sh (CI runs it unless PERSEUS_TEST_SLURM=0).
if [ "${PERSEUS_TEST_SLURM:-1}" = 1 ]; then bash "$(dirname "${BASH_SOURCE[0]}")/slurm/install-slurm.sh"; fi
