"""The noise-transition model and the Bayes decision of the default configuration.

The given label ``g`` of a row is modelled as drawn from ``T[true, :]``, the transition matrix
(Patrini et al., CVPR 2017), so the posterior of the true class is

    q(c | x, g)  proportional to  p(c | x) * T[c, g].

``T`` is counted on the meta rows, whose given and clean labels are both known (+ smoothing).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch


def estimate_transition(meta_true: np.ndarray, meta_given: Optional[np.ndarray], n_classes: int,
                        smoothing: float = 0.5) -> np.ndarray:
    """T[true, given] counted on the meta rows, smoothed and row-normalised.

    Without the meta rows' given labels (a separate clean set, or ``--meta auto``) the identity
    smoothed by the same amount is returned: the given label is then trusted as a prior only.
    """
    T = np.full((n_classes, n_classes), float(smoothing))
    if meta_given is not None:
        np.add.at(T, (np.asarray(meta_true), np.asarray(meta_given)), 1.0)
    else:
        T += np.eye(n_classes) * max(1.0, len(meta_true) / n_classes)
    return T / T.sum(1, keepdims=True)


def bayes_posterior(soft, eac_prob, given, transition, store, batches, cfg, meta):
    """Posterior of the true class of each row (batch order), and notes for the log."""
    prior = eac_prob if eac_prob is not None else soft
    q = prior * transition[:, given].T
    q = q / q.sum(1, keepdim=True).clamp_min(1e-12)
    return q, []
