#!/usr/bin/env bash
# Peak memory per method and the LIBSVM reading speed (issue 13, "Loading and memory").
# Every registered example (`qtrain methods --examples`) trains 20 rounds on one rank on a
# generated problem of dimension D (20 000 rows, 30 nonzeros each); the table gives the
# peak resident set (VmHWM, the `peak_rss_bytes` attribute), the shard (`shard_bytes`)
# and what lies beyond the shard and the process's fixed cost (the peak of a run on the
# embedded data, d = 112), in d-vectors of 8 bytes: the method's O(d) state as the
# allocator sees it. Then the reading speed (`load_seconds`, `data_bytes`) on the real
# data sets, one rank. Needs h5dump (scripts/setup.sh).
#   benches/memory.sh [D]          (default 1000000)
source "$(dirname "$0")/lib.sh"
d=${1:-1000000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
attr() { h5dump -a "$2" "$1" | awk -F': ' '/\(0\)/ {gsub(/"/, "", $2); print $2}'; }

"$bin" generate --rows 20000 --features "$d" --nnz 30 --seed 1 --out "$dir/gen.svm" >/dev/null
"$bin" train --data data/agaricus.txt.train --iters 20 --out "$dir/base.h5" >/dev/null 2>&1
base=$(attr "$dir/base.h5" peak_rss_bytes)
echo "d = $d; fixed cost (embedded data, d = 112): $(awk -v b="$base" 'BEGIN {printf "%.1f", b / 1e6}') MB"
echo
echo "| method | compressor | peak MB | shard MB | d-vectors beyond shard and fixed cost |"
echo "|---|---|---:|---:|---:|"
"$bin" methods --examples | while IFS=$'\t' read -r method compressor; do
    extra=()
    [[ $method == signum* ]] && extra=(--topology server)
    if "$bin" train --data "$dir/gen.svm" --features "$d" --iters 20 --eval-every 10 --method "$method" \
        --compressor "$compressor" "${extra[@]}" --out "$dir/run.h5" --force >"$dir/log" 2>&1 </dev/null; then
        peak=$(attr "$dir/run.h5" peak_rss_bytes)
        shard=$(attr "$dir/run.h5" shard_bytes)
        awk -v m="$method" -v c="$compressor" -v p="$peak" -v s="$shard" -v b="$base" -v d="$d" 'BEGIN {
            printf "| %s | `%s` | %.1f | %.1f | %.1f |\n", m, c, p / 1e6, s / 1e6, (p - b - s) / (8 * d) }'
    else
        echo "| $method | \`$compressor\` | refused: $(grep -m1 -i 'error' "$dir/log" | cut -c1-120) | | |"
    fi
done
echo
echo "| data | MB | seconds to read (1 rank) | MB/s |"
echo "|---|---:|---:|---:|"
for f in "$dir/gen.svm" "${DATA_DIR:-../shared/data}"/{a9a,w8a,phishing,spam_tfidf}.txt; do
    [ -f "$f" ] || continue
    "$bin" train --data "$f" --iters 1 --out "$dir/load.h5" --force >/dev/null 2>&1 </dev/null
    awk -v n="$(basename "$f")" -v s="$(attr "$dir/load.h5" load_seconds)" -v b="$(attr "$dir/load.h5" data_bytes)" \
        'BEGIN { printf "| %s | %.1f | %.3f | %.0f |\n", n, b / 1e6, s, b / 1e6 / s }'
done
