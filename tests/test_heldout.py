"""The cross-fitted classifier of the final decision (dmlp/heldout.py): every training row is
judged by the classifier that did not fit it."""
from __future__ import annotations

import numpy as np
import torch

from cli_helpers import make_data
from dmlp import load_config, purify_dataset
from dmlp.batches import FeatureStore, make_partition
from dmlp.heldout import cross_fitted_proba, halves


def _store(X, batch_size=100):
    order, batches = make_partition(len(X), batch_size, 0)
    return FeatureStore(X, order, batches, "cpu", 1.0), order


def test_each_row_is_judged_by_the_other_half():
    """Targets that name the half a row is in: in-sample predictions would return each row's own
    half, the cross-fitted ones the other half; the meta rows, fitted by neither, get both."""
    rng = np.random.default_rng(0)
    X = 0.01 * rng.standard_normal((600, 5)).astype(np.float32)    # the bias carries the rule
    store, order = _store(X)
    part = halves(len(X), seed=3)
    targets = np.eye(3)[part]                                    # class = the row's half
    ev = cross_fitted_proba(store, torch.as_tensor(X[:50]), targets, epochs=50, seed=3)
    np.testing.assert_array_equal(ev.train.argmax(1), 1 - part)
    np.testing.assert_allclose(ev.train.sum(1), 1.0, rtol=1e-6)
    assert (np.abs(ev.meta[:, 0] - ev.meta[:, 1]) < 0.05).all()   # one classifier says 0, the other 1


def test_learns_a_linear_rule_out_of_sample_and_is_deterministic():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2000, 8)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    store, order = _store(X, 500)
    targets = np.eye(2)[y[order]]                                # batch order, as the decision passes
    a = cross_fitted_proba(store, torch.as_tensor(X[:100]), targets, epochs=100, seed=0)
    b = cross_fitted_proba(store, torch.as_tensor(X[:100]), targets, epochs=100, seed=0)
    assert (a.train.argmax(1) == y[order]).mean() > 0.9       # chance: 0.5
    assert (a.meta.argmax(1) == y[:100]).mean() > 0.9
    assert a.train.tobytes() == b.train.tobytes() and a.meta.tobytes() == b.meta.tobytes()


def test_heldout_rounds_refit_the_classifier_in_a_whole_run(tmp_path):
    """``heldout_rounds = 2`` in a whole (short) run: the classifier is fitted again on the posterior
    that includes its first prediction, so the soft labels move; deterministic, and the labels
    beat the given ones."""
    data = make_data(tmp_path / "data", n=600)
    one = purify_dataset(data, load_config("default", epochs=3, heldout_fraction=0.5, heldout_rounds=1),
                         meta_size=60, device="cpu")
    cfg = load_config("default", epochs=3, heldout_fraction=0.5, heldout_rounds=2)
    a = purify_dataset(data, cfg, meta_size=60, device="cpu")
    b = purify_dataset(data, cfg, meta_size=60, device="cpu")
    assert a.soft_labels.tobytes() == b.soft_labels.tobytes()
    assert not np.allclose(a.soft_labels, one.soft_labels)
    evaluation = a.evaluation()
    assert evaluation["label_accuracy_after"] > evaluation["label_accuracy_before"]
