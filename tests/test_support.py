"""The label support: IPC's labels on k candidate classes a row, the products on the non-zeros."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmlp.batches import FeatureStore, make_partition
from dmlp.config import Config
from dmlp.ipc import WhitenedBatches, meta_view_weights
from dmlp.state import LabelState, label_distribution
from dmlp.ridge import closed_form, factor_gram
from dmlp.support import LabelSupport, label_support, on_support, support_positions, to_dense

D, C, V, M, K = 6, 9, 2, 14, 4
CFG = Config().replace(meta_ce_weight=1.0, meta_mse_weight=0.3, meta_balance_weight=0.7).ipc


def _support(n: int, given: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """k distinct classes a row, the given label among them, ascending."""
    rows = []
    for y in given.tolist():
        others = [c for c in torch.randperm(C, generator=g).tolist() if c != y][:K - 1]
        rows.append(sorted(others + [y]))
    return torch.tensor(rows)


def _restricted_objective(Y, X_B, L_B, meta_X, meta_onehot, meta_weights, params, meta_support, balance_support):
    """The meta objective on a label support, written with autograd (the reference)."""
    W = closed_form(X_B, Y, L_B)                                              # d x V*C
    m, k = meta_support.shape
    z = (meta_X @ W).view(m, V, C).gather(2, meta_support.unsqueeze(1).expand(m, V, k))      # M x V x k
    t = meta_onehot.gather(1, meta_support).unsqueeze(1)
    weights = meta_weights.T                                                  # M x V
    loss = params.ce_weight * (weights * -(F.log_softmax(z, -1) * t).sum(-1)).sum()
    loss = loss + params.mse_weight * ((weights > 0) * ((z - t) ** 2).sum(-1)).sum()
    R = len(balance_support)
    zb = (X_B[:R] @ W).view(R, V, C).gather(2, balance_support.unsqueeze(1).expand(R, V, k))
    p = F.softmax(zb, -1)
    mean = torch.zeros(V, C, dtype=p.dtype).index_add(1, balance_support.reshape(-1), p.transpose(0, 1).reshape(V, -1)) / R
    present = torch.zeros(C, dtype=torch.bool).index_fill_(0, balance_support.reshape(-1), True)
    kl = -math.log(int(present.sum())) - mean[:, present].log().mean(1)
    return loss + params.balance_weight * kl.sum()


@pytest.mark.parametrize("n_rows,batch_size", [(120, 40), (119, 40)])   # equal / unequal batches
def test_support_gradient_matches_autograd_of_the_restricted_objective(n_rows, batch_size):
    """Batch by batch, the loss and the label gradient on the support equal autograd's of the
    meta objective whose every prediction is read on its row's support (float64)."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(n_rows, D, generator=g, dtype=torch.float64) + 0.3
    given = torch.randint(0, C, (n_rows,), generator=g)
    meta_y = torch.arange(M) % C
    support = LabelSupport(_support(n_rows, given, g), _support(M, meta_y, g))
    values = torch.rand(n_rows, V, K, generator=g, dtype=torch.float64)
    meta_X = torch.randn(M, D, generator=g, dtype=torch.float64)
    meta_onehot = torch.nn.functional.one_hot(meta_y, C).double()
    weights = meta_view_weights(M, V, cross_fit=True, seed=1, dtype=torch.float64)
    order, batches = make_partition(n_rows, batch_size, seed=0)
    store = FeatureStore(X, order, batches, "cpu", 4.0, dtype=torch.float64)
    R = 15
    sparse = WhitenedBatches(store, 1e-3, slice(0, R), meta_X, torch.float64, support, C, V)
    loss, grad, rows = sparse.gradient(values.reshape(n_rows, -1), meta_onehot, weights, CFG)
    assert rows == slice(0, n_rows)
    total = 0.0
    for k, rows in enumerate(batches):
        X_B = store.batch(k)
        L, _ = factor_gram(X_B, 1e-3)
        dense = torch.stack([to_dense(values[rows, v], support.rows[rows], C) for v in range(V)], 1)
        Y = dense.reshape(len(X_B), V * C).requires_grad_(True)
        reference = _restricted_objective(Y, X_B, L, meta_X, meta_onehot, weights, CFG, support.meta,
                                          support.rows[rows][:R])
        (g_dense,) = torch.autograd.grad(reference, Y)
        expected = on_support(g_dense.view(-1, V, C).transpose(0, 1), support.rows[rows]).transpose(0, 1)
        torch.testing.assert_close(grad[rows].view(-1, V, K), expected, rtol=1e-9, atol=1e-12)
        total += float(reference.detach())
    assert float(loss) == pytest.approx(total, rel=1e-10)
    l_g, g_g, rows = sparse.gradient(values.reshape(n_rows, -1), meta_onehot, weights, CFG, range(1, 3))
    assert rows == slice(batches[1].start, n_rows)
    torch.testing.assert_close(g_g, grad[rows], rtol=0, atol=0)


