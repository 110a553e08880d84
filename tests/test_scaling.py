"""Feature scaling: invariance to the features' units, robust statistics, bad input."""
import numpy as np
import pytest
import torch

from dmlp.errors import InputError
from dmlp.scaling import fit_feature_scaling


def _features(n=500, d=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * rng.uniform(0.1, 5.0, size=d)


@pytest.mark.parametrize("method", ["rms", "standardise"])
def test_scaled_features_do_not_depend_on_global_scale_or_shift(method):
    X = _features()
    reference = fit_feature_scaling(X, method=method).apply(X)
    for factor, shift in [(1e-3, 0.0), (1e3, 0.0), (1.0, 250.0), (1e20, 0.0)]:
        Y = X * factor + shift
        got = fit_feature_scaling(Y, method=method).apply(Y)
        np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-4)   # float32 rounding of the input


def test_standardise_removes_per_dimension_units_and_rms_does_not():
    X = _features()
    units = np.linspace(0.01, 100.0, X.shape[1])
    std = fit_feature_scaling(X * units, method="standardise").apply(X * units)
    np.testing.assert_allclose(std, fit_feature_scaling(X, method="standardise").apply(X), atol=1e-5)
    rms = fit_feature_scaling(X * units, method="rms").apply(X * units)
    assert not np.allclose(rms, fit_feature_scaling(X, method="rms").apply(X), atol=1e-2)


def test_rms_gives_zero_mean_and_unit_mean_variance():
    X = _features() + 7.0
    Z = fit_feature_scaling(X, method="rms").apply(X).astype(np.float64)
    np.testing.assert_allclose(Z.mean(0), 0.0, atol=1e-5)
    assert Z.var(0).mean() == pytest.approx(1.0, rel=1e-5)


def test_chunked_statistics_match_numpy(monkeypatch):
    import dmlp.scaling as scaling
    monkeypatch.setattr(scaling, "SCALING_CHUNK_ELEMENTS", 37 * 12)   # 37-row chunks: many, uneven
    X = _features(n=1000) + 1e4                                # a large shift: cancellation-prone
    s = fit_feature_scaling(X, method="standardise")
    np.testing.assert_allclose(s.mean, X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.scale, 1.0 / X.std(0), rtol=1e-8)


def test_torch_and_numpy_application_agree():
    X = _features()
    s = fit_feature_scaling(torch.as_tensor(X, dtype=torch.float32), method="rms")
    np.testing.assert_allclose(s.apply_torch(torch.as_tensor(X)).numpy(), s.apply(X), atol=1e-6)


def test_none_is_the_identity_in_float32():
    X = _features()
    np.testing.assert_array_equal(fit_feature_scaling(X, method="none").apply(X), X.astype(np.float32))


def test_constant_features_and_unknown_method_are_refused():
    with pytest.raises(InputError, match="same features"):
        fit_feature_scaling(np.ones((10, 3)), method="rms")
    with pytest.raises(InputError, match="feature_scaling"):
        fit_feature_scaling(_features(), method="whiten")


def test_standardise_leaves_constant_columns_at_zero():
    X = _features()
    X[:, 3] = 5.0
    Z = fit_feature_scaling(X, method="standardise").apply(X)
    assert np.isfinite(Z).all() and np.all(Z[:, 3] == 0)


@pytest.mark.parametrize("chunk_elements", [2 ** 20, 64 * 16])    # the outlier in the first chunk, or later
def test_one_corrupt_row_is_refused_by_name(monkeypatch, chunk_elements):
    """A single entry of 1e30 (or 1e4 times the typical value) would set the global scale alone."""
    import dmlp.scaling as scaling
    monkeypatch.setattr(scaling, "SCALING_CHUNK_ELEMENTS", chunk_elements)
    X = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
    for value in (1e30, 1e4):
        bad = X.copy()
        bad[37, 3] = value
        with pytest.raises(InputError, match=r"trainfeatures.npy: row 37 is an outlier"):
            fit_feature_scaling(bad, name="trainfeatures.npy")
        with pytest.raises(InputError, match=r"meta_features: row 37 is an outlier"):
            scaling.check_outlier_rows(bad, "meta_features")


def test_heavy_tailed_rows_are_not_outliers():
    """Rows of very unequal norms (log-normal, sd 1) and sparse non-negative features pass."""
    import dmlp.scaling as scaling
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 32)) * rng.lognormal(0.0, 1.0, size=(2000, 1))
    fit_feature_scaling(X.astype(np.float32))
    scaling.check_outlier_rows(X, "x")
    sparse = np.maximum(rng.normal(size=(2000, 64)) - 2.0, 0.0)
    fit_feature_scaling(sparse.astype(np.float32))
