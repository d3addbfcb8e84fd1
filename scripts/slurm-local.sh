#!/usr/bin/env bash
# A single-node Slurm on this machine, to run jobs/*.sbatch for real (jobs/README.md).
#
#   scripts/slurm-local.sh start    install slurm-wlm and munge if missing (root + apt-get
#                                   only; otherwise print what to install and exit 1), write
#                                   /etc/slurm/slurm.conf (one node, CPUs = nproc), start
#                                   munged, slurmctld and slurmd, wait until the node is idle
#   scripts/slurm-local.sh stop     cancel the local jobs, stop the daemons this script
#                                   started (by the PIDs it recorded) and wait until they exit
#   scripts/slurm-local.sh status   which of the three daemons run, and sinfo; exit 0 only
#                                   when all three run
#
# No systemd: the daemons are started directly and stopped by PID. The PIDs of the
# daemons this script started are kept in $QTRAIN_SLURM_STATE (default /run/qtrain-slurm);
# stop touches nothing else, so a munged the system already ran keeps running.
# Idempotent: `start` on a running setup only checks that the node is idle; `stop` on a
# stopped one does nothing. Every wait has a timeout (SLURM_LOCAL_TIMEOUT, default 60 s).
# Exit codes: 0 done; 1 cannot run here (not root, no apt-get, or a Slurm setup that this
# script did not write); 2 tried and failed (the message names the log to read).
# Tested on Debian 12 (Slurm 22.05, munge 0.5.15) as root without systemd.
set -Eeuo pipefail
# Anything failing unexpectedly exits 2 ("tried and failed"), never 1 ("cannot run here").
trap 'echo "slurm-local: failed at line $LINENO: $BASH_COMMAND" >&2; exit 2' ERR

export PATH="$PATH:/usr/sbin:/sbin"
STATE=${QTRAIN_SLURM_STATE:-/run/qtrain-slurm}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
MARK="# Written by qtrain scripts/slurm-local.sh (single-node test cluster); 'stop' leaves it in place."
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
NODE=localhost

say() { echo "slurm-local: $*"; }
die() { echo "slurm-local: $1" >&2; exit "${2:-2}"; }

# is_live NAME PID: PID is a process named NAME and not a zombie (an exited daemon stays
# a zombie until PID 1 reaps it, which in some containers takes seconds).
is_live() {
  local stat
  stat=$(cat "/proc/$2/stat" 2>/dev/null) || return 1
  [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ] && [[ "${stat##*) }" != Z* ]]
}

