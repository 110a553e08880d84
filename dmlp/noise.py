"""Synthetic label noise: DivideMix's protocol bit for bit, flip maps, instance-dependent noise.

DivideMix (Li et al., ICLR 2020) builds its CIFAR noise files with Python's ``random`` module:
shuffle ``list(range(N))``, call the first ``int(r * N)`` indices noisy, then walk the rows in
order 0..N-1 and, for each noisy row, draw ``random.randint(0, C-1)`` (symmetric) or apply a
fixed class transition (asymmetric).  C2D and DMLP reuse these files, so we reproduce the same
sequence of draws from ``random.Random(seed)``: with the same seed, N and labels, the labels
are identical to what DivideMix writes after ``random.seed(seed)``.  The rule is the same at
any class count C, and the asymmetric transition may be any flip map (:mod:`dmlp.flip_map`)
besides the CIFAR presets (:mod:`dmlp.cifar_classes`).  Instance-dependent noise (Xia et al.,
NeurIPS 2020) is :mod:`dmlp.idn`.

Conventions worth knowing when comparing papers:

* Symmetric noise in DivideMix / C2D / DMLP draws over *all* C classes, true class included, so
  the measured noise is about ``r * (C-1)/C`` (0.45 for r=0.5, C=10).  Co-teaching / JoCoR draw
  among the other C-1 classes only (``exclude_true=True`` here), so measured noise equals r.
* Asymmetric CIFAR-10 flips truck->automobile, bird->airplane, deer->horse, cat<->dog for the
  selected rows; rows of the other classes keep their label, so measured noise is about r/2.
  In general it is r times the share of rows whose class the flip map changes.
* Asymmetric CIFAR-100 (not in DivideMix) maps each class to the next class of its superclass,
  cyclically, with the *real* superclasses (see :mod:`dmlp.cifar_classes`).
"""
from __future__ import annotations

import random
from typing import Optional

import numpy as np

from .cifar_classes import CIFAR10_ASYM, CIFAR100_COARSE, cifar100_asym_transition  # noqa: F401 (re-exported)
from .errors import InputError
from .flip_map import check_flip_map
from .validation import check_labels, infer_n_classes

MODES = ("sym", "asym", "instance")
DATASETS = {"cifar10": 10, "cifar100": 100}


def asym_transition(dataset: str) -> dict:
    """The flip map of asymmetric noise for a CIFAR preset.

    Parameters
    ----------
    dataset : {'cifar10', 'cifar100'}

    Returns
    -------
    dict of int to int
        ``{from_class: to_class}``; classes absent keep their label.

    Raises
    ------
    InputError
        For any other ``dataset``.
    """
    if dataset == "cifar10":
        return dict(CIFAR10_ASYM)
    if dataset == "cifar100":
        return cifar100_asym_transition()
    raise InputError(f"--dataset: asymmetric presets exist for cifar10 and cifar100 only, not {dataset!r} "
                     "(give a flip map instead)")


def check_rate(rate) -> float:
    """``rate`` as a float in [0, 1].

    Raises
    ------
    InputError
        Naming ``--rate``, for a value that is not a number or lies outside [0, 1] (NaN too).
    """
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise InputError(f"--rate: not a number: {rate!r}") from None
    if not (0.0 <= rate <= 1.0):  # also rejects NaN
        raise InputError(f"--rate: noise rate must be in [0, 1], got {rate}")
    return rate


def check_dataset(dataset: Optional[str]) -> Optional[str]:
    """``dataset`` if it is None or a key of :data:`DATASETS`, else :class:`InputError` naming ``--dataset``."""
    if dataset is not None and dataset not in DATASETS:
        raise InputError(f"--dataset: unknown dataset {dataset!r} (expected one of: {', '.join(DATASETS)}; "
                         "or none, to take the class count from the labels)")
    return dataset


def class_count(labels: np.ndarray, dataset: Optional[str], n_classes: Optional[int]) -> int:
    """C: ``n_classes`` if given, else the ``dataset``'s, else the largest label plus one.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
    dataset : {'cifar10', 'cifar100'} or None
    n_classes : int or None

    Returns
    -------
    int

    Raises
    ------
    InputError
        For an unknown dataset, fewer than 2 classes, or labels without a 0 when C comes
        from them.
    """
    if n_classes is None and check_dataset(dataset) is not None:
        n_classes = DATASETS[dataset]
    if n_classes is None:
        return infer_n_classes(check_labels(labels, "true labels"), "true labels")
    if int(n_classes) < 2:
        raise InputError(f"n_classes must be at least 2, got {n_classes}")
    return int(n_classes)


