"""Helpers of the benchmark tests: the checkout on sys.path, a small CIFAR-like folder.

Imported by name (``from bench_helpers import ...``) before any ``benchmarks`` import: the
benchmark package is not installed, it is read from the checkout.  The fixtures are imported
from here too: this folder has no conftest.py, whose module name would clash with
tests/conftest.py when both folders run in one session.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:          # benchmarks/ is not installed: import it from the checkout
    sys.path.insert(0, str(REPO))


def cifar_like(folder: Path, n=2500, n_test=400, d=32, c=10, seed=0) -> Path:
    """A feature folder in the shared layout: c Gaussian classes in d dimensions, float16."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(c, d)) * 1.2
    y, yt = rng.integers(0, c, n), rng.integers(0, c, n_test)
    folder.mkdir(parents=True)
    np.save(folder / "trainfeatures.npy", (means[y] + rng.normal(size=(n, d))).astype(np.float16))
    np.save(folder / "correctlabels.npy", y.astype(np.int64))
    np.save(folder / "testfeatures.npy", (means[yt] + rng.normal(size=(n_test, d))).astype(np.float16))
    np.save(folder / "testlabels.npy", yt.astype(np.int64))
    return folder


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """2,500 x 32 training rows, 10 classes, 400 test rows (import the fixture into a test module)."""
    return cifar_like(tmp_path_factory.mktemp("bench") / "data")


@pytest.fixture
def one_thread():
    """One torch thread: tiny products on a shared, loaded machine are many times slower with several."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
