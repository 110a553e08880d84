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

import numpy as np
import torch

from .seeds import rng, torch_seed

MINIBATCH = 256        # rows per Adam step
LEARNING_RATE = 1e-3   # Adam's rate (from zero weights: the softmax regression is convex)


@dataclass
class HeldOutEvidence:
    """Class probabilities of :func:`cross_fitted_proba`."""
    train: np.ndarray      # (N, C) float32, each training row judged by the classifier that did not fit it
    meta: np.ndarray       # (M, C) meta rows: geometric mean of both classifiers


def halves(n_rows: int, seed: int) -> np.ndarray:
    """The half (0 or 1) of each of ``n_rows`` rows (batch order), seeded, sizes differing by at most 1."""
    return rng(seed, "heldout_halves").permutation(n_rows) % 2


def cross_fitted_proba(store, meta_features: torch.Tensor, targets: np.ndarray, *, epochs: int,
                       seed: int) -> HeldOutEvidence:
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

    Returns
    -------
    HeldOutEvidence
    """
    N, C = targets.shape
    device = meta_features.device
    part = torch.as_tensor(halves(N, seed), device=device)
    Q = torch.as_tensor(targets, dtype=torch.float32, device=device)
    d = meta_features.shape[1]
    models = [torch.nn.Linear(d, C).to(device) for _ in range(2)]
    for m in models:                         # zero start: deterministic, and the problem is convex
        torch.nn.init.zeros_(m.weight)
        torch.nn.init.zeros_(m.bias)
    optimisers = [torch.optim.Adam(m.parameters(), lr=LEARNING_RATE) for m in models]
    generator = torch.Generator().manual_seed(torch_seed(seed, "heldout_order"))
    for epoch in range(max(1, epochs)):
        for k in rng(seed, "heldout_order", epoch).permutation(len(store)):
            rows = store.batches[k]
            X = store.batch(k).float()
            for j, (model, opt) in enumerate(zip(models, optimisers)):
                mine = torch.nonzero(part[rows] == j).squeeze(1)
                mine = mine[torch.randperm(len(mine), generator=generator).to(device)]
                for s in range(0, len(mine), MINIBATCH):
                    b = mine[s:s + MINIBATCH]
                    opt.zero_grad()
                    loss = -(Q[rows][b] * torch.log_softmax(model(X[b]), 1)).sum(1).mean()
                    loss.backward()
                    opt.step()
    with torch.no_grad():
        train = torch.empty(N, C, device=device)
        for rows in store.batches:
            X = store.rows(rows).float()
            other = (1 - part[rows]).bool()          # judged by the classifier of the other half
            train[rows] = torch.where(other[:, None], torch.softmax(models[1](X), 1),
                                      torch.softmax(models[0](X), 1))
        log_meta = sum(torch.log_softmax(m(meta_features.float()), 1) for m in models) / 2
        meta = torch.softmax(log_meta, 1)
    return HeldOutEvidence(train.cpu().numpy(), meta.double().cpu().numpy())   # train: float32, as computed
