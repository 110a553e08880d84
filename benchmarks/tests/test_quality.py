"""Smoke test of the quality benchmark (``benchmarks/quality.py --quick``, run as ``python
scripts/benchmark.py quality ...``) on a small synthetic data folder.

Checks only that the Markdown and CSV files are produced with the expected rows and columns;
no timing or accuracy assertions.
"""
import csv
import os
import subprocess
import sys

import pytest

from bench_helpers import REPO, small_data  # noqa: F401 (a fixture)
from benchmarks import quality_tables as qt
from benchmarks.ablations import ABLATIONS
from benchmarks.loader import parse_setting
from dmlp.config import load_config
from dmlp.errors import InputError


@pytest.fixture(scope="module")
def quick_run(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("quality") / "out"
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "quality", "--quick", "--data", str(small_data),
           "--out-dir", str(out), "--epochs", "2"]
    # one thread: tiny torch ops on a shared, loaded machine are many times slower with several
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_quick_writes_markdown_and_csv(quick_run):
    out, stdout = quick_run
    md = (out / "quality.md").read_text()
    # the file holds the printed tables, not retyped ones
    for title in ("## Quality: summary", "## Quality: all methods per setting",
                  "## DMLP soft labels and label quality", "## DMLP label accuracy per epoch"):
        assert title in md and title in stdout
    assert md.strip().splitlines()[5:12] == [l for l in stdout.strip().splitlines()[5:12]]
    assert "Command: `python benchmarks/quality.py --quick" in md
    assert "torch" in md and "cores" in md
    header = next(l for l in md.splitlines() if l.startswith("| setting | noisy"))
    for col, _ in qt.SUMMARY_COLUMNS:
        assert f"| {col} |" in header
    # a smoke run judges no target
    assert "target (DMLP default)" not in header and "no target is judged" in md
    summary_row = next(l for l in md.splitlines() if l.startswith("| sym50 | "))
    assert "≥86" not in summary_row and "✓" not in summary_row and "✗" not in summary_row


def test_quick_quality_csv_rows(quick_run):
    out, _ = quick_run
    rows = _csv(out / "benchmark_quality.csv")
    assert list(rows[0]) == qt.QUALITY_FIELDS
    methods = [r["method"] for r in rows]
    assert {r["setting"] for r in rows} == {"sym50"}
    expected = [qt.NOISY, qt.DMLP_DEFAULT, qt.DMLP_PAPER, qt.DMLP_AUTO]
    expected += [qt.BASELINE_NAMES[b] for b in qt.BASELINE_NAMES if b != "cleanlab_relabel"]
    for m in expected:
        assert m in methods, m
    assert not any(m.startswith("ablation: ") for m in methods)   # --quick: no ablations, one seed
    default = next(r for r in rows if r["method"] == qt.DMLP_DEFAULT)
    assert default["seeds"] == "0"
    for r in rows:
        assert 0.0 <= float(r["label_accuracy"]) <= 1.0


def test_quick_histories_of_every_dmlp_run(quick_run):
    out, _ = quick_run
    rows = _csv(out / "quality_history.csv")
    assert list(rows[0]) == qt.HISTORY_FIELDS
    for method in qt.DMLP_METHODS:
        assert [r["epoch"] for r in rows if r["method"] == method] == ["1", "2"], method
    assert (out / "accuracy_per_epoch_sym50.png").stat().st_size > 0


def test_ablations_are_valid_overrides():
    names = [name for name, _, _ in ABLATIONS]
    assert len(names) == len(set(names))
    for name, desc, over in ABLATIONS:
        assert desc and over
        over = dict(over)
        base = load_config(over.pop("inherit", "default"))   # script-accident rows start from paper
        cfg = base.replace(**over)                           # unknown keys raise InputError
        assert any(cfg.to_dict()[k] != base.to_dict()[k] for k in over), name   # flat TOML keys


def test_settings_parse():
    assert parse_setting("sym50") == ("sym", 0.5)
    assert parse_setting("asym40") == ("asym", 0.4)
    with pytest.raises(InputError):
        parse_setting("gauss10")


def test_missing_data_says_where_it_comes_from(tmp_path, capsys):
    from benchmarks.cli import main
    rc = main(["quality", "--quick", "--data", str(tmp_path / "none"), "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr()
    assert rc == 2 and err.out == ""            # nothing printed before the error, not even a header
    line = err.err.strip()
    assert line.startswith("error: --data ") and "trainfeatures.npy" in line and "dmlp extract" in line
    assert not (tmp_path / "out").exists()


def test_baseline_rows_round_trip_through_the_feature_set_csv(tmp_path):
    from benchmarks.feature_set_quality import baseline_rows_from
    from benchmarks.output import write_csv
    rows = [dict(feature_set="raw", dims=8, classes=3, setting="sym50", method=m, kind=k, seeds="0", n_eval=10,
                 label_accuracy=a, label_accuracy_std=float("nan"), n_changed=1.0, probe_test_accuracy=float("nan"),
                 probe_test_accuracy_std=float("nan"), seconds=0.5, seconds_std=float("nan"),
                 peak_rss_increase_mb=1.0, soft_label_ece=float("nan"), label_quality_auc=float("nan"), note="")
            for m, k, a in [("noisy labels (given)", "given", 0.5), ("kNN-20 vote", "baseline", 0.7),
                            ("label propagation (best β, oracle)", "oracle", 0.75), ("DMLP default", "dmlp", 0.9)]]
    path = tmp_path / "feature_sets.csv"
    write_csv(path, rows, ["feature_set", "dims", "classes"] + list(qt.QUALITY_FIELDS))
    back = baseline_rows_from(str(path), ["raw"])
    assert [r["method"] for r in back] == ["kNN-20 vote", "label propagation (best β, oracle)"]
    assert back[0]["label_accuracy"] == 0.7 and back[1]["kind"] == "oracle"
    with pytest.raises(InputError, match="no baseline row"):
        baseline_rows_from(str(path), ["c100"])
