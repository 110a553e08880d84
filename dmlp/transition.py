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

from concurrent.futures import ThreadPoolExecutor
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


#: Candidate prior strengths, in units of ``smoothing * C`` pseudo-counts per row, among which
#: :func:`prior_strength` picks by marginal likelihood: from a touch (noise toward particular
#: classes) to the pooled model outright (symmetric noise).
STRENGTH_GRID = np.logspace(-2, 4, 13)


def pooled_transition(counts) -> tuple:
    """The pooled noise model of the counts: ``(1 - rho, rho / (C - 1))`` with ``rho`` the
    off-diagonal share of all counts, ``(off + 1/2) / (total + 1)``."""
    C = counts.shape[0]
    total = float(counts.sum())
    diagonal = float(counts.trace())                 # numpy arrays and torch tensors alike
    rho = (total - diagonal + 0.5) / (total + 1.0)
    return 1.0 - rho, rho / max(C - 1, 1)


def prior_strength(counts: np.ndarray, smoothing: float) -> float:
    """Pseudo-counts per row that the counts themselves support (empirical Bayes).

    Each row's counts are modelled as Dirichlet-multinomial around the pooled model ``T0``
    with concentration ``kappa``; ``kappa`` maximises their marginal likelihood over
    ``smoothing * C * STRENGTH_GRID`` (Minka, 2000, "Estimating a Dirichlet distribution").  Rows that follow the pooled model
    (symmetric noise) earn a large ``kappa``, rows that deviate from it (noise toward
    particular classes) a small one, so the shrinkage is as strong as the data allow.

    Parameters
    ----------
    counts : np.ndarray of shape (C, C), float64
    smoothing : float
        The grid's unit, per class of a row.

    Returns
    -------
    float
    """
    from scipy.special import gammaln
    C = counts.shape[0]
    same, other = pooled_transition(counts)
    n = counts.sum(1)
    diagonal = np.diagonal(counts)

    def log_likelihood(kappa):
        a_same, a_other = kappa * same, kappa * other
        # sum over cells of gammaln(count + a) - gammaln(a), a = a_same on the diagonal and
        # a_other elsewhere: the gammaln(a) part in closed form (one pass over C x C, not two)
        cells = (gammaln(counts + a_other).sum() + (gammaln(diagonal + a_same) - gammaln(diagonal + a_other)).sum()
                 - C * gammaln(a_same) - C * (C - 1) * gammaln(a_other))
        return float(C * gammaln(kappa) - gammaln(n + kappa).sum() + cells)

    grid = float(smoothing) * C * STRENGTH_GRID
    if C < 100:             # a few thousand cells: starting threads would cost more
        lls = [log_likelihood(kappa) for kappa in grid]
    else:                   # SciPy's ufuncs release the GIL: the grid's points on every core
        with ThreadPoolExecutor(torch.get_num_threads()) as pool:
            lls = list(pool.map(log_likelihood, grid))
    return float(grid[int(np.argmax(lls))])


def normalise_counts(counts, smoothing: float):
    """Rows of T from (soft) counts, each shrunk toward the pooled noise model, row-normalised.

    Every row gets ``kappa`` pseudo-counts spread as the pooled model ``T0`` (:func:`pooled_transition`:
    ``1 - rho`` on the diagonal, ``rho / (C - 1)`` elsewhere), ``kappa`` chosen by
    :func:`prior_strength`.  A class with few counts borrows the
    noise rate of the others instead of being flattened toward uniform: a flat pseudo-count per
    cell would give each row ``C`` times the pseudo-counts, which at a thousand classes buries a
    row's few meta counts and makes the given label count for nothing.  Last, no row may make a
    wrong given label likelier than the true class (:func:`diagonally_dominant`).

    Parameters
    ----------
    counts : np.ndarray or torch.Tensor of shape (C, C)
        (Soft) counts of (true, given) pairs.
    smoothing : float
        Unit of the prior strength, per class of a row (0: the counts alone).

    Returns
    -------
    Same type as ``counts``, shape (C, C)
    """
    C = counts.shape[0]
    eye = torch.eye(C, dtype=counts.dtype, device=counts.device) if isinstance(counts, torch.Tensor) else np.eye(C)
    if smoothing:
        as_numpy = counts.detach().double().cpu().numpy() if isinstance(counts, torch.Tensor) else np.asarray(counts)
        strength = prior_strength(as_numpy, smoothing)
        same, other = pooled_transition(as_numpy)
        counts = counts + strength * other + strength * (same - other) * eye
    return diagonally_dominant(counts / counts.sum(1)[:, None])


def diagonally_dominant(transition):
    """Each row of ``transition`` moved toward its one-hot diagonal just far enough that no
    given label is likelier than the true class: ``T[c, c] >= T[c, g]`` for every g.

    This is the identifiability assumption of class-conditional noise (Patrini et al., 2017;
    the audit's and the meta draw's premise too): without it a model that flips every label
    explains the data as well as one that keeps them, and a few meta rows whose given labels
    happen to be wrong (two of two on a 2-class set) would make the model believe every label
    flipped.  Row c becomes ``(1 - a) T[c] + a e_c`` with the smallest ``a`` in [0, 1] that
    reaches a tie; rows that already satisfy it are unchanged.

    Parameters
    ----------
    transition : np.ndarray or torch.Tensor of shape (C, C)
        Rows summing to 1.

    Returns
    -------
    The same type, shape (C, C), rows summing to 1.
    """
    C = transition.shape[0]
    eye = (torch.eye(C, dtype=transition.dtype, device=transition.device) if isinstance(transition, torch.Tensor)
           else np.eye(C))
    diagonal = (transition * eye).sum(1)
    others = transition - 2 * eye                    # the diagonal out of the running
    largest_other = others.amax(1) if isinstance(others, torch.Tensor) else others.max(1)
    a = ((largest_other - diagonal) / (1 - diagonal + largest_other).clip(TINY_PROB)).clip(0, 1)   # 0/0: a perfect row
    return transition * (1 - a)[:, None] + a[:, None] * eye


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
    whose given label is g, plus ``counts``, shrunk by :func:`normalise_counts` (the M-step of
    Dawid & Skene).

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
    T = torch.zeros(C, C, dtype=torch.float64) if counts is None else torch.tensor(counts, dtype=torch.float64)
    # T[:, g] += p(. | x_i) for the rows given g, in one scatter-add over the rows
    T.T.index_add_(0, torch.as_tensor(np.asarray(given), dtype=torch.int64),
                   torch.as_tensor(np.asarray(prob), dtype=torch.float64))
    return normalise_counts(T.numpy(), smoothing)


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
