"""The purify() loop: partition, feature store, a synthetic case with known truth, determinism."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from dmlp import load_config, purify
from dmlp.batches import FeatureStore, gather_rows, make_partition
from dmlp.errors import InputError


# --- partition -----------------------------------------------------------------------------

@pytest.mark.parametrize("n,bs", [(10000, 7000), (10, 3), (5, 100), (1001, 100), (7, 7), (50000, 7000)])
def test_partition_covers_rows_once_with_balanced_sizes(n, bs):
    order, batches = make_partition(n, bs, seed=0)
    assert sorted(order.tolist()) == list(range(n))
    sizes = [s.stop - s.start for s in batches]
    assert batches[0].start == 0 and batches[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(batches[:-1], batches[1:]))
    assert max(sizes) - min(sizes) <= 1
    assert max(sizes) <= bs and min(sizes) >= 1
    assert len(batches) == -(-n // bs)


def test_partition_is_seeded():
    a, ba = make_partition(1000, 300, seed=3)
    b, bb = make_partition(1000, 300, seed=3)
    c, _ = make_partition(1000, 300, seed=4)
    assert np.array_equal(a, b) and ba == bb
    assert not np.array_equal(a, c)


# --- feature store -------------------------------------------------------------------------

def test_feature_store_resident_and_streamed_serve_identical_batches(tmp_path):
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float16, shape=(503, 16))
    mm[:] = rng.normal(size=(503, 16)).astype(np.float16)
    mm.flush()
    feats = np.load(tmp_path / "f.npy", mmap_mode="r")
    order, batches = make_partition(503, 120, seed=1)
    resident = FeatureStore(feats, order, batches, torch.device("cpu"), resident_limit_gb=4.0)
    streamed = FeatureStore(feats, order, batches, torch.device("cpu"), resident_limit_gb=0)
    assert resident.resident and not streamed.resident
    assert len(resident) == len(streamed) == len(batches)
    for k, rows in enumerate(batches):
        a, b = resident.batch(k), streamed.batch(k)
        assert a.dtype == b.dtype == torch.float32
        assert torch.equal(a, b)
        assert torch.equal(a, torch.from_numpy(np.asarray(feats[order[rows]], dtype=np.float32)))
    assert torch.equal(resident.rows(slice(37, 301)), streamed.rows(slice(37, 301)))


def test_gather_rows_small_chunks_unsorted_indices():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(100, 5)).astype(np.float16)
    idx = rng.permutation(100)[:60]
    out = gather_rows(a, idx, torch.empty(60, 5), chunk=7)
    assert torch.equal(out, torch.from_numpy(a[idx].astype(np.float32)))


def test_gather_rows_from_a_memory_mapped_subset_scaled_equals_the_direct_form(tmp_path):
    """The streamed path: a RowSubset of a .npy memory map (read by file reads into reused
    buffers), rows in any order, scaled: the same bits as indexing and scaling in NumPy."""
    from dmlp.data import load_npy
    from dmlp.rows import RowSubset
    from dmlp.scaling import fit_feature_scaling
    rng = np.random.default_rng(2)
    a = (rng.normal(size=(300, 6)) * 5 + 3).astype(np.float16)
    np.save(tmp_path / "f.npy", a)
    kept = np.sort(rng.permutation(300)[:250])
    subset = RowSubset(load_npy(tmp_path / "f.npy"), kept)
    scaling = fit_feature_scaling(a[kept], method="standardise")
    idx = rng.permutation(250)[:190]
    out = gather_rows(subset, idx, torch.empty(190, 6), chunk=32, scaling=scaling)
    assert torch.equal(out, torch.from_numpy(scaling.apply(a[kept][idx])))
    bf16 = gather_rows(subset, idx, torch.empty(190, 6, dtype=torch.bfloat16), chunk=32, scaling=scaling)
    assert torch.equal(bf16, out.to(torch.bfloat16))          # scaled in float32, then rounded
    from dmlp.rows import read_rows
    for rows in (np.array([9, 3, 3, 200, 0]), np.array([0, 1, 2, 7, 8])):     # any order, repeats
        buffer = np.empty((5, 6), dtype=np.float16)
        assert read_rows(subset.array, rows, out=buffer) is buffer and np.array_equal(buffer, a[rows])


def test_feature_store_accepts_tensors():
    X = torch.randn(50, 4, dtype=torch.float64)
    order, batches = make_partition(50, 20, seed=0)
    r = FeatureStore(X, order, batches, "cpu", 4.0)
    s = FeatureStore(X, order, batches, "cpu", 0)
    for k in range(len(batches)):
        assert torch.equal(r.batch(k), s.batch(k))
        assert torch.equal(r.batch(k), X[torch.as_tensor(order[batches[k]])].float())


# --- a synthetic case with known truth -----------------------------------------------------

def gaussian_mixture(n=3200, d=20, C=5, sep=3.0, noise=0.5, seed=0):
    """C unit-variance Gaussians with means at distance ~sep from the origin (Bayes accuracy ~95 %);
    a fraction ``noise`` of the labels replaced by a different class (noisy accuracy ~50 %)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(C, d))
    means *= sep / np.linalg.norm(means, axis=1, keepdims=True)
    y = rng.integers(0, C, n)
    X = (means[y] + rng.normal(size=(n, d))).astype(np.float32)
    noisy = y.copy()
    flip = rng.random(n) < noise
    noisy[flip] = (y[flip] + rng.integers(1, C, flip.sum())) % C
    return X, y, noisy


