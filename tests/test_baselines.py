"""Tests of dmlp.baselines on a small synthetic Gaussian mixture (CPU, seconds)."""
import random
import sys

import numpy as np
import pytest

from dmlp import baselines as B
from dmlp.transition import prior_strength


def _sym_noise(true_labels, rate, seed, n_classes):
    """DivideMix-protocol symmetric noise (private test helper)."""
    rng = random.Random(seed)
    n = len(true_labels)
    idx = list(range(n))
    rng.shuffle(idx)
    noisy = set(idx[:int(rate * n)])
    out = np.asarray(true_labels, dtype=np.int64).copy()
    for i in range(n):
        if i in noisy:
            out[i] = rng.randint(0, n_classes - 1)
    return out


@pytest.fixture(scope="module")
def mixture():
    rng = np.random.default_rng(0)
    n, d, c = 1500, 16, 4
    means = rng.normal(size=(c, d)) * 1.6
    y = rng.integers(0, c, size=n)
    X = (means[y] + rng.normal(size=(n, d))).astype(np.float32)
    noisy = _sym_noise(y, 0.5, 0, c)
    meta = np.sort(rng.choice(n, 60, replace=False))
    mask = np.ones(n, dtype=bool)
    mask[meta] = False
    knn = B.cosine_knn(X, 20)
    return dict(X=X, y=y, noisy=noisy, meta=meta, mask=mask, c=c, knn=knn)


def _acc(labels, m):
    return float((labels[m["mask"]] == m["y"][m["mask"]]).mean())


@pytest.mark.parametrize("name", ["forward_corrected_bayes", "label_propagation_best_beta",
                                  "cleanlab_relabel", "cv_probe_relabel", "knn_vote",
                                  "ridge_on_meta"])
def test_baselines_beat_noisy_labels(mixture, name):
    m = mixture
    cache = {}
    if name == "cleanlab_relabel":
        pytest.importorskip("cleanlab")
        B.ALL_BASELINES["cv_probe_relabel"](m["X"], m["noisy"], m["meta"], m["y"][m["meta"]],
                                            m["c"], seed=0, knn=m["knn"], cache=cache)
    res = B.ALL_BASELINES[name](m["X"], m["noisy"], m["meta"], m["y"][m["meta"]], m["c"], seed=0,
                                knn=m["knn"], cache=cache, true_labels=m["y"])
    assert res.labels.shape == m["y"].shape and res.labels.dtype == np.int64
    assert np.array_equal(res.labels[m["meta"]], m["y"][m["meta"]])
    noisy_acc = _acc(m["noisy"], m)
    assert _acc(res.labels, m) > noisy_acc + 0.1, (name, _acc(res.labels, m), noisy_acc)


def test_cv_probe_probs_and_determinism(mixture):
    m = mixture
    a = B.cv_probe_relabel(m["X"], m["noisy"], m["meta"], m["y"][m["meta"]], m["c"], seed=3)
    b = B.cv_probe_relabel(m["X"], m["noisy"], m["meta"], m["y"][m["meta"]], m["c"], seed=3)
    assert a.probs.shape == (len(m["y"]), m["c"])
    np.testing.assert_allclose(a.probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.probs, b.probs)


def test_knn_excludes_self_and_matches_brute_force():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(203, 8)).astype(np.float32)
    g = B.cosine_knn(X, 5, block_size=64)  # several blocks, last one partial
    assert g.indices.shape == (203, 5)
    assert not np.any(g.indices == np.arange(203)[:, None])
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = Z @ Z.T
    np.fill_diagonal(S, -np.inf)
    ref = np.argsort(-S, axis=1)[:, :5]
    np.testing.assert_array_equal(np.sort(g.indices, 1), np.sort(ref, 1))
    np.testing.assert_allclose(g.sims, np.take_along_axis(S, g.indices, 1), atol=1e-5)
    assert np.all(np.diff(g.sims, axis=1) <= 1e-6)


def test_knn_vote_ignores_own_label():
    # two tight clusters; row 0 is mislabelled, its neighbours all say class 0
    X = np.array([[1, 0.0], [1, 0.01], [1, -0.01], [1, 0.02], [0, 1.0], [0.01, 1], [-0.01, 1]],
                 dtype=np.float32)
    labels = np.array([1, 0, 0, 0, 1, 1, 1])
    res = B.knn_vote(X, labels, [], [], 2, k=3)
    assert res.labels[0] == 0
    np.testing.assert_allclose(res.probs[0], [1.0, 0.0])


def test_label_propagation_beta0_keeps_meta_labels(mixture):
    m = mixture
    meta_labels = (m["y"][m["meta"]] + 1) % m["c"]  # deliberately odd labels
    res = B.label_propagation(m["X"], m["noisy"], m["meta"], meta_labels, m["c"], beta=0.0,
                              knn=m["knn"])
    np.testing.assert_array_equal(res.labels[m["meta"]], meta_labels)
    # with beta=0 the given labels play no role at all
    res2 = B.label_propagation(m["X"], np.zeros_like(m["noisy"]), m["meta"], meta_labels, m["c"],
                               beta=0.0, knn=m["knn"])
    np.testing.assert_array_equal(res.labels, res2.labels)


