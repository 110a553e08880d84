"""Never a non-finite result: features in large units purify as usual, and a stage that
produces NaN stops the run with one line naming it, before anything is written."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, make_data, run_dmlp
from dmlp.errors import NonFiniteError


@pytest.mark.slow
def test_features_times_100_through_the_cli_give_finite_outputs_and_the_same_labels(tmp_path):
    plain = make_data(tmp_path / "plain", n=2000, d=32)
    big = make_data(tmp_path / "big", n=2000, d=32)
    np.save(big / "trainfeatures.npy", np.load(plain / "trainfeatures.npy") * 100)
    np.save(big / "testfeatures.npy", np.load(plain / "testfeatures.npy") * 100)
    labels = {}
    for name, data in (("plain", plain), ("big", big)):
        proc = run_dmlp("--data", data, "--out", tmp_path / f"out_{name}", "--epochs", "5",
                        "--meta-size", "200", "--quiet")
        assert proc.returncode == 0, proc.stderr
        soft = np.load(tmp_path / f"out_{name}" / "purified_soft_labels.npy")
        assert np.isfinite(soft).all()
        assert np.isfinite(np.load(tmp_path / f"out_{name}" / "label_quality.npy")).all()
        summary = json.loads((tmp_path / f"out_{name}" / "summary.json").read_text())
        assert np.isfinite(np.asarray(summary["transition_matrix"])).all()
        labels[name] = np.load(tmp_path / f"out_{name}" / "purified_labels.npy")
    assert (labels["plain"] == labels["big"]).mean() >= 0.99


def test_a_stage_producing_nan_stops_the_run_before_anything_is_written(tmp_path, monkeypatch, capsys):
    import dmlp.posterior as posterior
    from dmlp.run import cli
    data = make_data(tmp_path / "d")
    real = posterior.transition_from_posteriors
    monkeypatch.setattr(posterior, "transition_from_posteriors",
                        lambda *a, **k: real(*a, **k) * np.nan)
    out = tmp_path / "out"
    assert cli(["--data", str(data), "--out", str(out), "--epochs", "2", "--meta-size", "100", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: transition EM") and "non-finite" in err[0], err
    assert not out.exists() or not any(out.iterdir())


def test_purify_raises_the_same_as_an_exception(monkeypatch):
    import dmlp.posterior as posterior
    from dmlp import load_config, purify
    rng = np.random.default_rng(0)
    y = np.arange(400) % 4
    X = rng.normal(size=(400, 8)) + 2 * np.eye(4, 8)[y]
    real = posterior.transition_from_posteriors
    monkeypatch.setattr(posterior, "transition_from_posteriors", lambda *a, **k: real(*a, **k) * np.nan)
    with pytest.raises(NonFiniteError, match="transition EM"):
        purify(X[40:], y[40:], X[:40], y[:40], load_config("default", epochs=2), meta_noisy_labels=y[:40],
               progress=False)
