"""The state objects of a run: the clean meta set it reads, and the labels it learns.

:class:`MetaSet` is fixed for the run.  :class:`LabelState` is everything the loop changes
(besides EAC's classifier): the label views, their row-wise Adam, the transition model, the
epoch and the history; a checkpoint is its :meth:`LabelState.state_dict` (plus EAC's), and
resuming is :meth:`LabelState.load_state_dict` of it.  Rows are in *batch order* (position p
holds original row ``order[p]`` of :func:`dmlp.batches.make_partition`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .ipc import meta_folds, meta_view_weights
from .numerics import PROB_FLOOR, RowAdam, cache_row_blocks
from .support import on_support, support_positions, to_dense
from .transition import TransitionModel


@dataclass
class MetaSet:
    """The clean meta set as the loop and the final decision use it.

    Build it with :meth:`build`; tensors are on the run's device.
    """
    features: torch.Tensor           # (M, d) float32, scaled as the training rows
    labels: torch.Tensor             # (M,) int64 clean labels
    onehot: torch.Tensor             # (M, C) float32
    view_weights: torch.Tensor       # (V, M): each view's meta-loss weights, rows summing to 1
    fold: np.ndarray                 # (M,) the view that fits each row (all 0 without cross-fitting)
    clean_labels: np.ndarray         # (M,) int64, the labels as NumPy
    given_labels: Optional[np.ndarray]  # (M,) their given (noisy) labels, when known
    cross_fitted: bool               # views fit disjoint folds: their other views judge them

    @classmethod
    def build(cls, features: torch.Tensor, labels: np.ndarray, given_labels: Optional[np.ndarray],
              n_classes: int, n_views: int, cross_fit: bool, seed: int) -> "MetaSet":
        """The meta set of ``n_views`` views, dealt into seeded folds with ``cross_fit``.

        Parameters
        ----------
        features : torch.Tensor of shape (M, d)
        labels : np.ndarray of shape (M,), int64
        given_labels : np.ndarray of shape (M,), or None
        n_classes, n_views : int
        cross_fit : bool
            View v's meta loss sees fold v only (:func:`dmlp.ipc.meta_view_weights`).
        seed : int
        """
        device = features.device
        y = torch.as_tensor(labels, device=device)
        cross_fitted = bool(cross_fit and n_views > 1)
        fold = meta_folds(len(labels), n_views, seed) if cross_fitted else np.zeros(len(labels), int)
        return cls(features, y, torch.nn.functional.one_hot(y, n_classes).float(),
                   meta_view_weights(len(labels), n_views, cross_fit, seed, device=device),
                   fold, labels, given_labels, cross_fitted)


def label_distribution(labels: torch.Tensor) -> torch.Tensor:
    """Free label parameters -> distributions: clip at 0 and normalise (uniform if all <= 0).

    Parameters
    ----------
    labels : torch.Tensor of shape (..., C)

    Returns
    -------
    torch.Tensor of the same shape, rows summing to 1
    """
    P = labels.clamp_min(0)
    total = P.sum(-1, keepdim=True)
    return torch.where(total > 0, P / total.clamp_min(PROB_FLOOR), 1.0 / P.shape[-1])


def label_argmax(labels: torch.Tensor) -> torch.Tensor:
    """``label_distribution(labels).mean(1).argmax(-1)`` in two passes over ``labels`` (N, V, C).

    A view whose labels are all <= 0 is uniform, the same for every class, so it cannot move
    the argmax and is left out of the sum.
    """
    P = labels.clamp_min(0)
    scale = P.sum(-1, keepdim=True)
    scale = torch.where(scale > 0, 1.0 / scale.clamp_min(PROB_FLOOR), 0.0)
    # the views' weighted sum in place, view by view: one pass each (an einsum goes through bmm)
    total = P[:, 0].mul_(scale[:, 0])
    for v in range(1, P.shape[1]):
        total.addcmul_(P[:, v], scale[:, v])
    return total.argmax(-1)


@dataclass
class LabelState:
    """What the loop learns: the labels of every view and what moves them.

    Create it with :meth:`initial`; ``epochs_done`` counts the completed epochs.  With a label
    support (:mod:`dmlp.support`) ``labels`` holds each row's values on its k candidate classes
    only, the others being zero; every method that returns classes returns them dense (C).
    """
    labels: torch.Tensor                    # (N, V, K) float32, batch order: IPC's parameters (K = C,
                                            # or k with a support)
    adam: RowAdam                           # over ``flat``, one row per training row
    transition: Optional[TransitionModel]   # T[true, given], re-estimated at the exchanges
    epochs_done: int = 0
    history: list = field(default_factory=list)   # per epoch: meta_loss (, label_accuracy)
    support: Optional[torch.Tensor] = None  # (N, k) int64: each row's candidate classes (None: all)
    n_classes: int = 0                      # C (needed with a support)

    @classmethod
    def initial(cls, given: torch.Tensor, n_classes: int, n_views: int, params,
                transition: Optional[TransitionModel] = None,
                support: Optional[torch.Tensor] = None) -> "LabelState":
        """Every view starts at the one-hot given labels.

        Parameters
        ----------
        given : torch.Tensor of shape (N,), int64
            The given labels, batch order.
        n_classes, n_views : int
        params : IPCParams
            The labels' Adam (``lr``, ``betas``, ``weight_decay``).
        transition : TransitionModel, optional
        support : torch.Tensor of shape (N, k), int64, optional
            Each row's candidate classes (:func:`dmlp.support.label_support`; the given label
            among them); None: all classes.
        """
        if support is None:
            onehot = torch.nn.functional.one_hot(given, n_classes)
        else:
            onehot = torch.nn.functional.one_hot(support_positions(support, given), support.shape[1])
        labels = onehot.float().unsqueeze(1).repeat(1, n_views, 1)
        adam = RowAdam(len(given), labels[0].numel(), params.lr, params.betas, params.weight_decay,
                       device=given.device)
        return cls(labels, adam, transition, support=support, n_classes=n_classes)

    def _dense(self, values: torch.Tensor, rows: slice) -> torch.Tensor:
        """``(n, K)`` values of ``rows`` as ``(n, C)`` (unchanged without a support)."""
        return values if self.support is None else to_dense(values, self.support[rows], self.n_classes)

    def at_support(self, values: torch.Tensor, rows: slice) -> torch.Tensor:
        """Dense ``(..., n, C)`` values of ``rows`` read where their labels live: ``(..., n, K)``."""
        return values if self.support is None else on_support(values, self.support[rows])

    def view_argmax(self, rows: slice) -> torch.Tensor:
        """(V, n): each view's class of largest label, for the rows ``rows``."""
        position = self.labels[rows].argmax(-1).T
        return position if self.support is None else self.support[rows].T.gather(0, position)

    def argmax(self, rows: slice = slice(None)) -> torch.Tensor:
        """(n,) the class of largest averaged distribution of each row of ``rows`` (:func:`label_argmax`)."""
        position = label_argmax(self.labels[rows])
        return position if self.support is None else self.support[rows].gather(1, position.unsqueeze(1)).squeeze(1)

    @property
    def flat(self) -> torch.Tensor:
        """The labels as one (N, V*C) matrix (a view: the views stacked along the columns)."""
        return self.labels.view(self.labels.shape[0], -1)

    def distribution(self) -> torch.Tensor:
        """(N, C): the views' label distributions, averaged (row block by row block: the
        temporaries stay small however many rows and classes)."""
        N, _, K = self.labels.shape
        C = K if self.support is None else self.n_classes
        out = torch.empty(N, C, dtype=self.labels.dtype, device=self.labels.device)
        for rows in cache_row_blocks(N, self.labels[0].numel()):
            out[rows] = self._dense(label_distribution(self.labels[rows]).mean(1), rows)
        return out

    def fold_free_offsets(self) -> torch.Tensor:
        """(V, N, C): what turns :meth:`distribution` into the mean of the other views' distributions.

        ``distribution() + offsets[v]`` is the labels as seen without view v, the view whose meta
        loss fits meta fold v (:func:`dmlp.ipc.meta_view_weights`): seeds for the final decision's
        check on the meta rows of fold v (:func:`dmlp.posterior.graph_evidence`).  Needs two views or more.
        """
        N, V, K = self.labels.shape
        C = K if self.support is None else self.n_classes
        out = torch.empty(V, N, C, dtype=self.labels.dtype, device=self.labels.device)
        for rows in cache_row_blocks(N, self.labels[0].numel()):
            P = label_distribution(self.labels[rows])                # b x V x K
            offsets = (P.mean(1, keepdim=True) - P) / (V - 1)
            for v in range(V):
                out[v, rows] = self._dense(offsets[:, v], rows)
        return out

    def record(self, meta_loss: float, truth: Optional[torch.Tensor] = None) -> dict:
        """Close an epoch: append its record (label accuracy when ``truth`` is given)."""
        self.epochs_done += 1
        record = {"epoch": self.epochs_done, "meta_loss": meta_loss}
        if truth is not None:
            right = sum(int((self.argmax(rows) == truth[rows]).sum())
                        for rows in cache_row_blocks(len(self.labels), self.labels[0].numel()))
            record["label_accuracy"] = right / len(truth)
        self.history.append(record)
        return record

    def release(self) -> "torch.Tensor":
        """The labels' final distribution (:meth:`distribution`), freeing the labels and their
        Adam moments (3 x N x V x K): the loop is done, no step or checkpoint follows."""
        soft = self.distribution()
        self.labels = self.adam = None
        return soft

    def state_dict(self) -> dict:
        """The state on the CPU; ``epoch`` is the index of the last completed epoch.

        On the CPU the tensors are the state's own, not copies (at 1,000 classes the labels and
        their moments are over a gigabyte): save the dict before the next epoch, or copy it."""
        return {"epoch": self.epochs_done - 1, "labels": self.labels.cpu(),
                "support": None if self.support is None else self.support.cpu(),
                "history": list(self.history),
                "adam": {k: v.cpu() for k, v in self.adam.state_dict().items()},
                "transition": None if self.transition is None else self.transition.matrix.cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output (onto this state's device)."""
        device = self.labels.device
        support = state.get("support")
        if (support is None) != (self.support is None) or (support is not None and not torch.equal(
                support.to(device), self.support)):
            raise ValueError("the checkpoint's label support differs from this run's")
        self.labels.copy_(state["labels"].to(device))
        self.adam.load_state_dict({k: v.to(device) for k, v in state["adam"].items()})
        if self.transition is not None and state.get("transition") is not None:
            self.transition.matrix = state["transition"].to(device)
        self.epochs_done, self.history = int(state["epoch"]) + 1, list(state["history"])
