"""Data shapes beyond balanced CIFAR-10: the default against every baseline, one row a shape.

    python benchmarks/shapes.py [--data DIR] [--shapes longtail100,idn20,idn40,two_classes] [--c1000 DIR]

Each shape is built from the shared CIFAR-10 features (``--data``) and seeded (seed 0):

* ``longtail100`` -- long-tailed CIFAR-10, imbalance ratio 100 (Cao et al., NeurIPS 2019:
  class c keeps ``5000 * 100 ** (-c / 9)`` of its rows, 12,406 in all, drawn uniformly), with
  symmetric noise 20 % (DivideMix's rule);
* ``idn20`` / ``idn40`` -- all 50,000 rows with instance-dependent noise at 20 / 40 %
  (:func:`dmlp.idn.instance_noise`, Xia et al., NeurIPS 2020);
* ``two_classes`` -- cat against dog (CIFAR-10 classes 3 and 5, 10,000 rows), symmetric noise 40 %;
* ``few_rows200`` -- 200 classes of at most 20 rows: each CIFAR-10 class split into 20 k-means
  clusters of its L2-normalised features (``benchmarks.feature_sets.split_classes``, one
  restart, random rows as initial centroids), 20 rows drawn from each cluster (all of a smaller
  one), symmetric noise 40 %;
* ``c1000`` -- with ``--c1000 DIR``, a 1,000-class folder (``benchmarks/feature_sets.py
  cifar1000-like``) with symmetric noise 20 %; slow (the default's cost grows with the classes).

The meta set is the command's class-stratified draw of ``min(1000, N / 10)`` rows (seed 0),
shared by every method; accuracy is on the other rows.  DMLP runs through
:func:`dmlp.purify_dataset` exactly as ``dmlp purify --meta-index`` would.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.loader import DEFAULT_DATA, REPO_ROOT, Cifar, load_cifar, log  # noqa: E402
from benchmarks.output import md_table, pct  # noqa: E402
from benchmarks.quality import Probe, _baseline_rows, run_dmlp  # noqa: E402
from benchmarks.quality_tables import BASELINE_NAMES  # noqa: E402
from dmlp.cli import ArgumentParser  # noqa: E402

SHAPES = ("longtail100", "idn20", "idn40", "two_classes", "few_rows200")


def _subset(data: Cifar, rows: np.ndarray, y=None, n_classes=None) -> Cifar:
    return Cifar(data.X[rows], data.y[rows] if y is None else y, None, None, n_classes or data.n_classes,
                 data.note)


def build_shape(name: str, data: Cifar, c1000=None):
    """``(Cifar, noisy labels)`` of shape ``name`` (module docstring), seed 0."""
    from dmlp.idn import instance_noise
    from dmlp.noise import make_noisy_labels
    rng = np.random.default_rng(0)
    if name == "longtail100":
        keep = [rng.choice(np.flatnonzero(data.y == c), int(5000 * 100 ** (-c / 9)), replace=False)
                for c in range(10)]
        shape = _subset(data, np.sort(np.concatenate(keep)))
        return shape, make_noisy_labels(shape.y, "sym", 0.2, 0, n_classes=10)
    if name in ("idn20", "idn40"):
        return data, instance_noise(data.y, data.X, int(name[3:]) / 100, 0, n_classes=10)
    if name == "two_classes":
        rows = np.flatnonzero((data.y == 3) | (data.y == 5))
        shape = _subset(data, rows, y=(data.y[rows] == 5).astype(np.int64), n_classes=2)
        return shape, make_noisy_labels(shape.y, "sym", 0.4, 0, n_classes=2)
    if name == "few_rows200":
        from benchmarks.feature_sets import split_classes
        unit = data.X.astype(np.float32) / np.linalg.norm(data.X.astype(np.float32), axis=1, keepdims=True).clip(1e-12)
        fine, _ = split_classes({"train": unit, "test": unit[:0]}, {"train": data.y, "test": data.y[:0]}, 20,
                                restarts=1, minit="points")
        fine = fine["train"]
        keep = [rng.choice(rows, min(20, len(rows)), replace=False)
                for rows in (np.flatnonzero(fine == c) for c in range(200)) if len(rows)]
        rows = np.sort(np.concatenate(keep))
        shape = _subset(data, rows, y=fine[rows], n_classes=200)
        return shape, make_noisy_labels(shape.y, "sym", 0.4, 0, n_classes=200)
    if name == "c1000":
        fine = load_cifar(c1000)
        return fine, make_noisy_labels(fine.y, "sym", 0.2, 0, n_classes=fine.n_classes)
    raise ValueError(name)


def run_shape(name: str, data: Cifar, noisy: np.ndarray) -> List[dict]:
    """The given labels, every baseline and the default on one shape (quality rows)."""
    from dmlp import load_config
    from dmlp.baselines import ALL_BASELINES, cosine_knn
    from dmlp.meta import draw_meta_indices
    meta = draw_meta_indices(data.y, min(1000, len(data.y) // 10), 0)
    mask = np.ones(len(data.y), dtype=bool)
    mask[meta] = False
    probe, notes = Probe(data, enabled=False), []
    rows = [{"method": "noisy labels (given)", "label_accuracy": float((noisy[mask] == data.y[mask]).mean())}]
    rows += _baseline_rows(name, list(ALL_BASELINES), data, noisy, mask, meta, probe, 0, cosine_knn(data.X, 20), notes)
    m = run_dmlp(data, noisy, mask, meta, load_config("default"), probe)
    rows.append({"method": "DMLP default", "label_accuracy": m.label_accuracy, "seconds": m.seconds})
    log(f"{name}: DMLP default {100 * m.label_accuracy:.2f} % in {m.seconds:.1f} s")
    return [{"shape": name, "n_rows": len(data.y), "n_classes": data.n_classes, **r} for r in rows]


def shapes_table(rows: List[dict]) -> str:
    """One line a shape: given, each baseline, the default and its lead over the best baseline."""
    by_shape: Dict[str, Dict[str, float]] = {}
    for r in rows:
        by_shape.setdefault(r["shape"], {})[r["method"]] = r["label_accuracy"]
    methods = ["noisy labels (given)", *BASELINE_NAMES.values(), "DMLP default"]
    out = []
    for shape, acc in by_shape.items():
        best = max(v for k, v in acc.items() if k in BASELINE_NAMES.values())
        out.append([shape, *(pct(acc[m]) if m in acc else "–" for m in methods),
                    f"{100 * (acc['DMLP default'] - best):+.2f}"])
    return md_table(["shape", "given", *BASELINE_NAMES.values(), "DMLP default", "lead over best baseline"], out)


def main(argv=None) -> int:
    p = ArgumentParser(prog="benchmarks/shapes.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REPO_ROOT / DEFAULT_DATA), help="the shared CIFAR-10 feature folder")
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}, c1000")
    p.add_argument("--c1000", default=None, help="a cifar1000-like folder, for the c1000 shape")
    args = p.parse_args(argv)
    data = load_cifar(args.data)
    rows = []
    for name in [s.strip() for s in args.shapes.split(",") if s.strip()]:
        shape, noisy = build_shape(name, data, args.c1000)
        rows += run_shape(name, shape, noisy)
    print(shapes_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
