#!/usr/bin/env bash
# Debian's Slurm and MUNGE for the one-node Slurm test (tools/slurm/test-slurm.sh): slurmctld, slurmd,
# the client commands (sbatch, srun, scancel, squeue) and munged. Installs only what is missing
# (needs root for apt); called by tools/install-system-deps.sh.
set -euo pipefail
need=()
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
if [ "${#need[@]}" -gt 0 ]; then
  echo "install-slurm: installing ${need[*]}" >&2
  apt-get update -qq
  # The packages' own services are not started here (no init in CI containers, and the test runs
  # its own daemons under a temp dir): policy-rc.d 101 = "do not start".
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ "$made_policy" = 1 ] && rm -f "$policy"
fi
