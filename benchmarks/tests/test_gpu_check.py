"""The prepared device check (benchmarks/gpu_check.py) on the CPU at tiny size, and the
fine-class construction it shares with benchmarks/feature_sets.py."""
import csv
import os
import subprocess
import sys

import numpy as np

from bench_helpers import REPO, cifar_like
from benchmarks.feature_sets import split_classes, unit_rows


def test_split_classes_makes_per_class_clusters():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 8))
    y = np.repeat([0, 1, 2], 200)
    fine, sizes = split_classes({"train": unit_rows(X), "test": unit_rows(X[:30])}, {"train": y, "test": y[:30]},
                                10, restarts=3)
    assert len(sizes) == 30 and min(sizes) >= 1 and sum(sizes) == 600
    assert np.array_equal(fine["train"] // 10, y) and np.array_equal(fine["test"] // 10, y[:30])
    assert np.array_equal(np.unique(fine["train"]), np.arange(30))


def test_gpu_check_runs_on_the_cpu(tmp_path):
    data = cifar_like(tmp_path / "data", n=3000, d=16)
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick", "--data", str(data),
           "--subset", "1500", "--scale-dir", str(tmp_path / "scale"), "--out-dir", str(out), "--restarts", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (out / "gpu_check.md").read_text()
    assert md in proc.stdout + "\n" or md.strip() in proc.stdout
    assert "## Labels: CPU float32 against cpu" in md and "| vector extensions |" in md
    with open(out / "gpu_check.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["part"] for r in rows] == ["cifar10", "cifar10", "agreement: cpu float32", "agreement: cpu",
                                         "100 classes", "1000 classes", "clothing1m-scale"]
    assert rows[2]["compute_dtype"] == "float32"
    assert [r["n_classes"] for r in rows[4:6]] == ["100", "1000"]
    for r in rows:
        assert float(r["total_s"]) > 0 and 0 <= float(r["label_accuracy"]) <= 1