# The PID recorded for daemon $1, if that process is still that daemon (not a reused PID).
our_pid() {
  local pid
  pid=$(cat "$STATE/$1.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && is_live "$1" "$pid" && echo "$pid"
}

# live_pids NAME: the live processes named exactly NAME (ours or not).
live_pids() {
  local pid
  for pid in $(pgrep -x "$1"); do
    if is_live "$1" "$pid"; then echo "$pid"; fi
  done
}
running() { [ -n "$(live_pids "$1")" ]; }

# wait_for SECONDS DESCRIPTION COMMAND…: poll every 0.5 s until COMMAND succeeds.
wait_for() {
  local limit=$1 what=$2 i
  shift 2
  for ((i = 0; i < limit * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "timed out after ${limit} s waiting for $what"
}

install_missing() {
  local missing=() c
  for c in munged munge; do command -v "$c" >/dev/null 2>&1 || missing+=(munge); done
  for c in slurmctld slurmd sbatch srun sinfo scontrol; do command -v "$c" >/dev/null 2>&1 || missing+=(slurm-wlm); done
  [ ${#missing[@]} -eq 0 ] && return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    cat >&2 <<MSG
slurm-local: missing: ${missing[*]} (and this needs root with apt-get to install them)
  Debian/Ubuntu (as root): apt-get install -y --no-install-recommends ${missing[*]}
  Elsewhere: install Slurm (slurmctld, slurmd, client commands) and MUNGE from your
  distribution, or use the cluster's own Slurm: sbatch jobs/train.sbatch (jobs/README.md).
MSG
    exit 1
  fi
  say "installing ${missing[*]} (apt-get)"
  local munged_before=0
  running munged && munged_before=1
  export DEBIAN_FRONTEND=noninteractive
  local apt=(timeout 600 apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${missing[@]}")
  if ! "${apt[@]}" >/dev/null; then
    say "install failed; running apt-get update and trying again"
    timeout 300 apt-get -o DPkg::Lock::Timeout=120 update -qq || die "apt-get update failed"
    "${apt[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
  fi
  # Without a policy-rc.d, the munge package starts munged itself: adopt it, so that
  # stop leaves the machine as it was before this script installed anything.
  if [ "$munged_before" = 0 ] && running munged; then
    mkdir -p "$STATE"
    live_pids munged | head -n 1 >"$STATE/munged.pid"
    say "adopted the munged that the package installation started"
  fi
}

slurm_conf() {
  cat <<CONF
$MARK
# Do not use it for a real cluster. Options: man slurm.conf.
ClusterName=qtrain
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=pmix
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
NodeName=$NODE CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

# Writes slurm.conf unless it already says the same; refuses to replace a foreign one.
write_conf() {
  if [ -e "$CONF" ] && ! head -n 1 "$CONF" | grep -qxF "$MARK"; then
    die "$CONF exists and was not written by this script; refusing to replace it (move it away to use the local test cluster)" 1
  fi
  mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR" "$STATE"
  if [ "$(slurm_conf)" != "$(cat "$CONF" 2>/dev/null)" ]; then
    if our_pid slurmctld >/dev/null || our_pid slurmd >/dev/null; then
      say "slurm.conf changed: restarting slurmctld and slurmd"
      stop_daemon slurmd
      stop_daemon slurmctld
    fi
    slurm_conf >"$CONF"
    say "wrote $CONF (CPUs=$(nproc))"
  fi
}

start_munge() {
  if our_pid munged >/dev/null; then return 0; fi
  if running munged; then
    say "using the munged that is already running (not started here, so stop leaves it)"
  else
    [ -s /etc/munge/munge.key ] || {
      say "creating /etc/munge/munge.key"
      mkdir -p /etc/munge
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
      chown munge:munge /etc/munge/munge.key
      chmod 0400 /etc/munge/munge.key
    }
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    rm -f /run/munge/munged.pid
    # munged forks into the background and writes /run/munge/munged.pid.
    runuser -u munge -- /usr/sbin/munged </dev/null >>"$LOG_DIR/munged.out" 2>&1 ||
      die "munged did not start (see $LOG_DIR/munged.out and /var/log/munge/munged.log)"
    wait_for "$TIMEOUT" "munged's PID file" test -s /run/munge/munged.pid
    cp /run/munge/munged.pid "$STATE/munged.pid"
    say "started munged (pid $(cat "$STATE/munged.pid"))"
  fi
  wait_for "$TIMEOUT" "munge to answer (munge -n | unmunge)" sh -c 'munge -n | unmunge'
}

# start_daemon NAME PIDFILE ARGS…: start a Slurm daemon (it forks) and record its PID.
start_daemon() {
  local name=$1 pidfile=$2
  shift 2
  if our_pid "$name" >/dev/null; then return 0; fi
  if running "$name"; then
    die "a $name this script did not start is running (pgrep -a $name); stop it first" 1
  fi
  rm -f "$pidfile"
  "$name" "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 || die "$name did not start (see $LOG_DIR/$name.log)"
  wait_for "$TIMEOUT" "$name's PID file $pidfile" test -s "$pidfile"
  cp "$pidfile" "$STATE/$name.pid"
  our_pid "$name" >/dev/null || die "$name exited right after starting (see $LOG_DIR/$name.log)"
  say "started $name (pid $(cat "$STATE/$name.pid"))"
}

node_idle() {
  local state
  state=$(timeout 10 sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1)
  case "$state" in
    idle | mix | alloc) return 0 ;;
    down* | drain* | drng*) timeout 10 scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  return 1
}

start() {
  install_missing
  [ "$(id -u)" = 0 ] || die "starting the local Slurm needs root (it runs slurmd as root)" 1
  mkdir -p "$STATE" "$LOG_DIR"
  write_conf
  start_munge
  start_daemon slurmctld /run/slurmctld.pid
  wait_for "$TIMEOUT" "slurmctld to answer (scontrol ping)" sh -c 'timeout 10 scontrol ping | grep -q UP'
  start_daemon slurmd /run/slurmd.pid -N "$NODE"
  wait_for "$TIMEOUT" "node $NODE to be idle in sinfo (see $LOG_DIR/slurmd.log)" node_idle
  say "ready: $(timeout 10 sinfo -h -o '%P %a %D %t %N %c CPUs')"
}

# stop_daemon NAME: TERM the recorded PID, wait, then KILL; forget the PID.
stop_daemon() {
  local name=$1 pid i
  if pid=$(our_pid "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < TIMEOUT * 2; i++)); do
      is_live "$name" "$pid" || break
      sleep 0.5
    done
    if is_live "$name" "$pid"; then
      say "$name (pid $pid) ignored TERM for ${TIMEOUT} s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    # Give PID 1 up to 10 s to reap the zombie, so that pgrep shows nothing afterwards.
    for ((i = 0; i < 20; i++)); do
      [ -e "/proc/$pid" ] || break
      sleep 0.5
    done
    say "stopped $name (pid $pid)"
  fi
  rm -f "$STATE/$name.pid"
}

stop() {
  if our_pid slurmctld >/dev/null; then
    # Jobs of this single-node test cluster: cancel them so no slurmstepd outlives slurmd.
    local jobs
    mapfile -t jobs < <(timeout 10 squeue -h -o %A 2>/dev/null || true)
    if [ ${#jobs[@]} -gt 0 ]; then
      say "cancelling jobs: ${jobs[*]}"
      timeout 10 scancel "${jobs[@]}" 2>/dev/null || true
      local i
      for ((i = 0; i < TIMEOUT * 2; i++)); do
        [ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  local had_slurmd=0
  our_pid slurmd >/dev/null && had_slurmd=1
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon munged
  # Job-step daemons of the slurmd stopped above (only when it was ours), if any outlived it.
  if [ "$had_slurmd" = 1 ] && running slurmstepd; then
    local p
    for p in $(live_pids slurmstepd); do kill -KILL "$p" 2>/dev/null || true; done
    say "killed leftover slurmstepd processes"
  fi
  return 0
}

status() {
  local all=0 name pid
  for name in munged slurmctld slurmd; do
    if pid=$(our_pid "$name"); then
      echo "$name: running (pid $pid, started by this script)"
    elif running "$name"; then
      echo "$name: running (pid $(live_pids "$name" | tr '\n' ' '), not started by this script)"
      [ "$name" = munged ] || all=3
    else
      echo "$name: not running"
      all=3
    fi
  done
  if [ "$all" = 0 ]; then timeout 10 sinfo 2>&1 || all=3; fi
  return "$all"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status || exit $? ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
