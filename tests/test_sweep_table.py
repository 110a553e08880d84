"""The sweep table (dmlp.sweep_table) and scripts/sweep.sh, with a stand-in for DMLP.py."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dmlp.sweep_table import collect_row, to_csv, to_markdown

ROOT = Path(__file__).resolve().parents[1]

FAKE_DMLP = '''
import argparse, json, os
import numpy as np
p = argparse.ArgumentParser()
p.add_argument("--data"); p.add_argument("--out"); p.add_argument("--config")
a = p.parse_args()
y = np.load(os.path.join(a.data, "trainlabels.npy"))
t = np.load(os.path.join(a.data, "correctlabels.npy"))
os.makedirs(a.out, exist_ok=True)
json.dump({"n_train": int(len(y)), "n_meta": 10, "n_changed": 40, "seconds": 2.25,
           "label_accuracy_before": float((y == t).mean()), "label_accuracy_after": 0.95,
           "config": a.config}, open(os.path.join(a.out, "summary.json"), "w"))
'''


def _fake_run(tmp_path, name, noise, summary):
    data, run = tmp_path / "data" / name, tmp_path / "runs" / name
    data.mkdir(parents=True)
    (data / "noise.json").write_text(json.dumps(noise))
    if summary is not None:
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps(summary))
    return data, run


SUMMARY = {"n_train": 50000, "n_purified": 49000, "n_meta": 1000, "n_changed": 20000, "seconds": 12.5,
           "label_accuracy_before": 0.55, "label_accuracy_after": 0.93}


def test_table_from_fake_summaries(tmp_path):
    rows = [
        collect_row("a", *_fake_run(tmp_path, "a", {"mode": "sym", "rate": 0.5, "seed": 1,
                                                    "measured_noise_rate": 0.45}, SUMMARY)),
        collect_row("b", *_fake_run(tmp_path, "b", {"mode": "asym", "rate": 0.4, "seed": 1,
                                                    "measured_noise_rate": 0.2}, None)),
    ]
    md = to_markdown(rows)
    lines = md.strip().splitlines()
    assert lines[0] == "| setting | measured noise | label accuracy before → after | changed | seconds |"
    # the share is of the 49000 purified rows, not of all 50000 (the 1000 meta rows are never purified)
    assert lines[2] == "| sym 50% (seed 1) | 45.00% | 55.00% → 93.00% | 20000 (40.8%) | 12.5 |"
    assert lines[3].startswith("| asym 40% (seed 1) | 20.00% | failed")
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert table[0]["label_accuracy_after"] == "0.93" and table[0]["status"] == "ok"
    assert table[1]["status"] == "failed" and table[1]["seconds"] == ""


def test_cli_table(tmp_path):
    data, run = _fake_run(tmp_path, "s", {"mode": "sym", "rate": 0.2, "seed": 3, "measured_noise_rate": 0.18},
                          SUMMARY)
    proc = subprocess.run([sys.executable, "-m", "dmlp.sweep_table", "--out-md", str(tmp_path / "t.md"),
                           "--out-csv", str(tmp_path / "t.csv"), f"s={data}:{run}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "sym 20% (seed 3)" in (tmp_path / "t.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "dmlp.sweep_table", "--out-md", str(tmp_path / "t.md"),
                          "--out-csv", str(tmp_path / "t.csv"), "no-spec"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1


def test_sweep_runs_each_setting_with_progress_and_writes_the_table(tmp_path, capsys):
    from dmlp.tools.sweep import main as sweep
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 600)
    np.save(src / "trainfeatures.npy", (rng.standard_normal((600, 8)) + 3 * np.eye(10, 8)[truth]).astype(np.float32))
    np.save(src / "correctlabels.npy", truth)
    rc = sweep([str(src), str(tmp_path / "work"), "--settings", "sym50,asym0.4", "--dataset", "cifar10",
                "--seeds", "7", "--config", "paper", "--epochs", "2", "--meta-size", "100"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "[1/2] sym_0.50_s7: noisy labels" in out and "[2/2] asym_0.40_s7: done" in out
    table = list(csv.DictReader(open(tmp_path / "work" / "sweep.csv")))
    assert [r["setting"] for r in table] == ["sym 50% (seed 7)", "asym 40% (seed 7)"]
    for r in table:
        assert 0.1 < float(r["measured_noise"]) < 0.6 and 0 <= float(r["label_accuracy_after"]) <= 1
    summary = json.loads((tmp_path / "work" / "runs" / "sym_0.50_s7" / "summary.json").read_text())
    assert summary["config"]["name"] == "paper"  # purify flags reach dmlp purify


def test_sweep_sh_usage_error():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "sweep.sh")], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")


def test_parse_settings():
    from dmlp.tools.sweep import parse_settings
    assert parse_settings("sym20, asym0.4,instance40,sym0,sym100,sym1.0") == [
        ("sym", 0.2), ("asym", 0.4), ("instance", 0.4), ("sym", 0.0), ("sym", 1.0), ("sym", 1.0)]


def _sweep_cli(*args):
    return subprocess.run([sys.executable, "-m", "dmlp", "sweep", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def _five_classes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 5, 500)
    np.save(src / "trainfeatures.npy", (rng.standard_normal((500, 6)) + 3 * np.eye(5, 6)[truth]).astype(np.float32))
    np.save(src / "correctlabels.npy", truth)
    return src


def test_sweep_any_labels_any_settings(tmp_path, capsys):
    """5 classes (not CIFAR): sym, asym from a flip map and instance noise; changed is of the purified rows."""
    from dmlp.tools.sweep import main as sweep
    src, work = _five_classes(tmp_path), tmp_path / "work"
    (tmp_path / "flips.csv").write_text("0,1\n1,0\n2,3\n")
    rc = sweep([str(src), str(work), "--settings", "sym20,asym0.4,instance40", "--flip-map",
                str(tmp_path / "flips.csv"), "--epochs", "2", "--meta-size", "50"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "5 classes (from correctlabels.npy)" in out and "[3/3] instance_0.40_s0: done" in out
    table = list(csv.DictReader(open(work / "sweep.csv")))
    assert [r["setting"] for r in table] == ["sym 20% (seed 0)", "asym 40% (seed 0)", "instance 40% (seed 0)"]
    assert all(r["status"] == "ok" for r in table)
    noise = json.loads((work / "data" / "asym_0.40_s0" / "noise.json").read_text())
    assert noise["n_classes"] == 5 and noise["flip_map"] == {"0": 1, "1": 0, "2": 3}
    assert json.loads((work / "data" / "instance_0.40_s0" / "noise.json").read_text())["mode"] == "instance"
    summary = json.loads((work / "runs" / "sym_0.20_s0" / "summary.json").read_text())
    assert summary["n_purified"] == 450 and summary["n_train"] == 500
    md = (work / "sweep.md").read_text().splitlines()[2]
    assert f"| {summary['n_changed']} ({100 * summary['n_changed'] / 450:.1f}%) |" in md


def test_sweep_default_settings_without_flips(tmp_path):
    """No --dataset and no --flip-map: the default settings are the symmetric ones only."""
    from types import SimpleNamespace
    from dmlp.tools.sweep import plan
    args = SimpleNamespace(settings=None, seeds="0,1", dataset=None, flip_map=None)
    assert [r[0] for r in plan(args)][:4] == ["sym_0.20_s0", "sym_0.50_s0", "sym_0.80_s0", "sym_0.90_s0"]
    assert len(plan(args)) == 8
    args.dataset = "cifar10"
    assert "asym_0.40_s1" in [r[0] for r in plan(args)]


@pytest.mark.parametrize("args,needles", [
    (["--settings", "sym20,pair40"], ["--settings", "'pair40'"]),
    (["--settings", "sym12.5"], ["--settings", "not in [0, 1]"]),
    (["--settings", "asym40"], ["asym needs --flip-map"]),
    (["--settings", "sym20,sym0.2"], ["sym_0.20_s0 given twice"]),
    (["--sym-rates", "0.5"], ["unrecognized arguments: --sym-rates"]),
    (["--out", "x"], ["--data/--out"]),
    (["--dataset", "cifar10"], ["correctlabels.npy has 5 classes", "leave out --dataset"]),
    (["--settings", "asym40", "--flip-map", "FLIPS"], ["--flip-map", "class 9 out of range for 5 classes"]),
])
def test_sweep_errors(tmp_path, args, needles):
    from cli_helpers import assert_cli_error
    src = _five_classes(tmp_path)
    (tmp_path / "flips.json").write_text('{"9": 1}')
    args = [str(tmp_path / "flips.json") if a == "FLIPS" else a for a in args]
    assert_cli_error(_sweep_cli(src, tmp_path / "work", *args), *needles)
    assert not (tmp_path / "work").exists()
