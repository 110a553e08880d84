"""What every benchmark script reads: the feature folder, its noisy labels, its settings.

* :func:`load_cifar` -- a CIFAR-style feature folder (``trainfeatures.npy``, ``correctlabels.npy``,
  optionally the test split and ``superclass.npy``) as a :class:`Cifar`, checked as ``dmlp
  purify`` checks it, optionally on a seeded random subset of rows;
* :func:`benchmark_noise` -- the noisy labels of a setting (``sym50``, ``asym40``, ...): the
  DivideMix rule, or the CIFAR-100 rule on a set with superclasses;
* :func:`parse_setting`, :func:`parse_feature_sets` -- the two command-line notations the
  scripts share.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from dmlp.errors import InputError

REPO_ROOT = Path(__file__).resolve().parent.parent   # benchmarks/ sits at the repository root
DEFAULT_DATA = "../shared/data/cifar10-effnet-lite2"  # relative to the repository root
SETTINGS = ("sym20", "sym50", "sym80", "sym90", "asym40")


def log(msg: str) -> None:
    """One progress line on stderr (the tables go to stdout)."""
    print(f"[benchmark] {msg}", file=sys.stderr, flush=True)


def parse_setting(s: str) -> Tuple[str, float]:
    """``"sym50"`` -> ``("sym", 0.5)``; ``"asym40"`` -> ``("asym", 0.4)``."""
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


def parse_settings(text: Optional[str], default=SETTINGS) -> list:
    """A comma-separated list of settings, each checked by :func:`parse_setting`."""
    chosen = [x.strip() for x in (text or ",".join(default)).split(",") if x.strip()]
    for s in chosen:
        parse_setting(s)
    return chosen


def parse_feature_sets(text: str) -> Dict[str, str]:
    """``"a=DIR,b=DIR"`` -> ``{"a": "DIR", "b": "DIR"}`` (order kept)."""
    sets = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise InputError(f"feature sets: expected NAME=DIR[,NAME=DIR...], got {item!r}")
        sets[name] = folder
    return sets


@dataclass
class Cifar:
    """A feature folder in memory: training rows (float32), their truth, the test split."""
    X: np.ndarray            # N x d float32
    y: np.ndarray            # N true labels
    X_test: Optional[np.ndarray]
    y_test: Optional[np.ndarray]
    n_classes: int
    note: str = ""
    superclass: Optional[np.ndarray] = None   # N superclass of each row (superclass.npy), if any
    rows: Optional[np.ndarray] = None         # the folder's rows held here (a subset), None: all


def require_cifar(data_dir) -> Path:
    """The feature folder, or an :class:`InputError` saying where the data come from.

    A relative path that does not exist from the current folder is read from the repository
    root (so the default ``../shared/...`` works from any folder).
    """
    data = Path(data_dir)
    if not data.is_absolute() and not data.exists():
        data = REPO_ROOT / data
    missing = [n for n in ("trainfeatures.npy", "correctlabels.npy") if not (data / n).is_file()]
    if missing:
        raise InputError(f"--data {data_dir}: no {' or '.join(missing)} in {data}; the benchmark reads "
                         "CIFAR-10 features with their true labels (by default the shared folder "
                         "../shared/data/cifar10-effnet-lite2 beside the checkout); make them with "
                         "dmlp extract (README: getting CIFAR-10/100 features) and pass --data DIR")
    return data


def _subset_rows(n: int, subset: Optional[int]) -> Optional[np.ndarray]:
    if not subset or subset >= n:
        return None
    return np.sort(np.random.default_rng(0).choice(n, subset, replace=False))


def load_cifar(data_dir, subset: Optional[int] = None, test_subset: Optional[int] = None) -> Cifar:
    """Read a feature folder; ``subset``: a random subset of that many training rows (seed 0)."""
    from dmlp.data import check_features, check_labels, load_npy
    data = require_cifar(data_dir)
    X = check_features(load_npy(data / "trainfeatures.npy"), "trainfeatures.npy")
    y = check_labels(load_npy(data / "correctlabels.npy", mmap=False), "correctlabels.npy",
                     n_rows=X.shape[0], rows_of="trainfeatures.npy")
    X_test = y_test = superclass = None
    if (data / "testfeatures.npy").exists() and (data / "testlabels.npy").exists():
        X_test = np.asarray(load_npy(data / "testfeatures.npy"), dtype=np.float32)
        y_test = check_labels(load_npy(data / "testlabels.npy", mmap=False), "testlabels.npy",
                              n_rows=X_test.shape[0], rows_of="testfeatures.npy")
    if (data / "superclass.npy").exists():
        superclass = check_labels(load_npy(data / "superclass.npy", mmap=False), "superclass.npy",
                                  n_rows=len(y), rows_of="trainfeatures.npy")
    note = ""
    rows = _subset_rows(X.shape[0], subset)
    if rows is not None:
        X, y = X[rows], y[rows]
        superclass = None if superclass is None else superclass[rows]
        note = f"random subset of {subset} training rows (seed 0)"
        t = None if X_test is None else _subset_rows(X_test.shape[0], test_subset)
        if t is not None:
            X_test, y_test = X_test[t], y_test[t]
            note += f", {test_subset} test rows"
    X = np.ascontiguousarray(X, dtype=np.float32)
    return Cifar(X, y, X_test, y_test, int(y.max()) + 1, note, superclass, rows)


def benchmark_noise(data: Cifar, mode: str, rate: float, seed: int) -> np.ndarray:
    """Noisy labels of a setting: DivideMix's rule, or with a ``superclass`` and ``asym`` the
    CIFAR-100 rule (a selected row's label becomes the next fine class of its superclass,
    cyclically) on the rows DivideMix's rule selects."""
    from dmlp.noise import make_noisy_labels
    if mode != "asym" or data.superclass is None:
        return make_noisy_labels(data.y, mode, rate, seed, n_classes=data.n_classes)
    import random
    n = len(data.y)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    rows = np.asarray(order[:int(rate * n)], dtype=np.int64)
    following = {}
    for s in np.unique(data.superclass):
        fine = np.unique(data.y[data.superclass == s])
        following.update(zip(fine.tolist(), np.roll(fine, -1).tolist()))
    noisy = data.y.copy()
    noisy[rows] = [following[int(c)] for c in data.y[rows]]
    return noisy
