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
from .validation import check_meta_indices, check_meta_labels, one_based_hint  # noqa: F401  (re-exported)
from .seeds import rng


@dataclass
class MetaSelection:
    """Which rows are the clean meta set, as the command line chose them (files, draw, --meta auto)."""
    features: np.ndarray              # M x d
    labels: np.ndarray                # M clean (or trusted) labels
    indices: np.ndarray               # rows of the training set used as meta (empty if separate)
    noisy_labels: Optional[np.ndarray]  # given labels of those rows (None if not training rows)
    source: str


def draw_meta_indices(true_labels: np.ndarray, size: int, seed: int, *, argument: str = "meta_size") -> np.ndarray:
    """A seeded, class-stratified draw of ``size`` training rows whose true label is known.

    Every class with a known row gets one meta row; the other ``size - K`` rows (K classes) go to
    the classes in proportion to their known rows (largest remainders, never more rows than a
    class has), each class's rows drawn uniformly.  A uniform draw of 1,000 rows misses classes
    once there are a few hundred of them; this one never does while ``size >= K``.

    Parameters
    ----------
    true_labels : numpy.ndarray of int, shape (N,)
        The true labels; -1 marks a row whose true label is unknown (never drawn).
    size : int
        How many rows to draw (the authors draw 1,000, unseeded and not stratified).
    seed : int
        Seed of the draw (its own stream, ``"meta_draw"`` of :mod:`dmlp.seeds`).
    argument : str
        Names ``size`` in errors.

    Returns
    -------
    numpy.ndarray of int64
        The drawn row indices, sorted.

    Raises
    ------
    InputError
        ``size`` not below N, fewer known rows than ``size``, or fewer rows than classes.
    """
    true_labels = np.asarray(true_labels)
    n = len(true_labels)
    known = np.flatnonzero(true_labels >= 0)
    if not 0 < size < n:
        raise InputError(f"must be between 1 and {n - 1}", argument=argument, value=size)
    if size > len(known):
        raise InputError(f"correctlabels.npy knows the true label of only {len(known)} "
                         f"rows (the others are -1); the meta set is drawn from those", argument=argument, value=size)
    classes, counts = np.unique(true_labels[known], return_counts=True)
    if size < len(classes):
        raise InputError(f"a meta set of {size} rows cannot hold one clean row of each of the {len(classes)} "
                         f"classes: give a meta size of at least {len(classes)}", argument=argument, value=size)
    quota = np.ones(len(classes), dtype=np.int64) + _proportional(size - len(classes), counts - 1)
    draw = rng(seed, "meta_draw")
    by_class = np.split(known[np.argsort(true_labels[known], kind="stable")], np.cumsum(counts)[:-1])
    return np.sort(np.concatenate([draw.choice(rows, q, replace=False) for rows, q in zip(by_class, quota)]))


def _proportional(total: int, room: np.ndarray) -> np.ndarray:
    """``total`` items shared in proportion to ``room`` (largest remainders), none above its room."""
    room = np.asarray(room, dtype=np.int64)
    share = np.zeros(len(room), dtype=np.int64)
    while total > 0 and (room > share).any():
        free = room - share
        weight = np.where(free > 0, room, 0).astype(np.float64)
        exact = total * weight / weight.sum()
        step = np.minimum(np.floor(exact).astype(np.int64), free)
        left = total - int(step.sum())
        if left > 0:                               # the remainders, largest first, where there is room
            remainder = np.where(step < free, exact - np.floor(exact), -1.0)
            best = np.argsort(-remainder, kind="stable")[:left]
            step[best[remainder[best] >= 0]] += 1
        share += step
        total -= int(step.sum())
    return share


def auto_meta_config(config):
    """The config for a run whose meta set is :func:`auto_meta_indices`' choice: no held-out
    expert, and the changed labels audited against the given ones (:mod:`dmlp.audit`).

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
        ``config`` with ``heldout_fraction = 0`` and ``audit = true``: with no clean
        label to measure against, the run checks its changes on held-out given labels and keeps
        the given labels where the check finds the purified ones no better.
    """
    return config.replace(heldout_fraction=0.0, audit=True)


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
    order = rng(seed, "auto_meta").permutation(n)
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
            raise InputError(f"auto_meta=True: class {c} has no row in trainlabels.npy, so no row can vouch for it "
                             "(the classes must be numbered 0..C-1 with every one present: renumber the labels"
                             f"{one_based_hint(noisy_labels)})")
        chosen.append(rows[np.argsort(-score[rows], kind="stable")[:per_class]])
    return np.sort(np.concatenate(chosen))
