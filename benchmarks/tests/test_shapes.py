"""The data shapes of benchmarks/shapes.py: their sizes, classes and noise follow the docstring."""
from __future__ import annotations

import numpy as np

from benchmarks.loader import Cifar
from benchmarks.shapes import build_shape, shapes_table


def _cifar(rows_per_class=5000, d=4):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), rows_per_class)
    return Cifar(rng.normal(size=(len(y), d)).astype(np.float32), y, None, None, 10)


def test_long_tail_has_imbalance_ratio_100_and_20_percent_noise():
    shape, noisy = build_shape("longtail100", _cifar())
    sizes = np.bincount(shape.y, minlength=10)
    assert sizes[0] == 5000 and sizes[9] == 50 and sizes.sum() == 12406
    assert np.all(np.diff(sizes) < 0)
    assert 0.15 < (noisy != shape.y).mean() < 0.2              # DivideMix's 20 %: the true class included


def test_two_classes_and_instance_noise():
    data = _cifar()
    shape, noisy = build_shape("two_classes", data)
    assert shape.n_classes == 2 and len(shape.y) == 10000 and set(np.unique(noisy)) == {0, 1}
    _, idn = build_shape("idn40", data)
    assert 0.35 < (idn != data.y).mean() < 0.45


def test_few_rows_has_200_classes_of_at_most_20_rows():
    shape, noisy = build_shape("few_rows200", _cifar(rows_per_class=1000, d=8))
    sizes = np.bincount(shape.y, minlength=200)
    assert shape.n_classes == 200 and sizes.max() == 20 and (sizes > 0).sum() > 150
    assert 0.35 < (noisy != shape.y).mean() < 0.45


def test_table_reports_the_lead_over_the_best_baseline():
    rows = [{"shape": "s", "method": "noisy labels (given)", "label_accuracy": 0.8},
            {"shape": "s", "method": "kNN-20 vote", "label_accuracy": 0.85},
            {"shape": "s", "method": "DMLP default", "label_accuracy": 0.9}]
    assert "| s | 80.00 | 85.00 |" in shapes_table(rows) and "+5.00" in shapes_table(rows)
