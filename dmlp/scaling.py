"""Feature scaling: the units of the features do not reach the method.

Researchers bring features in whatever units their backbone gives: average-pool outputs with
norms in the tens, L2-normalised contrastive embeddings, projections divided by some constant.
The ridge term of IPC is relative to the Gram matrix and the kNN graph is cosine, but the
auxiliary classifier's step size, its weight decay and the label initialisation are not: a
feature set multiplied by 100 trains EAC 100 times faster.  So every feature row -- training,
meta and test alike -- is mapped to ``(x - mean) * scale`` with ``mean`` and ``scale``
estimated on the training rows only, before anything else sees it (docs/deviations.md,
section "Feature scaling").

``"rms"`` (the default) centres and divides by one global scale so that the mean
per-dimension variance is 1 (RMS row norm sqrt(d)): invariant to a global scale and a constant
shift, and it keeps the geometry (the kNN graph, the relative size of the principal
directions).  ``"standardise"`` divides each dimension by its own standard deviation:
invariant to per-dimension units as well, at the price of weighting every direction alike.
``"none"`` passes the features through.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .errors import InputError

SCALING_METHODS = ("rms", "standardise", "none")
SCALING_CHUNK_ELEMENTS = 2 ** 20    # values read per chunk of the statistics pass (8 MB in float64)
CONSTANT_COLUMN_FLOOR = 1e-12       # a column's variance below this times the largest is constant


@dataclass(frozen=True)
class FeatureScaling:
    """The map ``x -> (x - mean) * scale`` applied to every feature row.

    Attributes
    ----------
    method : {"rms", "standardise", "none"}
    mean : ndarray of shape (d,), float64
        Column means of the training rows (zeros for ``"none"``).
    scale : ndarray of shape (d,), float64
        Per-column multiplier (one value repeated for ``"rms"``, ones for ``"none"``).
    rms_norm : float
        RMS norm of the centred training rows before scaling, in the features' own units.
    """
    method: str
    mean: np.ndarray
    scale: np.ndarray
    rms_norm: float

    @property
    def is_identity(self) -> bool:
        """Whether the map leaves the features as they are (``method = "none"``)."""
        return self.method == "none"

    def apply(self, block: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of ``block`` (rows x d, any float dtype).

        Computed in float32, in place on the copy (no float64 temporaries: streamed batches stay
        cheap); the mean is subtracted before the scale, so a large shift costs only the float32
        rounding of the input itself.
        """
        x = np.array(block, dtype=np.float32)
        if not self.is_identity:
            x -= self.mean.astype(np.float32)
            x *= self.scale.astype(np.float32)
        return x

    def apply_torch(self, X: torch.Tensor) -> torch.Tensor:
        """Scaled float32 tensor (rows x d) on ``X``'s device."""
        if self.is_identity:
            return X.float()
        mean = torch.as_tensor(self.mean, dtype=torch.float64, device=X.device)
        scale = torch.as_tensor(self.scale, dtype=torch.float64, device=X.device)
        return ((X.double() - mean) * scale).float()

    def summary(self) -> dict:
        """What ``summary.json`` records of the scaling."""
        return {"method": self.method, "rms_norm_before": float(self.rms_norm),
                "mean_norm_before": float(np.linalg.norm(self.mean))}


def fit_feature_scaling(features, *, method: str = "rms", name: str = "features",
                        progress: bool = False) -> FeatureScaling:
    """Estimate the scaling of :class:`FeatureScaling` from the training rows.

    One pass over ``features`` in chunks of ``SCALING_CHUNK_ELEMENTS`` values (a memory map is read,
    never copied whole); column means and variances are merged chunk by chunk in float64
    (Chan, Golub & LeVeque 1983), so neither a large shift nor a large scale loses precision.

    Parameters
    ----------
    features : array-like or Tensor of shape (N, d)
        Training features, any float dtype.
    method : {"rms", "standardise", "none"}
    name : str
        How messages name ``features``.
    progress : bool
        Show a progress bar over the chunks.

    Returns
    -------
    FeatureScaling

    Raises
    ------
    InputError
        If ``method`` is unknown, or the features are constant (every row the same).
    """
    if method not in SCALING_METHODS:
        raise InputError(f"feature_scaling: {method!r} is not one of {', '.join(SCALING_METHODS)}")
    n, d = features.shape
    count, mean, m2 = 0, np.zeros(d), np.zeros(d)
    chunk = max(1, SCALING_CHUNK_ELEMENTS // d)
    starts = range(0, n, chunk)
    if progress:
        from .progress import progress_bar
        starts = progress_bar(starts, desc="feature statistics", unit="chunk")
    for start in starts:
        block = features[start:start + chunk]
        block = block.double().cpu().numpy() if torch.is_tensor(block) else np.asarray(block, np.float64)
        b = len(block)
        block_mean = block.mean(0)
        block_m2 = ((block - block_mean) ** 2).sum(0)
        delta = block_mean - mean
        total = count + b
        mean = mean + delta * (b / total)
        m2 = m2 + block_m2 + delta ** 2 * (count * b / total)
        count = total
    variance = m2 / max(count, 1)
    mean_variance = float(variance.mean())
    if not np.isfinite(mean_variance):
        raise InputError(f"{name}: feature values too large to scale (variance overflows float64)")
    if mean_variance <= 0:
        raise InputError(f"{name}: every row has the same features (zero variance): nothing to learn from")
    rms_norm = float(np.sqrt(variance.sum()))
    if method == "none":
        return FeatureScaling(method, np.zeros(d), np.ones(d), rms_norm)
    if method == "rms":
        scale = np.full(d, 1.0 / np.sqrt(mean_variance))
    else:
        constant = variance <= CONSTANT_COLUMN_FLOOR * variance.max()
        scale = np.where(constant, 0.0, 1.0 / np.sqrt(np.where(constant, 1.0, variance)))
    return FeatureScaling(method, mean, scale, rms_norm)
