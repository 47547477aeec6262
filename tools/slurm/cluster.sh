# Sourced by tools/slurm/test-slurm.sh: a one-node Slurm cluster under a temp dir. munged runs as
# the `munge` user with its own key and socket; slurmctld and slurmd as root with a generated
# slurm.conf (no cgroup plugins: proctrack/linuxproc, task/none; select/cons_tres), state, spool,
# logs and pid files all under $SLURM_TEST_DIR. The caller sets SLURM_TEST_DIR, PERSEUS_PROLOG and
# PERSEUS_EPILOG, then calls cluster_start; cluster_stop ends every daemon it started (by pid).

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

cluster_start() {
  local d="$SLURM_TEST_DIR" host cpus
  host="$(hostname -s)"
  cpus="$(nproc)"
  mkdir -p "$d/munge" "$d/state" "$d/spool" "$d/log"
  # MUNGE: a fresh key, readable by the munge user only; the socket in a folder munge owns.
  dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none
  chown -R munge: "$d/munge"
  chmod 0700 "$d/munge"
  chmod 0400 "$d/munge/munge.key"
  chmod 0755 "$d"
  runuser -u munge -- munged --force \
    --socket="$d/munge/munge.socket" --key-file="$d/munge/munge.key" \
    --pid-file="$d/munge/munged.pid" --log-file="$d/munge/munged.log" --seed-file="$d/munge/seed"
  # The socket's folder must let root's Slurm daemons connect (munge keeps it 0700 otherwise).
  chmod 0755 "$d/munge"
  export SLURM_CONF="$d/slurm.conf"
  cat >"$SLURM_CONF" <<CONF
ClusterName=perseus-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge/munge.socket
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=5
Prolog=$PERSEUS_PROLOG
Epilog=$PERSEUS_EPILOG
PrologFlags=Alloc
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF"
  local deadline=$((SECONDS + 60))
  until sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; do
    if [ $SECONDS -ge $deadline ]; then
      echo "slurm: the node did not become idle in 60 s:" >&2
      sinfo >&2 || true
      tail -n 20 "$d/log/slurmctld.log" "$d/log/slurmd.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

cluster_stop() {
  local d="$SLURM_TEST_DIR" f pid
  for f in "$d/slurmd.pid" "$d/slurmctld.pid" "$d/munge/munged.pid"; do
    [ -s "$f" ] || continue
    pid="$(cat "$f")"
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