M = 200


@pytest.fixture(scope="module")
def mixture():
    return gaussian_mixture()


def _run(mixture, cfg, **kw):
    X, y, noisy = mixture
    return purify(X[M:], noisy[M:], X[:M], y[:M], config=cfg, n_classes=5,
                  meta_noisy_labels=noisy[:M], device="cpu", progress=False, **kw)


# epochs: the paper's schedule flips labels mainly through the EMA exchange every 20 epochs, so
# it needs several exchanges (with 20 epochs it changes no label on this problem); the default
# (Bayes decision with the transition model) is already good after 20 epochs.
@pytest.mark.parametrize("name,epochs,batch_size,margin", [("paper", 100, 1000, 0.25),
                                                           ("default", 20, 500, 0.15)])
def test_synthetic_mixture_purification_beats_noisy_labels(mixture, one_thread, name, epochs, batch_size, margin):
    X, y, noisy = mixture
    cfg = load_config(name).replace(epochs=epochs, batch_size=batch_size)
    res = _run(mixture, cfg, true_labels=y[M:])
    before = float((noisy[M:] == y[M:]).mean())
    after = float((res.labels == y[M:]).mean())
    assert 0.45 < before < 0.55
    assert after >= before + margin, f"{name}: {before:.3f} -> {after:.3f}"
    assert res.labels.dtype == np.int64 and res.labels.shape == (3000,)
    assert res.soft_labels.dtype == np.float32
    np.testing.assert_allclose(res.soft_labels.sum(1), 1.0, rtol=1e-5)
    assert res.n_changed == int((res.labels != noisy[M:]).sum())
    np.testing.assert_array_equal(res.label_quality, res.soft_labels[np.arange(3000), noisy[M:]])
    assert len(res.history) == epochs
    if cfg.decision.rule == "argmax":   # history tracks the views' argmax, before any Bayes decision
        assert res.history[-1]["label_accuracy"] == pytest.approx(after, abs=1e-6)
    # the estimated label quality separates wrong from right given labels
    wrong = noisy[M:] != y[M:]
    assert res.label_quality[~wrong].mean() > res.label_quality[wrong].mean() + 0.2


def test_purify_is_deterministic_on_cpu(mixture, one_thread):
    cfg = load_config("default").replace(epochs=5, batch_size=700)
    a = _run(mixture, cfg)
    b = _run(mixture, cfg)
    assert a.labels.tobytes() == b.labels.tobytes()
    assert a.soft_labels.tobytes() == b.soft_labels.tobytes()
    assert a.label_quality.tobytes() == b.label_quality.tobytes()
    c = _run(mixture, cfg.replace(seed=1))
    assert c.soft_labels.tobytes() != a.soft_labels.tobytes()      # a different seed may differ


