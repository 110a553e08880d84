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

The comparison assumes that the features carry evidence about the classes at all.  Where they
do not, the purified labels are a function of features that say nothing, and the classifier
fitted on them can still win: its labels were formed from the neighbours' given labels (through
the graph and the loop), which leaks the held-out labels into it, and a classifier that predicts
the largest classes agrees with them more often than one fitted on noise.  So the check first
asks whether the features predict the given labels at all, with nothing purified involved: the
classifier cross-fitted on the given labels must beat predictions blind to the rows in balanced
agreement with the held-out given labels (each class weighted equally, so that predicting the
largest class earns nothing), at permutation p-value :data:`INFORMATION_LEVEL`; otherwise the
given labels are kept.

Last, the run's own model must not contradict the premise it was built on.  ``--meta auto``
trusts the given labels of the rows that look most plausible; the final model (its fitted T and
its feature terms) must find those labels more likely right than wrong on average (the mean
posterior of the trusted label, :data:`MIN_META_LABEL_BELIEF`).  A model that believes most of
the most plausible given labels wrong has estimated a noise rate the data cannot bear, and its
changes are not kept.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np
import torch

from .ridge import SMALL_SET_RIDGE, ridge_from_moments
from .seeds import rng

#: The final model must find the meta rows' trusted labels (``--meta auto``'s most plausible given
#: labels) right with at least this mean posterior: more likely right than wrong.
MIN_META_LABEL_BELIEF = 0.5

#: The given-label classifier's balanced agreement with held-out given labels must beat
#: predictions blind to the rows at this permutation p-value before any change is accepted.
INFORMATION_LEVEL = 0.01
INFORMATION_PERMUTATIONS = 199


@dataclass(frozen=True)
class LabelAudit:
    """The held-out check of a run's changed labels."""
    n_changed: int             # rows whose purified label differs from the given one
    support_purified: Optional[float]   # held-out agreement with the given labels, classifier fitted on the
                                        # purified labels (None: no label changed, not tested)
    support_given: Optional[float]      # the same, classifier fitted on the given labels
    purified_better: bool      # the purified labels are estimated to beat the given ones
    information_p: Optional[float] = None       # permutation p-value of the given-label classifier's
                                                # balanced agreement (None: no label changed, not tested)
    meta_label_belief: Optional[float] = None   # the final model's mean posterior of the trusted meta labels

    def _belief_fails(self) -> bool:
        return self.meta_label_belief is not None and self.meta_label_belief < MIN_META_LABEL_BELIEF

    def _information_fails(self) -> bool:
        return self.information_p is not None and self.information_p > INFORMATION_LEVEL

    def model_credible(self) -> bool:
        """Whether the features showed evidence and the model believed its trusted rows: if not,
        its per-row estimates (``label_quality``) are no more credible than its labels."""
        return not (self._belief_fails() or self._information_fails())

    def comparison(self) -> str:
        """The two classifiers' held-out agreements, as the summary line states them."""
        return (f"a classifier fitted on the purified labels agrees with held-out given labels on "
                f"{100 * self.support_purified:.2f} % of rows, one fitted on the given labels on "
                f"{100 * self.support_given:.2f} %")

    def reasons_to_keep_given(self) -> list:
        """Why the given labels are kept, one phrase per failed check (empty: none failed)."""
        if self.n_changed == 0:
            return []
        reasons = []
        if self._belief_fails():
            reasons.append(f"the purifier's own model finds the given labels of the rows it picked as the most "
                           f"plausible right with probability {self.meta_label_belief:.2f} on average (below "
                           f"{MIN_META_LABEL_BELIEF:g}): its noise estimate contradicts its premise")
        if self._information_fails():
            reasons.append(f"a classifier fitted on the given labels predicts held-out given labels no better than "
                           f"chance (permutation p = {self.information_p:.3f}, {INFORMATION_LEVEL:g} needed): the "
                           "features show no evidence, in these rows, to change labels by")
        if not reasons and not self.purified_better:
            reasons.append(f"{self.comparison()}: the purified labels are no better")
        return reasons

    def why_kept(self) -> str:
        """:meth:`reasons_to_keep_given` as one clause (empty when the purified labels are kept)."""
        return "; and ".join(self.reasons_to_keep_given())

    def to_dict(self) -> dict:
        """The fields as plain JSON-able values (as summary.json records them)."""
        return asdict(self)


def half_estimators(store, labels: np.ndarray, n_classes: int, *, ridge: float, seed: int):
    """Ridge estimators fitted on each seeded half of the rows: ``(half, W)``.

    Parameters
    ----------
    store : dmlp.batches.FeatureStore
        The rows' features, batch order (read once, batch by batch: memory ``d x d`` per half).
    labels : np.ndarray of int, shape (N,) or (k, N)
        The labels to fit (one-hot targets), batch order; ``k`` label vectors share the pass
        and the factorisations.
    n_classes : int
    ridge : float
        Relative ridge (at least :data:`dmlp.ridge.SMALL_SET_RIDGE`).
    seed : int
        Seeds the halves (stream ``"audit_halves"``).

    Returns
    -------
    half : torch.Tensor of shape (N,), int64
        Each row's half, 0 or 1.
    W : list of two torch.Tensor of shape (d, k * C), float64
        The estimator of half 0 and of half 1; label vector j's classes in columns ``j C ... (j + 1) C - 1``.
    """
    stacked = np.atleast_2d(np.asarray(labels))
    k, N = stacked.shape
    half = torch.as_tensor(rng(seed, "audit_halves").permutation(N) % 2)
    columns = torch.as_tensor(stacked + n_classes * np.arange(k)[:, None])
    d = store.features.shape[1]
    grams = torch.zeros(2, d, d, dtype=torch.float64)
    moments = torch.zeros(2, d, k * n_classes, dtype=torch.float64)
    for b in range(len(store)):
        X, rows = store.float_batch(b).double().cpu(), store.batches[b]
        for h in (0, 1):
            mine = half[rows] == h
            grams[h] += X[mine].T @ X[mine]
            for j in range(k):
                moments[h].index_add_(1, columns[j, rows][mine], X[mine].T)
    return half, [ridge_from_moments(grams[h], moments[h], ridge, floor=SMALL_SET_RIDGE) for h in (0, 1)]


