"""The Clothing1M-shaped generator (benchmarks/clothing_like.py) and the scale script's slope."""
import json

import numpy as np
import pytest

import bench_helpers  # noqa: F401  (the checkout on sys.path)
from benchmarks.clothing_like import make_clothing_like
from benchmarks.scale import _slope


def test_make_clothing_like_tiny(tmp_path):
    spec = make_clothing_like(tmp_path / "c", 1500, 24, 140, 100, seed=1)
    f = np.load(tmp_path / "c" / "trainfeatures.npy", mmap_mode="r")
    y = np.load(tmp_path / "c" / "correctlabels.npy")
    noisy = np.load(tmp_path / "c" / "trainlabels.npy")
    assert f.shape == (1500, 24) and f.dtype == np.float16
    assert set(np.unique(np.load(tmp_path / "c" / "metalabels.npy"))) == set(range(14))
    noise = json.loads((tmp_path / "c" / "noise.json").read_text())["measured_noise"]
    assert 0.25 < noise < 0.5 and np.isclose(noise, (noisy != y).mean())
    mtime = (tmp_path / "c" / "trainfeatures.npy").stat().st_mtime_ns
    assert make_clothing_like(tmp_path / "c", 1500, 24, 140, 100, seed=1) == spec   # reused
    assert (tmp_path / "c" / "trainfeatures.npy").stat().st_mtime_ns == mtime


def test_slope():
    assert _slope([1, 10, 100], [2, 20, 200]) == pytest.approx(1.0)
