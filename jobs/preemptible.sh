# Sourced by the jobs/*.sbatch scripts (not run by itself): preemption and requeue
# (jobs/README.md "Preemption, time limits and requeue").
#
# The scripts ask Slurm for SIGUSR1 120 s before the time limit (--signal=USR1@120, sent
# to the ranks) and for --requeue. A rank that gets SIGUSR1 or SIGTERM finishes its
# round with the others, they write a checkpoint and exit 4; srun_preemptible then
# requeues the job, and its next start resumes every unfinished run (--resume=auto) and
# skips the finished ones (train_preemptible by their files, qtrain sweep by itself).
# CHECKPOINT_EVERY rounds also get a checkpoint (for a node that dies without a signal).
# Slurm holds a requeued job about two minutes (Reason=BeginTime) before it starts it
# again.

CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-1000}

# Slurm's own preemption (PreemptMode=REQUEUE) sends SIGTERM to the batch shell and the
# ranks alike: the shell then waits for the ranks to checkpoint instead of dying first
# (a handler, not an ignored signal: srun must not inherit "ignore").
trap 'echo "SIGTERM: the ranks write a checkpoint before they stop"' TERM
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
  echo "start $SLURM_RESTART_COUNT of job $SLURM_JOB_ID (requeued): finished runs are skipped, the others resume"
fi

# srun_preemptible CHECKPOINTS SRUN_ARGS…: `srun SRUN_ARGS…` (SRUN_ARGS ends with the qtrain
# train or sweep flags) with checkpoints in CHECKPOINTS every CHECKPOINT_EVERY rounds and
# --resume=auto. Returns qtrain's exit code; exit 4 (preempted) requeues the job and ends
# this start.
srun_preemptible() {
  local checkpoints=$1 code=0
  shift
  srun "$@" --checkpoint-dir "$checkpoints" --checkpoint-every "$CHECKPOINT_EVERY" --resume=auto || code=$?
  if [ "$code" = 4 ]; then
    echo "preempted: requeueing job $SLURM_JOB_ID; its next start resumes from $checkpoints"
    if ! scontrol requeue "$SLURM_JOB_ID"; then
      echo "error: scontrol requeue $SLURM_JOB_ID failed; submit the job again: it resumes from $checkpoints" >&2
      exit 4
    fi
    exit 0
  fi
  return "$code"
}

# train_preemptible OUT SRUN_ARGS…: srun_preemptible with `--out OUT` and the checkpoints in
# OUT's name with .checkpoints for .h5, removed once the run is done; 0 at once when an
# earlier start of the job finished OUT.
train_preemptible() {
  local out=$1
  shift
  local checkpoints="${out%.h5}.checkpoints" code=0
  if [ -e "$out" ] && [ ! -e "$checkpoints" ]; then
    echo "$out: done by an earlier start of this job"
    return 0
  fi
  srun_preemptible "$checkpoints" "$@" --out "$out" || code=$?
  [ "$code" = 0 ] && rm -rf "$checkpoints"
  return "$code"
}
