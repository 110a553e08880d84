"""The library path of a whole data set (:func:`dmlp.purify_dataset`) against the command, the
class-stratified meta draw, and the package's import graph."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from cli_helpers import ROOT, make_data, run_dmlp
from dmlp import Dataset, load_config, purify_dataset
from dmlp.errors import InputError
from dmlp.meta import draw_meta_indices

OUTPUTS = {"purified_labels.npy": "labels", "purified_soft_labels.npy": "soft_labels",
           "label_quality.npy": "label_quality", "meta_indices.npy": "meta_indices"}


@pytest.mark.slow
def test_purify_dataset_gives_the_commands_outputs(tmp_path):
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    proc = run_dmlp("--data", data, "--out", out, "--epochs", "3", "--meta-size", "100", "--quiet",
                    "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    result = purify_dataset(data, load_config("default", epochs=3), meta_size=100, device="cpu")
    for name, attr in OUTPUTS.items():
        np.testing.assert_array_equal(np.load(out / name), getattr(result, attr), err_msg=name)
    evaluation = result.evaluation()
    assert evaluation["n_truth_known"] == len(result.labels) - 100
    assert evaluation["label_accuracy_after"] > evaluation["label_accuracy_before"]


def test_arrays_and_folder_give_the_same_labels(tmp_path):
    data = make_data(tmp_path / "data", n=400)
    arrays = Dataset.from_arrays(np.load(data / "trainfeatures.npy"), np.load(data / "trainlabels.npy"),
                                 true_labels=np.load(data / "correctlabels.npy"))
    cfg = load_config("paper", epochs=2)
    a = purify_dataset(data, cfg, meta_size=60, device="cpu")
    b = purify_dataset(arrays, cfg, meta_size=60, device="cpu")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.meta_indices, b.meta_indices)
    # full length: the meta rows hold their clean labels, one-hot soft labels, quality 1
    truth = np.load(data / "correctlabels.npy")
    np.testing.assert_array_equal(a.labels[a.meta_indices], truth[a.meta_indices])
    assert np.all(a.label_quality[a.meta_indices] == 1.0)
    np.testing.assert_allclose(a.soft_labels.sum(1), 1.0, rtol=1e-5)


def test_meta_index_names_its_argument_in_the_library(tmp_path):
    data = make_data(tmp_path / "data", n=200)
    with pytest.raises(InputError, match=r"^meta_index: row index 200 out of range"):
        purify_dataset(data, meta_index=[0, 200])
    with pytest.raises(InputError, match=r"^meta_size=5: meta set has 5 rows, fewer than the 10 classes") as err:
        purify_dataset(data, meta_size=5)
    assert "meta_index, or" in str(err.value) and "--" not in str(err.value)      # no command-line flag
    assert "--meta-size 5: " in str(err.value.for_flags({"meta_size": "--meta-size", "meta_index": "--meta-index"}))
    assert ", --meta-index, or" in str(err.value.for_flags({"meta_size": "--meta-size", "meta_index": "--meta-index"}))


@pytest.mark.parametrize("n_classes,per_class,size", [(1000, 50, 1000), (200, 20, 1000), (10, 5000, 1000)])
def test_stratified_draw_covers_every_class(n_classes, per_class, size):
    truth = np.repeat(np.arange(n_classes), per_class)
    idx = draw_meta_indices(truth, size, seed=3)
    counts = np.bincount(truth[idx], minlength=n_classes)
    assert len(idx) == size == len(np.unique(idx)) and counts.min() >= 1
    assert counts.max() - counts.min() <= 1                      # balanced classes: equal shares
    np.testing.assert_array_equal(idx, draw_meta_indices(truth, size, seed=3))


def test_stratified_draw_follows_class_sizes_and_skips_unknown_rows():
    truth = np.r_[np.zeros(900, int), np.ones(90, int), np.full(10, 2), np.full(50, -1)]
    idx = draw_meta_indices(truth, 100, seed=0)
    assert np.all(truth[idx] >= 0)
    np.testing.assert_array_equal(np.bincount(truth[idx]), [88, 10, 2])   # 1 each, 97 by largest remainders
    with pytest.raises(InputError, match="cannot hold one clean row of each of the 3 classes"):
        draw_meta_indices(truth, 2, seed=0)


def test_many_classes_run_from_the_folder_alone(tmp_path):
    """200 classes x 20 rows: the default draw of 1,000 meta rows covers every class."""
    rng = np.random.default_rng(0)
    C, n, d = 200, 20, 32
    truth = np.repeat(np.arange(C), n)
    X = (rng.normal(size=(C, d))[truth] + 0.5 * rng.normal(size=(C * n, d))).astype(np.float32)
    noisy = np.where(rng.random(C * n) < 0.3, rng.integers(0, C, C * n), truth)
    data = Dataset.from_arrays(X, noisy, true_labels=truth)
    result = purify_dataset(data, load_config("default", epochs=2, batch_size=2000), device="cpu")
    assert len(np.unique(truth[result.meta_indices])) == C


def _code_shape():
    spec = importlib.util.spec_from_file_location("code_shape", ROOT / "scripts" / "code_shape.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycles_in_the_packages():
    shape = _code_shape()
    graph = shape.import_graph()
    assert "dmlp.pipeline" in graph and "benchmarks.quality" in graph
    assert shape.cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    shape = _code_shape()
    assert shape.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_one_based_labels_are_named_as_such():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 300)
    with pytest.raises(InputError, match=r"look 1-based \(1\.\.10, no 0\): subtract 1"):
        Dataset.from_arrays(rng.normal(size=(300, 8)).astype(np.float32), y + 1, true_labels=y + 1)
    # only the given labels 1-based, the true ones 0-based: the mismatch is named
    with pytest.raises(InputError, match=r"^trainlabels.npy: its labels run 1\.\.10 while correctlabels.npy's "
                                         r"run 0\.\.9: trainlabels.npy looks 1-based"):
        Dataset.from_arrays(rng.normal(size=(300, 8)).astype(np.float32), y + 1, true_labels=y)


def test_a_drawn_meta_set_takes_at_most_a_tenth_of_a_small_set(tmp_path):
    data = make_data(tmp_path / "data", n=600)               # the config's 1,000 rows would be all of it
    result = purify_dataset(data, load_config("paper", epochs=1), device="cpu")
    assert len(result.meta_indices) == 60
    assert "capped at a 10th of the 600 rows" not in result.prepared.meta.source
    with pytest.raises(InputError, match=r"^meta_size=5: meta set has 5 rows, fewer than the 10 classes"):
        purify_dataset(data, auto_meta=True, meta_size=5)


@pytest.mark.parametrize("n_rows,n_classes,size", [
    (50000, 10, 1000),      # CIFAR-10: 2 % of the rows
    (9000, 10, 180),        # the demo: 2 % is already 18 a class
    (1200, 30, 120),        # 30 classes of 40 rows: 4 a class (2 % would be 24, under one a class)
    (4000, 200, 800),       # 200 classes of 20 rows: a fifth of the rows, 4 a class
    (4500, 300, 900),       # 300 classes of 15 rows: a fifth of the rows, 3 a class
    (5000, 1000, 1000),     # 5 rows a class: still one a class
])
def test_auto_meta_size_keeps_a_few_rows_a_class_where_the_data_allow(n_rows, n_classes, size):
    from dmlp.pipeline import auto_meta_size
    assert auto_meta_size(n_rows, n_classes, 0.02) == size


def test_auto_meta_warns_where_it_picks_few_rows_a_class(caplog):
    """With fewer than three picked rows a class the check is weak (docs/deviations.md, C): the run
    says so, naming the count; with enough rows a class it stays quiet."""
    import logging

    from dmlp.pipeline import prepare_dataset_run
    rng = np.random.default_rng(0)

    def prepare(n_classes, per_class):
        truth = np.repeat(np.arange(n_classes), per_class)
        X = (rng.normal(size=(n_classes, 8))[truth] + rng.normal(size=(len(truth), 8))).astype(np.float32)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="dmlp"):
            prepare_dataset_run(Dataset.from_arrays(X, truth), load_config("default"), auto_meta=True, device="cpu")
        return [r.getMessage() for r in caplog.records if "--meta auto picks" in r.getMessage()]

    few = prepare(60, 8)                             # 480 rows: max(60, 10, min(240, 96)) = 96 picked, 1 a class
    assert len(few) == 1 and "picks 1 row(s) a class here (480 rows, 60 classes)" in few[0]
    assert prepare(10, 100) == []                    # 40 picked, 4 a class
