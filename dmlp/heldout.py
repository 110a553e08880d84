"""A cross-fitted classifier on the posterior: out-of-sample evidence for every training row.

The exponents of the final decision are fitted on the meta rows, whose EAC evidence is
out-of-fold.  On the training rows EAC is in-sample: it was fitted to their labels, so part of
what it says there is those labels coming back, and an exponent fitted out-of-sample over-trusts
it.  This stage fits two linear softmax classifiers on the decision's posterior as soft targets,
each on one half of the training rows, and gives each row the prediction of the classifier that
did not fit it (cross-fitting, as in double machine learning; Chernozhukov et al., 2018).  The
meta rows, fitted by neither, get the geometric mean of both.  Its log-probabilities enter the
posterior as one more expert, with its own fitted exponent (docs/deviations.md, section B).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .config import EACParams
from .eac import AuxiliaryClassifier
from .seeds import rng, torch_seed

MINIBATCH = 256        # rows of each half per Adam step
# Plain softmax regression on soft targets: no balance prior, no meta term, no decay; Adam's rate
# 1e-3 from zero weights (the problem is convex).
SOFTMAX_REGRESSION = EACParams(lr=1e-3, lr_decay=1.0, confidence_penalty=0.0, balance_weight=0.0,
                               forward_correction=False, meta_weight=0.0)


@dataclass
class HeldOutEvidence:
    """Class probabilities of :func:`cross_fitted_proba`."""
    train: np.ndarray      # (N, C) float32, each training row judged by the classifier that did not fit it
    meta: np.ndarray       # (M, C) meta rows: geometric mean of both classifiers


def halves(n_rows: int, seed: int) -> np.ndarray:
    """The half (0 or 1) of each of ``n_rows`` rows (batch order), seeded, sizes differing by at most 1."""
    return rng(seed, "heldout_halves").permutation(n_rows) % 2


def cross_fitted_proba(store, meta_features: torch.Tensor, targets: np.ndarray, *, epochs: int,
                       seed: int, meta_fold: Optional[np.ndarray] = None) -> HeldOutEvidence:
    """Two linear classifiers fitted on the soft ``targets`` of complementary halves of the rows.

    Parameters
    ----------
    store : dmlp.batches.FeatureStore
        The training rows' features, batch by batch (read once per batch and epoch).
    meta_features : torch.Tensor of shape (M, d)
    targets : np.ndarray of shape (N, C), float
        The posterior of each training row (batch order), rows summing to 1.
    epochs : int
        Passes over the rows (at least 1).
    seed : int
        Seeds the halves (:func:`halves`) and the minibatch order.
    meta_fold : np.ndarray of shape (M,), 0 or 1, optional
        Meta row i is judged by the classifier of half ``meta_fold[i]`` alone (the decision's
        check, whose targets for half h carry nothing of meta fold h); without it, by the
        geometric mean of both.

    Returns
    -------
    HeldOutEvidence
    """
    N, C = targets.shape
    device = meta_features.device
    part = torch.as_tensor(halves(N, seed), device=device)
    Q = torch.as_tensor(targets, dtype=torch.float32, device=device)
    # The two halves' classifiers as the two views of one stacked classifier: a row's target is
    # zero in the view of the half it does not belong to, so each view fits its own half only.
    classifier = AuxiliaryClassifier(meta_features.shape[1], C, 2, SOFTMAX_REGRESSION, generator=None,
                                     device=device)          # float32 products
    generator = torch.Generator().manual_seed(torch_seed(seed, "heldout_order"))
    for epoch in range(max(1, epochs)):
        for k in rng(seed, "heldout_order", epoch).permutation(len(store)):
            rows = store.batches[k]
            X, Q_B, part_B = store.batch(k), Q[rows], part[rows]
            order = torch.randperm(len(X), generator=generator).to(device)
            for s in range(0, len(order), 2 * MINIBATCH):      # about MINIBATCH rows of each half
                b = order[s:s + 2 * MINIBATCH]
                in_half = torch.stack([part_B[b] == 0, part_B[b] == 1]).unsqueeze(-1)    # 2 x b x 1
                classifier.step(X[b], Q_B[b].unsqueeze(0) * in_half)
    with torch.no_grad():
        train = torch.empty(N, C, device=device)
        for rows in store.batches:
            p = classifier.predict_proba(store.rows(rows))              # 2 x b x C
            other = (1 - part[rows]).bool()          # judged by the classifier of the other half
            train[rows] = torch.where(other[:, None], p[1], p[0])
        if meta_fold is None:
            meta = torch.softmax(classifier.logits(meta_features).float().log_softmax(-1).mean(0), -1)
        else:
            p = classifier.predict_proba(meta_features).float()                       # 2 x M x C
            meta = torch.where(torch.as_tensor(meta_fold, device=device).bool()[:, None], p[1], p[0])
    return HeldOutEvidence(train.cpu().numpy(), meta.double().cpu().numpy())   # train: float32, as computed
