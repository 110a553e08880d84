#!/usr/bin/env python
"""Benchmark the label-correction baselines of :mod:`dmlp.baselines` on a feature folder.

Prints a Markdown table of label accuracy (%) on the non-meta rows and the seconds each
baseline took, e.g.::

    python scripts/run_baselines.py --data /work/shared/data/cifar10-effnet-lite2 \
        --settings sym20,sym50,sym80,sym90,asym40 --meta-size 1000 --seed 0

Noise follows the DivideMix protocol (private helper below); ``--seed`` seeds the noise and the
baselines; the meta rows (true labels known) are drawn once with ``--meta-seed``.  The kNN
graph is computed once and shared by all settings.  Label propagation is reported with the
best beta in {0, 0.03, 0.1, 0.3, 1} chosen with hindsight (an optimistic anchor).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmlp.baselines import ALL_BASELINES, MissingDependencyError, cosine_knn  # noqa: E402
from dmlp.cli import run_cli  # noqa: E402
from dmlp.data import check_features, check_labels, load_npy  # noqa: E402
from dmlp.errors import InputError  # noqa: E402

CIFAR10_ASYM = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
COLUMNS = {
    "knn_vote": "kNN-20 vote",
    "cv_probe_relabel": "CV probe relabel",
    "cleanlab_relabel": "cleanlab relabel",
    "ridge_on_meta": "ridge on meta",
    "label_propagation_best_beta": "label propagation (best β)",
    "forward_corrected_bayes": "forward-corrected probe + Bayes",
}


def _dividemix_noise(true_labels, mode, rate, seed, n_classes=10):
    """DivideMix-protocol noise (private benchmark helper; see dmlp.noise for the library one)."""
    rng = random.Random(seed)
    n = len(true_labels)
    idx = list(range(n))
    rng.shuffle(idx)
    noisy = set(idx[:int(rate * n)])
    out = np.asarray(true_labels, dtype=np.int64).copy()
    for i in range(n):
        if i in noisy:
            if mode == "sym":
                out[i] = rng.randint(0, n_classes - 1)
            else:
                out[i] = CIFAR10_ASYM.get(int(out[i]), int(out[i]))
    return out


def _parse_setting(s):
    s = s.strip()
    for mode in ("asym", "sym"):
        if s.startswith(mode):
            try:
                pct = float(s[len(mode):])
            except ValueError:
                break
            if 0 <= pct <= 100:
                return mode, pct / 100.0
    raise InputError(f"--settings: cannot parse {s!r} (expected e.g. sym20 or asym40)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder with trainfeatures.npy and correctlabels.npy")
    ap.add_argument("--settings", default="sym20,sym50,sym80,sym90,asym40")
    ap.add_argument("--meta-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="noise and baseline seed")
    ap.add_argument("--meta-seed", type=int, default=0, help="seed of the meta-row draw")
    ap.add_argument("--baselines", default=",".join(ALL_BASELINES),
                    help="comma-separated subset of: " + ",".join(ALL_BASELINES))
    args = ap.parse_args(argv)

    settings = [_parse_setting(s) for s in args.settings.split(",") if s.strip()]
    names = [b.strip() for b in args.baselines.split(",") if b.strip()]
    for b in names:
        if b not in ALL_BASELINES:
            raise InputError(f"--baselines: unknown baseline {b!r}")
    data = Path(args.data)
    X = check_features(load_npy(data / "trainfeatures.npy"), "trainfeatures.npy")
    y = check_labels(load_npy(data / "correctlabels.npy", mmap=False), "correctlabels.npy",
                     n_rows=X.shape[0], rows_of="trainfeatures.npy")
    X = np.ascontiguousarray(X, dtype=np.float32)
    n, n_classes = X.shape[0], int(y.max()) + 1
    if not 0 < args.meta_size < n:
        raise InputError(f"--meta-size must be in 1..{n - 1}")
    meta_idx = np.sort(np.random.default_rng(args.meta_seed).choice(n, args.meta_size, replace=False))
    mask = np.ones(n, dtype=bool)
    mask[meta_idx] = False

    t0 = time.perf_counter()
    knn = cosine_knn(X, 20) if {"knn_vote", "label_propagation_best_beta"} & set(names) else None
    t_knn = time.perf_counter() - t0
    print(f"# N={n}, d={X.shape[1]}, C={n_classes}, meta={args.meta_size}, seed={args.seed}; "
          f"kNN-20 graph {t_knn:.1f}s (shared, not in the per-baseline times)", file=sys.stderr)

    rows = []
    for mode, rate in settings:
        noisy = _dividemix_noise(y, mode, rate, args.seed, n_classes)
        cells = [f"{100 * (noisy[mask] == y[mask]).mean():.1f}"]
        cache = {}
        for name in names:
            t0 = time.perf_counter()
            try:
                res = ALL_BASELINES[name](X, noisy, meta_idx, y[meta_idx], n_classes,
                                          seed=args.seed, knn=knn, cache=cache, true_labels=y)
            except MissingDependencyError as exc:
                print(f"# {name}: skipped ({exc})", file=sys.stderr)
                cells.append("n/a")
                continue
            dt = time.perf_counter() - t0
            acc = 100 * (res.labels[mask] == y[mask]).mean()
            extra = ""
            if res.info and "acc_by_beta" in res.info:
                extra = f" β={res.info['beta']:g}"
            cells.append(f"{acc:.1f} ({dt:.1f}s{extra})")
            print(f"# {mode}{rate * 100:g} {name}: {acc:.2f}% in {dt:.1f}s{extra}", file=sys.stderr,
                  flush=True)
        rows.append((f"{mode} {rate * 100:g} %", cells))

    header = ["setting", "noisy"] + [COLUMNS.get(b, b) for b in names]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for setting, cells in rows:
        print("| " + " | ".join([setting] + cells) + " |")
    print(f"\nLabel accuracy (%) on the {int(mask.sum())} non-meta rows; (seconds per baseline). "
          f"kNN-20 graph: {t_knn:.1f}s once, shared. cleanlab reuses the CV probe's out-of-fold "
          f"probabilities, so its time excludes the probe.")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
