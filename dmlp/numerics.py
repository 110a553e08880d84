"""Shared numerics of IPC, EAC and the final decision: floors, chunk sizes, safe logs, row
normalisation, softmax, the class-balance prior and the row-wise Adam optimiser.

IPC (``dmlp.ipc``) and EAC (``dmlp.eac``) both import from here and never from each other: the
two corrections meet only in the loop (``dmlp.purify``).  Shapes are written ``(rows, C)``; a
leading ``V`` is the label views.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

#: Floor of probabilities before a log or a division (keeps ``log 0`` and ``x / 0`` finite).
PROB_FLOOR = 1e-12
#: Floor of probabilities whose logs are summed (log-space products): far below any
#: probability that matters, still a normal float32.
TINY_PROB = 1e-30
#: Rows per chunk when features are normalised, projected or scanned: bounds the float32
#: temporaries to ``CHUNK_ROWS x d`` whatever the number of rows.
CHUNK_ROWS = 16384

#: Elements of the largest float32 temporary a batched product may create at once (128 MiB):
#: work over many classes is split into groups that stay below it.
CHUNK_ELEMENTS = 2 ** 25
#: Elements of a row block of element-wise work done pass after pass (2 MiB in float64): the
#: block stays in cache between the passes, where a whole N x C array would go to memory each time.
CACHE_BLOCK_ELEMENTS = 2 ** 18
#: Rows per chunk when a memory map is gathered into a tensor (:func:`dmlp.batches.gather_rows`).
GATHER_ROWS = 4096
#: Bytes of one float32 feature value: the unit of the resident-memory budget.
FLOAT32_BYTES = 4


def fits_in_ram(n_rows: int, n_cols: int, limit_gb: float, copies: int = 1,
                item_bytes: int = FLOAT32_BYTES) -> bool:
    """Whether ``copies`` matrices of shape (n_rows, n_cols) fit in ``limit_gb`` GiB.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape of one matrix.
    limit_gb : float
        The budget, in GiB (``resident_limit_gb`` of the run settings).
    copies : int
        How many such matrices must be held at once.
    item_bytes : int
        Bytes per value (4: float32, the unit of the budget).

    Returns
    -------
    bool
    """
    return copies * n_rows * n_cols * item_bytes <= limit_gb * 2 ** 30


def cache_row_blocks(n_rows: int, row_elements: int):
    """Slices of rows covering ``0..n_rows-1``, each of about :data:`CACHE_BLOCK_ELEMENTS`
    values when a row holds ``row_elements``: element-wise work done pass after pass over a
    block reads it from cache, and its temporaries stay bounded however many classes."""
    block = max(1, CACHE_BLOCK_ELEMENTS // max(1, row_elements))
    return [slice(s, min(s + block, n_rows)) for s in range(0, n_rows, block)]


def safe_log(P: np.ndarray) -> np.ndarray:
    """``log(max(P, PROB_FLOOR))`` element-wise, for arrays of probabilities of any shape."""
    return _threaded(P).clamp_min(PROB_FLOOR).log_().numpy()


def normalise_rows(P: np.ndarray) -> np.ndarray:
    """Rows of ``P`` (rows, C) floored at ``PROB_FLOOR`` and scaled to sum to 1."""
    Q = _threaded(P).clamp_min(PROB_FLOOR)
    return Q.div_(Q.sum(1, keepdim=True)).numpy()


def stable_exp_rows(z: np.ndarray) -> np.ndarray:
    """Row-normalised ``exp(z)`` of log-scores ``z`` (rows, C), shifted by the row maximum."""
    return stable_exp_rows_(_threaded(z).clone()).numpy()


def stable_exp_rows_(z: torch.Tensor) -> torch.Tensor:
    """:func:`stable_exp_rows` in place on a (rows, C) tensor; returns ``z``."""
    z.sub_(z.amax(1, keepdim=True)).exp_().clamp_min_(PROB_FLOOR)
    return z.div_(z.sum(1, keepdim=True))


def _threaded(a) -> torch.Tensor:
    """A NumPy array as a CPU tensor sharing its memory (a copy only if its strides need one):
    torch's element-wise kernels use every thread, NumPy's one."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    if not (a.flags.c_contiguous or a.flags.f_contiguous) or not a.flags.writeable:
        a = np.ascontiguousarray(a) if a.flags.writeable else a.copy()
    return torch.from_numpy(a)


def softmax_rows(logits: torch.Tensor, dim: int = -1):
    """Softmax of ``logits`` over ``dim`` and its log: ``(p, log p)``, same shape as ``logits``.

    For short class dimensions this is cheaper than ``F.softmax`` plus ``F.log_softmax``.
    """
    z = logits - logits.amax(dim, keepdim=True)
    e = z.exp()
    s = e.sum(dim, keepdim=True)
    return e.div_(s), z.sub_(s.log())          # in place: two temporaries, not four


