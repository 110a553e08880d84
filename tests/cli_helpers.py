"""Helpers shared by the CLI reliability tests: a small synthetic data folder and a runner."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "labels_cifar10" / "symmetric20"
N, D, C = 600, 16, 10
BASE_ARGS = ["--epochs", "2", "--quiet"]
BASE_CONFIG = 'inherit = "cifar10_sym20"\nname = "synthetic"\nmeta_size = 100\n'


def run_dmlp(*args, timeout=300, **kwargs):
    """``python DMLP.py ARGS`` from the repo root, as a user would run it."""
    return subprocess.run([sys.executable, "DMLP.py", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def make_data(folder: Path, n=N, d=D, c=C, seed=0) -> Path:
    """A valid data folder in the authors' layout (features carry some class signal), plus
    ``base.toml`` next to it (10 classes, 100 meta rows)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    true = np.arange(n) % c
    rng.shuffle(true)
    centres = rng.normal(size=(c, d))
    X = (centres[true] + rng.normal(size=(n, d))).astype(np.float32)
    noisy = true.copy()
    flip = rng.random(n) < 0.2
    noisy[flip] = rng.integers(0, c, flip.sum())
    np.save(folder / "trainfeatures.npy", X)
    np.save(folder / "trainlabels.npy", noisy.astype(np.int64))
    np.save(folder / "correctlabels.npy", true.astype(np.int64))
    test_true = np.arange(100) % c
    np.save(folder / "testfeatures.npy", (centres[test_true] + rng.normal(size=(100, d))).astype(np.float32))
    np.save(folder / "testlabels.npy", test_true.astype(np.int64))
    (folder.parent / "base.toml").write_text(BASE_CONFIG)
    return folder


def base_args(data: Path, extra=()):
    extra = list(map(str, extra))
    config = [] if "--config" in extra else ["--config", data.parent / "base.toml"]
    return ["--data", data, *config, *BASE_ARGS, *extra]


def assert_one_line_error(proc, needle):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert needle in lines[0], lines[0]


def snapshot(folder: Path) -> dict:
    """name -> (bytes, mtime_ns) of every file in ``folder`` (recursively)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_script(script: Path, *args, timeout=120):
    """Run ``scripts/<script>`` from the repo root as a subprocess."""
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def assert_cli_error(proc, *needles):
    """Exit code 2, exactly one ``error:`` line on stderr naming every needle, no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
