#!/usr/bin/env bash
# Start a single-node Slurm (munged, slurmctld, slurmd) on 127.0.0.1 for the scheduler tests,
# with everything under DIR (config, state, logs). Prints the config path (export SLURM_CONF to
# it). Installs Debian's slurmctld, slurmd, slurm-client and munge when they are missing; exits
# 3 when they cannot be installed (the tests then say they skipped). Stop it with stop.sh DIR.
#
#   tests/slurm/start.sh DIR
set -euo pipefail
DIR=$(mkdir -p "$1" && cd "$1" && pwd)
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if ! (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge \
      >"$DIR/apt.log" 2>&1 || { apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge \
      >"$DIR/apt.log" 2>&1; }); then
    echo "slurm: cannot install slurmctld/slurmd/munge (see $DIR/apt.log)" >&2
    exit 3
  fi
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/munge"
chown munge:munge "$DIR/munge"
# munge: its own socket under DIR, the package's key.
runuser -u munge -- munged --socket="$DIR/munge/munge.socket" --pid-file="$DIR/munge/munged.pid" \
  --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat > "$DIR/slurm.conf" <<CONF
ClusterName=earthcatalog
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >"$DIR/slurmctld.out" 2>&1 &
echo $! > "$DIR/slurmctld.job"
slurmd -D -f "$SLURM_CONF" -N localhost >"$DIR/slurmd.out" 2>&1 &
echo $! > "$DIR/slurmd.job"
# Ready when the node is idle (bounded wait).
for _ in $(seq 150); do
  if sinfo -h -o %T 2>/dev/null | grep -q idle; then
    echo "$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
echo "slurm: the node did not come up (see $DIR/slurmctld.log, $DIR/slurmd.log)" >&2
exit 1