def softmax_(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of ``logits`` over ``dim``, in place (``logits`` becomes the probabilities)."""
    logits.sub_(logits.amax(dim, keepdim=True)).exp_()
    return logits.div_(logits.sum(dim, keepdim=True))


def class_balance_kl(logits: torch.Tensor) -> torch.Tensor:
    """``KL(uniform || mean softmax)`` over the rows of ``logits`` (..., rows, C), summed over
    the leading dims: the class-balance prior, differentiable by autograd (the reference of
    :func:`balance_kl_grad`)."""
    mean_prob = F.softmax(logits, dim=-1).mean(dim=-2)
    C = logits.shape[-1]
    return (-(math.log(C)) - torch.log(mean_prob.clamp_min(PROB_FLOOR)).mean(dim=-1)).sum()


def balance_kl_grad(p: torch.Tensor, weight: float = 1.0, *, class_dim: int = -1, row_dim: int = -2):
    """The class-balance prior of probabilities ``p`` and its gradient with respect to ``p``.

    Parameters
    ----------
    p : torch.Tensor of shape (..., rows, C), or any layout named by ``class_dim``/``row_dim``
        Class probabilities of the rows.
    weight : float
        Weight of the prior in the loss; multiplies the gradient (not the returned value).
    class_dim, row_dim : int
        The class and the row dimensions of ``p``.

    Returns
    -------
    value : torch.Tensor, scalar
        ``KL(uniform || mean_rows p)`` summed over the remaining dims (unweighted).
    grad_p : torch.Tensor, broadcastable to ``p``
        ``weight * d value / d p`` (reduced over ``row_dim``).
    """
    C, n = p.shape[class_dim], p.shape[row_dim]
    mean_p = p.mean(row_dim, keepdim=True).clamp_min(PROB_FLOOR)
    value = (-math.log(C) - mean_p.log().mean(class_dim)).sum()
    return value, (-weight / (C * n)) / mean_p


def softmax_backward(p: torch.Tensor, grad_p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Gradient w.r.t. the logits of a softmax ``p`` given the gradient ``grad_p`` w.r.t. ``p``."""
    out = p * grad_p                           # p (g - sum p g), with one temporary
    return out.addcmul_(p, out.sum(dim, keepdim=True), value=-1.0)


class RowAdam:
    """Adam whose moments and step counts are kept per row of a parameter matrix.

    Only the rows passed to :meth:`step` move; the others keep their moments, so the rows of a
    batch not visited are not decayed or pushed by stale momentum (``torch.optim.Adam`` over
    the whole label tensor would move them).

    Parameters
    ----------
    n_rows, n_cols : int
        Shape of the parameter matrix.
    lr : float
        Step size.
    betas : (float, float)
        Adam's moment decays.
    weight_decay : float
        L2 decay added to the gradient of the rows that step.
    dtype, device
        Of the moment buffers.
    """

    def __init__(self, n_rows: int, n_cols: int, lr: float, betas, weight_decay: float,
                 dtype=torch.float32, device="cpu"):
        self.lr, self.betas, self.weight_decay = lr, tuple(betas), weight_decay
        self.m = torch.zeros(n_rows, n_cols, dtype=dtype, device=device)
        self.v = torch.zeros(n_rows, n_cols, dtype=dtype, device=device)
        self.steps = torch.zeros(n_rows, 1, dtype=dtype, device=device)

    def step(self, params: torch.Tensor, rows: slice, grad: torch.Tensor) -> None:
        """One Adam step, in place, of ``params[rows]`` along ``grad`` (same shape).

        Row block by row block (:func:`cache_row_blocks`): the moments' and the step's passes
        then read a block from cache, where over all rows each would go to memory."""
        start, stop, _ = rows.indices(params.shape[0])
        t = self.steps[start:stop].add_(1)
        # the rows stepped alike (a whole epoch at once): one bias correction for all
        uniform = float(t[0]) if t.numel() and bool(t.amin() == t.amax()) else None
        for part in cache_row_blocks(stop - start, params.shape[1]):
            rows = slice(start + part.start, start + part.stop)
            self._step_rows(params[rows], rows, grad[part], uniform)

    def _step_rows(self, p: torch.Tensor, rows: slice, grad: torch.Tensor, uniform) -> None:
        b1, b2 = self.betas
        if self.weight_decay:
            grad = grad + self.weight_decay * p
        m = self.m[rows].mul_(b1).add_(grad, alpha=1 - b1)
        v = self.v[rows].mul_(b2).addcmul_(grad, grad, value=1 - b2)
        # p -= lr * m_hat / (sqrt(v_hat) + eps) with per-row bias corrections, one temporary
        if uniform is not None:
            denom = v.sqrt().div_(math.sqrt(1 - b2 ** uniform)).add_(1e-8)
            p.addcdiv_(m, denom, value=-self.lr / (1 - b1 ** uniform))
        else:
            t = self.steps[rows]
            step = v.sqrt().mul_((1 - b2 ** t).rsqrt()).add_(1e-8).reciprocal_().mul_(m)
            p.sub_(step.mul_(self.lr / (1 - b1 ** t)))

    def state_dict(self) -> dict:
        """The moments and step counts (tensors shared with the optimiser, not copies)."""
        return {"m": self.m, "v": self.v, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        """Copy moments and step counts from ``state`` (as :meth:`state_dict` returns)."""
        self.m.copy_(state["m"]); self.v.copy_(state["v"]); self.steps.copy_(state["steps"])