def dividemix_rows(n: int, rate: float, rng: random.Random) -> np.ndarray:
    """DivideMix's noisy rows: shuffle ``list(range(n))`` with ``rng``, keep the first ``int(rate*n)``.

    Parameters
    ----------
    n : int
        Row count N.
    rate : float
        Fraction in [0, 1] of rows to select.
    rng : random.Random
        Advanced by exactly DivideMix's shuffle.

    Returns
    -------
    ndarray of bool, shape (n,)
        True for a selected row.
    """
    idx = list(range(n))
    rng.shuffle(idx)
    # DivideMix tests `i in noise_idx` on a list; a boolean mask gives the same rows in O(N).
    rows = np.zeros(n, dtype=bool)
    rows[idx[:int(rate * n)]] = True
    return rows


def symmetric_noise(true_labels, rate: float, seed: int, n_classes: int, *,
                    exclude_true: bool = False) -> np.ndarray:
    """Symmetric noise by DivideMix's rule, at any class count.

    Parameters
    ----------
    true_labels : array_like of int, shape (N,)
        Labels in 0..C-1.
    rate : float
        Fraction in [0, 1] of rows selected (not the measured noise, see the module doc).
    seed : int
        Seed of ``random.Random``.
    n_classes : int
        C, at least 2.
    exclude_true : bool
        Draw the new label among the other C-1 classes (Co-teaching); default: among all C,
        as DivideMix.

    Returns
    -------
    ndarray of int64, shape (N,)
    """
    labels = check_labels(true_labels, "true labels", n_classes=n_classes)
    rng = random.Random(seed)
    out = labels.copy()
    # Rows must be visited in index order so the random draws match DivideMix's sequence.
    for i in np.flatnonzero(dividemix_rows(labels.shape[0], check_rate(rate), rng)).tolist():
        if exclude_true:
            v = rng.randint(0, n_classes - 2)
            out[i] = v + 1 if v >= labels[i] else v  # skip over the true class: uniform on the others
        else:
            out[i] = rng.randint(0, n_classes - 1)
    return out


def flip_noise(true_labels, rate: float, seed: int, flip_map: dict, n_classes: int) -> np.ndarray:
    """Asymmetric noise: DivideMix's selected rows take the class ``flip_map`` gives.

    Parameters
    ----------
    true_labels : array_like of int, shape (N,)
        Labels in 0..C-1.
    rate : float
        Fraction in [0, 1] of rows selected; a selected row whose class is not in ``flip_map``
        keeps its label.
    seed : int
        Seed of ``random.Random`` (only the shuffle draws from it).
    flip_map : dict of int to int
        ``{from_class: to_class}`` (:func:`dmlp.flip_map.check_flip_map` rules).
    n_classes : int
        C.

    Returns
    -------
    ndarray of int64, shape (N,)
    """
    labels = check_labels(true_labels, "true labels", n_classes=n_classes)
    table = np.arange(n_classes, dtype=np.int64)
    for src, dst in check_flip_map(flip_map, n_classes).items():
        table[src] = dst
    rows = dividemix_rows(labels.shape[0], check_rate(rate), random.Random(seed))
    return np.where(rows, table[labels], labels)


