"""The ridge closed form, one copy for every estimator of the package.

``W = (X'X + lambda I)^-1 X'Y`` with ``lambda = ridge * trace(X'X) / d``: the ridge is relative,
so the estimator does not depend on the features' units.  IPC solves it per batch (Tu et al.,
CVPR 2023, Eq. 3, the inner problem), the meta-fitted transition estimate and ``--meta auto``
on a small set of rows, the ``ridge on meta`` baseline on the clean rows.
"""
from __future__ import annotations

import logging
import math

import torch

from .errors import InputError

log = logging.getLogger("dmlp")

#: Floor of the relative ridge of an estimator fitted on a small set of rows (the meta set, half
#: of the data for ``--meta auto``): a few hundred rows rarely determine d coefficients.
SMALL_SET_RIDGE = 1e-3


def factor_gram(X: torch.Tensor, ridge: float, max_tries: int = 8):
    """Cholesky factor of ``X'X + lambda I`` with ``lambda = ridge * trace(X'X) / d``.

    The relative ridge keeps the term scale-free.  If the matrix is singular or too
    ill-conditioned for the factorisation, lambda is raised tenfold (and logged) until it
    succeeds.  Returns ``(L, lam)`` with ``L`` lower-triangular.
    """
    return factor_gram_matrix(X.T @ X, ridge, max_tries)


def factor_gram_matrix(gram: torch.Tensor, ridge: float, max_tries: int = 8):
    """:func:`factor_gram` from the Gram matrix ``X'X`` itself (accumulated batch by batch)."""
    d = gram.shape[0]
    scale = float(torch.diagonal(gram).sum()) / d
    if not math.isfinite(scale) or scale <= 0:
        raise InputError("training features of a batch are all zero: the Gram matrix is singular")
    rel = max(float(ridge), 0.0)
    for attempt in range(max_tries):
        lam = rel * scale
        eye = torch.eye(d, dtype=gram.dtype, device=gram.device)
        L, info = torch.linalg.cholesky_ex(gram + lam * eye)
        # a factorisation can "succeed" on a round-off pivot of a singular matrix: require the
        # smallest pivot to be clearly above machine precision relative to the trace
        tiny = 10 * torch.finfo(gram.dtype).eps * scale * d
        if int(info) == 0 and float(torch.diagonal(L).min()) ** 2 > tiny:
            if attempt:
                log.warning("Gram matrix of a batch is (nearly) singular: ridge raised to %.1e "
                            "(relative) so the closed form stays defined", rel)
            return L, lam
        rel = max(rel * 10.0, 1e-8)
    raise InputError("Gram matrix of a batch stays singular even with a large ridge "
                     "(features constant or duplicated?)")


def closed_form(X: torch.Tensor, Y: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """The inner estimator ``W = (X'X + lambda I)^-1 X'Y`` from the cached Cholesky factor."""
    return torch.cholesky_solve(X.T @ Y, L)


def ridge_solve(X: torch.Tensor, Y: torch.Tensor, ridge: float, *, floor: float = 0.0) -> torch.Tensor:
    """The ridge estimator ``W = (X'X + lambda I)^-1 X'Y``, ``lambda = max(ridge, floor) * trace(X'X) / d``.

    Parameters
    ----------
    X : torch.Tensor of shape (n, d)
    Y : torch.Tensor of shape (n, k)
        Targets (one-hot labels, soft labels).
    ridge : float
        Relative ridge.
    floor : float
        Smallest relative ridge used (:data:`SMALL_SET_RIDGE` for small sets).

    Returns
    -------
    torch.Tensor of shape (d, k), X's dtype

    Raises
    ------
    InputError
        ``X`` all zero, or ``X'X`` singular whatever the ridge.
    """
    return ridge_from_moments(X.T @ X, X.T @ Y.to(X.dtype), ridge, floor=floor)


def ridge_from_moments(gram: torch.Tensor, moment: torch.Tensor, ridge: float, *, floor: float = 0.0) -> torch.Tensor:
    """:func:`ridge_solve` from ``X'X`` (d, d) and ``X'Y`` (d, k), e.g. accumulated batch by batch."""
    L, _ = factor_gram_matrix(gram, max(float(ridge), float(floor)))
    return torch.cholesky_solve(moment, L)
