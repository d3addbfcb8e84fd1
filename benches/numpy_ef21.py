#!/usr/bin/env python3
"""EF21 with Top-k as a researcher would write it in numpy (issue 13's baseline).

The problem is qtrain's `--objective logistic-nonconvex`: W logical workers own contiguous
row blocks (qtrain's `--split balanced`: the first m mod W get one row more), weighted
w_i = m_i/m (`--weighting samples`), each f_i(x) = (1/m_i) Σ log(1 + exp(−b a·x))
+ λ Σ_j x_j²/(1 + x_j²) (ALGORITHMS.md §0.2, §G.4). EF21 (§G.2) from x⁰ = 0 with the
exact first round (`init=full`): g_i⁰ = ∇f_i(x⁰); then g_i ← g_i + TopK(∇f_i(x) − g_i)
and x ← x − γ Σ_i w_i g_i. Each worker holds a dense m_i × d matrix and the loop over
workers is a Python loop: the straightforward script, not a tuned one.

The timed region is the rounds alone; f(x^t) is evaluated outside it at the rounds that
`--check` compares with a qtrain result file (metrics/iter, metrics/loss), so both tools
provably solve the same problem with the same iterates.

    numpy_ef21.py --data a9a.txt --workers 20 --iters 1000 --step G --k 1 [--check run.h5]
"""

import argparse
import sys
import time

import numpy as np


def read_libsvm(path):
    """Dense rows and {−1,+1} labels (the smaller label value becomes −1, as qtrain)."""
    labels, rows, d = [], [], 0
    with open(path) as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            labels.append(float(fields[0]))
            pairs = [(int(k), float(v)) for k, v in (p.split(":") for p in fields[1:])]
            rows.append(pairs)
            d = max([d] + [k for k, _ in pairs])
    a = np.zeros((len(rows), d))
    for r, pairs in enumerate(rows):
        for k, v in pairs:
            a[r, k - 1] = v
    raw = np.array(labels)
    b = np.where(raw == raw.min(), -1.0, 1.0)
    return a, b


def balanced_blocks(m, workers):
    base, extra = divmod(m, workers)
    sizes = [base + (1 if i < extra else 0) for i in range(workers)]
    return np.concatenate([[0], np.cumsum(sizes)])


def loss(a, b, x, lam):
    return np.mean(np.logaddexp(0.0, -b * (a @ x))) + lam * np.sum(x * x / (1.0 + x * x))


def gradient(a, b, x, lam):
    s = -b / (1.0 + np.exp(b * (a @ x)))
    return a.T @ s / len(b) + 2.0 * lam * x / (1.0 + x * x) ** 2


def top_k(v, k):
    if k == 1:
        j = np.argmax(np.abs(v))
        out = np.zeros_like(v)
        out[j] = v[j]
        return out
    idx = np.argpartition(np.abs(v), -k)[-k:]
    out = np.zeros_like(v)
    out[idx] = v[idx]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--workers", type=int, default=20)
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--step", type=float, required=True)
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--lambda", dest="lam", type=float, default=0.1)
    p.add_argument("--check", help="qtrain result file whose metrics/loss must match")
    args = p.parse_args()

    a, b = read_libsvm(args.data)
    bounds = balanced_blocks(len(b), args.workers)
    shards = [(a[bounds[i]:bounds[i + 1]], b[bounds[i]:bounds[i + 1]]) for i in range(args.workers)]
    weights = np.diff(bounds) / len(b)
    d = a.shape[1]

    check_iters = {}
    if args.check:
        import h5py

        with h5py.File(args.check, "r") as f:
            check_iters = dict(zip(f["metrics/iter"][:].tolist(), f["metrics/loss"][:].tolist()))

    x = np.zeros(d)
    g_workers = np.zeros((args.workers, d))
    worst, compared, timed = 0.0, 0, 0.0
    for t in range(args.iters + 1):
        if t in check_iters:
            f = loss(a, b, x, args.lam)
            worst = max(worst, abs(f - check_iters[t]) / abs(check_iters[t]))
            compared += 1
        if t == args.iters:
            break
        start = time.perf_counter()
        for i, (ai, bi) in enumerate(shards):
            grad = gradient(ai, bi, x, args.lam)
            if t == 0:
                g_workers[i] = grad
            else:
                g_workers[i] += top_k(grad - g_workers[i], args.k)
        x = x - args.step * (weights @ g_workers)
        timed += time.perf_counter() - start

    print(f"numpy {np.__version__}: {args.iters} rounds, {1e3 * timed / args.iters:.3f} ms per round")
    if args.check:
        print(f"f(x^t) compared with {args.check} at {compared} rounds: max relative difference {worst:.2e}")
        if compared == 0 or worst > 1e-9:
            sys.exit("numpy and qtrain disagree: not the same problem or not the same iterates")


if __name__ == "__main__":
    main()
