#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, everything under one folder of yours: munge key, sockets,
# slurm.conf, state, logs and pid files. Nothing under /etc, /run or /var is written, no systemd is needed,
# and `down` stops exactly the daemons that `up` started, by the pids it recorded.
#
#   tools/local-slurm.sh install      # once per machine, as root: apt-get install slurm-wlm munge
#   tools/local-slurm.sh up DIR       # start munged, slurmctld and slurmd (as root: slurmd runs the jobs)
#   export SLURM_CONF=DIR/slurm.conf PATH=DIR/bin:$PATH  # then sbatch, squeue and `snakemake --profile slurm`
#                                                        # use this cluster
#   tools/local-slurm.sh down DIR     # stop them
#
# No accounting daemon (slurmdbd): the profile's status command is squeue, so MinJobAge stays well above
# 3 x the first status-check delay. Ports are picked free, so it runs beside any other SLURM on the machine.
set -euo pipefail
action=${1:-}
dir=${2:-}

usage() { echo "usage: $0 install | up DIR | down DIR" >&2; exit 2; }

stop_pidfile() {  # stop the process a pid file names, if it is still the daemon we started
    local file=$1 name=$2 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

case "$action" in
install)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
    exit 0
    ;;
down)
    [ -n "$dir" ] || usage
    stop_pidfile "$dir/slurmd.pid" slurmd
    stop_pidfile "$dir/slurmctld.pid" slurmctld
    stop_pidfile "$dir/munged.pid" munged
    exit 0
    ;;
up)
    [ -n "$dir" ] || usage
    ;;
*)
    usage
    ;;
esac

for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed: run '$0 install' (Debian: slurm-wlm, munge)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "slurmd must run as root to start jobs: run '$0 up' as root" >&2; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
chmod 0700 "$dir"   # munged refuses a key or socket folder that others can write
if [ ! -s "$dir/munge.key" ]; then
    dd if=/dev/urandom bs=1 count=1024 of="$dir/munge.key" status=none
fi
chmod 0400 "$dir/munge.key"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))

cat > "$dir/slurm.conf" <<CONF
ClusterName=mfql-local
SlurmctldHost=${host}
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${dir}/munge.socket
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool
SlurmctldLogFile=${dir}/log/slurmctld.log
SlurmdLogFile=${dir}/log/slurmd.log
SlurmctldPidFile=${dir}/slurmctld.pid
SlurmdPidFile=${dir}/slurmd.pid
PlugStackConfig=${dir}/plugstack.conf
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# squeue must still list finished jobs when Snakemake asks: >= 3 x init-seconds-before-status-checks
MinJobAge=600
KillWait=5
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
: > "$dir/plugstack.conf"
export SLURM_CONF="$dir/slurm.conf"
# Snakemake's job-step executor runs each job through a nested srun with every SLURM_* variable but a few
# removed, SLURM_CONF included; on a real cluster srun then reads /etc/slurm. This cluster has no file there,
# so jobs (which inherit PATH) find this srun first, which puts SLURM_CONF back.
mkdir -p "$dir/bin"
cat > "$dir/bin/srun" <<WRAP
#!/bin/sh
SLURM_CONF='$dir/slurm.conf' exec $(command -v srun) "\$@"
WRAP
chmod 0755 "$dir/bin/srun"

/usr/sbin/munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed"
/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"

for _ in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        sinfo
        exit 0
    fi
    scontrol update nodename="${host}" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "local SLURM did not come up; see $dir/log/" >&2
exit 1