def test_support_of_every_class_is_the_dense_objective():
    """Supports holding every class: the support gradient is the dense one (same objective)."""
    g = torch.Generator().manual_seed(4)
    n, R = 50, 12
    X = torch.randn(n, D, generator=g, dtype=torch.float64)
    labels = torch.rand(n, V * C, generator=g, dtype=torch.float64)
    meta_X = torch.randn(M, D, generator=g, dtype=torch.float64)
    meta_onehot = torch.nn.functional.one_hot(torch.arange(M) % C, C).double()
    weights = meta_view_weights(M, V, cross_fit=True, seed=1, dtype=torch.float64)
    order, batches = make_partition(n, n, seed=0)
    store = FeatureStore(X, order, batches, "cpu", 4.0, dtype=torch.float64)
    every = LabelSupport(torch.arange(C).repeat(n, 1), torch.arange(C).repeat(M, 1))
    dense = WhitenedBatches(store, 1e-3, slice(0, R), meta_X, torch.float64)
    sparse = WhitenedBatches(store, 1e-3, slice(0, R), meta_X, torch.float64, every, C, V)
    l_d, g_d, _ = dense.gradient(labels, meta_onehot, weights, CFG)
    l_s, g_s, _ = sparse.gradient(labels, meta_onehot, weights, CFG)
    torch.testing.assert_close(g_s, g_d, rtol=1e-9, atol=1e-12)
    assert float(l_s) == pytest.approx(float(l_d), rel=1e-12)


def test_support_holds_the_given_label_and_the_ridge_top_classes():
    g = np.random.default_rng(0)
    truth = np.repeat(np.arange(12), 30)
    X = (g.normal(size=(12, 8)) * 3)[truth] + g.normal(size=(len(truth), 8))
    given = truth.copy()
    flip = g.random(len(given)) < 0.4
    given[flip] = g.integers(0, 12, flip.sum())
    order, batches = make_partition(len(given), 100, seed=0)
    store = FeatureStore(torch.as_tensor(X[order], dtype=torch.float32), np.arange(len(given)), batches, "cpu", 4.0)
    meta_X, meta_y = torch.as_tensor(X[:20], dtype=torch.float32), truth[:20]
    support = label_support(store, given[order], 12, 3, meta_features=meta_X, meta_labels=meta_y,
                            ridge=1e-3, seed=0)                                 # a quarter of the classes
    assert bool((support.meta == torch.as_tensor(meta_y).unsqueeze(1)).any(1).all())
    support = support.rows
    assert support.shape == (len(given), 3)
    assert bool((support[:, 1:] > support[:, :-1]).all())                     # distinct, ascending
    assert bool((support == torch.as_tensor(given[order]).unsqueeze(1)).any(1).all())
    # the true class is among the candidates of far more rows than with two random candidates
    # besides the given label (0.6 + 0.4 x 2 / 11 = 0.67 of them)
    assert float((support == torch.as_tensor(truth[order]).unsqueeze(1)).any(1).float().mean()) > 0.9
    for size in (4, 0):                                                         # more, or none: all classes
        assert label_support(store, given[order], 12, size, meta_features=meta_X, meta_labels=meta_y,
                             ridge=1e-3, seed=0) is None


def test_label_state_on_a_support_reads_as_the_dense_state():
    """Distribution, argmax, per-view argmax and fold-free offsets of the support state equal
    those of a dense state holding the same labels."""
    g = torch.Generator().manual_seed(5)
    n = 23
    given = torch.randint(0, C, (n,), generator=g)
    support = _support(n, given, g)
    state = LabelState.initial(given, C, V, CFG, support=support)
    assert torch.equal(state.argmax(), given)                                 # starts at the given labels
    state.labels.copy_(torch.randn(n, V, K, generator=g))
    state.labels[:, :, 0].abs_().add_(0.1)      # every view of every row has a positive label ...
    state.labels[0, 0] = -1.0                   # a view with no positive label: uniform on its support
    dense = LabelState(torch.stack([to_dense(state.labels[:, v], support, C) for v in range(V)], 1), None, None)
    rows = slice(1, None)
    torch.testing.assert_close(state.distribution()[rows], dense.distribution()[rows])
    torch.testing.assert_close(state.fold_free_offsets()[:, rows], dense.fold_free_offsets()[:, rows])
    uniform_view = to_dense(torch.full((1, K), 1.0 / K), support[:1], C)[0]
    torch.testing.assert_close(state.distribution()[0], (uniform_view + label_distribution(dense.labels[0, 1])) / 2)
    assert torch.equal(state.argmax()[rows], dense.argmax()[rows])
    assert torch.equal(state.view_argmax(slice(None))[:, rows], dense.labels.argmax(-1).T[:, rows])
    prediction = torch.rand(V, n, C, generator=g)
    assert torch.equal(state.at_support(prediction, slice(None)), on_support(prediction, support))
    assert torch.equal(support.gather(1, support_positions(support, given).unsqueeze(1)).squeeze(1), given)
