# Shared by prolog.sh and epilog.sh: settings from ${PERSEUS_SLURM_ENV:-/etc/perseus/slurm.env}
# (slurmd runs both with a bare environment), and one log line per event to stderr (slurmd's log)
# and, when PERSEUS_SLURM_LOG is set, to that file.
env_file="${PERSEUS_SLURM_ENV:-/etc/perseus/slurm.env}"
if [ -r "$env_file" ]; then
  # Sourced as root: it must be root's and writable by nobody else.
  if [ "$(stat -c %u "$env_file")" != 0 ] || [ $((8#$(stat -c %a "$env_file") & 8#022)) != 0 ]; then
    echo "perseus-$HOOK: refusing $env_file: it must be owned by root and not group/other-writable" >&2
    exit 1
  fi
  # shellcheck disable=SC1090
  . "$env_file"
fi
PERSEUS_BIN="${PERSEUS_BIN:-/opt/perseus/node_modules/.bin/perseus}"
PERSEUS_AGENT_URL="${PERSEUS_AGENT_URL:-unix:/run/perseus/agent.sock}"
PERSEUS_SLURM_TIMEOUT_S="${PERSEUS_SLURM_TIMEOUT_S:-20}"

perseus_log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) perseus-$HOOK job=${SLURM_JOB_ID:-?} node=$(hostname -s): $*"
  echo "$line" >&2
  if [ -n "${PERSEUS_SLURM_LOG:-}" ]; then echo "$line" >>"$PERSEUS_SLURM_LOG" || true; fi
}
