"""Choosing the clean meta set: given indices, separate files, a seeded draw, or ``auto``.

``auto`` is for users with no clean labels at all: it keeps the rows whose given label a
cross-fitted ridge estimator (the same closed form as IPC) finds most plausible, the same number
per class, and trusts their given labels.  The transition model is then estimated from the
data (see ``dmlp.posterior``) since these rows carry no information about the noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import InputError


@dataclass
class MetaSelection:
    """Which rows are the clean meta set, as the command line chose them (files, draw, --meta auto)."""
    features: np.ndarray              # M x d
    labels: np.ndarray                # M clean (or trusted) labels
    indices: np.ndarray               # rows of the training set used as meta (empty if separate)
    noisy_labels: Optional[np.ndarray]  # given labels of those rows (None if not training rows)
    source: str


def check_meta_indices(indices, n_rows: int, argument: str = "meta_index") -> np.ndarray:
    """Validate meta row indices (1-D, non-empty, distinct, in ``0..n_rows-1``) as sorted int64.

    Parameters
    ----------
    indices : array_like of int, shape (M,)
    n_rows : int
        Rows of the training set.
    argument : str
        Names the indices in the error (the command line shows its flag and file instead).

    Raises
    ------
    InputError
        With ``argument``, naming the problem.
    """
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0:
        raise InputError(f"expected a non-empty 1-D array of row indices, got shape {idx.shape}", argument=argument)
    if idx.dtype.kind not in "iu":
        raise InputError(f"row indices must be integers, got {idx.dtype}", argument=argument)
    if idx.min() < 0 or idx.max() >= n_rows:
        raise InputError(f"row index {int(idx.min() if idx.min() < 0 else idx.max())} "
                         f"out of range for {n_rows} training rows", argument=argument)
    if len(np.unique(idx)) != len(idx):
        raise InputError("contains duplicate row indices", argument=argument)
    return np.sort(idx.astype(np.int64))


def check_meta_labels(labels, n_classes: int, argument: str, *, n_classes_from: Optional[str] = None,
                      **value) -> np.ndarray:
    """Check that a meta set has at least C rows and one row of every class.

    Parameters
    ----------
    labels : array_like of int, shape (M,)
        The meta set's clean labels, already checked to lie in ``0..n_classes-1``.
    n_classes : int
    argument : str
        Names the meta set's source in the error (a file, an argument); ``value=`` adds the
        argument's value, as :class:`InputError` takes it.
    n_classes_from : str, optional
        The file whose largest label set ``n_classes`` when the class count was inferred; named
        in the error, since the mistake is then often a stray label in that file rather than a
        gap in the meta set.

    Returns
    -------
    numpy.ndarray
        ``labels`` as an array.

    Raises
    ------
    InputError
        Naming the source, the missing classes (at most ten) and the class count.
    """
    labels = np.asarray(labels)
    if len(labels) < n_classes:
        raise InputError(f"meta set has {len(labels)} rows, fewer than the {n_classes} classes "
                         "(every class needs a clean example)", argument=argument, **value)
    missing = sorted(set(range(n_classes)) - set(np.unique(labels).tolist()))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        why = "every class needs a clean example"
        if n_classes_from is not None:
            why += (f"; the class count {n_classes} is inferred from the largest label, {n_classes - 1}, in "
                    f"{n_classes_from}: if that label is a mistake, correct it")
        raise InputError(f"meta set has no row of class {shown} "
                         f"({len(missing)} of {n_classes} classes missing; {why})", argument=argument, **value)
    return labels


def draw_meta_indices(true_labels: np.ndarray, size: int, seed: int, *, argument: str = "meta_size") -> np.ndarray:
    """A seeded uniform draw of ``size`` training rows whose true label is known.

    Parameters
    ----------
    true_labels : numpy.ndarray of int, shape (N,)
        The true labels; -1 marks a row whose true label is unknown (never drawn).
    size : int
        How many rows to draw (the authors draw 1,000, unseeded).
    seed : int
        Seed of the draw; with every label known the draw is the same as ever.
    argument : str
        Names ``size`` in errors.

    Returns
    -------
    numpy.ndarray of int64
        The drawn row indices, sorted.
    """
    n = len(true_labels)
    known = np.flatnonzero(np.asarray(true_labels) >= 0)
    if not 0 < size < n:
        raise InputError(f"must be between 1 and {n - 1}", argument=argument, value=size)
    if len(known) == n:
        return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    if size > len(known):
        raise InputError(f"correctlabels.npy knows the true label of only {len(known)} "
                         f"rows (the others are -1); the meta set is drawn from those", argument=argument, value=size)
    return np.sort(known[np.random.default_rng(seed).choice(len(known), size, replace=False)])


def auto_meta_config(config):
    """The config for a run whose meta set is :func:`auto_meta_indices`' choice: no held-out expert.

    The final decision fits each expert's exponent on the meta rows.  Rows chosen because a
    classifier agrees with their given label are the easy rows on which every classifier is
    right, so the fit would trust the held-out classifier (``heldout_fraction``) far beyond what
    it earns on the hard rows (docs/deviations.md, section C).

    Parameters
    ----------
    config : dmlp.Config

    Returns
    -------
    dmlp.Config
        ``config`` with ``heldout_fraction = 0``.
    """
    return config.replace(heldout_fraction=0.0)


def auto_meta_indices(features, noisy_labels: np.ndarray, n_classes: int, size: int, seed: int,
                      ridge: float = 0.0, scaling=None) -> np.ndarray:
    """Pick ``size`` rows (balanced over classes) whose given label is most plausible.

    Two-fold cross-fitting: a ridge estimator fitted on one half scores the other half, so a row
    never vouches for itself.  Score = the held-out prediction for the row's given label minus
    the best other class.
    """
    import torch                                   # lazily: input validation runs without torch

    from .batches import gather_rows
    from .ridge import SMALL_SET_RIDGE, ridge_solve
    n, d = features.shape
    order = np.random.default_rng(seed).permutation(n)
    halves = [order[: n // 2], order[n // 2:]]
    X = [gather_rows(features, h, torch.empty(len(h), d), scaling=scaling) for h in halves]
    score = np.empty(n, dtype=np.float64)
    for a, b in ((0, 1), (1, 0)):
        Y = torch.nn.functional.one_hot(torch.as_tensor(noisy_labels[halves[a]]), n_classes).float()
        W = ridge_solve(X[a], Y, ridge, floor=SMALL_SET_RIDGE)
        pred = (X[b] @ W).double().numpy()
        given = noisy_labels[halves[b]]
        own = pred[np.arange(len(given)), given]
        pred[np.arange(len(given)), given] = -np.inf
        score[halves[b]] = own - pred.max(1)
    per_class = max(1, size // n_classes)
    chosen = []
    for c in range(n_classes):
        rows = np.nonzero(noisy_labels == c)[0]
        if len(rows) == 0:
            raise InputError(f"--meta auto: class {c} has no row in trainlabels.npy")
        chosen.append(rows[np.argsort(-score[rows], kind="stable")[:per_class]])
    return np.sort(np.concatenate(chosen))
