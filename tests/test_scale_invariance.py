"""The default purifies features in any units alike: the shared CIFAR-10 features multiplied
by 1e-3 ... 1e3, or shifted by a constant vector, give the accuracy of the features as they
are (within 0.2 points), and every output is finite.  On a seeded 12,000-row subsample (the
property does not depend on N; the whole set is the benchmark's)."""
from __future__ import annotations


import numpy as np
import pytest

from dmlp import load_config, purify
from dmlp.noise import make_noisy_labels
from shared_data import HOW, SHARED_CIFAR10

SHARED = SHARED_CIFAR10
SCALES = (1e-3, 0.1, 10.0, 1e3)


@pytest.fixture(scope="module")
def cifar():
    if not (SHARED / "trainfeatures.npy").exists():
        pytest.skip(f"{SHARED} not available ({HOW})")
    rows = np.sort(np.random.default_rng(1).choice(50_000, 12_000, replace=False))
    X = np.load(SHARED / "trainfeatures.npy")[rows].astype(np.float32)
    y = np.load(SHARED / "correctlabels.npy")[rows]
    meta = np.sort(np.random.default_rng(0).choice(len(y), 500, replace=False))
    return X, y, meta, np.setdiff1d(np.arange(len(y)), meta)


def _accuracy(X, y, noisy, meta, keep):
    r = purify(X[keep], noisy[keep], X[meta], y[meta], load_config("default"), n_classes=10,
               meta_noisy_labels=noisy[meta], progress=False)
    assert np.isfinite(r.soft_labels).all() and np.isfinite(r.label_quality).all()
    assert np.isfinite(r.transition_matrix).all()
    return 100.0 * float((r.labels == y[keep]).mean())


@pytest.mark.slow
@pytest.mark.parametrize("mode,rate", [("sym", 0.5), ("asym", 0.4)])
def test_accuracy_does_not_depend_on_the_units_of_the_features(cifar, mode, rate):
    X, y, meta, keep = cifar
    noisy = make_noisy_labels(y, mode, rate, seed=0)
    reference = _accuracy(X, y, noisy, meta, keep)
    shift = np.random.default_rng(1).normal(size=X.shape[1]).astype(np.float32) * 10
    for name, Z in [*((f"x{s:g}", X * np.float32(s)) for s in SCALES), ("shifted", X + shift)]:
        got = _accuracy(Z, y, noisy, meta, keep)
        assert abs(got - reference) <= 0.2, (name, got, reference)
