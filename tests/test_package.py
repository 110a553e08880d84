"""The tool as a user meets it: the package, its command, data-driven runs and refusals."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cli_helpers import make_data
from conftest import ROOT, subprocess_env
from dmlp import load_config
from dmlp.__main__ import main as dmlp_main
from dmlp.config import CONFIG_DIR, config_names


def test_configs_ship_inside_the_package():
    assert CONFIG_DIR.parent.name == "dmlp" and (CONFIG_DIR / "default.toml").is_file()
    assert {"default", "paper", "cifar10_sym20", "clothing1m"} <= set(config_names())
    assert load_config("default").name == "default"


@pytest.mark.slow
def test_python_m_dmlp_help_lists_every_subcommand(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dmlp", "--help"], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for command in ("purify", "noise", "export", "extract", "sweep", "benchmark"):
        assert f"  {command}" in proc.stdout


def test_unknown_subcommand_is_one_line(capsys):
    assert dmlp_main(["purfy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: dmlp: unknown command 'purfy'")


@pytest.mark.slow
def test_data_alone_runs_default_with_classes_from_labels(tmp_path, monkeypatch, capsys):
    """--data DIR, no --config: the default method, C = 100 from the labels, runs/<folder>."""
    data = make_data(tmp_path / "c100", n=2000, c=100)
    monkeypatch.chdir(tmp_path)
    assert dmlp_main(["purify", "--data", "c100", "--epochs", "2", "--meta-size", "1000", "--quiet",
                      "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "runs" / "c100" / "summary.json").read_text())
    assert summary["config_name"] == "default" and summary["n_classes"] == 100
    assert summary["config"]["n_classes"] == 100
    assert summary["data"] == str(data.resolve())
    assert 0.0 <= summary["estimated_noise_rate"] <= 1.0 and "transition_matrix" in summary
    assert 0.0 <= summary["label_accuracy_after"] <= 1.0        # a fraction, not a percentage


@pytest.mark.slow
def test_partially_known_truth(tmp_path, capsys):
    """-1 in correctlabels.npy: meta rows drawn from known rows, reports on known rows only."""
    data = make_data(tmp_path / "partial")
    true = np.load(data / "correctlabels.npy")
    unknown = np.random.default_rng(1).random(len(true)) < 0.6
    partial = np.where(unknown, -1, true)
    np.save(data / "correctlabels.npy", partial)
    before = (data / "correctlabels.npy").read_bytes()
    out = tmp_path / "out"
    assert dmlp_main(["purify", "--data", str(data), "--out", str(out), "--epochs", "2",
                      "--meta-size", "100", "--quiet", "--device", "cpu"]) == 0
    assert (data / "correctlabels.npy").read_bytes() == before
    summary = json.loads((out / "summary.json").read_text())
    meta = np.load(out / "meta_indices.npy")
    assert (partial[meta] >= 0).all()
    assert summary["n_truth_known"] == int((partial >= 0).sum()) - len(meta)
    assert "whose true label is known" in capsys.readouterr().out
    bad = np.where(unknown, -2, true)
    np.save(data / "correctlabels.npy", bad)
    assert dmlp_main(["purify", "--data", str(data), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    assert "negative label -2" in capsys.readouterr().err


def test_export_refuses_a_missing_data_path_unless_mkdir(tmp_path, capsys):
    labels = tmp_path / "labels.npy"
    np.save(labels, np.arange(20) % 10)
    args = ["export", "--labels", str(labels), "--data-path", str(tmp_path / "typo"), "--r", "0.5",
            "--noise-mode", "sym"]
    assert dmlp_main(args) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    assert dmlp_main(args + ["--mkdir"]) == 0
    assert (tmp_path / "typo" / "0.5_sym.json").is_file()


def test_noise_refuses_wrong_dataset_and_exclude_true_with_asym(tmp_path, capsys):
    src = make_data(tmp_path / "src")
    base = ["noise", "--features-dir", str(src), "--rate", "0.4"]
    assert dmlp_main(base + ["--out", str(tmp_path / "a"), "--mode", "sym", "--dataset", "cifar100"]) == 2
    err = capsys.readouterr().err
    assert "has 10 classes" in err and "--dataset cifar100 has 100" in err
    assert dmlp_main(base + ["--out", str(tmp_path / "b"), "--mode", "asym", "--exclude-true"]) == 2
    assert "--exclude-true: applies to synthetic --mode sym only" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_importing_dmlp_makes_openmp_threads_sleep_while_they_wait():
    """OMP_WAIT_POLICY=PASSIVE unless the user set a policy: spinning waits slow down every other
    process on a shared machine (docs/deviations.md D)."""
    code = "import os, dmlp; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "ACTIVE"


def test_a_closed_pipe_is_no_traceback():
    """``dmlp --help | head``: the reader goes away before the help is written; no traceback."""
    import subprocess
    import sys
    for args in (["--help"], ["purify", "--help"]):
        proc = subprocess.Popen([sys.executable, "-m", "dmlp", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()                       # before the interpreter has started writing
        err = proc.stderr.read().decode()
        proc.wait()
        assert "Traceback" not in err and "BrokenPipeError" not in err, err
        assert proc.returncode in (0, 141)
