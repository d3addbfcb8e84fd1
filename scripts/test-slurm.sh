#!/usr/bin/env bash
# The real test of jobs/: start the local single-node Slurm (scripts/slurm-local.sh),
# submit every jobs/*.sbatch with `sbatch -W` and small parameters, check each job's final
# state and its HDF5 files, then stop Slurm again (unless it was running before). One
# line per check; exit 1 when any check fails.
# Where a local Slurm cannot run (not root, Slurm missing and no apt-get, a Slurm set up
# by someone else), it prints "skipped: REASON" and exits 0.
# Nothing waits forever: the start (300 s, apt-get included), every job (JOB_TIMEOUT) and
# every Slurm command run under a timeout.
#
#   scripts/test-slurm.sh                  the binary: QTRAIN, default target/release/qtrain
#   QTRAIN_MPI=mpich scripts/test-slurm.sh the MPICH build (target-mpich/), srun --mpi=pmi2
#   KEEP=1 scripts/test-slurm.sh           keep the job logs and result files (path printed)
#   JOB_TIMEOUT=300 scripts/test-slurm.sh  seconds per job (default 120)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PATH:/usr/sbin:/sbin"
# The MPI of QTRAIN_MPI (scripts/mpi-env.sh): its build, and srun's plugin for it.
source scripts/mpi-env.sh
QTRAIN=$(realpath -m "${QTRAIN:-$QTRAIN_BIN}")
plugin=pmix
[ "$QTRAIN_MPI" = mpich ] && plugin=pmi2
JOB_TIMEOUT=${JOB_TIMEOUT:-120}
STATE=${QTRAIN_SLURM_STATE:-/run/qtrain-slurm}

checks=0
failures=0
ok() { checks=$((checks + 1)); echo "ok    $*"; }
bad() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL  $*"; }
# check DESCRIPTION COMMAND…: one line, ok or FAIL.
check() {
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}

# One test at a time on this machine: they share the daemons.
lock="${TMPDIR:-/tmp}/qtrain-test-slurm-$(id -u).lock"
if command -v flock >/dev/null 2>&1 && { exec 9>>"$lock"; } 2>/dev/null; then
  flock -w 300 9 || { echo "FAIL  another scripts/test-slurm.sh held $lock for 300 s"; exit 1; }
fi

tmp=$(mktemp -d /tmp/qtrain-test-slurm.XXXXXX)
was_running=0
bash scripts/slurm-local.sh status >/dev/null 2>&1 && was_running=1

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  if [ "$was_running" = 0 ]; then
    local munged_ours=0
    [ -s "$STATE/munged.pid" ] && munged_ours=1
    timeout 120 bash scripts/slurm-local.sh stop >"$tmp/stop.log" 2>&1
    check "slurm-local.sh stop" test $? = 0
    # Live processes only: a killed daemon stays a zombie until PID 1 reaps it.
    local left names="slurmctld slurmd slurmstepd slurmscriptd"
    [ "$munged_ours" = 1 ] && names+=" munged"
    left=$(ps -eo pid=,stat=,comm= | awk -v names=" $names " \
      '$2 !~ /^Z/ && index(names, " " $3 " ") { printf "%s %s; ", $1, $3 }')
    if [ -z "$left" ]; then ok "no Slurm or munge process left after stop"; else bad "left after stop: $left"; fi
  else
    echo "note  the local Slurm was running before this test: left running"
  fi
  if [ "$failures" -gt 0 ] || [ -n "${KEEP:-}" ]; then
    echo "logs and results kept in $tmp"
  else
    rm -rf "$tmp"
  fi
  echo "test-slurm: $checks checks, $failures failed"
  [ "$failures" = 0 ]
}

# Start (installs slurm-wlm and munge first where missing). Exit 1 = cannot run here.
t0=$SECONDS
timeout 300 bash scripts/slurm-local.sh start >"$tmp/start.log" 2>&1
rc=$?
if [ "$rc" = 1 ]; then
  echo "skipped: local Slurm cannot run here: $(grep -v '^ ' "$tmp/start.log" | tail -n 1 | sed 's/^slurm-local: //')"
  bash scripts/slurm-local.sh stop >/dev/null 2>&1
  rm -rf "$tmp"
  exit 0
