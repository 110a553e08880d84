"""End to end: ``python DMLP.py`` on the embedded demo, the authors' layout, the shared CIFAR-10
features, and the library call on the same rows."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, subprocess_env
from dmlp import load_config, purify
from dmlp.noise import make_noisy_labels

SUMMARY_KEYS = {"n_train", "n_meta", "n_classes", "n_changed", "seconds", "device", "config",
                "label_accuracy_before", "label_accuracy_after", "per_class_accuracy_after",
                "test_accuracy"}


def run_cli(*args, timeout=300):
    proc = subprocess.run([sys.executable, str(ROOT / "DMLP.py"), *map(str, args)], cwd=ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def check_outputs(out: Path, n_rows: int, n_classes: int, correct: np.ndarray):
    labels = np.load(out / "purified_labels.npy")
    soft = np.load(out / "purified_soft_labels.npy")
    meta = np.load(out / "meta_indices.npy")
    quality = np.load(out / "label_quality.npy")
    noise_file = json.loads((out / "noise_file.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert labels.dtype == np.int64 and labels.shape == (n_rows,)
    assert labels.min() >= 0 and labels.max() < n_classes
    assert soft.dtype == np.float32 and soft.shape == (n_rows, n_classes)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-5)
    assert (soft >= 0).all()
    assert meta.dtype.kind in "iu" and len(np.unique(meta)) == len(meta)
    np.testing.assert_array_equal(labels[meta], correct[meta])        # meta rows keep their clean labels
    assert quality.shape == (n_rows,) and np.isfinite(quality).all()
    assert isinstance(noise_file, list) and len(noise_file) == n_rows
    assert all(type(v) is int for v in noise_file)
    np.testing.assert_array_equal(np.array(noise_file), labels)
    assert SUMMARY_KEYS <= summary.keys(), SUMMARY_KEYS - summary.keys()
    assert summary["n_train"] == n_rows and summary["n_classes"] == n_classes
    assert summary["n_meta"] == len(meta)
    assert summary["device"] == "cpu"
    assert len(summary["per_class_accuracy_after"]) == n_classes
    assert 0 <= summary["test_accuracy"] <= 1
    assert summary["seconds"] > 0
    return labels, soft, meta, summary


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, demo_dir):
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = run_cli("--out", out, "--epochs", 3, "--quiet", "--device", "cpu")
    return out, proc


def test_demo_cli_writes_all_outputs(demo_run, demo_dir):
    out, proc = demo_run
    correct = np.load(demo_dir / "correctlabels.npy")
    noisy = np.load(demo_dir / "trainlabels.npy")
    labels, soft, meta, summary = check_outputs(out, 10000, 10, correct)
    assert len(meta) == 1000
    assert summary["config"]["epochs"] == 3
    assert "label accuracy" in proc.stdout
    rows = np.setdiff1d(np.arange(10000), meta)
    assert summary["n_changed"] == int((labels[rows] != noisy[rows]).sum())
    assert summary["label_accuracy_before"] == pytest.approx(float((noisy[rows] == correct[rows]).mean()))
    assert summary["label_accuracy_after"] == pytest.approx(float((labels[rows] == correct[rows]).mean()))
    assert summary["label_accuracy_after"] >= summary["label_accuracy_before"] - 0.01
    np.testing.assert_allclose(soft[meta, labels[meta]], 1.0)
    assert not (out / "checkpoint.pt").exists()


def test_library_call_matches_cli_on_the_same_rows(demo_run, demo_dir, one_thread):
    out, _ = demo_run
    feats = np.load(demo_dir / "trainfeatures.npy", mmap_mode="r")
    noisy = np.load(demo_dir / "trainlabels.npy")
    correct = np.load(demo_dir / "correctlabels.npy")
    meta = np.sort(np.load(out / "meta_indices.npy"))
    rows = np.setdiff1d(np.arange(len(noisy)), meta)
    cfg = load_config("cifar10_sym20", epochs=3)
    res = purify(np.asarray(feats[rows]), noisy[rows], np.asarray(feats[meta], dtype=np.float32),
                 correct[meta], config=cfg, n_classes=10, meta_noisy_labels=noisy[meta],
                 device="cpu", progress=False)
    cli_labels = np.load(out / "purified_labels.npy")
    np.testing.assert_array_equal(res.labels, cli_labels[rows])
    np.testing.assert_allclose(res.soft_labels, np.load(out / "purified_soft_labels.npy")[rows], atol=1e-6)


@pytest.fixture(scope="module")
def layout_runs(tmp_path_factory, demo_dir):
    """The authors' folder layout with float32 and float16 features (a 2,000-row slice of the demo)."""
    base = tmp_path_factory.mktemp("layout")
    n, n_test = 2000, 500
    src = {name: np.load(demo_dir / f"{name}.npy", mmap_mode="r")
           for name in ("trainfeatures", "trainlabels", "correctlabels", "testfeatures", "testlabels")}
    outs = {}
    for dtype in (np.float32, np.float16):
        data = base / np.dtype(dtype).name
        data.mkdir()
        np.save(data / "trainfeatures.npy", np.asarray(src["trainfeatures"][:n]).astype(dtype))
        np.save(data / "testfeatures.npy", np.asarray(src["testfeatures"][:n_test]).astype(dtype))
        np.save(data / "trainlabels.npy", np.asarray(src["trainlabels"][:n]))
        np.save(data / "correctlabels.npy", np.asarray(src["correctlabels"][:n]))
        np.save(data / "testlabels.npy", np.asarray(src["testlabels"][:n_test]))
        out = base / f"out_{np.dtype(dtype).name}"
        run_cli("--data", data, "--out", out, "--epochs", 2, "--meta-size", 200, "--quiet", "--device", "cpu")
        outs[np.dtype(dtype).name] = out
    return outs, np.asarray(src["correctlabels"][:n])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_authors_layout_float32_and_float16(layout_runs, dtype):
    outs, correct = layout_runs
    labels, _, meta, summary = check_outputs(outs[dtype], 2000, 10, correct)
    assert len(meta) == 200 and summary["n_meta"] == 200


def test_float16_and_float32_give_the_same_labels(layout_runs):
    """float16 -> float32 is exact, so both files hold the same numbers."""
    outs, _ = layout_runs
    for name in ("purified_labels.npy", "meta_indices.npy"):
        np.testing.assert_array_equal(np.load(outs["float32"] / name), np.load(outs["float16"] / name))
    np.testing.assert_array_equal(np.load(outs["float32"] / "purified_soft_labels.npy"),
                                  np.load(outs["float16"] / "purified_soft_labels.npy"))


def test_shared_cifar10_sym50_improves_labels(shared_cifar10, tmp_path):
    data = tmp_path / "cifar10_sym50"
    data.mkdir()
    for name in ("trainfeatures", "correctlabels", "testfeatures", "testlabels"):
        (data / f"{name}.npy").symlink_to(shared_cifar10 / f"{name}.npy")
    correct = np.load(shared_cifar10 / "correctlabels.npy")
    noisy = make_noisy_labels(correct, "sym", 0.5, seed=0)
    np.save(data / "trainlabels.npy", noisy)
    out = tmp_path / "out"
    run_cli("--config", "cifar10_sym50", "--data", data, "--out", out, "--epochs", 3, "--quiet",
            "--device", "cpu", timeout=600)
    labels, _, _, summary = check_outputs(out, len(correct), 10, correct)
    assert summary["label_accuracy_after"] > summary["label_accuracy_before"] + 0.05, summary