def test_posterior_graph_round_runs_end_to_end(mixture, one_thread):
    """``graph_posterior_rounds``: the decision re-seeds the graph from its posterior; the labels
    stay a distribution, and as good as without the round on this easy problem."""
    X, y, noisy = mixture
    cfg = load_config("default").replace(epochs=10, batch_size=500)
    plain, rounds = _run(mixture, cfg), _run(mixture, cfg.replace(graph_posterior_rounds=1))
    assert rounds.soft_labels.tobytes() != plain.soft_labels.tobytes()
    np.testing.assert_allclose(rounds.soft_labels.sum(1), 1.0, rtol=1e-5)
    assert (rounds.labels == y[M:]).mean() >= (plain.labels == y[M:]).mean() - 0.01


def test_missing_faiss_is_refused_before_the_loop(mixture, monkeypatch):
    """``graph_search = "faiss"`` without faiss: one InputError before any epoch runs."""
    monkeypatch.setitem(sys.modules, "faiss", None)          # import faiss -> ImportError
    epochs = []
    with pytest.raises(InputError, match="needs faiss"):
        _run(mixture, load_config("default").replace(epochs=2, graph_search="faiss"),
             on_epoch_end=lambda epoch, state: epochs.append(epoch))
    assert epochs == []


def test_timings_account_for_the_total(mixture, tmp_path):
    """The phases of ``PurifyResult.timings`` (checkpoint writes and streamed reads included) add
    up to ``total``: the untimed remainder is bookkeeping, well under the timed phases."""
    import torch
    cfg = load_config("default").replace(epochs=3, batch_size=700)
    X, y, noisy = mixture
    res = _run(mixture, cfg, true_labels=y[M:],           # with the truth: the history's accuracy
               on_epoch_end=lambda epoch, state: torch.save(state(), tmp_path / "c.pt"))
    t = res.timings
    parts = sum(v for k, v in t.items() if k != "total")
    assert set(t) == {"setup", "read", "ipc", "eac", "report", "checkpoint", "final", "total"}
    assert t["checkpoint"] > 0
    assert parts <= t["total"] + 1e-6
    assert t["total"] - parts < 0.1 * t["total"], t


def test_purify_rejects_meta_set_missing_a_class(mixture):
    X, y, noisy = mixture
    keep = y[:M] != 4
    with pytest.raises(InputError, match="class"):
        purify(X[M:], noisy[M:], X[:M][keep], y[:M][keep], config=load_config("paper").replace(epochs=1),
               n_classes=5, device="cpu", progress=False)


def test_purify_accepts_float16_memmap_and_streams(mixture, tmp_path, one_thread):
    """Streaming (resident_limit_gb=0) gives the same labels as resident features (which take
    the whitened, all-batches-at-once path: the same arithmetic in another order)."""
    X, y, noisy = mixture
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float16, shape=X[M:].shape)
    mm[:] = X[M:].astype(np.float16)
    mm.flush()
    feats = np.load(tmp_path / "x.npy", mmap_mode="r")
    cfg = load_config("paper").replace(epochs=3, batch_size=1000, compute_dtype="float32")
    kw = dict(config=cfg, n_classes=5, device="cpu", progress=False)
    a = purify(feats, noisy[M:], X[:M], y[:M], **kw)
    b = purify(feats, noisy[M:], X[:M], y[:M], **{**kw, "config": cfg.replace(resident_limit_gb=0.0)})
    assert np.array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.soft_labels, b.soft_labels, atol=1e-4)


def test_bfloat16_products_agree_with_float32(mixture):
    """The bf16 path (whitened IPC basis, bf16 EAC products) changes almost no label."""
    X, y, noisy = mixture
    cfg = load_config("default").replace(epochs=20, batch_size=1000)
    kw = dict(n_classes=5, device="cpu", progress=False, meta_noisy_labels=noisy[:M])
    ref = purify(X[M:], noisy[M:], X[:M], y[:M], config=cfg.replace(compute_dtype="float32"), **kw)
    low = purify(X[M:], noisy[M:], X[:M], y[:M], config=cfg.replace(compute_dtype="bfloat16"), **kw)
    assert (ref.labels == low.labels).mean() > 0.99
    assert np.abs(ref.soft_labels - low.soft_labels).mean() < 0.01
    assert abs((ref.labels == y[M:]).mean() - (low.labels == y[M:]).mean()) < 0.01
