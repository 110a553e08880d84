"""The final decision's check on the meta rows (dmlp.decision.MetaCheck): fold-free evidence."""
from __future__ import annotations

import numpy as np

from gaussian_classes import gaussian_classes

from dmlp import load_config, purify_dataset
from dmlp.decision import MetaCheck


def _clusters(centre_scale, seed=0, C=200, n=20, d=32, noise=0.42):
    return gaussian_classes(centre_scale, C=C, n=n, d=d, noise=noise, seed=seed)


def test_meta_check_keeps_the_given_labels_where_the_features_barely_separate_the_classes():
    # 200 classes of 20 rows whose centres barely stand out of the noise:
    # the meta rows' own clean labels come back through the graph and the held-out classifier,
    # and the unchecked decision ends below the given labels
    data = _clusters(0.35, seed=3)
    unchecked = purify_dataset(data, load_config("default"), device="cpu", progress=False)     # off by default
    checked = purify_dataset(data, load_config("default", meta_check=True), device="cpu", progress=False)
    assert "meta_check" not in unchecked.result.notes
    before = unchecked.evaluation()["label_accuracy_before"]
    assert unchecked.evaluation()["label_accuracy_after"] < before
    check = checked.result.notes["meta_check"]
    assert not check["passed"] and check["fixed"] <= check["broken"]
    rows = checked.prepared.rows
    assert np.array_equal(checked.labels[rows], data.noisy_labels[rows])


def test_meta_check_passes_where_the_features_separate_the_classes():
    data = _clusters(1.0, C=20, n=60)
    out = purify_dataset(data, load_config("default", meta_check=True), device="cpu", progress=False)
    check = out.result.notes["meta_check"]
    assert check["passed"] and check["decision_accuracy"] > check["given_accuracy"]
    e = out.evaluation()
    assert e["label_accuracy_after"] > e["label_accuracy_before"] + 0.1


def test_meta_check_passes_only_on_more_fixed_than_broken():
    assert MetaCheck(10, 3, 2, 0.5, 0.6).passed
    assert not MetaCheck(10, 2, 2, 0.5, 0.5).passed and not MetaCheck(10, 0, 0, 0.5, 0.5).passed
