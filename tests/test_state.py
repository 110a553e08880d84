"""The run's state objects: LabelState's checkpoint round trip, the IPC factory, the meta set."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from dmlp.batches import FeatureStore, make_partition
from dmlp.config import Config
from dmlp.ipc import FactoredIPC, WhitenedIPC, WholeTensorIPC, make_ipc
from dmlp.state import LabelState, MetaSet, label_argmax, label_distribution
from dmlp.transition import TransitionModel

N, C, V, D, M = 120, 4, 2, 6, 20


def _state(seed=0):
    g = torch.Generator().manual_seed(seed)
    given = torch.randint(0, C, (N,), generator=g)
    T = TransitionModel(torch.full((C, C), 1.0 / C), torch.zeros(C, C), 0.5, em=True)
    return LabelState.initial(given, C, V, Config().ipc, T)


def _advance(state, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        state.adam.step(state.flat, slice(10, 50), torch.randn(40, V * C, generator=g, dtype=torch.float32))
    state.transition.update(torch.rand(C, C, generator=g), "test")
    state.record(1.5, torch.zeros(N, dtype=torch.long))


def test_label_state_round_trips_through_its_state_dict():
    state = _state()
    _advance(state)
    saved = state.state_dict()
    restored = _state(seed=5)                      # different labels before the load
    restored.load_state_dict(saved)
    assert restored.epochs_done == state.epochs_done == 1
    assert restored.history == state.history
    assert torch.equal(restored.labels, state.labels)
    for key, value in state.adam.state_dict().items():
        assert torch.equal(restored.adam.state_dict()[key], value)
    assert torch.equal(restored.transition.matrix, state.transition.matrix)
    # the restored state moves on exactly as the original does
    _advance(state, seed=7)
    _advance(restored, seed=7)
    assert torch.equal(restored.labels, state.labels)
    assert torch.equal(restored.transition.matrix, state.transition.matrix)


def test_state_dict_shares_the_state_on_cpu_and_saves_it_as_it_was():
    """No copy of the N x V x C labels and moments for a checkpoint: the dict holds the
    state's own tensors, and saving it at once keeps that epoch's values."""
    import io
    state = _state()
    saved = state.state_dict()
    assert saved["labels"].data_ptr() == state.labels.data_ptr()
    assert saved["adam"]["m"].data_ptr() == state.adam.m.data_ptr()
    buffer, labels = io.BytesIO(), state.labels.clone()
    torch.save(saved, buffer)
    state.labels += 1.0
    buffer.seek(0)
    assert torch.equal(torch.load(buffer)["labels"], labels)


def _store_and_meta(limit_gb):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D)).astype(np.float32)
    order, batches = make_partition(N, 40, 0)
    store = FeatureStore(X, order, batches, torch.device("cpu"), limit_gb)
    meta = MetaSet.build(torch.as_tensor(rng.normal(size=(M, D)).astype(np.float32)), np.arange(M) % C,
                         None, C, V, True, 0)
    return store, meta


def test_the_factory_picks_the_implementation_and_they_agree():
    params = Config().replace(ridge=1e-3).ipc
    store, meta = _store_and_meta(1.0)
    whitened = make_ipc(store, meta, params, 1.0)
    assert type(whitened) is WhitenedIPC
    assert type(make_ipc(store, meta, params, 1e-9)) is FactoredIPC       # copies would not fit
    all_rows = make_ipc(store, meta, dataclasses.replace(params, update_all_rows=True), 1.0)
    assert type(all_rows) is WholeTensorIPC
    # one epoch of each independent-batch implementation moves the labels the same way
    factored = FactoredIPC(store, meta, params)
    a, b = _state(), _state()
    loss_a = whitened.epoch_step(a) + sum(whitened.batch_step(a, k, store.batch(k)) for k in range(len(store)))
    loss_b = factored.epoch_step(b) + sum(factored.batch_step(b, k, store.batch(k)) for k in range(len(store)))
    assert abs(loss_a - loss_b) < 1e-3 * abs(loss_b)
    torch.testing.assert_close(a.labels, b.labels, rtol=1e-4, atol=1e-5)
    assert not torch.equal(a.labels, _state().labels)


def test_meta_set_folds_follow_cross_fitting():
    _, meta = _store_and_meta(1.0)
    assert meta.cross_fitted and sorted(np.bincount(meta.fold)) == [M // V] * V
    for v in range(V):                             # view v's meta loss sees its own fold only
        assert torch.all((meta.view_weights[v] > 0) == torch.as_tensor(meta.fold == v))
    single = MetaSet.build(meta.features, meta.clean_labels, None, C, 1, True, 0)
    assert not single.cross_fitted and (single.fold == 0).all()


def test_label_argmax_is_the_argmax_of_the_averaged_distribution():
    g = torch.Generator().manual_seed(0)
    labels = torch.rand(2000, 3, 11, generator=g) - 0.3        # mostly several positive entries a view
    labels[::5, 0] = -1.0                                      # a view that is uniform
    labels[::7] = -1.0                                         # every view uniform: class 0 both ways
    expected = label_distribution(labels).mean(1).argmax(-1)
    assert torch.equal(label_argmax(labels), expected)


def test_record_and_distribution_in_row_blocks_match_the_whole_tensor(monkeypatch):
    import dmlp.numerics
    g = torch.Generator().manual_seed(1)
    labels = torch.rand(103, 2, 5, generator=g) - 0.2
    truth = torch.randint(0, 5, (103,), generator=g)
    state = LabelState.__new__(LabelState)
    state.labels, state.epochs_done, state.history = labels, 0, []
    monkeypatch.setattr(dmlp.numerics, "CACHE_BLOCK_ELEMENTS", 10 * 10)       # blocks of 10 rows
    record = state.record(0.0, truth)
    assert record["label_accuracy"] == int((label_argmax(labels) == truth).sum()) / 103
    assert torch.equal(state.distribution(), label_distribution(labels).mean(1))
