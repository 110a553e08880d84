"""Noise-file export for DivideMix / C2D (dmlp.export, scripts/export_labels.py)."""
from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest

import cli_helpers
from cli_helpers import assert_cli_error

from dmlp.cli import run_cli
from dmlp.errors import InputError
from dmlp.export import export_noise_files, noise_file_name, read_noise_file
from dmlp.tools.export_labels import main as export_main

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "export_labels.py"


def run_script(*args):
    return cli_helpers.run_script(SCRIPT, *args)


def dividemix_noise_file(data_path, r, noise_mode):
    return '%s/%.1f_%s.json' % (data_path, r, noise_mode)  # Train_cifar.py


def c2d_noise_file(data_path, r, noise_mode):
    return '%s/%.2f_%s.json' % (data_path, r, noise_mode)  # main_cifar.py


@pytest.mark.parametrize("r", [0.2, 0.5, 0.8, 0.9, 0.4, 0.0, 1.0])
@pytest.mark.parametrize("mode", ["sym", "asym"])
def test_names_match_consumers(tmp_path, r, mode):
    labels = np.arange(20) % 10
    written = export_noise_files(labels, tmp_path, r, mode, formats=["dividemix", "c2d"])
    assert [str(p) for p in written] == [dividemix_noise_file(tmp_path, r, mode), c2d_noise_file(tmp_path, r, mode)]
    for p in written:
        assert json.loads(Path(p).read_text()) == labels.tolist()
    assert noise_file_name(r, mode, "dividemix") == Path(dividemix_noise_file(tmp_path, r, mode)).name
    assert noise_file_name(r, mode, "c2d") == Path(c2d_noise_file(tmp_path, r, mode)).name


def test_roundtrip_and_no_silent_overwrite(tmp_path):
    labels = np.random.default_rng(0).integers(0, 10, 100)
    (path,) = export_noise_files(labels, tmp_path, 0.5, "sym", formats=["dividemix"])
    assert path.name == "0.5_sym.json"
    assert np.array_equal(read_noise_file(path, n_rows=100, n_classes=10), labels)
    with pytest.raises(InputError, match="already exists"):
        export_noise_files(labels[::-1], tmp_path, 0.5, "sym", formats=["dividemix"])
    assert np.array_equal(read_noise_file(path), labels)
    export_noise_files(labels[::-1], tmp_path, 0.5, "sym", formats=["dividemix"], overwrite=True)
    assert np.array_equal(read_noise_file(path), labels[::-1])


def test_read_noise_file_validation(tmp_path):
    p = tmp_path / "f.json"
    p.write_text(json.dumps([0, 1, 2]))
    with pytest.raises(InputError, match="3 rows"):
        read_noise_file(p, n_rows=4)
    with pytest.raises(InputError, match="out of range"):
        read_noise_file(p, n_classes=2)
    p.write_text(json.dumps({"a": 1}))
    with pytest.raises(InputError, match="list of integers"):
        read_noise_file(p)
    p.write_text(json.dumps([0, 1.5]))
    with pytest.raises(InputError, match="list of integers"):
        read_noise_file(p)


@pytest.fixture()
def labels_npy(tmp_path):
    labels = np.random.default_rng(1).integers(0, 10, 50)
    path = tmp_path / "purified_labels.npy"
    np.save(path, labels)
    return path, labels


def test_cli_both(tmp_path, labels_npy):
    path, labels = labels_npy
    correct = tmp_path / "correctlabels.npy"
    np.save(correct, labels)
    data = tmp_path / "cifar-10-batches-py"
    args = ["--labels", path, "--data-path", data, "--r", 0.5, "--noise-mode", "sym",
            "--format", "both", "--correct-labels", correct, "--n-classes", 10]
    # A missing --data-path is refused (a typo would hide the file from the trainer) ...
    assert_cli_error(run_script(*args), "--data-path", "does not exist", "--mkdir")
    assert not data.exists()
    # ... and created when asked.
    proc = run_script(*args, "--mkdir")
    assert proc.returncode == 0, proc.stderr
    assert "100.00%" in proc.stdout
    for name in ("0.5_sym.json", "0.50_sym.json"):
        assert json.loads((data / name).read_text()) == labels.tolist()
    assert sorted(p.name for p in data.iterdir()) == ["0.50_sym.json", "0.5_sym.json"]


def test_cli_single_format_and_soft_labels(tmp_path):
    scores = np.random.default_rng(2).random((30, 10)).astype(np.float32)
    path = tmp_path / "soft.npy"
    np.save(path, scores)
    proc = run_script("--labels", path, "--data-path", tmp_path / "d", "--r", 0.8, "--noise-mode", "asym",
                      "--format", "c2d", "--mkdir")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "d" / "0.80_asym.json").read_text()) == scores.argmax(1).tolist()
    assert not (tmp_path / "d" / "0.8_asym.json").exists()


@pytest.mark.parametrize("extra,needle", [
    (["--format", "mixmatch"], "--format"),
    (["--r", "1.5"], "--r"),
    (["--r", "x"], "--r"),
    (["--n-classes", "5"], "out of range"),
    (["--bogus"], "--bogus"),
])
def test_cli_bad_arguments(tmp_path, labels_npy, extra, needle):
    path, _ = labels_npy
    args = {"--labels": path, "--data-path": tmp_path / "d", "--r": "0.5", "--noise-mode": "sym"}
    for flag, value in zip(extra[::2], extra[1::2] or [None]):
        args[flag] = value
    argv = [x for kv in args.items() for x in kv if x is not None]
    assert_cli_error(run_script(*argv), needle)
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").iterdir())


