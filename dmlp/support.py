"""The label support: the k candidate classes on which IPC's labels of a row may be non-zero.

IPC's labels are dense in the classes, so each epoch touches N x V x C values and the two
products that carry them (the estimator's ``Q'Y`` and the label gradient ``Q K'G``) cost
``N d V C``: at a thousand classes nearly all of it spent on classes a row's label never takes.
With a support, row i's labels live on ``k`` classes (its given label and the ``k - 1`` classes
a ridge estimator cross-fitted on the given labels scores highest) and are zero, and stay zero,
elsewhere.  The estimator and its meta loss are unchanged: the labels outside the support are
exactly zero, so ``Q'Y`` and the gradient on the support are the dense ones, formed at ``N d V k``
cost (:class:`dmlp.ipc.WhitenedBatches`).  EAC, the exchange's predictions and the final
decision stay dense in the classes; a class outside a row's support can still be its final label.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import torch

from .audit import half_estimators

#: A support is used only where it holds at most this share of the classes: below it the sparse
#: products run slower than the dense ones they replace (docs/benchmarks.md, "Cost at many classes").
MAX_SUPPORT_SHARE = 0.25


class LabelSupport(NamedTuple):
    """Each row's candidate classes, ascending: the training rows' and the meta rows'."""
    rows: torch.Tensor          # (N, k) int64, batch order, the given label among them
    meta: torch.Tensor          # (M, k) int64, the clean label among them


def label_support(store, given: np.ndarray, n_classes: int, size: int, *, meta_features: torch.Tensor,
                  meta_labels: np.ndarray, ridge: float, seed: int) -> Optional[LabelSupport]:
    """The label support of a run: each row's given label and the top ``size - 1`` of a ridge estimator.

    The estimator is fitted on the given labels, one per seeded half of the rows
    (:func:`dmlp.audit.half_estimators`): a training row is scored by the half that does not hold
    it, so its own given label does not count twice among its candidates; a meta row by the mean
    of the two, with its clean label always among its candidates (the meta loss needs it).

    Parameters
    ----------
    store : dmlp.batches.FeatureStore
        The training rows, batch order.
    given : np.ndarray of int, shape (N,)
        The given labels, batch order.
    n_classes : int
    size : int
        Classes per row, k; 0, or above :data:`MAX_SUPPORT_SHARE` of ``n_classes``: no support
        (all classes).
    meta_features : torch.Tensor of shape (M, d)
        Scaled as the training rows.
    meta_labels : np.ndarray of int, shape (M,)
        Their clean labels.
    ridge : float
        Relative ridge of the estimator.
    seed : int
        Seeds its halves.

    Returns
    -------
    LabelSupport, on the store's device, or None (all classes)
    """
    if size <= 0 or size > MAX_SUPPORT_SHARE * n_classes:
        return None
    half, W = half_estimators(store, given, n_classes, ridge=ridge, seed=seed)
    rows = []
    for b in range(len(store)):
        X, batch = store.float_batch(b).double().cpu(), store.batches[b]
        other = (1 - half[batch]).bool()[:, None]            # scored by the half that does not hold it
        rows.append(_top(torch.where(other, X @ W[1], X @ W[0]), torch.as_tensor(given[batch]), size))
    meta_scores = meta_features.double().cpu() @ (W[0] + W[1]) / 2
    meta = _top(meta_scores, torch.as_tensor(meta_labels), size)
    return LabelSupport(torch.cat(rows).to(store.device), meta.to(store.device))


def _top(scores: torch.Tensor, forced: torch.Tensor, size: int) -> torch.Tensor:
    """Each row's ``size`` highest-scoring classes, ``forced`` among them, in ascending order."""
    scores[torch.arange(len(forced)), forced] = float("inf")
    return scores.topk(size, dim=1).indices.sort(dim=1).values


def support_positions(support: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Where each row's class sits in its support: ``support[i, pos[i]] == classes[i]``.

    Parameters
    ----------
    support : torch.Tensor of shape (n, k), int64
    classes : torch.Tensor of shape (n,), int64
        One class of each row's support.

    Returns
    -------
    torch.Tensor of shape (n,), int64
    """
    return (support == classes.unsqueeze(1)).to(torch.int8).argmax(1)


def on_support(values: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """A dense ``(..., n, C)`` array read at each row's support: ``(..., n, k)``."""
    return values.gather(-1, support.expand(*values.shape[:-2], *support.shape))


def to_dense(values: torch.Tensor, support: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``(n, k)`` values on the support as a dense ``(n, C)`` array, zero elsewhere."""
    out = values.new_zeros(values.shape[0], n_classes)
    return out.scatter_(1, support, values)