fi
trap 'cleanup; exit $?' EXIT
trap 'exit 130' INT TERM
if [ "$rc" = 0 ]; then
  ok "slurm-local.sh start: node idle after $((SECONDS - t0)) s ($(tail -n 1 "$tmp/start.log" | sed 's/^slurm-local: //'))"
else
  bad "slurm-local.sh start exited $rc:"
  sed 's/^/      /' "$tmp/start.log"
  exit 1
fi
if [ ! -x "$QTRAIN" ]; then
  bad "$QTRAIN is missing: cargo build --release first"
  exit 1
fi

# submit NAME SCRIPT VAR=value…: sbatch -W under a timeout with the parameters in the
# environment (all other job parameters unset, so the caller's shell cannot leak in).
# Sets JOB, STATE_LINE (JobState=… ExitCode=…), LOG and TOOK.
submit() {
  local name=$1 script=$2
  shift 2
  local params=(-u DATA -u TEST -u METHOD -u COMPRESSOR -u ITERS -u RANKS -u REPEATS -u GRID
    -u STEP_FACTORS -u TARGET -u RANK_BY -u FSTAR -u EXTRA_ARGS -u MPI_PLUGIN -u MODULES -u SLURM_JOB_NAME
    QTRAIN="$QTRAIN" RESULTS="$tmp/results" MPI_PLUGIN="$plugin" "$@")
  local start=$SECONDS
  timeout "$JOB_TIMEOUT" env "${params[@]}" sbatch -W --parsable --output="$tmp/%x-%j.out" "$script" \
    >"$tmp/$name.sbatch" 2>&1
  local rc=$?
  TOOK=$((SECONDS - start))
  JOB=$(grep -Eo '^[0-9]+' "$tmp/$name.sbatch" | head -n 1)
  if [ -z "$JOB" ]; then
    bad "$name: sbatch $script did not submit: $(tr '\n' ' ' <"$tmp/$name.sbatch")"
    return 1
  fi
  if [ "$rc" = 124 ]; then
    bad "$name: job $JOB still not finished after $JOB_TIMEOUT s: cancelled ($(timeout 10 squeue -h -j "$JOB" -o '%T %r' 2>&1))"
    timeout 10 scancel "$JOB"
    return 1
  fi
  STATE_LINE=$(timeout 10 scontrol show job "$JOB" 2>&1 | grep -Eo '(JobState|ExitCode)=[^ ]+' | paste -sd ' ')
  LOG=""
  for f in "$tmp"/*-"$JOB".out; do [ -e "$f" ] && LOG=$f; done
  echo "      $name: job $JOB, sbatch -W exit $rc, $STATE_LINE, $TOOK s (log ${LOG:-missing})"
}

# expect_state NAME STATE EXITCODE: the job ended as expected (ExitCode is exit:signal).
expect_state() {
  if [[ "$STATE_LINE" == *"JobState=$2 "*"ExitCode=$3:0"* ]]; then
    ok "$1: job $JOB ended $2 with exit code $3 ($TOOK s)"
  else
    bad "$1: job $JOB: expected JobState=$2 ExitCode=$3:0, got $STATE_LINE"
    [ -n "$LOG" ] && tail -n 20 "$LOG" | sed 's/^/      | /'
    return 1
  fi
}

# expect_h5 NAME FILE RANKS: FILE exists, `qtrain report` reads it and says RANKS ranks
# (one MPI job of RANKS ranks, not RANKS singletons), and h5dump reads it where installed.
expect_h5() {
  local name=$1 file=$2 ranks=$3 got
  if [ ! -s "$file" ]; then
    bad "$name: missing $file"
    return
  fi
  got=$(timeout 30 "$QTRAIN" report "$file" 2>&1 | awk -F'|' 'NR == 3 { gsub(/ /, "", $5); print $5 }')
  if [ "$got" = "$ranks" ]; then
    ok "$name: $(basename "$file") readable (qtrain report), ranks = $ranks"
  else
    bad "$name: qtrain report $(basename "$file"): expected ranks = $ranks, got '$got'"
  fi
  if command -v h5dump >/dev/null 2>&1; then
    check "$name: h5dump -H $(basename "$file")" timeout 30 h5dump -H "$file"
  fi
}

# expect_report NAME ROWS: the job log ends with a `qtrain report` table of ROWS runs.
expect_report() {
  local rows
  rows=$(grep -c '^| [^-]' "${LOG:-/dev/null}" 2>/dev/null)
  rows=$((${rows:-0} - 1)) # minus the header row
  if [ "$rows" = "$2" ]; then ok "$1: log has the report table ($2 runs)"; else bad "$1: log report has $rows runs, expected $2"; fi
}

# 1. One training run with the script's defaults, except few rounds.
if submit train jobs/train.sbatch ITERS=50; then
  expect_state train COMPLETED 0
  expect_h5 train "$tmp/results/qtrain-train-$JOB/ef21_top-k_k_12.h5" 2
  expect_report train 1
fi

# 2. Scaling study over 1 and 2 ranks.
if submit scaling jobs/scaling.sbatch RANKS="1 2" ITERS=50; then
  expect_state scaling COMPLETED 0
  expect_h5 scaling "$tmp/results/qtrain-scaling-$JOB/ranks-1.h5" 1
  expect_h5 scaling "$tmp/results/qtrain-scaling-$JOB/ranks-2.h5" 2
  expect_report scaling 2
fi

# expect_ranking NAME POINTS: the job log ends with qtrain sweep's ranking of POINTS points.
expect_ranking() {
  local rows
  rows=$(grep -c '^| [0-9][0-9]* |' "${LOG:-/dev/null}" 2>/dev/null)
  if [ "${rows:-0}" = "$2" ] && grep -q '^ranked by bits up' "$LOG"; then
    ok "$1: log has the sweep's ranking ($2 points)"
  else
    bad "$1: log ranking has ${rows:-0} points, expected $2"
  fi
}

# 3. Sweep (qtrain sweep): CLAG + Top-k over zeta in {0, 4} x step factors {1, 2}, one
#    srun; a file per point, the ranking in the log, sweep.md and the figures beside them.
if submit sweep jobs/sweep.sbatch METHOD=clag COMPRESSOR=top-k:k=12 GRID="zeta=0,4" STEP_FACTORS=1,2 ITERS=30; then
  expect_state sweep COMPLETED 0
  for f in zeta=0_step=1 zeta=0_step=2 zeta=4_step=1 zeta=4_step=2; do
    expect_h5 sweep "$tmp/results/qtrain-sweep-$JOB/$f.h5" 2
  done
  expect_ranking sweep 4
  for f in sweep.md heatmap.png heatmap.svg best.png best.svg; do
    check "sweep: $f written" test -s "$tmp/results/qtrain-sweep-$JOB/$f"
  done
  check "sweep: the checkpoints are removed once the sweep is done" test ! -e "$tmp/results/qtrain-sweep-$JOB/checkpoints"
fi

# 4. A sweep with a value qtrain rejects (k = 0): it fails before any run, on every
#    rank with one message, and the job ends FAILED with qtrain's exit code 2.
if submit sweep-invalid jobs/sweep.sbatch METHOD=ef21 COMPRESSOR=top-k GRID="k=5,0" STEP_FACTORS=1 ITERS=30; then
  expect_state sweep-invalid FAILED 2
  check "sweep-invalid: qtrain's message in the log" grep -q "k = 0" "${LOG:-/dev/null}"
  check "sweep-invalid: no result file" test -z "$(find "$tmp/results/qtrain-sweep-$JOB" -name '*.h5' 2>/dev/null)"
fi

# 5. Preemption: a job signalled as at its time limit (scancel --signal=USR1, what
#    --signal=USR1@120 sends) checkpoints, requeues itself and resumes; its result equals
#    an uninterrupted job's bit for bit (qtrain compare). Slurm holds a requeued job
#    about 2 minutes (Reason=BeginTime): the test releases it at once.
#    Its jobs get PREEMPT_TIMEOUT (default 240 s) each: under an oversubscribed MPICH
#    test run beside them, 20000 rounds took over a minute. A fixed --eval-every: `auto`
#    measures its period, so two runs (and a resumed part) may keep different rows.
long=(ITERS=20000 FSTAR= CHECKPOINT_EVERY=5000 "EXTRA_ARGS=--eval-every 10")
JOB_TIMEOUT=${PREEMPT_TIMEOUT:-240}
if submit preempt-reference jobs/train.sbatch "${long[@]}"; then
  expect_state preempt-reference COMPLETED 0
  reference="$tmp/results/qtrain-train-$JOB/ef21_top-k_k_12.h5"
fi
preempted_job() {
  local job log i state
  job=$(env -u DATA -u TEST -u METHOD -u COMPRESSOR -u RANKS -u EXTRA_ARGS -u MODULES \
    QTRAIN="$QTRAIN" RESULTS="$tmp/results" MPI_PLUGIN="$plugin" "${long[@]}" \
    timeout 30 sbatch --parsable --output="$tmp/%x-%j.out" jobs/train.sbatch 2>&1) || { bad "preempt: sbatch: $job"; return 1; }
  JOB=$job
  log="$tmp/qtrain-train-$job.out"
  # Signal once the run is a few thousand rounds in (the first progress line; before
  # qtrain installs its handler a SIGUSR1 would simply kill it).
  local start=$SECONDS
  until grep -q "iter  *[1-9][0-9]*/20000" "$log" 2>/dev/null; do
    if ((SECONDS - start > JOB_TIMEOUT)); then
      bad "preempt: job $job printed no progress line in $JOB_TIMEOUT s"
      timeout 10 scancel "$job"
      return 1
    fi
    sleep 0.1
  done
  timeout 10 scancel --signal=USR1 "$job" || { bad "preempt: scancel --signal=USR1 $job failed"; return 1; }
  start=$SECONDS
  local released=0
  while ((SECONDS - start < JOB_TIMEOUT)); do
    state=$(timeout 10 scontrol show job "$job" 2>&1 | grep -Eo '(JobState|Reason|Restarts)=[^ ]+' | paste -sd ' ')
    # Release it once the node has cleaned up the first start (no slurmstepd of the job
    # left) and 2 s have passed, as the two minutes of BeginTime would: slurmd revokes the
    # ended start's job credential, and a new start within the same second is killed as
    # "non-startable batch job: Job credential revoked" (seen in CI, Slurm 22.05).
    if [[ "$state" == *"JobState=PENDING"* && "$released" = 0 ]] && ! pgrep -f "slurmstepd: \[$job\." >/dev/null; then
      sleep 2
      timeout 10 scontrol update JobId="$job" StartTime=now && released=1
    fi
    [[ "$state" == *"JobState=COMPLETED"* || "$state" == *"JobState=FAILED"* || "$state" == *"JobState=CANCELLED"* ]] && break
    sleep 0.5
  done
  STATE_LINE=$(timeout 10 scontrol show job "$job" 2>&1 | grep -Eo '(JobState|ExitCode|Restarts)=[^ ]+' | paste -sd ' ')
  LOG=$log
  TOOK=$((SECONDS - start))
  echo "      preempt: job $job, $STATE_LINE, $TOOK s after the signal (log $log)"
}
# slurm_log_of JOB: what slurmctld and slurmd logged about JOB (for a failure's report).
slurm_log_of() {
  grep -hE "JobId=$1([^0-9]|\$)|job $1([^0-9]|\$)|\[$1\.|StepId=$1\." /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log 2>/dev/null |
    tail -n 30 | sed 's/^/      | slurm: /'
}
if [ -n "${reference:-}" ] && preempted_job; then
  expect_state preempt COMPLETED 0 || slurm_log_of "$JOB"
  check "preempt: the job was requeued once (Restarts=1)" grep -q "Restarts=1" <<<"$STATE_LINE"
  check "preempt: the ranks wrote a checkpoint and exited 4" grep -q "qtrain: preempted after round" "$LOG"
  check "preempt: the job requeued itself" grep -q "preempted: requeueing job $JOB" "$LOG"
  check "preempt: the second start resumed" grep -q "resumed from .*checkpoints/round-" "$LOG"
  resumed="$tmp/results/qtrain-train-$JOB/ef21_top-k_k_12.h5"
  said=$(timeout 30 "$QTRAIN" compare "$reference" "$resumed" 2>&1)
  if [ $? = 0 ]; then ok "preempt: qtrain compare with the uninterrupted job: $said"; else bad "preempt: qtrain compare: $said"; fi
  check "preempt: the checkpoints are removed once the run is done" test ! -e "${resumed%.h5}.checkpoints"
fi

exit "$((failures > 0))"
