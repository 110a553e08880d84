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
OUTLIER_NORM_RATIO = 1e3            # a row this many times the others' RMS norm is corrupt, not data
OUTLIER_VARIANCE_SHARE = 0.5        # ... as is one row holding this share of all rows' variance


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
        self.apply_in_place(torch.from_numpy(x))
        return x

    def apply_in_place(self, X: torch.Tensor) -> torch.Tensor:
        """Scale the float32 tensor ``X`` (rows x d, on the CPU) in place, as :meth:`apply` does
        (float32 arithmetic, the mean subtracted first); returns ``X``."""
        if not self.is_identity:
            X.sub_(torch.from_numpy(self.mean.astype(np.float32))).mul_(torch.from_numpy(self.scale.astype(np.float32)))
        return X

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
                        progress: bool = False, row_numbers=None) -> FeatureScaling:
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
    row_numbers : array-like of int, shape (N,), optional
        How messages number the rows (their rows in a file, when ``features`` is a subset).

    Returns
    -------
    FeatureScaling

    Raises
    ------
    InputError
        If ``method`` is unknown, the features are constant (every row the same), or one row
        is an outlier that would set the scale alone (its norm over 1,000 times the others', or
        half of all rows' variance in that one row).
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
    centre = None                    # the first chunk's median: a provisional centre for the row norms
    largest, largest_row, others_sq = -1.0, 0, 0.0   # the largest squared row norm so far, the sum of the rest
    for start in starts:
        block = features[start:start + chunk]
        block = block.double().cpu().numpy() if torch.is_tensor(block) else np.asarray(block, np.float64)
        b = len(block)
        block_mean = block.mean(0)
        centre = np.median(block, 0) if centre is None else centre      # robust to an outlier in it
        norm_sq = ((block - centre) ** 2).sum(1)
        top = int(norm_sq.argmax())
        value = float(norm_sq[top])
        norm_sq[top] = 0.0                       # the rest summed apart: no cancellation against it
        others_sq += float(norm_sq.sum()) + min(value, max(largest, 0.0))
        if value > largest:
            largest, largest_row = value, start + top
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
    row = largest_row if row_numbers is None else int(row_numbers[largest_row])
    _check_no_dominant_row(largest, others_sq, count, row, name)
    rms_norm = float(np.sqrt(variance.sum()))
    if method == "none":
        return FeatureScaling(method, np.zeros(d), np.ones(d), rms_norm)
    if method == "rms":
        scale = np.full(d, 1.0 / np.sqrt(mean_variance))
    else:
        constant = variance <= CONSTANT_COLUMN_FLOOR * variance.max()
        scale = np.where(constant, 0.0, 1.0 / np.sqrt(np.where(constant, 1.0, variance)))
    return FeatureScaling(method, mean, scale, rms_norm)


def _check_no_dominant_row(norm_sq_max: float, others_sq: float, n_rows: int, row: int, name: str) -> None:
    """Refuse a row whose (provisionally centred) norm dwarfs all the others'.

    One corrupt row (an entry of 1e8 among features of norm ~10) holds nearly all the variance:
    the global scale then shrinks every other row towards zero and the labels become noise, with
    no error anywhere downstream.  No real feature row is a thousand times the others' RMS norm,
    or holds half the variance of thousands of rows.
    """
    others = others_sq / max(n_rows - 1, 1)           # summed apart: no cancellation against the outlier
    norm_sq_total = norm_sq_max + others_sq
    dominant = n_rows >= 4 and norm_sq_max > OUTLIER_VARIANCE_SHARE * norm_sq_total
    if n_rows > 1 and (dominant or norm_sq_max > OUTLIER_NORM_RATIO ** 2 * max(others, 0.0)):
        ratio = "infinitely" if others <= 0 else f"{np.sqrt(norm_sq_max / others):.3g} times"
        raise InputError(f"{name}: row {row} is an outlier ({ratio} the RMS norm of the other rows, "
                         f"{100 * norm_sq_max / norm_sq_total:.0f} % of all the variance); it would set the "
                         "feature scaling alone: remove or fix that row")


def check_outlier_rows(features: np.ndarray, name: str, row_numbers=None) -> None:
    """Refuse an in-memory feature matrix (e.g. the meta rows) one of whose rows dwarfs the others.

    The rule of :func:`fit_feature_scaling` (its ``Raises``), on rows centred at their mean;
    ``row_numbers`` (shape (M,)) numbers the rows in messages, as there.

    Raises
    ------
    InputError
        Naming ``name`` and the row.
    """
    X = np.asarray(features, np.float64)
    norm_sq = ((X - X.mean(0)) ** 2).sum(1)
    top = int(norm_sq.argmax())
    row = top if row_numbers is None else int(row_numbers[top])
    _check_no_dominant_row(float(norm_sq[top]), float(np.delete(norm_sq, top).sum()), len(X), row, name)