def make_noisy_labels(true_labels, mode: str, rate: float, seed: int, dataset: Optional[str] = "cifar10",
                      n_classes: Optional[int] = None, exclude_true: bool = False, *,
                      flip_map: Optional[dict] = None, features=None) -> np.ndarray:
    """Noisy labels made from ``true_labels`` by one of the noise models.

    Parameters
    ----------
    true_labels : array_like of int, shape (N,)
        Labels in 0..C-1.
    mode : {'sym', 'asym', 'instance'}
        ``'sym'``: :func:`symmetric_noise`; ``'asym'``: :func:`flip_noise` with ``flip_map``,
        or else the ``dataset``'s preset; ``'instance'``: :func:`dmlp.idn.instance_noise`.
    rate : float
        In [0, 1]: the fraction of rows selected (sym, asym), the mean flip rate (instance).
    seed : int
        Seed of ``random.Random`` (sym, asym, as DivideMix) or ``numpy.random.RandomState``
        (instance, as Xia et al.).
    dataset : {'cifar10', 'cifar100'} or None
        The asymmetric preset, and C when ``n_classes`` is None.  Pass None (or ``n_classes``)
        for labels that are not CIFAR's: C then comes from the labels.
    n_classes : int, optional
        C; default: the dataset's, else the largest label plus one.
    exclude_true : bool
        Symmetric only: draw among the other C-1 classes.
    flip_map : dict of int to int, optional
        Asymmetric only: the transition, instead of the dataset's preset.
    features : ndarray of float, shape (N, d), optional
        Instance only (required there).

    Returns
    -------
    ndarray of int64, shape (N,)

    Raises
    ------
    InputError
        For an unknown mode, a rate outside [0, 1], labels outside 0..C-1, an option that does
        not apply to ``mode``, an asymmetric mode without a flip map or CIFAR preset, or
        instance noise without features.
    """
    if mode not in MODES:
        raise InputError(f"--mode: unknown noise mode {mode!r} (expected one of: {', '.join(MODES)})")
    rate = check_rate(rate)
    if exclude_true and mode != "sym":
        raise InputError(f"--exclude-true: applies to --mode sym only, not {mode}")
    if flip_map is not None and mode != "asym":
        raise InputError(f"--flip-map: applies to --mode asym only, not {mode}")
    if mode == "instance" and features is None:
        raise InputError("instance noise needs the features (trainfeatures.npy)", argument="features")
    if mode != "instance" and features is not None:
        raise InputError(f"only instance noise uses features, not {mode}", argument="features")
    if mode == "asym" and flip_map is None:
        if dataset is None:
            raise InputError("--mode asym needs a flip map (--flip-map FILE) or a CIFAR preset (--dataset)")
        flip_map = asym_transition(dataset)
        if n_classes is not None and int(n_classes) != DATASETS[dataset]:
            raise InputError(f"n_classes={n_classes} does not match dataset {dataset} ({DATASETS[dataset]} classes)")
    n_classes = class_count(true_labels, dataset, n_classes)
    if mode == "instance":
        from .idn import instance_noise
        return instance_noise(true_labels, features, rate, seed, n_classes=n_classes)
    if mode == "asym":
        return flip_noise(true_labels, rate, seed, flip_map, n_classes)
    return symmetric_noise(true_labels, rate, seed, n_classes, exclude_true=exclude_true)


def noise_report(true, noisy, n_classes: Optional[int] = None) -> dict:
    """Measured noise of ``noisy`` against ``true``: rate, counts and confusion matrix.

    Parameters
    ----------
    true, noisy : array_like of int, shape (N,)
    n_classes : int, optional
        C; default: 1 + the largest label seen.

    Returns
    -------
    dict
        ``n``, ``n_classes``, ``n_noisy``, ``measured_noise_rate`` (fraction of rows whose label
        differs), ``per_class_noise_rate`` (C floats) and ``confusion`` (C x C nested lists,
        ``confusion[i][j]`` rows of true class i with noisy label j); JSON-ready.
    """
    true = check_labels(true, "true labels", n_classes=n_classes)
    noisy = check_labels(noisy, "noisy labels", n_classes=n_classes, n_rows=true.shape[0],
                         rows_of="true labels")
    if n_classes is None:
        n_classes = int(max(true.max(initial=-1), noisy.max(initial=-1))) + 1
    n = int(true.shape[0])
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (true, noisy), 1)
    n_noisy = int((true != noisy).sum())
    per_class = []
    for c in range(n_classes):
        row = int(confusion[c].sum())
        per_class.append(float((row - confusion[c, c]) / row) if row else 0.0)   # not 1 - x: 0.295, not 0.29500000000000004
    return {
        "n": n,
        "n_classes": int(n_classes),
        "n_noisy": n_noisy,
        "measured_noise_rate": float(n_noisy / n) if n else 0.0,
        "per_class_noise_rate": per_class,
        "confusion": confusion.tolist(),
    }
