"""The tool as a user meets it: the ``dmlp`` command, data that decide the class count,
partially known truth, the estimated noise without ground truth, and tools that refuse what
cannot be right."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cli_helpers import ROOT, assert_cli_error, make_data
from dmlp.__main__ import main as dmlp_main
from dmlp.errors import InputError
from dmlp.run import main as purify_main
from dmlp.tools.make_noisy_labels import main as noise_main


@pytest.mark.slow
def test_python_m_dmlp_lists_every_tool_and_refuses_an_unknown_one():
    help_ = subprocess.run([sys.executable, "-m", "dmlp", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert help_.returncode == 0
    for command in ("purify", "noise", "export", "extract", "sweep", "benchmark"):
        assert f"  {command}" in help_.stdout
    bad = subprocess.run([sys.executable, "-m", "dmlp", "purfy"], cwd=ROOT, capture_output=True, text=True)
    assert_cli_error(bad, "unknown command 'purfy'")


def _hundred_classes(folder, n=3000, d=24, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    true = np.arange(n) % 100
    X = rng.normal(size=(100, d))[true] * 2 + rng.normal(size=(n, d))
    noisy = np.where(rng.random(n) < 0.3, rng.integers(0, 100, n), true)
    np.save(folder / "trainfeatures.npy", X.astype(np.float32))
    np.save(folder / "trainlabels.npy", noisy)
    np.save(folder / "correctlabels.npy", true)
    np.save(folder / "meta.npy", np.arange(500))          # five rows of every class
    return folder


def test_data_alone_decide_the_class_count_and_the_output_folder(tmp_path, monkeypatch):
    data = _hundred_classes(tmp_path / "my_hundred")
    monkeypatch.chdir(tmp_path)
    assert purify_main(["--data", str(data), "--epochs", "2", "--meta-index", str(data / "meta.npy"),
                        "--quiet"]) == 0
    summary = json.loads((tmp_path / "runs" / "my_hundred" / "summary.json").read_text())
    assert summary["config"]["name"] == "default"
    assert np.load(tmp_path / "runs" / "my_hundred" / "purified_soft_labels.npy").shape == (3000, 100)   # meta rows keep their clean labels
    T = np.asarray(summary["transition_matrix"])
    assert T.shape == (100, 100) and np.isfinite(T).all()
    np.testing.assert_allclose(T.sum(1), 1.0, atol=1e-4)
    assert 0.0 <= summary["estimated_noise_rate"] <= 1.0


def test_unknown_true_labels_are_left_out_of_the_meta_draw_and_the_report(tmp_path, monkeypatch):
    data = make_data(tmp_path / "partial")
    truth = np.load(data / "correctlabels.npy")
    truth[300:] = -1                                        # only the first 300 rows verified
    np.save(data / "correctlabels.npy", truth)
    monkeypatch.chdir(tmp_path)
    assert purify_main(["--data", str(data), "--epochs", "2", "--meta-size", "100", "--quiet"]) == 0
    out = tmp_path / "runs" / "partial"
    meta = np.load(out / "meta_indices.npy")
    assert (truth[meta] >= 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_truth_known"] == 300 - len(meta)
    assert 0.0 <= summary["label_accuracy_after"] <= 1.0


def test_plot_writes_the_report_picture(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    data = make_data(tmp_path / "plotted")
    monkeypatch.chdir(tmp_path)
    assert purify_main(["--data", str(data), "--epochs", "2", "--meta-size", "100", "--quiet", "--plot"]) == 0
    png = tmp_path / "runs" / "plotted" / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_noise_tool_refuses_a_dataset_that_disagrees_with_the_labels(tmp_path):
    data = make_data(tmp_path / "ten")
    with pytest.raises(InputError, match="has 10 classes"):
        noise_main(["--features-dir", str(data), "--out", str(tmp_path / "o"), "--mode", "sym",
                    "--rate", "0.5", "--dataset", "cifar100"])
    with pytest.raises(InputError, match="--exclude-true"):
        noise_main(["--features-dir", str(data), "--out", str(tmp_path / "o"), "--mode", "asym",
                    "--rate", "0.4", "--exclude-true"])
    assert not (tmp_path / "o").exists()


def test_benchmark_subcommand_outside_a_checkout_says_so(tmp_path, monkeypatch, capsys):
    import dmlp.__main__ as entry
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(entry, "_benchmark_main", lambda: None)
    assert dmlp_main(["benchmark", "--quick"]) == 2
    assert "source checkout" in capsys.readouterr().err
