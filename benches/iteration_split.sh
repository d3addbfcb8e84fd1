#!/usr/bin/env bash
# Where the time of one training round goes: runs `qtrain train` for each case and rank
# count, reads the per-round timing columns of each HDF5 file with h5dump, and prints a
# Markdown table of medians over the rounds.
#
#   benches/iteration_split.sh [--iters N] [--ranks "1 2"] [--data FILE] [--features D]
#       [--workers W] [--cases "METHOD COMPRESSOR [EXTRA…];…"] [--bins "LABEL=PATH …"]
#       [--repeat K] [--keep DIR]
#
# Defaults: the embedded mushrooms data, 2000 rounds, 1 and 2 ranks, the cases
# "gd identity;ef21 top-k:k=12", the binary target/release/qtrain. --bins compares
# builds (e.g. "before=/tmp/qtrain-old after=target/release/qtrain"): the runs of all
# binaries are interleaved case by case (and --repeat K times), so that the machine's
# noise falls on both alike. Needs mpirun and h5dump (scripts/setup.sh). No Python.
#
# Each run uses --eval-every 1, so /metrics has one row per round: row t holds round
# t − 1's t_compute, t_compress, t_comm and t_decode (rank 0's timers) and the cumulative
# `time`; the round time is the difference of consecutive `time` values. Evaluating
# every round adds a monitoring allreduce and an HDF5 row per round *outside* the timed
# round (`time` excludes them), so the wall clock of the run exceeds Σ rounds.
# other = round − (compute + compress + comm + decode).
set -euo pipefail
cd "$(dirname "$0")/.."

iters=2000
ranks="1 2"
keep=""
data=data/agaricus.txt.train
features=""
workers=""
cases="gd identity;ef21 top-k:k=12"
bins="qtrain=target/release/qtrain"
repeat=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --iters) iters="$2"; shift 2 ;;
        --ranks) ranks="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        --features) features="$2"; shift 2 ;;
        --workers) workers="$2"; shift 2 ;;
        --cases) cases="$2"; shift 2 ;;
        --bins) bins="$2"; shift 2 ;;
        --repeat) repeat="$2"; shift 2 ;;
        --keep) keep="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "iteration_split.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

for pair in $bins; do
    bin=${pair#*=}
    [[ -x $bin ]] || { echo "iteration_split.sh: $bin not found; run 'cargo build --release' first" >&2; exit 2; }
done
for tool in mpirun h5dump awk; do
    command -v "$tool" >/dev/null || { echo "iteration_split.sh: '$tool' not found (see scripts/setup.sh)" >&2; exit 2; }
done

# OpenMPI as root (containers, CI) and more ranks than cores, as scripts/mpi-env.sh.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

if [[ -n $keep ]]; then
    mkdir -p "$keep"
    dir=$keep
else
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
fi

# column FILE NAME: the values of /metrics/NAME, one per line, at full precision.
column() {
    h5dump -d "/metrics/$2" -y -w 0 -m '%.17g' -o "$dir/column.txt" "$1" >/dev/null
    tr ',' '\n' <"$dir/column.txt" | tr -d ' \t' | grep -v '^$'
}

# median: the median of the numbers on stdin (mean of the middle two for an even count).
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# split FILE: "round compute compress comm decode other" medians in seconds over the
# rounds (rows 1..N; row 0 is the start point, before any round).
split() {
    local f=$1 name
    for name in iter time t_compute t_compress t_comm t_decode; do
        column "$f" "$name" >"$dir/$name.txt"
    done
    paste "$dir"/{iter,time,t_compute,t_compress,t_comm,t_decode}.txt | awk '
        NR > 1 {
            round = $2 - prev
            print round, $3, $4, $5, $6, round - $3 - $4 - $5 - $6
        }
        { prev = $2 }' >"$dir/rounds.txt"
    local k out=""
    for k in 1 2 3 4 5 6; do
        out+="$(awk -v k=$k '{ print $k }' "$dir/rounds.txt" | median) "
    done
    echo "$out $(wc -l <"$dir/rounds.txt")"
}

common=(--data "$data" --iters "$iters" --eval-every 1 --log-every "$iters" --force)
[[ -n $features ]] && common+=(--features "$features")
[[ -n $workers ]] && common+=(--workers "$workers")

commands=()
echo "| build | ranks | method | µs/round (median) | compute µs (%) | compress µs (%) | comm µs (%) | decode µs (%) | other µs (%) | rounds |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
IFS=';' read -ra case_list <<<"$cases"
for r in $ranks; do
    for spec in "${case_list[@]}"; do
        read -r method compressor extra <<<"$spec"
        for ((rep = 0; rep < repeat; rep++)); do
            for pair in $bins; do
                label=${pair%%=*} bin=${pair#*=}
                out="$dir/$label-r$r-${method%%:*}.h5"
                # shellcheck disable=SC2206
                cmd=(mpirun -n "$r" "$bin" train "${common[@]}" --method "$method" --compressor "$compressor" $extra --out "$out")
                commands+=("${cmd[*]}")
                if ! "${cmd[@]}" </dev/null >"$dir/log.txt" 2>&1; then
                    cat "$dir/log.txt" >&2
                    echo "iteration_split.sh: the run failed: ${cmd[*]}" >&2
                    exit 1
                fi
                read -r round compute compress comm decode other rows <<<"$(split "$out")"
                awk -v b="$label" -v r="$r" -v m="$method ($compressor)" -v t="$round" -v a="$compute" -v p="$compress" \
                    -v c="$comm" -v d="$decode" -v o="$other" -v n="$rows" 'BEGIN {
                    printf "| %s | %d | %s | %.1f", b, r, m, 1e6 * t
                    split(a " " p " " c " " d " " o, parts, " ")
                    for (i = 1; i <= 5; i++) printf " | %.1f (%.1f %%)", 1e6 * parts[i], 100 * parts[i] / t
                    printf " | %d |\n", n }'
            done
        done
    done
done
echo
echo "Medians over the rounds of rank 0's timers; the columns need not add up to the round"
echo "median exactly. other = round − (compute + compress + comm + decode): bookkeeping"
echo "inside the round. Runs (OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
echo "OMPI_MCA_rmaps_base_oversubscribe=1), in this order:"
echo
printf '    %s\n' "${commands[@]}" | awk '!seen[$0]++'
