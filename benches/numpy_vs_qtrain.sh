#!/usr/bin/env bash
# qtrain against the numpy script a researcher would write (issue 13): EF21 with Top-1 on
# a9a, non-convex logistic, λ = 0.1, 20 logical workers, qtrain's theory step; qtrain on 1
# and 2 ranks, then benches/numpy_ef21.py at the same step, which checks that its f(x^t)
# equals qtrain's at every recorded round (so the two solve the same problem) and fails
# otherwise. Prints one Markdown table of ms per round and the speed-ups.
#   benches/numpy_vs_qtrain.sh [ITERS]         (default 1000; data: $DATA_DIR/a9a.txt)
# Python: Debian's python3-numpy and python3-h5py (benches/requirements.txt names the same
# for pip), installed with apt-get when missing and root.
source "$(dirname "$0")/lib.sh"
need_data a9a.txt
iters=${1:-1000}
python=/usr/bin/python3
if ! "$python" -c 'import numpy, h5py' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q python3-numpy python3-h5py >/dev/null
    else
        echo "needs numpy and h5py for $python: apt-get install python3-numpy python3-h5py" >&2
        exit 1
    fi
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# ms per round of a qtrain result: the cumulative round time (metrics/time) over the rounds.
ms_per_round() {
    "$python" -c 'import h5py, sys
with h5py.File(sys.argv[1], "r") as f:
    print("%.3f" % (1e3 * f["metrics/time"][-1] / f["metrics/iter"][-1]))' "$1"
}

for ranks in 1 2; do
    "$QTRAIN_MPIRUN" -n "$ranks" "$bin" train --data "$data" --objective logistic-nonconvex \
        --lambda 0.1 --method ef21 --compressor top-k:k=1 --workers 20 --iters "$iters" \
        --eval-every 100 --log-every 1000000 --out "$out/ranks$ranks.h5" </dev/null \
        >"$out/ranks$ranks.log" 2>&1 || { tail -5 "$out/ranks$ranks.log"; exit 1; }
done
step=$("$python" -c 'import h5py, sys
with h5py.File(sys.argv[1], "r") as f:
    print(repr(float(f.attrs["step"])))' "$out/ranks1.h5")
numpy_line=$("$python" benches/numpy_ef21.py --data "$data" --workers 20 --iters "$iters" \
    --step "$step" --k 1 --lambda 0.1 --check "$out/ranks1.h5")
echo "$numpy_line" >&2
numpy_ms=$(echo "$numpy_line" | head -1 | awk '{print $(NF-3)}')
one=$(ms_per_round "$out/ranks1.h5")
two=$(ms_per_round "$out/ranks2.h5")
# Debian's numpy calls the BLAS that the alternatives system selects (reference or OpenBLAS).
blas=$(readlink -f /etc/alternatives/libblas.so.3-* 2>/dev/null | head -1)

echo "a9a, logistic-nonconvex λ = 0.1, EF21 top-1, 20 workers, γ = $step, $iters rounds"
echo
echo "| implementation | ms per round | numpy ÷ this |"
echo "|---|---:|---:|"
echo "| numpy $("$python" -c 'import numpy; print(numpy.__version__)') (BLAS: $blas), 1 process | $numpy_ms | 1.0 |"
awk -v n="$numpy_ms" -v a="$one" -v b="$two" 'BEGIN {
    printf "| qtrain, 1 rank | %s | %.1f |\n", a, n / a
    printf "| qtrain, 2 ranks | %s | %.1f |\n", b, n / b }'
