#!/usr/bin/env bash
# Writes docs/reliability.md from what the fault-matrix tests (tests/integration/faults.rs)
# observe: runs them with QTRAIN_RELIABILITY_LOG set, then turns their rows into the
# page's table. Needs root for the file-system faults (tmpfs mounts), like the tests.
#
#   scripts/reliability-doc.sh            # then: git diff docs/reliability.md
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
QTRAIN_RELIABILITY_LOG=$log cargo test --release --quiet --test integration faults:: -- --test-threads=1 --skip the_reliability_page_lists_every_fault >&2
[[ -s $log ]] || { echo "reliability-doc.sh: the tests recorded nothing" >&2; exit 1; }
{
  cat <<'HEAD'
# Reliability: what each fault looks like

Every row is produced by a test of `tests/integration/faults.rs`, which injects the fault
into a real `mpirun` of 2–4 ranks and records what the user sees; this page is written by
`scripts/reliability-doc.sh` from those records (not by hand), and a test checks that it
has a row for every fault. "Seconds" is the wall time of the whole `mpirun`, start-up
included, with OpenMPI's default teardown; each test asserts under 10 s, one message, and
a result file that is either absent or valid.

Exit codes of qtrain (README "Errors"): 0 done, 2 an error (every rank), 3 a panic (every
rank aborted through MPI_Abort), 4 preempted (a checkpoint was written), 5 diverged. A rank
killed by a signal makes `mpirun` exit 128 + the signal (137 SIGKILL, 139 SIGSEGV, 134
SIGABRT) after it has stopped every other rank.

Faults are injected with `QTRAIN_FAULT=KIND@RANK:ROUND` (src/faults.rs), a test aid that
does nothing when unset; the file-system faults are real (a tiny or read-only tmpfs).

HEAD
  echo "| fault | how | exit code | seconds | what the user sees | what is kept |"
  echo "|---|---|---:|---:|---|---|"
  sort "$log" | awk -F'\t' '{ gsub(/\|/, "\\|", $5); printf "| %s | %s | %s | %s | `%s` | %s |\n", $1, $2, $3, $4, $5, $6 }'
  cat <<'TAIL'

What is kept, in general: without checkpoints, a run that fails leaves no result under
`--out` and removes its `OUT.partial`, except when killed (a killed process cannot clean
up: `OUT.partial` stays, and the next run with the same `--out` refuses to start until it
is removed). With `--checkpoint-dir`, `OUT.partial` is always kept, and `--resume` continues
it from the newest complete checkpoint (rows after the checkpoint's round are written
again); a checkpoint is complete only once its manifest is in place, so a failure while
writing one leaves the previous one as the newest complete checkpoint.
TAIL
  echo
  echo "Generated $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n) ($(nproc) cores), $("$QTRAIN_MPIRUN" --version 2>/dev/null | head -1)."
} >docs/reliability.md
echo "reliability-doc.sh: wrote docs/reliability.md ($(wc -l <"$log") faults)"
