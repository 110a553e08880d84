"""The tool as a user meets it: the estimated noise of a 100-class run without ground truth,
the report picture, and the benchmark command outside a checkout."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from cli_helpers import make_data
from dmlp.__main__ import main as dmlp_main
from dmlp.run import main as purify_main


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


def test_hundred_classes_without_truth_in_the_meta_labels_give_a_finite_transition_matrix(tmp_path, monkeypatch):
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


def test_plot_writes_the_report_picture(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    data = make_data(tmp_path / "plotted")
    monkeypatch.chdir(tmp_path)
    assert purify_main(["--data", str(data), "--epochs", "2", "--meta-size", "100", "--quiet", "--plot"]) == 0
    png = tmp_path / "runs" / "plotted" / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_subcommand_outside_a_checkout_says_so(tmp_path, monkeypatch, capsys):
    import dmlp.__main__ as entry
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(entry, "_benchmark_main", lambda: None)
    assert dmlp_main(["benchmark", "--quick"]) == 2
    assert "source checkout" in capsys.readouterr().err


def test_meta_auto_writes_beside_the_clean_meta_run(tmp_path, monkeypatch):
    from argparse import Namespace
    from dmlp.run import _resolve_inputs
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blobs").mkdir()
    args = Namespace(config=None, data=str(tmp_path / "blobs"), epochs=None, seed=None, meta=None)
    assert _resolve_inputs(args)[2] == tmp_path / "runs" / "blobs"
    args.meta = "auto"
    assert _resolve_inputs(args)[2] == tmp_path / "runs" / "blobs_meta_auto"


def test_a_class_of_a_single_row_is_named_with_its_row(tmp_path, caplog):
    """A class with one given row (often a mistaken label, which also sets the class count) is warned
    about, with its row, and the run goes on."""
    from dmlp.run import cli
    r = np.random.default_rng(0)
    y = np.arange(300) % 4
    X = (r.normal(size=(300, 8)) + 3 * np.eye(8)[y]).astype(np.float32)
    noisy = y.copy(); noisy[37] = 4                   # a typo: class 4 has this one row
    for name, a in (("trainfeatures.npy", X), ("trainlabels.npy", noisy), ("correctlabels.npy", y)):
        np.save(tmp_path / name, a)
    with caplog.at_level(logging.WARNING, logger="dmlp"):
        assert cli(["--data", str(tmp_path), "--meta", "auto", "--out", str(tmp_path / "o"), "--epochs", "2",
                    "--quiet"]) == 0
    assert "trainlabels.npy: class 4 has a single row (row 37); if a label is a mistake, correct it" in \
        [r.getMessage() for r in caplog.records]


def test_classes_of_few_rows_are_named_rarest_first(tmp_path, caplog):
    """README asks for about 20 rows a class: classes below FEW_ROWS_A_CLASS are warned about, rarest
    first, with their row counts; a single-row class keeps its own warning."""
    from dmlp.run import FEW_ROWS_A_CLASS, cli
    r = np.random.default_rng(0)
    y = np.concatenate([np.full(n, c) for c, n in enumerate([150, 150, 12, 9])])
    X = (r.normal(size=(len(y), 8)) + 3 * np.eye(8)[y]).astype(np.float32)
    for name, a in (("trainfeatures.npy", X), ("trainlabels.npy", y), ("correctlabels.npy", y)):
        np.save(tmp_path / name, a)
    with caplog.at_level(logging.WARNING, logger="dmlp"):
        assert cli(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--epochs", "2", "--quiet"]) == 0
    warned = [m for m in (r.getMessage() for r in caplog.records) if "class(es) have fewer than" in m]
    assert len(warned) == 1 and f"2 class(es) have fewer than {FEW_ROWS_A_CLASS} rows: 3 (9 rows), 2 (12 rows);" \
        in warned[0]


def test_a_meta_set_of_a_few_clean_rows_is_warned_about(tmp_path, caplog):
    """Two clean rows on a 2-class set can end below the given labels: the command says so."""
    from dmlp.run import FEW_META_ROWS, cli
    r = np.random.default_rng(0)
    y = np.arange(200) % 2
    X = (r.normal(size=(200, 8)) + np.eye(8)[y]).astype(np.float32)
    for name, a in (("trainfeatures.npy", X), ("trainlabels.npy", y), ("correctlabels.npy", y)):
        np.save(tmp_path / name, a)
    for size, warned in ((2, True), (FEW_META_ROWS, False)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="dmlp"):
            assert cli(["--data", str(tmp_path), "--meta-size", str(size), "--out", str(tmp_path / f"o{size}"),
                        "--epochs", "2", "--quiet"]) == 0
        assert any(f"the meta set has only {size} clean rows" in r.getMessage() for r in caplog.records) is warned
