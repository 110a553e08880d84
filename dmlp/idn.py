"""Instance-dependent label noise (IDN): the generator of Xia et al. (NeurIPS 2020).

For row i with true class y_i and features x_i (a row of ``trainfeatures.npy``):

1. a flip rate q_i ~ N(rate, 0.1^2) truncated to [0, 1];
2. logits z_i = x_i W_{y_i}, where W_c (d x C, standard normal) is one random projection per
   class, and z_i[y_i] = -inf: the true class is masked out;
3. p_i = q_i softmax(z_i), then p_i[y_i] = 1 - q_i;
4. the noisy label is drawn from p_i.

Each row thus flips with probability q_i (the measured noise is about ``rate``, a little more
near 0 where the truncation cuts the lower tail), to the classes its own features point to.

The draws come from ``numpy.random.RandomState(seed)`` in the reference code's order: the N
flip rates (``scipy.stats.truncnorm``), then W as ``randn(C, d, C)``, then one uniform per row,
in row order, which picks the label as ``RandomState.choice`` does.  On the same features
(flattened images there) the labels equal the reference's except for rows whose uniform falls
within float rounding of a class boundary: it computes p_i in float32, this module in float64.

Cost: O(N d C) time.  Memory: one W_c (d x C) and a block of rows at a time; the rows of each
class are read from the (memory-mapped) features in blocks, and W is drawn twice (once to
reach the per-row draws, once to use it), O(C^2 d) draws in all.

References
----------
X. Xia, T. Liu, B. Han, N. Wang, M. Gong, H. Liu, G. Niu, D. Tao, M. Sugiyama, "Part-dependent
Label Noise: Towards Instance-dependent Label Noise", NeurIPS 2020; the generator is
``get_instance_noisy_label`` in the ``tools.py`` of its code, reused by much of the field.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import InputError
from .rows import read_rows
from .validation import check_features, check_labels, infer_n_classes

#: standard deviation of the per-row flip rate around the target rate (the reference's ``norm_std``).
RATE_STD = 0.1
#: float64 elements of one block of feature rows (32 MB).
BLOCK_ELEMENTS = 2 ** 22


def flip_rates(rng: np.random.RandomState, n: int, rate: float, std: float = RATE_STD) -> np.ndarray:
    """N per-row flip rates from N(rate, std^2) truncated to [0, 1].

    Parameters
    ----------
    rng : numpy.random.RandomState
        Consumed as ``scipy.stats.truncnorm(...).rvs(n)`` consumes the global state.
    n : int
    rate : float
        The mean before truncation, in [0, 1].
    std : float

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    from scipy import stats  # a dependency of the package, only needed here
    return stats.truncnorm(-rate / std, (1.0 - rate) / std, loc=rate, scale=std).rvs(n, random_state=rng)


def _draw_labels(x: np.ndarray, w: np.ndarray, true_class: int, q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Noisy labels of rows of one true class: steps 2-4 of the module doc."""
    z = np.asarray(x, dtype=np.float64) @ w                     # (m, C)
    z[:, true_class] = -np.inf
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p *= (q / p.sum(axis=1))[:, None]
    p[:, true_class] = 1.0 - q
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    return (cdf <= u[:, None]).sum(axis=1)                      # searchsorted(cdf, u, 'right')


def instance_noise(true_labels, features, rate: float, seed: int, *,
                   n_classes: Optional[int] = None, rate_std: float = RATE_STD) -> np.ndarray:
    """Instance-dependent noisy labels (Xia et al., NeurIPS 2020), see the module doc.

    Parameters
    ----------
    true_labels : array_like of int, shape (N,)
        Labels in 0..C-1.
    features : ndarray of float16/32/64, shape (N, d)
        The rows' features; a memory map is read in blocks, never whole.
    rate : float
        The target noise rate in [0, 1]: the mean of the per-row flip rates before truncation.
    seed : int
        Seed of ``numpy.random.RandomState``, in 0..2**32-1.
    n_classes : int, optional
        C; default: the largest label plus one.
    rate_std : float
        Standard deviation of the per-row flip rates (0.1 in the reference).

    Returns
    -------
    ndarray of int64, shape (N,)

    Raises
    ------
    InputError
        For invalid labels, features (wrong shape, row count, dtype, NaN or inf), rate or seed.

    References
    ----------
    X. Xia et al., "Part-dependent Label Noise: Towards Instance-dependent Label Noise",
    NeurIPS 2020.
    """
    features = check_features(features, "features")
    n, d = features.shape
    labels = check_labels(true_labels, "true labels", n_classes=n_classes, n_rows=n, rows_of="features")
    n_classes = infer_n_classes(labels, "true labels") if n_classes is None else int(n_classes)
    if n_classes < 2:
        raise InputError(f"need at least 2 classes, got {n_classes}", argument="n_classes")
    if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 2 ** 32):
        raise InputError("instance noise needs an integer seed in 0..2**32-1", argument="seed", value=seed)
    if not 0.0 <= float(rate) <= 1.0:
        raise InputError("noise rate must be in [0, 1]", argument="rate", value=rate)
    rng = np.random.RandomState(int(seed))
    q = flip_rates(rng, n, float(rate), rate_std)
    projections = rng.get_state()
    for _ in range(n_classes):                                  # W, drawn to reach the row draws
        rng.standard_normal((d, n_classes))
    u = rng.random_sample(n)
    rng.set_state(projections)
    out = labels.copy()
    block = max(1, BLOCK_ELEMENTS // d)
    for c in range(n_classes):
        w = rng.standard_normal((d, n_classes))                 # W_c, as randn(C, d, C)[c]
        rows = np.flatnonzero(labels == c)
        for start in range(0, rows.size, block):
            r = rows[start:start + block]
            out[r] = _draw_labels(read_rows(features, r), w, c, q[r], u[r])
    return out
