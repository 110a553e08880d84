"""Whether the purified labels serve better than the given ones, estimated without ground truth.

A run whose meta set is picked from the noisy data (``--meta auto``) has no clean label to
measure itself against.  What it has is the given labels themselves.  Two ridge classifiers are
cross-fitted, one on the purified and one on the given labels: each row is predicted by the
estimator fitted on the other half, which never saw the row's given label.  Under
class-conditional noise a held-out given label is more often the true class than any one other
class, so the classifier whose held-out predictions agree more often with the held-out given
labels is the more accurate one.  What this measures is the labels' worth for training a
classifier (what they are for), not their accuracy row by row: labels smoothed toward the
features can train a better classifier while being less often right themselves (measured on
weak features in docs/deviations.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .ridge import SMALL_SET_RIDGE, closed_form, factor_gram_matrix
from .seeds import rng


@dataclass(frozen=True)
class LabelAudit:
    """The held-out check of a run's changed labels."""
    n_changed: int             # rows whose purified label differs from the given one
    support_purified: float    # held-out agreement with the given labels, classifier fitted on the purified labels
    support_given: float       # the same, classifier fitted on the given labels
    purified_better: bool      # the purified labels are estimated to beat the given ones

    def to_dict(self) -> dict:
        """The fields as plain JSON-able values (as summary.json records them)."""
        return asdict(self)


def cross_fitted_ridge_scores(store, labels: np.ndarray, n_classes: int, *, ridge: float, seed: int) -> np.ndarray:
    """Held-out ridge scores of every row: fitted on the other half's labels, one pass over the rows.

    Parameters
    ----------
    store : dmlp.batches.FeatureStore
        The rows' features, batch order (read twice, batch by batch: memory ``d x d`` per half).
    labels : np.ndarray of int, shape (N,)
        The labels to fit (one-hot targets), batch order.
    n_classes : int
    ridge : float
        Relative ridge (at least :data:`dmlp.ridge.SMALL_SET_RIDGE`).
    seed : int
        Seeds the halves (stream ``"audit_halves"``).

    Returns
    -------
    np.ndarray of shape (N, C), float32
        Row i's scores from the estimator fitted on the half that does not hold i.
    """
    N = len(labels)
    half = torch.as_tensor(rng(seed, "audit_halves").permutation(N) % 2)
    Y = torch.as_tensor(labels)
    d = store.features.shape[1]
    grams = torch.zeros(2, d, d, dtype=torch.float64)
    moments = torch.zeros(2, d, n_classes, dtype=torch.float64)
    for k in range(len(store)):
        X, rows = store.float_batch(k).double().cpu(), store.batches[k]
        for h in (0, 1):
            mine = half[rows] == h
            grams[h] += X[mine].T @ X[mine]
            moments[h].index_add_(1, Y[rows][mine], X[mine].T)
    W = [closed_form_from(grams[h], moments[h], ridge) for h in (0, 1)]
    scores = np.empty((N, n_classes), dtype=np.float32)
    for k in range(len(store)):
        X, rows = store.float_batch(k).double().cpu(), store.batches[k]
        other = (1 - half[rows]).bool()[:, None]          # judged by the estimator of the other half
        scores[rows] = torch.where(other, X @ W[1], X @ W[0]).float().numpy()
    return scores


def closed_form_from(gram: torch.Tensor, moment: torch.Tensor, ridge: float) -> torch.Tensor:
    """``(X'X + lambda I)^-1 X'Y`` from ``X'X`` and ``X'Y`` (relative ridge, small-set floor)."""
    L, _ = factor_gram_matrix(gram, max(float(ridge), SMALL_SET_RIDGE))
    return torch.cholesky_solve(moment, L)


def audit_changes(store, given: np.ndarray, purified: np.ndarray, n_classes: int, *, ridge: float,
                  seed: int) -> LabelAudit:
    """Estimate, without ground truth, whether ``purified`` beats ``given``.

    Two ridge classifiers are cross-fitted, one on the purified labels and one on the given
    labels; each row is predicted by the estimator fitted on the other half.  Under class-
    conditional noise a row's given label is more often right than any one wrong class, so
    the classifier whose held-out predictions agree more often with the held-out given labels
    is the more accurate one: the labels it was fitted on carry more of the truth.

    Parameters
    ----------
    store : dmlp.batches.FeatureStore
        The training rows' features, batch order.
    given, purified : np.ndarray of int, shape (N,)
        The given and the purified labels, batch order.
    n_classes : int
    ridge : float
        Relative ridge of the held-out estimators.
    seed : int

    Returns
    -------
    LabelAudit
        ``purified_better`` unless the classifier fitted on the purified labels agrees less often
        with the held-out given labels than the classifier fitted on the given labels (a tie is
        no evidence against the purifier).
    """
    changed = int((purified != given).sum())
    if changed == 0:
        return LabelAudit(0, 0.0, 0.0, True)
    agree = {}
    for name, labels in (("purified", purified), ("given", given)):
        scores = cross_fitted_ridge_scores(store, labels, n_classes, ridge=ridge, seed=seed)
        agree[name] = float((scores.argmax(1) == given).mean())
    return LabelAudit(changed, agree["purified"], agree["given"], agree["purified"] >= agree["given"])
