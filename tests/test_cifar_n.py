"""CIFAR-10N / CIFAR-100N loading (dmlp.cifar_n) on small synthetic files of the official structure."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cli_helpers import assert_cli_error  # noqa: E402
from dmlp.cifar_n import NOISE_TYPES, cifar_n_labels, load_cifar_n_file  # noqa: E402
from dmlp.errors import InputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_noisy_labels.py"
N = 300


def _flip(y, frac, n_classes, seed):
    rng = np.random.default_rng(seed)
    y = y.copy()
    rows = rng.random(y.shape[0]) < frac
    y[rows] = rng.integers(0, n_classes, rows.sum())
    return y


@pytest.fixture()
def clean10():
    return np.random.default_rng(1).integers(0, 10, N).astype(np.int64)


@pytest.fixture()
def c10_file(tmp_path, clean10):
    """Same structure as CIFAR-10_human.pt: a dict of int64 numpy arrays."""
    obj = {"clean_label": clean10, "aggre_label": _flip(clean10, 0.09, 10, 2),
           "worse_label": _flip(clean10, 0.40, 10, 3)}
    for k in (1, 2, 3):
        obj[f"random_label{k}"] = _flip(clean10, 0.17, 10, 3 + k)
    path = tmp_path / "CIFAR-10_human.pt"
    torch.save(obj, path)
    return path, obj


@pytest.fixture()
def c100_file(tmp_path):
    """Same structure as CIFAR-100_human.pt: fine labels as arrays, coarse ones as lists."""
    clean = np.random.default_rng(7).integers(0, 100, N).astype(np.int64)
    coarse = np.random.default_rng(8).integers(0, 20, N)
    obj = {"clean_label": clean, "noisy_label": _flip(clean, 0.4, 100, 9),
           "clean_coarse_label": coarse.tolist(), "noisy_coarse_label": _flip(coarse, 0.25, 20, 10).tolist()}
    path = tmp_path / "CIFAR-100_human.pt"
    torch.save(obj, path)
    return path, obj


def test_cifar10n_all_types(c10_file, clean10):
    path, obj = c10_file
    for noise_type, key in [("aggre", "aggre_label"), ("worse", "worse_label"), ("random1", "random_label1"),
                            ("random2", "random_label2"), ("random3", "random_label3")]:
        labels = cifar_n_labels(path, noise_type, correct_labels=clean10)
        assert labels.dtype == np.int64 and np.array_equal(labels, obj[key])


def test_cifar100n_fine_and_coarse(c100_file):
    path, obj = c100_file
    assert np.array_equal(cifar_n_labels(path, "noisy", correct_labels=obj["clean_label"]), obj["noisy_label"])
    coarse = cifar_n_labels(path, "noisy_coarse", correct_labels=np.array(obj["clean_coarse_label"]))
    assert coarse.tolist() == obj["noisy_coarse_label"]


def test_numpy1_style_file_loads(tmp_path, clean10):
    """Files written under numpy 1.x name the rebuild function numpy.core.multiarray._reconstruct."""
    path = tmp_path / "old.pt"
    torch.save({"clean_label": clean10, "aggre_label": clean10}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    if b"numpy._core.multiarray" in data:  # written by numpy 2: rename as numpy 1 would
        path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert np.array_equal(cifar_n_labels(path, "aggre", correct_labels=clean10), clean10)


def test_clean_label_mismatch_refused(c10_file, clean10):
    path, _ = c10_file
    shuffled = clean10[np.random.default_rng(0).permutation(N)]  # e.g. another loader's order
    with pytest.raises(InputError, match="differs from correctlabels.npy"):
        cifar_n_labels(path, "aggre", correct_labels=shuffled)
    with pytest.raises(InputError, match="rows"):
        cifar_n_labels(path, "aggre", correct_labels=clean10[:-1])


def test_wrong_file_or_type(c10_file, c100_file, clean10, tmp_path):
    with pytest.raises(InputError, match="noisy_label") as err:
        cifar_n_labels(c10_file[0], "noisy")  # a CIFAR-100N type on a CIFAR-10N file
    assert "--noise-type noisy is for CIFAR100N files, and this file holds the types aggre, worse, random1, " \
        "random2, random3" in str(err.value)
    with pytest.raises(InputError, match="unknown CIFAR-N noise type"):
        cifar_n_labels(c10_file[0], "aggregate")
    with pytest.raises(InputError, match="not found"):
        cifar_n_labels(tmp_path / "missing.pt", "aggre")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot load"):
        load_cifar_n_file(garbage)
    assert set(NOISE_TYPES) == {"aggre", "worse", "random1", "random2", "random3", "noisy", "noisy_coarse"}


class Payload:
    """An arbitrary class: a weights_only load must refuse to rebuild it."""

    def __reduce__(self):
        return (print, ("payload ran",))


def test_arbitrary_pickle_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"clean_label": Payload()}, path)
    with pytest.raises(InputError, match="cannot load safely"):
        load_cifar_n_file(path)
    assert "payload ran" not in capsys.readouterr().out


def _src(tmp_path, correct):
    d = tmp_path / "src"
    d.mkdir()
    np.save(d / "trainfeatures.npy", np.zeros((correct.shape[0], 3), np.float32))
    np.save(d / "correctlabels.npy", correct)
    return d


def test_cli_cifar_n(c10_file, clean10, tmp_path):
    path, obj = c10_file
    src = _src(tmp_path, clean10)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--features-dir", str(src), "--out", str(out),
                           "--cifar-n", str(path), "--noise-type", "worse"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.load(out / "trainlabels.npy"), obj["worse_label"])
    meta = json.loads((out / "noise.json").read_text())
    assert meta["source"] == "cifar-n" and meta["noise_type"] == "worse"
    assert meta["measured_noise_rate"] == pytest.approx(float((obj["worse_label"] != clean10).mean()))


def test_cli_cifar_n_mismatch(c10_file, clean10, tmp_path):
    src = _src(tmp_path, (clean10 + 1) % 10)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--features-dir", str(src), "--out", str(tmp_path / "o"),
                           "--cifar-n", str(c10_file[0]), "--noise-type", "aggre"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "clean_label" in lines[0]
    assert not (tmp_path / "o" / "trainlabels.npy").exists()


def _cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("dataset", [[], ["--dataset", "cifar100"]])
def test_cli_cifar100n_coarse(c100_file, tmp_path, dataset):
    """noisy_coarse: 20 superclasses, with or without --dataset cifar100."""
    path, obj = c100_file
    coarse = np.array(obj["clean_coarse_label"])
    src, out = _src(tmp_path, coarse), tmp_path / "out"
    proc = _cli("--features-dir", src, "--out", out, "--cifar-n", path, "--noise-type", "noisy_coarse", *dataset)
    assert proc.returncode == 0, proc.stderr
    assert np.load(out / "trainlabels.npy").tolist() == obj["noisy_coarse_label"]
    meta = json.loads((out / "noise.json").read_text())
    assert meta["n_classes"] == 20 and meta["n_classes_from"] == "--noise-type noisy_coarse"
    assert len(meta["confusion"]) == 20


def test_cli_coarse_type_on_fine_labels(c100_file, tmp_path):
    path, obj = c100_file
    src = _src(tmp_path, obj["clean_label"])
    assert_cli_error(_cli("--features-dir", src, "--out", tmp_path / "o", "--cifar-n", path, "--noise-type",
                          "noisy_coarse"), "clean_coarse_label differs", "equals the file's clean_label")
    assert_cli_error(_cli("--features-dir", src, "--out", tmp_path / "o", "--cifar-n", path, "--noise-type",
                          "noisy_coarse", "--dataset", "cifar10"), "--dataset cifar10", "cifar100")


def test_cli_mismatch_says_how_many_rows_and_why(c10_file, clean10, tmp_path):
    path, _ = c10_file
    other = (clean10 + 1) % 10                              # other labels (or other data), not a reordering
    other[:3] = clean10[:3]
    differ = int((other != clean10).sum())
    assert_cli_error(_cli("--features-dir", _src(tmp_path, other), "--out", tmp_path / "o", "--cifar-n", path,
                          "--noise-type", "aggre"),
                     f"at {differ} of {N} rows", "other data or other labels", "not only in another order")


def test_cli_mismatch_reordered(c10_file, clean10, tmp_path):
    shuffled = clean10[np.random.default_rng(0).permutation(N)]
    assert_cli_error(_cli("--features-dir", _src(tmp_path, shuffled), "--out", tmp_path / "o", "--cifar-n",
                          c10_file[0], "--noise-type", "aggre"), "other data or other labels", "another order")


def test_cli_one_based(c10_file, clean10, tmp_path):
    assert_cli_error(_cli("--features-dir", _src(tmp_path, clean10 + 1), "--out", tmp_path / "o", "--cifar-n",
                          c10_file[0], "--noise-type", "aggre"), "1-based", "subtract 1")


def test_one_based_file(tmp_path, clean10):
    """A CIFAR-N file whose labels run 1..10 is out of the noise type's range, and says why."""
    path = tmp_path / "one.pt"
    torch.save({"clean_label": clean10 + 1, "aggre_label": clean10 + 1}, path)
    with pytest.raises(InputError, match=r"label 10 at row \d+ out of range for 10 classes; the labels look 1-based"):
        cifar_n_labels(path, "aggre")


def test_cli_empty_pt(tmp_path, clean10):
    empty = tmp_path / "CIFAR-10_human.pt"
    empty.write_bytes(b"")
    assert_cli_error(_cli("--features-dir", _src(tmp_path, clean10), "--out", tmp_path / "o", "--cifar-n", empty,
                          "--noise-type", "aggre"), "--cifar-n", "the file is empty (0 bytes)")
