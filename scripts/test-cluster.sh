#!/usr/bin/env bash
# The emulated-cluster test (docs/emulated-cluster.md): brings up 4 hosts at 1gbit,
# runs qtrain with each example hostfile, then shows that the rate limit is real:
# dense GD on a high-dimensional set has a much larger t_comm at 100mbit than at 10gbit.
# One line per check; exit 0 when all pass, 1 on a failure; `skipped: <reason>` and
# exit 0 where namespaces cannot be made (not root, no CAP_SYS_ADMIN).
# Replaces (and at the end removes) any cluster that scripts/netns-cluster.sh has up.
#
#   scripts/test-cluster.sh                 # QTRAIN_BIN=… picks the binary (default
#                                           # target/release/qtrain); QTRAIN_CLUSTER_TIMEOUT
#                                           # bounds each mpirun (default 300 s)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/mpi-env.sh   # QTRAIN_MPI, QTRAIN_MPIRUN, QTRAIN_BIN (default: target/release/qtrain)
qtrain=$QTRAIN_BIN
[ -n "${QTRAIN_MPIRUN:-}" ] || { echo "FAIL: no $QTRAIN_MPI launcher found (scripts/setup.sh)"; exit 1; }
limit=${QTRAIN_CLUSTER_TIMEOUT:-300}

