#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, from Debian's packages (slurmctld + slurmd + munge),
# for the cluster test (tests/test_cluster.py) and for trying profiles/slurm by hand.
#
#   tests/cluster/slurm.sh up      install if missing, write slurm.conf, start munged/slurmctld/slurmd,
#                                  wait until sinfo shows the node idle (idempotent; ~1 s when already up)
#   tests/cluster/slurm.sh status  exit 0 if the node is up (idle/mixed/allocated), 1 if not
#   tests/cluster/slurm.sh down    stop the daemons this script started (only on a cluster it configured)
#
# Works without systemd and without cgroups (containers): daemons are started directly,
# ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, no cgroup.conf. No slurmdbd: accounting
# storage is none, so sacct answers "accounting storage is disabled"; the executor plugin polls
# squeue instead (profiles/slurm: slurm-status-command: squeue), which lists finished jobs for
# MinJobAge seconds.
# Exit codes: 0 ok; 1 not up (status); 2 cannot bring SLURM up here (not root, install failed,
# a daemon did not start); 3 /etc/slurm/slurm.conf belongs to another cluster (left alone).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# fraudworld single-node test cluster (tests/cluster/slurm.sh)"
PARTITION=compute                       # the partition profiles/slurm asks for
STATE=/var/lib/slurm                    # slurmctld state + slurmd spool
LOGS=/var/log/slurm
WAIT_S=${SLURM_UP_WAIT_S:-60}

say() { echo "slurm.sh: $*" >&2; }

have_binaries() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
  && command -v munged >/dev/null; }

install() {
  have_binaries && return 0
  if [ "$(id -u)" != 0 ]; then say "SLURM is not installed and we are not root: cannot install"; return 2; fi
  say "installing slurmctld slurmd slurm-client munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge; } \
    >/tmp/fraudworld-slurm-install.log 2>&1 || { say "apt-get failed; see /tmp/fraudworld-slurm-install.log"; return 2; }
  have_binaries
}

ours() { [ -f "$CONF" ] && head -1 "$CONF" | grep -qF "$MARK"; }

node_line() {
  # The node's real CPUs, topology and memory, as slurmd itself sees them (so it is never drained
  # for "Low RealMemory"/"Low socket*core*thread count").
  slurmd -C | head -1 | sed 's/ UpTime=.*//'
}

write_conf() {
  local host node
  host=$(hostname -s)
  node=$(node_line | sed "s/^NodeName=[^ ]*/NodeName=$host NodeAddr=127.0.0.1/")
  mkdir -p "$CONF_DIR" "$STATE/slurmctld" "$STATE/slurmd" "$LOGS"
  cat >"$CONF.new" <<EOF
$MARK
ClusterName=fraudworld
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroups (containers without systemd): plain /proc process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
# Finished jobs stay visible to squeue/sacct for an hour (the executor plugin polls them; the test
# reads the resources every job of a build got).
MinJobAge=3600
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  if cmp -s "$CONF.new" "$CONF"; then rm "$CONF.new"; return 1; fi
  mv "$CONF.new" "$CONF"
  return 0
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.25; done
  say "munged did not start"; return 2
}

node_state() { sinfo -h -N -p "$PARTITION" -o %T 2>/dev/null | head -1; }

status() {
  local st
  st=$(node_state)
  case "$st" in idle|mixed|allocated|completing) echo "up: node $(hostname -s) $st"; return 0;; esac
  echo "down${st:+: node state '$st'}"; return 1
}

up() {
  install || return 2
  if [ -f "$CONF" ] && ! ours; then
    say "$CONF belongs to another cluster; not touching it"
    status && return 0 || return 3
  fi
  if [ "$(id -u)" != 0 ]; then
    status && return 0
    say "SLURM is not up and configuring it needs root"; return 2
  fi
  local changed=0
  write_conf && changed=1
  if [ $changed = 0 ] && status >/dev/null; then status; return 0; fi
  start_munge || return 2
  if [ $changed = 1 ] && pid_alive /run/slurmctld.pid; then
    say "slurm.conf changed: restarting the daemons"; stop_slurm
  fi
  pid_alive /run/slurmctld.pid || slurmctld || { say "slurmctld failed; see $LOGS/slurmctld.log"; return 2; }
  pid_alive /run/slurmd.pid || slurmd || { say "slurmd failed; see $LOGS/slurmd.log"; return 2; }
  local st=""
  for _ in $(seq $((WAIT_S * 2))); do
    st=$(node_state)
    case "$st" in
      idle|mixed|allocated) status; return 0;;
      down*|drain*|drained) scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true;;
    esac
    sleep 0.5
  done
  say "node not idle after ${WAIT_S}s (state '$st'); see $LOGS/"; return 2
}

stop_slurm() {
  scontrol shutdown >/dev/null 2>&1 || true
  for _ in $(seq 40); do
    pid_alive /run/slurmctld.pid || pid_alive /run/slurmd.pid || return 0
    sleep 0.25
  done
  for f in /run/slurmd.pid /run/slurmctld.pid; do pid_alive $f && kill "$(cat $f)" 2>/dev/null || true; done
}

down() {
  if ! ours; then say "no cluster configured by this script; nothing to stop"; return 0; fi
  stop_slurm
  if [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
    kill "$(cat /run/munge/munged.pid)"
  fi
  echo "down"
}

case "${1:-status}" in
  up) up;;
  down) down;;
  status) status;;
  *) echo "usage: $0 up|down|status" >&2; exit 64;;
esac