def test_cli_missing_and_wrong_length(tmp_path, labels_npy):
    path, labels = labels_npy
    assert_cli_error(run_script("--labels", tmp_path / "none.npy", "--data-path", tmp_path / "d", "--r", 0.5,
                                "--noise-mode", "sym"), "not found")
    correct = tmp_path / "correctlabels.npy"
    np.save(correct, np.zeros(51, np.int64))
    assert_cli_error(run_script("--labels", path, "--data-path", tmp_path / "d", "--r", 0.5, "--noise-mode", "sym",
                                "--correct-labels", correct), "50 rows")
    assert not (tmp_path / "d").exists()


def test_cli_refuses_overwrite(tmp_path, labels_npy):
    path, _ = labels_npy
    data = tmp_path / "d"
    data.mkdir()
    original = data / "0.5_sym.json"
    original.write_text("[1, 2, 3]")
    assert_cli_error(run_script("--labels", path, "--data-path", data, "--r", 0.5, "--noise-mode", "sym",
                                "--format", "dividemix"), "--overwrite")
    assert original.read_text() == "[1, 2, 3]"
    proc = run_script("--labels", path, "--data-path", data, "--r", 0.5, "--noise-mode", "sym",
                      "--format", "dividemix", "--overwrite")
    assert proc.returncode == 0, proc.stderr


def test_cli_help():
    proc = run_script("--help")
    assert proc.returncode == 0
    for flag in ("--labels", "--data-path", "--r", "--noise-mode", "--format", "--overwrite"):
        assert flag in proc.stdout


# --- the printed training commands ------------------------------------------------------------

RULES = {"Train_cifar.py": dividemix_noise_file, "main_cifar.py": c2d_noise_file}


def trainer_args(command):
    """(script, arguments) as the trainer's argparse reads them (--r is a float there)."""
    argv = shlex.split(command)
    assert argv[0] == "python" and argv[1] in RULES, command
    p = argparse.ArgumentParser()
    for flag in ("--dataset", "--data_path", "--noise_mode", "--num_class", "--experiment-name"):
        p.add_argument(flag)
    p.add_argument("--r", type=float)
    args, _ = p.parse_known_args(argv[2:])
    return argv[1], args


def written_and_commands(stdout):
    """[(written file, training command)] from ``dmlp export``'s report."""
    lines = stdout.splitlines()
    pairs = [(a[len("wrote "):].rsplit(" (", 1)[0], b.split(" on it: ", 1)[1])
             for a, b in zip(lines, lines[1:]) if a.startswith("wrote ") and " on it: " in b]
    assert len(pairs) == sum(x.startswith("wrote ") for x in lines), stdout
    return pairs


@pytest.mark.parametrize("r,mode", [("0.5", "sym"), ("0.45", "asym"), ("5e-1", "sym"), ("1", "sym"),
                                    ("0.85", "pure labels")])
def test_printed_commands_open_the_written_files(r, mode, tmp_path, labels_npy, capsys, monkeypatch):
    """Run from another folder with a relative --data-path: the printed --data_path, --r and
    --noise_mode give, by each trainer's own naming rule, exactly the file written."""
    path, labels = labels_npy
    monkeypatch.chdir(tmp_path)
    rc = run_cli(export_main, ["--labels", str(path), "--data-path", "cifar-10-batches-py", "--mkdir",
                               "--r", r, "--noise-mode", mode])
    out, err = capsys.readouterr()
    assert rc == 0, err
    pairs = written_and_commands(out)
    assert sorted(trainer_args(cmd)[0] for _, cmd in pairs) == ["Train_cifar.py", "main_cifar.py"]
    for written, command in pairs:
        script, args = trainer_args(command)
        assert os.path.isabs(args.data_path)
        opened = RULES[script](args.data_path, args.r, args.noise_mode)
        assert opened == os.path.abspath(written), (command, written)
        assert json.loads(Path(opened).read_text()) == labels.tolist()
        assert args.dataset == "cifar10"
        assert script == "main_cifar.py" or args.num_class == "10"
        assert script == "Train_cifar.py" or args.experiment_name  # required by C2D
    assert ("sym or asym only" in err) == (mode not in ("sym", "asym"))


def test_printed_command_dataset(tmp_path, capsys):
    labels = np.arange(200) % 100
    np.save(tmp_path / "c100.npy", labels)
    argv = ["--labels", str(tmp_path / "c100.npy"), "--data-path", str(tmp_path / "d"), "--mkdir",
            "--r", "0.2", "--noise-mode", "sym", "--format", "dividemix"]
    # CIFAR-10 named for labels of 100 classes: refused before anything is written.
    assert run_cli(export_main, argv + ["--dataset", "cifar10"]) == 2
    assert "error: --dataset cifar10: the labels reach class 99" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    # Told by the labels.
    assert run_cli(export_main, argv) == 0
    ((written, command),) = written_and_commands(capsys.readouterr().out)
    script, args = trainer_args(command)
    assert (script, args.dataset, args.num_class) == ("Train_cifar.py", "cifar100", "100")
    assert RULES[script](args.data_path, args.r, args.noise_mode) == written
    # Told by --n-classes, whatever the largest label.
    np.save(tmp_path / "few.npy", labels % 5)
    argv[1] = str(tmp_path / "few.npy")
    assert run_cli(export_main, argv + ["--n-classes", "100", "--overwrite"]) == 0
    ((_, command),) = written_and_commands(capsys.readouterr().out)
    assert trainer_args(command)[1].dataset == "cifar100"
