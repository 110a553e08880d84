"""Synthetic data of known truth: Gaussian classes with symmetric noise."""
from __future__ import annotations

import numpy as np

from dmlp import Dataset


def gaussian_classes(centre_scale: float, *, C: int, n: int, d: int, noise: float, seed: int = 0) -> Dataset:
    """C Gaussian classes of n rows in d dimensions around centres of scale ``centre_scale``
    (unit noise), with a share ``noise`` of the labels flipped to another class at random."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(C), n)
    X = (rng.normal(size=(C, d)) * centre_scale)[truth] + rng.normal(size=(C * n, d))
    given = truth.copy()
    flip = rng.random(len(given)) < noise
    given[flip] = (given[flip] + rng.integers(1, C, flip.sum())) % C
    return Dataset.from_arrays(X.astype(np.float32), given, true_labels=truth, n_classes=C)
