"""The label support: IPC's labels on k candidate classes a row, their products on the non-zeros."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dmlp.batches import FeatureStore, make_partition
from dmlp.config import Config
from dmlp.ipc import WhitenedBatches, meta_view_weights
from dmlp.state import LabelState, label_distribution
from dmlp.support import SupportPattern, label_support, on_support, support_positions, to_dense

D, C, V, M, K = 6, 9, 2, 14, 4
CFG = Config().replace(meta_ce_weight=1.0, meta_mse_weight=0.3, meta_balance_weight=0.7).ipc


def _support(n: int, given: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """K distinct classes a row, the given label among them, ascending."""
    rows = []
    for y in given.tolist():
        others = [c for c in torch.randperm(C, generator=g).tolist() if c != y][:K - 1]
        rows.append(sorted(others + [y]))
    return torch.tensor(rows)


def _dense(values: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """(n, V, K) values on the support as the (n, V, C) dense labels."""
    return torch.stack([to_dense(values[:, v], support, C) for v in range(values.shape[1])], 1)


@pytest.mark.parametrize("n_rows,batch_size", [(120, 40), (119, 40)])   # equal / unequal batches
def test_support_label_gradient_is_the_dense_one_read_at_the_support(n_rows, batch_size):
    """Labels zero off the support: the loss is the dense one, and the gradient on the support
    is the dense gradient there (float64), for all batches at once and group by group."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(n_rows, D, generator=g, dtype=torch.float64) + 0.3
    given = torch.randint(0, C, (n_rows,), generator=g)
    support = _support(n_rows, given, g)
    values = torch.rand(n_rows, V, K, generator=g, dtype=torch.float64)
    dense = _dense(values, support).reshape(n_rows, V * C)
    meta_X = torch.randn(M, D, generator=g, dtype=torch.float64)
    meta_onehot = torch.nn.functional.one_hot(torch.arange(M) % C, C).double()
    weights = meta_view_weights(M, V, cross_fit=True, seed=1, dtype=torch.float64)
    order, batches = make_partition(n_rows, batch_size, seed=0)
    store = FeatureStore(X, order, batches, "cpu", 4.0, dtype=torch.float64)
    reference = WhitenedBatches(store, 1e-3, slice(0, 15), meta_X, torch.float64)
    sparse = WhitenedBatches(store, 1e-3, slice(0, 15), meta_X, torch.float64, support, C, V)
    for group in [range(0, 3), range(0, 2), range(2, 3)]:
        l_s, g_s, rows_s = sparse.gradient(values.reshape(n_rows, -1), meta_onehot, weights, CFG, group)
        l_d, g_d, rows_d = reference.gradient(dense, meta_onehot, weights, CFG, group)
        assert rows_s == rows_d
        expected = on_support(g_d.view(-1, V, C).transpose(0, 1), support[rows_d]).transpose(0, 1)   # n x V x K
        torch.testing.assert_close(g_s.view(-1, V, K), expected, rtol=1e-9, atol=1e-12)
        assert float(l_s) == pytest.approx(float(l_d), rel=1e-12)


def test_support_pattern_products_are_the_dense_products():
    g = torch.Generator().manual_seed(1)
    n = 17
    support = _support(n, torch.randint(0, C, (n,), generator=g), g)
    values = torch.randn(n, V, K, generator=g, dtype=torch.float64)
    X = torch.randn(n, D, generator=g, dtype=torch.float64)
    B = torch.randn(V * C, D, generator=g, dtype=torch.float64)
    pattern = SupportPattern(support, C, V)
    dense = _dense(values, support).reshape(n, V * C)
    torch.testing.assert_close(pattern.transposed_product(values.reshape(n, -1), X), dense.T @ X)
    full = (X @ B.T).view(n, V, C).transpose(0, 1)
    torch.testing.assert_close(pattern.sampled_product(X, B).view(n, V, K),
                               on_support(full, support).transpose(0, 1))


def test_support_holds_the_given_label_and_the_ridge_top_classes():
    g = np.random.default_rng(0)
    truth = np.repeat(np.arange(40), 20)
    X = (g.normal(size=(40, 16)) * 2)[truth] + g.normal(size=(len(truth), 16))
    given = truth.copy()
    flip = g.random(len(given)) < 0.4
    given[flip] = g.integers(0, 40, flip.sum())
    order, batches = make_partition(len(given), 300, seed=0)
    store = FeatureStore(torch.as_tensor(X[order], dtype=torch.float32), np.arange(len(given)), batches, "cpu", 4.0)
    support = label_support(store, given[order], 40, 4, ridge=1e-3, seed=0)   # a tenth of the classes
    assert support.shape == (len(given), 4)
    assert bool((support[:, 1:] > support[:, :-1]).all())                     # distinct, ascending
    assert bool((support == torch.as_tensor(given[order]).unsqueeze(1)).any(1).all())
    # the true class is among the candidates of far more rows than with three random candidates
    # besides the given label (0.6 + 0.4 x 3 / 39 = 0.63 of them)
    assert float((support == torch.as_tensor(truth[order]).unsqueeze(1)).any(1).float().mean()) > 0.85
    for size in (5, 0):                                                        # more, or none: all classes
        assert label_support(store, given[order], 40, size, ridge=1e-3, seed=0) is None


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
    state.labels[0, 0] = -1.0                   # ... but one: uniform on its support
    dense = LabelState(_dense(state.labels, support), None, None)
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
    # a checkpoint carries the support, and refuses another
    saved = state.state_dict()
    state.load_state_dict(saved)
    other = LabelState.initial(given, C, V, CFG, support=support.flip(1).sort(1).values.roll(1, 0))
    with pytest.raises(ValueError):
        other.load_state_dict(saved)


def test_a_run_on_a_support_records_it_and_the_default_runs_dense():
    from gaussian_classes import gaussian_classes
    from dmlp import load_config, purify_dataset
    data = gaussian_classes(0.6, C=40, n=15, d=16, noise=0.3, seed=0)
    config = load_config("default").replace(epochs=3)
    on_support = purify_dataset(data, config.replace(label_support=4))
    assert on_support.result.notes["label_support"] == 4
    assert "label_support" not in purify_dataset(data, config).result.notes
    assert on_support.labels.shape == (600,) and np.isfinite(on_support.soft_labels).all()


def test_a_support_too_wide_for_the_classes_warns_and_runs_dense(caplog):
    from gaussian_classes import gaussian_classes
    from dmlp import load_config, purify_dataset
    data = gaussian_classes(0.6, C=20, n=15, d=16, noise=0.3, seed=0)
    with caplog.at_level("WARNING", logger="dmlp"):
        result = purify_dataset(data, load_config("default").replace(epochs=2, label_support=4))
    assert "label_support = 4 is more than a tenth of the 20 classes" in caplog.text
    assert "label_support" not in result.result.notes