def test_label_propagation_best_beta_picks_max(mixture):
    m = mixture
    res = B.label_propagation_best_beta(m["X"], m["noisy"], m["meta"], m["y"][m["meta"]], m["c"],
                                        m["y"], knn=m["knn"])
    accs = res.info["acc_by_beta"]
    assert set(accs) == set(B.LP_BETAS)
    assert accs[res.info["beta"]] == max(accs.values())
    assert _acc(res.labels, m) == pytest.approx(max(accs.values()))


def test_knn_affinity_symmetric_normalised():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    S = B.knn_affinity(B.cosine_knn(X, 5)).toarray()
    np.testing.assert_allclose(S, S.T, atol=1e-12)
    assert np.all(S >= 0) and np.all(np.diag(S) == 0)


def test_transition_matrix_hand_example():
    true = np.array([0, 0, 0, 1, 1, 2])
    given = np.array([0, 0, 1, 1, 2, 2])
    T = B.transition_matrix(true, given, 3, smoothing=0.5)
    # pooled off-diagonal share rho = (2 + 1/2) / (6 + 1); each row gets kappa pseudo-counts:
    # kappa (1 - rho) on the diagonal, kappa rho / 2 on each other cell
    counts = np.array([[2.0, 1, 0], [0, 1, 1], [0, 0, 1]])
    rho, kappa = 2.5 / 7, prior_strength(counts, 0.5)           # kappa: by marginal likelihood
    prior = np.full((3, 3), kappa * rho / 2) + np.eye(3) * (kappa * (1 - rho) - kappa * rho / 2)
    expected = counts + prior
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(T, expected)
    np.testing.assert_allclose(B.transition_matrix(true, given, 3, smoothing=0.0)[0], [2 / 3, 1 / 3, 0])


def test_forward_bayes_uses_transition(mixture):
    m = mixture
    res = B.forward_corrected_bayes(m["X"], m["noisy"], m["meta"], m["y"][m["meta"]], m["c"])
    T = res.info["T"]
    np.testing.assert_allclose(T.sum(1), 1.0)
    np.testing.assert_allclose(T, B.transition_matrix(m["y"][m["meta"]], m["noisy"][m["meta"]], m["c"]))
    # the Bayes relabel is argmax_c p(c|x) T[c, given]: rows with the same features but a
    # different given label may be relabelled differently, and probs is that posterior
    assert np.array_equal(res.probs.argmax(1)[m["mask"]], res.labels[m["mask"]])
    np.testing.assert_allclose(res.probs.sum(1), 1.0, atol=1e-5)


def test_ridge_ignores_given_labels(mixture):
    m = mixture
    a = B.ridge_on_meta(m["X"], m["noisy"], m["meta"], m["y"][m["meta"]], m["c"])
    b = B.ridge_on_meta(m["X"], m["y"], m["meta"], m["y"][m["meta"]], m["c"])
    np.testing.assert_array_equal(a.labels, b.labels)


def test_cleanlab_missing_raises_clear_import_error(mixture, monkeypatch):
    monkeypatch.setitem(sys.modules, "cleanlab", None)
    monkeypatch.setitem(sys.modules, "cleanlab.filter", None)
    m = mixture
    with pytest.raises(ImportError, match="cleanlab") as info:
        B.cleanlab_relabel(m["X"], m["noisy"], m["meta"], m["y"][m["meta"]], m["c"],
                           pred_probs=np.full((len(m["y"]), m["c"]), 1.0 / m["c"]))
    assert isinstance(info.value, B.MissingDependencyError)
    assert "pip install cleanlab" in str(info.value)


def test_module_imports_without_optional_deps(monkeypatch):
    import importlib
    monkeypatch.setitem(sys.modules, "cleanlab", None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    importlib.reload(B)


def test_bad_inputs_raise_input_error(mixture):
    from dmlp.errors import InputError
    m = mixture
    with pytest.raises(InputError):
        B.knn_vote(m["X"], m["noisy"][:-1], m["meta"], m["y"][m["meta"]], m["c"], knn=m["knn"])
    with pytest.raises(InputError):
        B.knn_vote(m["X"], m["noisy"], m["meta"], m["y"][m["meta"]][:-1], m["c"], knn=m["knn"])
    with pytest.raises(InputError):
        B.label_propagation(m["X"], m["noisy"], m["meta"], m["y"][m["meta"]], m["c"],
                            knn=m["knn"], k=50)


def test_registry_signature():
    assert list(B.ALL_BASELINES) == ["knn_vote", "cv_probe_relabel", "cleanlab_relabel",
                                     "ridge_on_meta", "label_propagation_best_beta",
                                     "forward_corrected_bayes"]


def test_probe_linear_layer_gradient_is_exact():
    """fit_logistic's linear layer computes its weight gradient in its own order: gradcheck."""
    import torch
    from dmlp.baselines import _Linear
    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 5, generator=g, dtype=torch.float64)
    W = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(_Linear.apply(X, W, b), X @ W + b)
    assert torch.autograd.gradcheck(lambda w, c: _Linear.apply(X, w, c), (W, b))
