"""EAC's in-sample echo of the given labels, measured on the meta rows and removed.

EAC's classifiers are fitted on the training rows' labels, so on those rows their probabilities
are in-sample: part of what they say is each row's own given label coming back.  The final
decision fits each expert's exponent on the meta rows, where EAC is out-of-fold and that echo
is absent, then applies it to the training rows, where it is not: the given label, already
weighed once through T, is counted a second time.  How large the echo is grows with the
classifier's parameters per row (d x C / N): negligible on CIFAR-10, most of EAC's evidence
with 20 rows a class in 512 dimensions (docs/deviations.md, section B, measures both).

The echo is modelled as one log-odds bonus ``delta`` for each training row's own given label.
It is sized so that, with it removed, the training rows' mean log-likelihood of their given
labels under EAC equals the meta rows' out-of-fold one: both kinds of row then see EAC as a
classifier that did not fit them.  Only the echo the meta rows demonstrate is removed: their
mean negative log-likelihood is taken at its lower confidence bound (:data:`CONFIDENCE_Z`
standard errors below the mean), since a few dozen meta rows measure it loosely and removing
too much turns EAC against the given labels (on 2 and 3 weakly separated classes with 40 meta
rows, the noise model's EM then settles at "labels carry no information"; docs/deviations.md,
section B).  This needs the meta rows' given labels (drawn meta rows); without them the
evidence is left as it is.
"""
from __future__ import annotations

import numpy as np

from .numerics import PROB_FLOOR, safe_log

#: The meta rows' mean negative log-likelihood of their given labels is taken this many standard
#: errors below its mean (a one-sided bound at about 97.5 %).
CONFIDENCE_Z = 2.0
_BISECTIONS = 60          # halvings of [0, _MAX_DELTA]: far below float64 resolution of the mean
_MAX_DELTA = 50.0         # log-odds; e^-50 takes any probability to the floor


def _lowered(p_given: np.ndarray, delta: float):
    """The given label's probability once its log-odds are lowered by ``delta``, and the scale
    that renormalises the row (its new total is ``1 - p + p e^-delta``): ``(p', scale)``."""
    lowered = p_given * np.exp(-delta)
    scale = 1.0 / (1.0 - p_given + lowered)
    return lowered * scale, scale


def _given_nll(p_given: np.ndarray, delta: float) -> float:
    """Mean ``-log`` of the given label's probability once its log-odds are lowered by ``delta``."""
    return float(-safe_log(_lowered(p_given, delta)[0]).mean())


def given_label_echo(train_proba: np.ndarray, given: np.ndarray, meta_proba: np.ndarray,
                     meta_given: np.ndarray) -> float:
    """The log-odds bonus EAC's in-sample probabilities give each training row's own given label.

    Parameters
    ----------
    train_proba : np.ndarray of shape (N, C), float
        EAC's probabilities of the training rows (in-sample).
    given : np.ndarray of shape (N,), integer
        The training rows' given labels.
    meta_proba : np.ndarray of shape (M, C), float
        EAC's out-of-fold probabilities of the meta rows.
    meta_given : np.ndarray of shape (M,), integer
        The meta rows' given (noisy) labels.

    Returns
    -------
    float
        ``delta >= 0`` such that lowering every training row's given-label log-odds by ``delta``
        makes the mean negative log-likelihood of the given labels equal the lower confidence
        bound of the meta rows' out-of-fold one (mean minus :data:`CONFIDENCE_Z` standard
        errors); 0 where the training rows' is already at least that large (no echo shown), or
        with fewer than two meta rows.
    """
    if len(meta_given) < 2:
        return 0.0
    p_given = np.clip(np.asarray(train_proba)[np.arange(len(given)), given].astype(np.float64),
                      PROB_FLOOR, 1.0 - PROB_FLOOR)
    p_meta = np.asarray(meta_proba)[np.arange(len(meta_given)), meta_given].astype(np.float64)
    meta_nll = -safe_log(p_meta)
    target = float(meta_nll.mean() - CONFIDENCE_Z * meta_nll.std(ddof=1) / np.sqrt(len(meta_nll)))
    if _given_nll(p_given, 0.0) >= target:
        return 0.0
    low, high = 0.0, _MAX_DELTA           # _given_nll rises with delta
    for _ in range(_BISECTIONS):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if _given_nll(p_given, middle) < target else (low, middle)
    return low


def remove_echo(train_proba: np.ndarray, given: np.ndarray, delta: float) -> np.ndarray:
    """``train_proba`` with each row's given-label log-odds lowered by ``delta``, rows renormalised.

    Parameters
    ----------
    train_proba : np.ndarray of shape (N, C), float
    given : np.ndarray of shape (N,), integer
    delta : float
        From :func:`given_label_echo`.

    Returns
    -------
    np.ndarray of shape (N, C), the dtype of ``train_proba`` (a new array; rows summing to 1)
    """
    rows = np.arange(len(given))
    out = np.array(train_proba, copy=True)
    p_lowered, scale = _lowered(out[rows, given].astype(np.float64), delta)
    out *= scale[:, None].astype(out.dtype)
    out[rows, given] = p_lowered.astype(out.dtype)
    return out
