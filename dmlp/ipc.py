"""IPC, intrinsic primary correction: the closed-form inner estimator and the meta objective.

For a batch of training features ``X_B`` (b x d) with learnable labels ``Y_B`` (b x C), the
inner problem is a ridge regression solved exactly,

    W(Y_B) = (X_B' X_B + lambda I)^-1 X_B' Y_B,

and the labels are moved by the gradient of the loss of ``W(Y_B)`` on the clean meta set.
Through the closed form that gradient is ``X_B (X_B' X_B + lambda I)^-1 X_meta' G`` (G the loss
gradient w.r.t. the meta predictions): only d x d solves, never a b x b or N x N matrix, and the
Cholesky factor of each batch's Gram matrix is computed once and reused every epoch.

Several label views share the features and the factorisation: their labels are stacked along
the columns (b x V*C), so one matrix product serves all views.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from .heap import release_freed_memory
from .numerics import CHUNK_ELEMENTS, balance_kl_grad, class_balance_kl, fits_in_ram, softmax_backward, softmax_rows
from .seeds import rng
from .ridge import SMALL_SET_RIDGE, closed_form, factor_gram, ridge_solve
from .support import SupportPattern, label_support

log = logging.getLogger("dmlp")


def meta_view_weights(n_meta: int, n_views: int, cross_fit: bool, seed: int,
                      dtype=torch.float32, device="cpu") -> torch.Tensor:
    """V x M weights of the meta rows in each view's meta loss, each view's row summing to 1.

    Without cross-fitting every view sees every meta row (the authors).  With it, the meta rows
    are dealt into V seeded folds and view v sees fold v only, so the other views' predictions
    for those rows are out-of-sample: that is what lets the final decision calibrate itself on
    the meta set (``dmlp.posterior``).
    """
    if not cross_fit or n_views < 2:
        return torch.full((n_views, n_meta), 1.0 / n_meta, dtype=dtype, device=device)
    fold = meta_folds(n_meta, n_views, seed)
    w = torch.zeros(n_views, n_meta, dtype=dtype)
    for v in range(n_views):
        w[v, fold == v] = 1.0 / max(1, int((fold == v).sum()))
    return w.to(device)


def meta_folds(n_meta: int, n_views: int, seed: int) -> np.ndarray:
    """Seeded, balanced assignment of meta rows to views (fold v = rows seen by view v)."""
    fold = np.arange(n_meta) % n_views
    return fold[rng(seed, "meta_folds").permutation(n_meta)]


def meta_objective(Y_B: torch.Tensor, X_B: torch.Tensor, L_B: torch.Tensor,
                   meta_features: torch.Tensor, meta_onehot: torch.Tensor,
                   meta_weights: torch.Tensor, params, balance_rows: slice = slice(None)) -> torch.Tensor:
    """Loss of the closed-form estimator ``W(Y_B)`` on the clean meta set, summed over views
    (written with autograd: the reference the hand-written gradients are tested against).

    ``Y_B`` is b x (V*C) (views stacked), ``meta_onehot`` M x C, ``meta_weights`` V x M (each
    view's weights sum to 1; see :func:`meta_view_weights`).  The loss is
    ``ce_w * CE + mse_w * squared error + balance_w * KL(uniform || mean softmax(X_B W))``,
    the three terms of the authors' meta loss, weighted by ``params`` (an
    :class:`dmlp.config.IPCParams`).
    """
    m, C = meta_onehot.shape
    n_views = meta_weights.shape[0]
    W = closed_form(X_B, Y_B, L_B)                             # d x V*C
    meta_logits = (meta_features @ W).view(m, n_views, C).transpose(0, 1)   # V x M x C
    loss = Y_B.new_zeros(())
    if params.ce_weight:
        ce = -(F.log_softmax(meta_logits, -1) * meta_onehot).sum(-1)          # V x M
        loss = loss + params.ce_weight * (meta_weights * ce).sum()
    if params.mse_weight:
        se = ((meta_logits - meta_onehot.unsqueeze(0)) ** 2).sum(-1)          # V x M
        if params.mse_reduction == "sum":    # the authors' summed error over the view's rows
            se = se * (meta_weights > 0)
        else:
            se = se * meta_weights
        loss = loss + params.mse_weight * se.sum()
    if params.balance_weight:
        rows = X_B[balance_rows]
        batch_logits = (rows @ W).view(rows.shape[0], n_views, C).transpose(0, 1)
        loss = loss + params.balance_weight * class_balance_kl(batch_logits)
    return loss


def meta_logit_grad(meta_logits: torch.Tensor, balance_logits, meta_onehot: torch.Tensor,
                    meta_weights: torch.Tensor, params):
    """``(loss, dLoss/d meta_logits, dLoss/d balance_logits)`` of the meta objective.

    ``meta_logits`` is M x V*C (the estimator's predictions on the meta rows, views stacked),
    ``balance_logits`` n x V*C (on the batch rows of the class-balance prior) or None, both
    optionally with leading batch dims (the loss is then summed over them).  Written
    out by hand (the tests check it against autograd): it runs at every step, and the autograd
    graph would cost more than the arithmetic.
    """
    m, C = meta_onehot.shape
    V = meta_weights.shape[0]
    lead = meta_logits.shape[:-2]                                   # optional batch dims
    z = meta_logits.view(*lead, m, V, C)
    weights = meta_weights.T.unsqueeze(-1)                          # M x V x 1
    loss = z.new_zeros(())
    dz = torch.zeros_like(z)
    if params.ce_weight:
        p, logp = softmax_rows(z)
        loss = loss - params.ce_weight * (weights * logp * meta_onehot.unsqueeze(1)).sum()
        dz += params.ce_weight * weights * (p - meta_onehot.unsqueeze(1))
    if params.mse_weight:
        r = z - meta_onehot.unsqueeze(1)
        s = (weights > 0).to(z.dtype) if params.mse_reduction == "sum" else weights
        loss = loss + params.mse_weight * (s * r * r).sum()
        dz += 2.0 * params.mse_weight * s * r
    d_balance = None
    if params.balance_weight and balance_logits is not None:
        n = balance_logits.shape[-2]
        p, _ = softmax_rows(balance_logits.view(*lead, n, V, C).transpose(-3, -2))     # V x n x C
        kl, g = balance_kl_grad(p)
        loss = loss + params.balance_weight * kl
        d = softmax_backward(p, g)
        d_balance = params.balance_weight * d.transpose(-3, -2).reshape(*lead, n, V * C)
    return loss, dz.view(*lead, m, V * C), d_balance


def meta_loss_grad(W: torch.Tensor, meta_features: torch.Tensor, meta_onehot: torch.Tensor,
                   meta_weights: torch.Tensor, params, balance_features=None):
    """``(loss, dLoss/dW)`` of :func:`meta_objective` as a function of the estimator ``W``."""
    use_balance = bool(params.balance_weight) and balance_features is not None
    loss, d_meta, d_balance = meta_logit_grad(
        meta_features @ W, balance_features @ W if use_balance else None, meta_onehot, meta_weights, params)
    dW = meta_features.T @ d_meta
    if use_balance:
        dW += balance_features.T @ d_balance
    return loss, dW


def label_gradient(Y_B, X_B, L_B, meta_features, meta_onehot, meta_weights, params,
                   balance_features=None):
    """``(loss, dLoss/dY_B)`` of :func:`meta_objective` through the closed form (d x d solves only).

    ``dLoss/dY_B = X_B (X_B'X_B + lambda I)^-1 dLoss/dW``: the chain rule through
    ``W = (X_B'X_B + lambda I)^-1 X_B'Y_B`` with the cached factor ``L_B``.

    Parameters
    ----------
    Y_B : torch.Tensor of shape (b, V*C)
        The batch's labels, views stacked along the columns.
    X_B : torch.Tensor of shape (b, d)
    L_B : torch.Tensor of shape (d, d)
        Cholesky factor of ``X_B'X_B + lambda I`` (:func:`factor_gram`).
    meta_features : torch.Tensor of shape (M, d)
    meta_onehot : torch.Tensor of shape (M, C)
    meta_weights : torch.Tensor of shape (V, M)
        Each view's meta-row weights (:func:`meta_view_weights`).
    params : IPCParams
        The meta objective's weights.
    balance_features : torch.Tensor of shape (n, d), optional
        The batch rows the class-balance prior is evaluated on (default: all of ``X_B``).

    Returns
    -------
    loss : torch.Tensor, scalar
    grad : torch.Tensor of shape (b, V*C)
    """
    W = closed_form(X_B, Y_B, L_B)
    balance_features = X_B if balance_features is None else balance_features
    loss, dW = meta_loss_grad(W, meta_features, meta_onehot, meta_weights, params, balance_features)
    return loss, X_B @ torch.cholesky_solve(dW, L_B)


class BatchFactor:
    """IPC for one batch of the fixed partition: the Cholesky factor ``L`` of
    ``X_B'X_B + lambda I``, computed once and reused every epoch (used when the features
    stream from disk, or for the script's whole-tensor Adam; see :class:`WhitenedBatches`)."""

    def __init__(self, X_B: torch.Tensor, ridge: float, balance_rows: slice):
        self.L, self.lam = factor_gram(X_B, ridge)
        self.balance_features = X_B[balance_rows].clone()

    def gradient(self, Y_B, X_B, meta_features, meta_onehot, meta_weights, params):
        """``(loss, dLoss/dY_B)`` of the meta objective for this batch."""
        return label_gradient(Y_B, X_B, self.L, meta_features, meta_onehot, meta_weights, params,
                              self.balance_features)


class WhitenedBatches:
    """IPC for every batch of the partition at once, on whitened features held in RAM.

    Each batch is kept whitened, ``Q = X_B L^-T`` and ``K = [X_meta; X_balance] L^-T`` with
    ``L L' = X_B'X_B + lambda I``.  Then the closed form's predictions are
    ``X_meta W = K_meta (Q'Y)`` and the label gradient is ``Q K' G`` (G: loss gradient w.r.t.
    the predictions): no solve is left in the loop, and on a well-conditioned basis
    (``Q'Q = I`` up to the ridge) the products can run in bfloat16 without the rounding being
    amplified by an ill-conditioned Gram matrix.  Within an epoch the batches' IPC steps are
    independent (a batch's estimator sees only its own labels), so all batches go through
    one batched product; batches whose sizes differ by one are padded with zero rows.
    """

    def __init__(self, store, ridge: float, balance_rows: slice, meta_features: torch.Tensor, dtype,
                 support=None, n_classes: int = 0, n_views: int = 1):
        """``support``: (N, k) each row's classes of ``n_classes`` (:func:`dmlp.support.label_support`),
        on which the labels of ``n_views`` views passed to :meth:`gradient` live; None: dense."""
        batches = store.batches
        sizes = [s.stop - s.start for s in batches]
        nb, b_max, d = len(batches), max(sizes), meta_features.shape[1]
        dev = meta_features.device
        self.n_meta, self.n_rows = meta_features.shape[0], sum(sizes)
        # on a label support Q meets the sparse labels in torch's sparse kernels: float32 (or float64)
        q_dtype = dtype if support is None or dtype in (torch.float32, torch.float64) else torch.float32
        self.Q = torch.zeros(nb, b_max, d, dtype=q_dtype, device=dev)
        K = []
        for k in range(nb):
            X = store.float_batch(k)
            L, _ = factor_gram(X, ridge)
            eye = torch.eye(d, dtype=L.dtype, device=dev)
            L_inv_T = torch.linalg.solve_triangular(L, eye, upper=False).T          # L^-T
            Q = X @ L_inv_T                                                          # X_B L^-T
            K.append(torch.cat([meta_features @ L_inv_T, Q[balance_rows]]).to(dtype))
            self.Q[k, :len(X)] = Q.to(q_dtype)
        self.K = torch.stack(K)
        self.pad_index = None
        if min(sizes) < b_max:      # position of each padded slot in the label matrix (N = zero row)
            index = torch.full((nb, b_max), self.n_rows, dtype=torch.long)
            for k, s in enumerate(batches):
                index[k, :sizes[k]] = torch.arange(s.start, s.stop)
            self.pad_index = index.to(dev)
            self.valid = (index < self.n_rows).view(-1).to(dev)
        self.sparse = None if support is None else [(s, SupportPattern(support[s], n_classes, n_views))
                                                    for s in batches]

    def groups(self, n_cols: int):
        """Consecutive ranges of batches whose meta predictions (``batches x (M + R) x n_cols``)
        stay below :data:`dmlp.numerics.CHUNK_ELEMENTS`: at many classes the gradient is
        formed group by group, with the same result."""
        nb, rows = self.Q.shape[0], self.K.shape[1]
        per_group = max(1, CHUNK_ELEMENTS // max(1, rows * n_cols))
        return [range(k, min(k + per_group, nb)) for k in range(0, nb, per_group)]

    def gradient(self, labels: torch.Tensor, meta_onehot, meta_weights, params, group: range = None):
        """``(loss summed over the batches, dLoss/dlabels of their rows, those rows)``.

        ``labels`` is the whole N x V*C label matrix (N x V*k on a label support: each row's
        values on its support, :mod:`dmlp.support`); ``group`` a range of batches
        (:meth:`groups`; default all), whose rows are the returned slice of ``labels``.
        """
        group = range(self.Q.shape[0]) if group is None else group
        Q, K = self.Q[group.start:group.stop], self.K[group.start:group.stop]
        low = K.dtype
        if self.sparse is not None:        # the labels on their supports: Q'Y from the non-zeros
            patterns = self.sparse[group.start:group.stop]
            rows = slice(patterns[0][0].start, patterns[-1][0].stop)
            At = torch.stack([pattern.transposed_product(labels[batch], Q[i, :batch.stop - batch.start])
                              for i, (batch, pattern) in enumerate(patterns)])
        else:
            rows, Y = self._labels(labels, group)
            At = torch.bmm(Y.transpose(1, 2).to(low), Q)                  # (Q'Y)', nb x V*C x d
        logits = torch.bmm(K, At.transpose(1, 2).to(low)).to(labels.dtype)    # nb x (M + R) x V*C
        m = self.n_meta
        loss, d_meta, d_balance = meta_logit_grad(logits[:, :m], logits[:, m:], meta_onehot, meta_weights, params)
        d_logits = d_meta if d_balance is None else torch.cat([d_meta, d_balance], 1)
        dAt = torch.bmm(d_logits.transpose(1, 2).to(low), K[:, :d_logits.shape[1]])   # (K'G)'
        if self.sparse is not None:        # the gradient read at the supports only
            grad = torch.cat([pattern.sampled_product(Q[i, :batch.stop - batch.start], dAt[i])
                              for i, (batch, pattern) in enumerate(patterns)])
            return loss, grad.to(labels.dtype), rows
        nb, b_max, _ = Q.shape
        grad = torch.bmm(Q, dAt.transpose(1, 2)).to(labels.dtype).view(nb * b_max, -1)
        return loss, (grad if self.pad_index is None else grad[self._valid(group)]), rows

    def _labels(self, labels: torch.Tensor, group: range):
        """The rows of ``group`` and their labels as ``batches x b_max x cols`` (zero-padded)."""
        nb, b_max, cols = len(group), self.Q.shape[1], labels.shape[1]
        if self.pad_index is None:
            rows = slice(group.start * b_max, group.stop * b_max)
            return rows, labels[rows].view(nb, b_max, cols)
        index = self.pad_index[group.start:group.stop].reshape(-1)
        valid = index < self.n_rows
        rows = slice(int(index[valid][0]), int(index[valid][-1]) + 1)
        Y = labels.new_zeros(nb * b_max, cols)
        Y[valid] = labels[index[valid]]
        return rows, Y.view(nb, b_max, cols)

    def _valid(self, group: range) -> torch.Tensor:
        return self.pad_index[group.start:group.stop].reshape(-1) < self.n_rows


# --- IPC as the loop sees it: one interface, three implementations, one factory ---------------

class IPCCorrection:
    """One IPC step per batch and epoch: the labels take an Adam step along the meta gradient.

    The loop calls :meth:`epoch_step` once per epoch, then :meth:`batch_step` for each batch in
    visit order (between EAC's steps); an implementation does its work in one of the two.
    ``state`` is the run's :class:`dmlp.state.LabelState`, ``meta`` its :class:`dmlp.state.MetaSet`.
    """

    support = None       # (N, k) the classes of each row's labels (dmlp.support); None: all classes

    def __init__(self, meta, params):
        self.meta, self.params = meta, params

    def epoch_step(self, state) -> float:
        """IPC of every batch at once; returns the summed meta loss (0.0: done per batch)."""
        return 0.0

    def batch_step(self, state, k: int, X_B: torch.Tensor) -> float:
        """IPC of batch ``k`` (features ``X_B``); returns its meta loss (0.0: done per epoch)."""
        return 0.0

    def release(self) -> None:
        """Free the per-batch factorisations once the loop is done (no step may follow)."""
        self.__dict__.pop("batches", None)
        self.__dict__.pop("factors", None)


class WhitenedIPC(IPCCorrection):
    """All batches' IPC steps in one batched product on whitened copies (:class:`WhitenedBatches`):
    within an epoch a batch's estimator sees only its own labels, so the steps are independent."""

    def __init__(self, store, meta, params, support=None):
        super().__init__(meta, params)
        self.support = support
        self.batches = WhitenedBatches(store, params.ridge, _balance_rows(params), meta.features, store.dtype,
                                       support, meta.onehot.shape[1], meta.view_weights.shape[0])

    def epoch_step(self, state) -> float:
        loss = 0.0
        n_views, n_classes = self.meta.view_weights.shape[0], self.meta.onehot.shape[1]
        for group in self.batches.groups(n_views * n_classes):
            group_loss, grad, rows = self.batches.gradient(state.flat, self.meta.onehot, self.meta.view_weights,
                                                           self.params, group)
            state.adam.step(state.flat, rows, grad)
            loss += float(group_loss)
        return loss


class FactoredIPC(IPCCorrection):
    """Batch by batch through each batch's cached Cholesky factor (:class:`BatchFactor`): for
    features streamed from disk, where whitened copies would not fit."""

    def __init__(self, store, meta, params):
        super().__init__(meta, params)
        self.store = store
        self.factors = [BatchFactor(store.float_batch(k), params.ridge, _balance_rows(params))
                        for k in range(len(store))]

    def batch_step(self, state, k: int, X_B: torch.Tensor) -> float:
        rows = self.store.batches[k]
        loss, grad = self.factors[k].gradient(state.flat[rows], X_B.float(), self.meta.features,
                                              self.meta.onehot, self.meta.view_weights, self.params)
        self.update(state, rows, grad)
        return float(loss)

    def update(self, state, rows: slice, grad: torch.Tensor) -> None:
        state.adam.step(state.flat, rows, grad)


class WholeTensorIPC(FactoredIPC):
    """The authors' script: one Adam over the whole N x C label tensor at every batch, so rows
    outside the batch decay and move by their stale momentum (``label_update_all_rows``)."""

    def update(self, state, rows: slice, grad: torch.Tensor) -> None:
        full = torch.zeros_like(state.flat)
        full[rows] = grad
        state.adam.step(state.flat, slice(None), full)


def make_ipc(store, meta, params, resident_limit_gb: float, *, given: np.ndarray = None,
             seed: int = 0) -> IPCCorrection:
    """The IPC implementation for this run.

    Parameters
    ----------
    store : dmlp.batches.FeatureStore
    meta : dmlp.state.MetaSet
    params : IPCParams
    resident_limit_gb : float
        The whitened copies are used when they fit in RAM beside the features.
    given : np.ndarray of int, shape (N,), optional
        The given labels, batch order: with them and ``params.support`` below the class count,
        the whitened IPC keeps the labels on a label support (:func:`dmlp.support.label_support`,
        seeded by ``seed``); its ``support`` attribute is then that support (else None), with
        which the run's :class:`dmlp.state.LabelState` must be made.

    Returns
    -------
    IPCCorrection
        :class:`WholeTensorIPC` with ``update_all_rows``, else :class:`WhitenedIPC` when the
        features are resident and two copies fit, else :class:`FactoredIPC`.
    """
    if params.update_all_rows:
        return WholeTensorIPC(store, meta, params)
    N, d = len(store.order), meta.features.shape[1]
    if store.resident and fits_in_ram(N, d, resident_limit_gb, copies=2, item_bytes=store.data.element_size()):
        support = None if given is None else label_support(store, given, meta.onehot.shape[1], params.support,
                                                            ridge=params.ridge, seed=seed)
        if support is None and given is not None and params.support:
            log.warning("label_support = %d is more than a tenth of the %d classes: the labels stay dense in "
                        "the classes", params.support, meta.onehot.shape[1])
        ipc = WhitenedIPC(store, meta, params, support)
        release_freed_memory()
        return ipc
    if given is not None and params.support:
        log.warning("label_support = %d applies to features held in RAM only: these are streamed from disk, "
                    "so the labels stay dense in the classes", params.support)
    return FactoredIPC(store, meta, params)


def _balance_rows(params) -> slice:
    return slice(0, params.balance_rows) if params.balance_rows > 0 else slice(None)


def meta_ridge_proba(store, meta_features: torch.Tensor, meta_onehot: torch.Tensor, ridge: float) -> np.ndarray:
    """Class probabilities of the training rows from a ridge estimator fitted on the meta set.

    Parameters
    ----------
    store : dmlp.batches.FeatureStore
        The training rows, in batch order.
    meta_features : torch.Tensor of shape (M, d)
    meta_onehot : torch.Tensor of shape (M, C)
    ridge : float
        Relative ridge (at least :data:`dmlp.ridge.SMALL_SET_RIDGE`: M rows rarely determine d
        coefficients).

    Returns
    -------
    np.ndarray of shape (N, C), float32
        Clipped at 0, plus 1e-3, row-normalised; batch order.
    """
    W = ridge_solve(meta_features, meta_onehot, ridge, floor=SMALL_SET_RIDGE)
    P = torch.cat([(store.rows(r).float() @ W).clamp_min(0) for r in store.batches]) + 1e-3
    return (P / P.sum(1, keepdim=True)).cpu().numpy()
