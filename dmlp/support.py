"""The label support: the k candidate classes on which IPC's labels of a row may be non-zero.

IPC's labels are dense in the classes, so each epoch touches N x V x C values and the two
products that carry them (the estimator's ``Q'Y`` and the label gradient ``Q K'G``) cost
``N d V C``: at a thousand classes nearly all of it spent on classes a row's label never takes.
With a support, row i's labels live on ``k`` classes (its given label and the ``k - 1`` classes
a ridge estimator cross-fitted on the given labels scores highest) and are zero, and stay zero,
elsewhere.  The estimator and its meta loss are unchanged: the labels outside the support are
exactly zero, so ``Q'Y`` and the gradient on the support are the dense ones, formed at ``N d V k``
cost (:class:`dmlp.ipc.WhitenedBatches`), and the labels' Adam moments and checkpoints hold
``N V k`` values.  EAC, the exchange's predictions and the final decision stay dense in the
classes; a class outside a row's support can still be its final label.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import torch

from .audit import held_out_batch_scores

#: A support is used only where it holds at most this share of the classes: above it the sparse
#: products run no faster than the dense ones they replace (docs/benchmarks.md, "Cost at many classes").
MAX_SUPPORT_SHARE = 0.1


def label_support(store, given: np.ndarray, n_classes: int, size: int, *, ridge: float,
                  seed: int) -> Optional[torch.Tensor]:
    """Each row's label support: its given label and the top ``size - 1`` of a ridge estimator.

    The estimator is fitted on the given labels, one per seeded half of the rows; a row is
    scored by the half that does not hold it (:func:`dmlp.audit.held_out_batch_scores`), so its
    own given label does not count twice among its candidates.

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
    ridge : float
        Relative ridge of the estimator.
    seed : int
        Seeds its halves.

    Returns
    -------
    torch.Tensor of shape (N, k), int64, on the store's device, or None (all classes)
        Each row's classes in ascending order, the given label among them.
    """
    if size <= 0 or size > MAX_SUPPORT_SHARE * n_classes:
        return None
    support = []
    for rows, scores in held_out_batch_scores(store, given, n_classes, ridge=ridge, seed=seed):
        scores[torch.arange(len(scores)), torch.as_tensor(given[rows])] = float("inf")
        support.append(scores.topk(size, dim=1).indices.sort(dim=1).values)
    return torch.cat(support).to(store.device)


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


class SupportPattern:
    """Rows' values on their supports as sparse matrices (:mod:`dmlp.support`).

    Row i's values are ``(V, k)`` at columns ``v C + support[i, j]`` of a dense ``n x V C``
    matrix.  The two products IPC needs then run on the non-zeros only: ``Y'X`` (a sparse
    ``V C x n`` times a dense ``n x d``) and ``X B'`` read at the support (a sampled dense
    product), each ``n d V k`` multiply-adds instead of ``n d V C``.  The pattern is fixed for
    the run; only its values change.
    """

    def __init__(self, support: torch.Tensor, n_classes: int, n_views: int):
        n, k = support.shape
        dev = support.device
        self.support, self.n_classes = support, n_classes
        columns = (support.unsqueeze(1) + n_classes * torch.arange(n_views, device=dev).view(1, -1, 1)).reshape(-1)
        per_row = n_views * k
        self.size = (n, n_views * n_classes)
        self.crow = torch.arange(0, n * per_row + 1, per_row, device=dev)
        self.col = columns                                             # ascending within a row
        row_of = torch.arange(n, device=dev).repeat_interleave(per_row)
        self.by_column = torch.argsort(columns * n + row_of)          # the transpose's value order
        counts = torch.bincount(columns, minlength=n_views * n_classes)
        self.crow_t = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        self.col_t = row_of[self.by_column]

    def transposed_product(self, values: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """``Y'X`` (V C x d) of the values ``Y`` (n x V k, the pattern's layout) and ``X`` (n x d)."""
        Yt = _csr(self.crow_t, self.col_t, values.reshape(-1)[self.by_column].to(X.dtype), self.size[::-1])
        return torch.sparse.mm(Yt, X)

    def sampled_product(self, X: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """``X B'`` read at the support: ``(n, V k)`` for ``X`` (n x d) and ``B`` (V C x d)."""
        pattern = _csr(self.crow, self.col, X.new_zeros(len(self.col)), self.size)
        return torch.sparse.sampled_addmm(pattern, X, B.to(X.dtype).T, beta=0.0).values().view(self.size[0], -1)


def _csr(crow, col, values, size) -> torch.Tensor:
    with warnings.catch_warnings():          # "sparse CSR support is in beta": these products are not
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=size)
