"""Shared fixtures: the repo root, the demo folder and the shared CIFAR-10 feature folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # as dmlp sets it, before any test imports torch

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared_data import HOW, SHARED_CIFAR10  # noqa: E402


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def demo_dir(repo_root) -> Path:
    return repo_root / "labels_cifar10" / "symmetric20"


@pytest.fixture(scope="session")
def shared_cifar10() -> Path:
    needed = ("trainfeatures.npy", "correctlabels.npy", "testfeatures.npy", "testlabels.npy")
    if not all((SHARED_CIFAR10 / f).exists() for f in needed):
        pytest.skip(f"shared CIFAR-10 features not found in {SHARED_CIFAR10} ({HOW})")
    return SHARED_CIFAR10


@pytest.fixture
def one_thread():
    """Small matrices are much faster on one thread on a shared 2-core machine."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def subprocess_env() -> dict:
    """Environment for CLI subprocesses: repo importable, one BLAS/OpenMP thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env