skip() { echo "skipped: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, tc)"
command -v unshare >/dev/null 2>&1 || skip "unshare (util-linux) is missing"
unshare --net --mount --uts true 2>/dev/null || skip "creating namespaces is not permitted here"
if command -v ip >/dev/null 2>&1; then   # (netns-cluster.sh installs iproute2 when it is missing)
  ip netns add "qtrain-probe-$$" 2>/dev/null || skip "'ip netns add' is not permitted here"
  ip netns del "qtrain-probe-$$"
fi
[ -x "$qtrain" ] || { echo "FAIL: $qtrain is missing (cargo build --release)"; exit 1; }

# one cluster at a time on this machine (two test runs would tear down each other's hosts)
exec 9>/tmp/qtrain-netns-cluster.lock
flock -w 120 9 || { echo "FAIL: another scripts/test-cluster.sh held the lock for 120 s"; exit 1; }

tmp=$(mktemp -d /tmp/qtrain-cluster.XXXXXX)
cluster() { timeout -k 5 120 bash scripts/netns-cluster.sh "$@"; }
cleanup() { cluster down >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*"; [ -s "$tmp/log" ] && tail -n 20 "$tmp/log" | sed 's/^/    /'; exit 1; }
ok() { echo "ok: $*"; }

# The flags of hostfiles/README.md, for the MPI of QTRAIN_MPI (scripts/mpi-env.sh): the
# launcher's daemons and the ranks in the host namespaces (started through netns-rsh),
# TCP over the shaped veths only (no shared memory, which the namespaces could share).
mpirun=$QTRAIN_MPIRUN
if [ "$QTRAIN_MPI" = mpich ]; then
  # Hydra: its rsh launcher with netns-rsh as the agent; UCX (MPICH's ch4 device) only
  # over TCP on qnet0. MPICH has no yield-when-idle: 4 ranks on 2 cores busy-poll.
  emulated=(-f "$root/hostfiles/emulated-4.mpich" -n 4 -launcher rsh -launcher-exec "$root/scripts/netns-rsh"
    -iface qnet0 -genv UCX_TLS tcp,self -genv UCX_NET_DEVICES qnet0)
  localhost=(-f hostfiles/localhost.mpich -n 2)
else
  # OpenMPI: no pinning, yielding when idle.
  emulated=(--hostfile "$root/hostfiles/emulated-4" -n 4 --bind-to none
    --mca plm_rsh_agent "$root/scripts/netns-rsh"
    --mca btl tcp,self --mca btl_tcp_if_include qnet0 --mca oob_tcp_if_include qnet0
    --mca mpi_yield_when_idle 1)
  localhost=(--hostfile hostfiles/localhost -n 2)
fi
train=(train --data "$root/data/agaricus.txt.train" --method ef21 --compressor top-k:k=12 --iters 20)

# Bytes sent so far by each host's qdisc (qnet0 egress), space-separated.
link_bytes() {
  local i
  for i in 0 1 2 3; do tc -n "qh$i" -s qdisc show dev qnet0 | awk '/Sent/ {printf "%s ", $2}'; done
}

# Median per-round t_comm of a result file in µs: the "comm" column of `qtrain report`.
t_comm_us() {
  "$qtrain" report "$1" | awk -F'|' '
    /^\| run / { for (i = 1; i <= NF; i++) { f = $i; gsub(/ /, "", f); if (f == "comm") c = i } next }
    c && /^\| [^-]/ { v = $c; gsub(/ /, "", v); print v; exit }'
}
# The "sent B/rank/round" column (qtrain's own count of bytes put into collectives).
sent_bytes() {
  "$qtrain" report "$1" | awk -F'|' '
    /^\| run / { for (i = 1; i <= NF; i++) { f = $i; gsub(/ /, "", f); if (f == "sentB/rank/round") c = i } next }
    c && /^\| [^-]/ { v = $c; gsub(/ /, "", v); print v; exit }'
}

# 1. the cluster
cluster up --hosts 4 --rate 1gbit >"$tmp/log" 2>&1 || fail "netns-cluster.sh up --hosts 4 --rate 1gbit"
for i in 0 1 2 3; do
  [ "$(cluster run --host "qh$i" -- hostname 2>>"$tmp/log")" = "qh$i" ] || fail "host qh$i does not answer"
done
ok "cluster up: 4 hosts qh0…qh3 (10.77.0.10–13), 1gbit per link and direction"

# 2. hostfiles/localhost: plain mpirun, 2 ranks on this machine
timeout -k 5 "$limit" "$mpirun" "${localhost[@]}" "$qtrain" "${train[@]}" --out "$tmp/localhost.h5" >"$tmp/log" 2>&1 \
  || fail "$mpirun ${localhost[*]} exited with $?"
[ -s "$tmp/localhost.h5" ] || fail "hostfiles/localhost: no $tmp/localhost.h5"
ok "hostfiles/localhost: 2 ranks, exit 0, $(basename "$tmp/localhost.h5") written"

# 3. hostfiles/emulated-4: one rank per host, every host's link must carry traffic
before=($(link_bytes))
# MPICH 4.0.2 (ch4:ucx over TCP) sometimes hangs in MPI_Finalize after a complete run here:
# one rank in ucp_worker_progress, the others in the PMI fence (seen in CI, 2026-12-01).
# Under MPICH a run that finished its result file and then hung is killed and noted, not
# failed; anything else fails.
run_limit=$limit
[ "$QTRAIN_MPI" = mpich ] && run_limit=90
code=0
exited="exit 0"
timeout -k 5 "$run_limit" bash scripts/netns-cluster.sh run -- "$mpirun" "${emulated[@]}" "$qtrain" "${train[@]}" \
  --out "$tmp/emulated-4.h5" >"$tmp/log" 2>&1 || code=$?
# 124: timed out; 137: killed by `timeout -k` after it ignored the TERM.
if { [ "$code" = 124 ] || [ "$code" = 137 ]; } && [ "$QTRAIN_MPI" = mpich ] && [ -s "$tmp/emulated-4.h5" ]; then
  echo "note: MPICH hung in MPI_Finalize after writing $(basename "$tmp/emulated-4.h5"); killed after $run_limit s (docs/emulated-cluster.md)"
  pkill -9 -f "$tmp/emulated-4.h5" 2>/dev/null || true
  exited="killed in MPI_Finalize"
elif [ "$code" != 0 ]; then
  fail "$mpirun ${emulated[*]} exited with $code"
fi
[ -s "$tmp/emulated-4.h5" ] || fail "hostfiles/emulated-4: no $tmp/emulated-4.h5"
after=($(link_bytes))
ok "hostfiles/emulated-4: 4 ranks on qh0…qh3, $exited, $(basename "$tmp/emulated-4.h5") written"
for i in 0 1 2 3; do
  [ "${after[$i]}" -gt "${before[$i]}" ] || fail "qh$i's link carried no traffic: ranks did not talk over the veths"
done
ok "every host's shaped link carried traffic: $(for i in 0 1 2 3; do printf 'qh%d %d B  ' "$i" $((after[i] - before[i])); done)"

# 4. the rate limit is real: dense GD, d = 200000 (1.6 MB of f64 per rank per round).
#    OpenMPI only: under MPICH 4.0.2 (ch4:ucx, TCP only) a rank of the 100mbit run spun
#    in MPI_Finalize for 10 minutes after its last round here (2026-12-01).
if [ "$QTRAIN_MPI" = mpich ]; then
  cluster down >/dev/null 2>&1 || fail "netns-cluster.sh down"
  echo "note: the rate-limit check (4) runs under OpenMPI only (docs/emulated-cluster.md)"
  exit 0
fi
timeout -k 5 "$limit" "$qtrain" generate --rows 4000 --features 200000 --nnz 20 --seed 1 --out "$tmp/hd.svm" >"$tmp/log" 2>&1 \
  || fail "qtrain generate"
declare -A comm
for rate in 100mbit 10gbit; do
  cluster up --hosts 4 --rate "$rate" >"$tmp/log" 2>&1 || fail "netns-cluster.sh up --rate $rate"
  before=($(link_bytes))
  timeout -k 5 "$limit" bash scripts/netns-cluster.sh run -- "$mpirun" "${emulated[@]}" "$qtrain" train --data "$tmp/hd.svm" \
    --features 200000 --method gd --iters 10 --out "$tmp/gd-$rate.h5" >"$tmp/log" 2>&1 \
    || fail "gd at $rate exited with $?"
  after=($(link_bytes))
  comm[$rate]=$(t_comm_us "$tmp/gd-$rate.h5")
  [[ "${comm[$rate]}" =~ ^[0-9.]+$ ]] || fail "no comm column in qtrain report of gd-$rate.h5"
  ok "gd at $rate: t_comm $(awk -v u="${comm[$rate]}" 'BEGIN {printf "%.1f ms", u / 1000}') per round (median of 10), $(sent_bytes "$tmp/gd-$rate.h5") B/rank/round put into allreduce, qh0's link sent $(((after[0] - before[0]) / 1000000)) MB in the whole run"
done
ratio=$(awk -v a="${comm[100mbit]}" -v b="${comm[10gbit]}" 'BEGIN {printf "%.1f", a / b}')
awk -v r="$ratio" 'BEGIN {exit !(r >= 3)}' || fail "t_comm at 100mbit is only ${ratio}× that at 10gbit (expected ≥ 3×)"
ok "rate limit is real: t_comm(100mbit) / t_comm(10gbit) = ${ratio}× (≥ 3×)"

cluster down >/dev/null 2>&1 || fail "netns-cluster.sh down"
ip netns list | grep -qE '^(qh[0-9]+|qsw)( |$)' && fail "namespaces left after down"
ok "cluster down: no qh*/qsw namespaces left"
