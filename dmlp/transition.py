"""The noise-transition matrix ``T[true, given]`` (Patrini et al., CVPR 2017).

The given label ``g`` of a row is modelled as drawn from ``T[true, :]``.  ``T`` is counted on
the meta rows, whose clean and given labels are both known, or softly from the posteriors of all
rows (the EM of Dawid & Skene, 1979), always smoothed and row-normalised by
:func:`normalise_counts`.  The posterior of the true class given the features and the given
label is ``p(c | x) T[c, g]`` renormalised (:func:`given_label_posterior`; in log space in
:meth:`TransitionModel.posterior`).

The functions work on NumPy arrays (the final decision, the baselines); :class:`TransitionModel`
holds the loop's ``T`` as a tensor and re-estimates it at the exchanges.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .errors import check_finite
from .numerics import TINY_PROB, normalise_rows


def transition_counts(true: np.ndarray, given: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of the rows whose true class is c and given label is g.

    Parameters
    ----------
    true, given : np.ndarray of shape (n,), integer
    n_classes : int

    Returns
    -------
    np.ndarray of shape (C, C), float64
    """
    counts = np.zeros((n_classes, n_classes))
    np.add.at(counts, (np.asarray(true), np.asarray(given)), 1.0)
    return counts


def normalise_counts(counts, smoothing: float):
    """``T = (counts + smoothing)`` with each row scaled to sum to 1.

    Parameters
    ----------
    counts : np.ndarray or torch.Tensor of shape (C, C)
        (Soft) counts of (true, given) pairs.
    smoothing : float
        Added to every cell: keeps each row a distribution when its class has no row.

    Returns
    -------
    Same type as ``counts``, shape (C, C)
    """
    T = counts + smoothing
    return T / T.sum(1)[:, None]


def estimate_transition(meta_true: np.ndarray, meta_given: Optional[np.ndarray], n_classes: int,
                        smoothing: float = 0.5) -> Optional[np.ndarray]:
    """T counted on the meta rows, smoothed and row-normalised.

    Parameters
    ----------
    meta_true : np.ndarray of shape (M,), integer
        The meta rows' clean labels.
    meta_given : np.ndarray of shape (M,), integer, or None
        Their given labels, when known.
    n_classes : int
    smoothing : float

    Returns
    -------
    np.ndarray of shape (C, C), float64, or None
        None without the meta rows' given labels (a separate clean set, or ``--meta auto``): T
        is then estimated from a model's posteriors (:func:`transition_from_posteriors`).
    """
    if meta_given is None:
        return None
    return normalise_counts(transition_counts(meta_true, meta_given, n_classes), float(smoothing))


def transition_from_posteriors(prob: np.ndarray, given: np.ndarray, smoothing: float = 0.5,
                               counts: Optional[np.ndarray] = None) -> np.ndarray:
    """T from soft counts: ``T[c, g]`` proportional to the sum of ``p(c | x_i)`` over the rows
    whose given label is g, plus ``counts`` and ``smoothing`` (the M-step of Dawid & Skene).

    Parameters
    ----------
    prob : np.ndarray of shape (N, C)
        Posterior of the true class of each row.
    given : np.ndarray of shape (N,), integer
    smoothing : float
    counts : np.ndarray of shape (C, C), optional
        Exact counts to add (the meta rows').

    Returns
    -------
    np.ndarray of shape (C, C), float64
    """
    C = prob.shape[1]
    T = np.full((C, C), float(smoothing))
    if counts is not None:
        T += counts
    for g in range(C):
        T[:, g] += prob[given == g].sum(0)
    return normalise_counts(T, 0.0)


def given_label_posterior(prob: np.ndarray, transition: np.ndarray, given: np.ndarray) -> np.ndarray:
    """The posterior of the true class given the features and the given label, ``p(c|x) T[c, given]``.

    Parameters
    ----------
    prob : np.ndarray of shape (N, C)
        ``p(c | x)`` of each row.
    transition : np.ndarray of shape (C, C)
        ``T[true, given]``, rows summing to 1.
    given : np.ndarray of shape (N,), integer
        The given (noisy) label of each row.

    Returns
    -------
    np.ndarray of shape (N, C)
        Rows floored at ``PROB_FLOOR`` and normalised to sum to 1.
    """
    return normalise_rows(prob * transition[:, given].T)


class TransitionModel:
    """The loop's ``T[true, given]`` (a tensor), its posterior and its EM re-estimation.

    Parameters
    ----------
    matrix : torch.Tensor of shape (C, C), float32
        The initial T (counted on the meta rows, or from a meta-fitted estimator).
    meta_counts : torch.Tensor of shape (C, C)
        The meta rows' exact (true, given) counts, added at every re-estimation (zeros when the
        meta rows' given labels are unknown).
    smoothing : float
    em : bool
        Whether the loop re-estimates T at the exchanges (``transition_em_steps`` > 0).
    """

    def __init__(self, matrix: torch.Tensor, meta_counts: torch.Tensor, smoothing: float, em: bool = False):
        self.matrix, self.meta_counts, self.smoothing, self.em = matrix, meta_counts, smoothing, em

    def posterior(self, prob: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
        """``p(c | x) T[c, given]`` renormalised, formed in log space.

        ``prob`` is (V, b, C) (or (b, C)), ``given`` (b,); a product of small probabilities
        must not underflow, hence the logs.
        """
        log_q = prob.clamp_min(TINY_PROB).log() + self.matrix[:, given].T.clamp_min(TINY_PROB).log()
        return torch.softmax(log_q, -1)

    def soft_counts(self) -> torch.Tensor:
        """A zero (C, C) accumulator for :meth:`update` (``index_add_`` posteriors into it)."""
        return torch.zeros_like(self.meta_counts)

    def update(self, soft_counts: torch.Tensor, stage: str) -> None:
        """The M-step: T from the rows' soft counts plus the meta counts, smoothed.

        Raises
        ------
        NonFiniteError
            The new T is not finite (``stage`` names where, in the message).
        """
        self.matrix = check_finite(normalise_counts(soft_counts + self.meta_counts, self.smoothing), stage)