def cross_fitted_ridge_scores(store, labels: np.ndarray, n_classes: int, *, ridge: float, seed: int) -> np.ndarray:
    """Held-out ridge scores of every row: fitted on the other half's labels (:func:`half_estimators`).

    Parameters
    ----------
    store : dmlp.batches.FeatureStore
        The rows' features, batch order (read twice, batch by batch).
    labels : np.ndarray of int, shape (N,) or (k, N)
        The labels to fit, batch order.
    n_classes : int
    ridge : float
        Relative ridge (at least :data:`dmlp.ridge.SMALL_SET_RIDGE`).
    seed : int
        Seeds the halves.

    Returns
    -------
    np.ndarray of shape (N, C), or (k, N, C) for ``k`` label vectors, float32
        Row i's scores from the estimator fitted on the half that does not hold i.
    """
    labels = np.asarray(labels)
    k, N = np.atleast_2d(labels).shape
    scores = np.empty((N, k * n_classes), dtype=np.float32)
    for rows, batch_scores in held_out_batch_scores(store, labels, n_classes, ridge=ridge, seed=seed):
        scores[rows] = batch_scores.float().numpy()
    scores = scores.reshape(N, k, n_classes).transpose(1, 0, 2)
    return scores[0] if labels.ndim == 1 else scores


def held_out_batch_scores(store, labels: np.ndarray, n_classes: int, *, ridge: float, seed: int):
    """Batch by batch, ``(rows, scores)``: each row scored by the estimator of the half that does
    not hold it (:func:`half_estimators`; ``scores`` float64, rows x k C, on the CPU)."""
    half, W = half_estimators(store, labels, n_classes, ridge=ridge, seed=seed)
    for b in range(len(store)):
        X, rows = store.float_batch(b).double().cpu(), store.batches[b]
        other = (1 - half[rows]).bool()[:, None]          # judged by the estimator of the other half
        yield rows, torch.where(other, X @ W[1], X @ W[0])


def audit_changes(store, given: np.ndarray, purified: np.ndarray, n_classes: int, *, ridge: float,
                  seed: int, meta_label_belief: Optional[float] = None) -> LabelAudit:
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
    meta_label_belief : float, optional
        The final model's mean posterior of the meta rows' trusted labels (``--meta auto``:
        ``meta_label_belief`` of the decision's notes); None: not checked.

    Returns
    -------
    LabelAudit
        ``purified_better`` when ``meta_label_belief`` (if given) is at least
        :data:`MIN_META_LABEL_BELIEF`, the features carry evidence about the given labels
        (:func:`information_p_value` of the given-label classifier at most
        :data:`INFORMATION_LEVEL`) and the classifier fitted on the purified labels agrees at least
        as often with the held-out given labels as the one fitted on the given labels (a tie is
        no evidence against the purifier).
    """
    changed = int((purified != given).sum())
    if changed == 0:
        return LabelAudit(0, None, None, True, None, meta_label_belief)
    scores = cross_fitted_ridge_scores(store, np.stack([purified, given]), n_classes, ridge=ridge, seed=seed)
    for_purified, for_given = (float((s.argmax(1) == given).mean()) for s in scores)
    p = information_p_value(scores[1].argmax(1), given, n_classes, seed=seed)
    audit = LabelAudit(changed, for_purified, for_given, False, p, meta_label_belief)
    return replace(audit, purified_better=audit.model_credible() and for_purified >= for_given)


def balanced_agreement(predicted: np.ndarray, given: np.ndarray, n_classes: int) -> float:
    """Mean over the present given classes of the share of a class's rows predicted as that class.

    Any prediction made without looking at the rows (a constant, or classes drawn in any
    proportions) has expectation ``1 / C`` (C present classes), whatever the class sizes: unlike
    plain agreement, predicting the largest class earns nothing.
    """
    counts = np.bincount(given, minlength=n_classes)
    present = counts > 0
    hits = np.bincount(given[predicted == given], minlength=n_classes)
    return float((hits[present] / counts[present]).mean())


def information_p_value(predicted: np.ndarray, given: np.ndarray, n_classes: int, *, seed: int,
                        permutations: int = INFORMATION_PERMUTATIONS) -> float:
    """Permutation p-value of :func:`balanced_agreement` against predictions blind to the rows.

    The predictions are shuffled across the rows (which keeps their class proportions and
    breaks any link with the rows), ``permutations`` times; the p-value is the share of
    shuffles, the observed order counted as one, whose balanced agreement reaches the observed
    one.  A permutation test, because with classes of a few rows the agreement's distribution
    is too skewed for a normal approximation.

    Parameters
    ----------
    predicted, given : np.ndarray of int, shape (N,)
        Held-out predictions and the given labels of the same rows.
    n_classes : int
    seed : int
        Seeds the shuffles (stream ``"audit_permutations"``).
    permutations : int

    Returns
    -------
    float
        In ``[1 / (permutations + 1), 1]``.
    """
    observed = balanced_agreement(predicted, given, n_classes)
    shuffle = rng(seed, "audit_permutations")
    reached = sum(balanced_agreement(shuffle.permutation(predicted), given, n_classes) >= observed
                  for _ in range(permutations))
    return (1 + reached) / (1 + permutations)
