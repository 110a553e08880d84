"""Synthetic noise (dmlp.noise) and the make_noisy_labels CLI."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cli_helpers
from cli_helpers import assert_cli_error

from dmlp.errors import InputError
from shared_data import HOW, SHARED_CIFAR10
from dmlp.noise import (CIFAR10_ASYM, CIFAR100_COARSE, cifar100_asym_transition, make_noisy_labels,
                        noise_report)

ROOT = Path(__file__).resolve().parents[1]
SHARED = SHARED_CIFAR10
SCRIPT = ROOT / "scripts" / "make_noisy_labels.py"


@pytest.fixture(scope="module")
def cifar10_labels():
    path = SHARED / "correctlabels.npy"
    if not path.exists():
        pytest.skip(f"shared data not available ({path}; {HOW})")
    return np.load(path)


def run_script(*args):
    return cli_helpers.run_script(SCRIPT, *args)


@pytest.fixture()
def src(tmp_path):
    """A small source folder in the authors' layout (400 rows, 10 classes)."""
    d = tmp_path / "src"
    d.mkdir()
    rng = np.random.default_rng(0)
    np.save(d / "trainfeatures.npy", rng.standard_normal((400, 4)).astype(np.float16))
    np.save(d / "correctlabels.npy", rng.integers(0, 10, 400))
    np.save(d / "testfeatures.npy", rng.standard_normal((20, 4)).astype(np.float16))
    np.save(d / "testlabels.npy", rng.integers(0, 10, 20))
    return d


def dividemix_reference(train_label, r, noise_mode, seed, dataset="cifar10", transition=None):
    """DivideMix's own rule (dataloader_cifar.py), as it writes it, after random.seed(seed).

    ``dataset`` may also be a class count (DivideMix's loaders for other data draw
    ``randint(0, num_class - 1)``), ``transition`` another full transition dict."""
    random.seed(seed)
    transition = transition or {0: 0, 2: 0, 4: 7, 7: 7, 1: 1, 9: 1, 3: 5, 5: 3, 6: 6, 8: 8}
    n = len(train_label)
    noise_label = []
    idx = list(range(n))
    random.shuffle(idx)
    num_noise = int(r * n)
    noise_idx = idx[:num_noise]
    for i in range(n):
        if i in noise_idx:
            if noise_mode == 'sym':
                if dataset == 'cifar10':
                    noiselabel = random.randint(0, 9)
                elif dataset == 'cifar100':
                    noiselabel = random.randint(0, 99)
                else:
                    noiselabel = random.randint(0, dataset - 1)
                noise_label.append(noiselabel)
            elif noise_mode == 'asym':
                noiselabel = transition[train_label[i]]
                noise_label.append(noiselabel)
        else:
            noise_label.append(train_label[i])
    return noise_label


# --- the noise model ---------------------------------------------------------------------------

def test_sym_measured_rate_on_cifar10(cifar10_labels):
    noisy = make_noisy_labels(cifar10_labels, "sym", 0.5, seed=1)
    rate = float((noisy != cifar10_labels).mean())
    assert abs(rate - 0.45) < 0.01  # r * 9/10: the true class can be drawn


def test_asym_measured_rate_and_pairs(cifar10_labels):
    noisy = make_noisy_labels(cifar10_labels, "asym", 0.4, seed=1)
    changed = noisy != cifar10_labels
    assert abs(changed.mean() - 0.2) < 0.01  # only 5 of 10 classes flip
    pairs = set(zip(cifar10_labels[changed].tolist(), noisy[changed].tolist()))
    assert pairs == {(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)}
    assert CIFAR10_ASYM == {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def test_seed_determinism_and_difference(cifar10_labels):
    y = cifar10_labels[:5000]
    a = make_noisy_labels(y, "sym", 0.5, seed=7)
    b = make_noisy_labels(y, "sym", 0.5, seed=7)
    c = make_noisy_labels(y, "sym", 0.5, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("mode", ["sym", "asym"])
def test_matches_dividemix_reference(mode):
    y = np.random.default_rng(3).integers(0, 10, 2000)
    ours = make_noisy_labels(y, mode, 0.5, seed=123)
    ref = dividemix_reference(y.tolist(), 0.5, mode, 123)
    assert ours.tolist() == ref


def test_cifar100_sym_matches_reference():
    y = np.random.default_rng(4).integers(0, 100, 1500)
    assert make_noisy_labels(y, "sym", 0.8, seed=5, dataset="cifar100").tolist() == \
        dividemix_reference(y.tolist(), 0.8, "sym", 5, dataset="cifar100")


def test_sym_any_class_count_matches_reference():
    y = np.random.default_rng(6).integers(0, 7, 1200)
    for dataset, n_classes in ((None, None), ("cifar10", 7)):  # from the labels, or given
        assert make_noisy_labels(y, "sym", 0.6, seed=9, dataset=dataset, n_classes=n_classes).tolist() == \
            dividemix_reference(y.tolist(), 0.6, "sym", 9, dataset=7)


def test_flip_map_matches_reference():
    flips = {0: 3, 3: 0, 5: 6}
    y = np.random.default_rng(7).integers(0, 7, 1500)
    full = {c: flips.get(c, c) for c in range(7)}          # DivideMix's transition lists every class
    ours = make_noisy_labels(y, "asym", 0.4, seed=2, dataset=None, flip_map=flips)
    assert ours.tolist() == dividemix_reference(y.tolist(), 0.4, "asym", 2, transition=full)
    assert set(zip(y[ours != y].tolist(), ours[ours != y].tolist())) == set(flips.items())


def test_mode_options_that_do_not_apply():
    y = np.arange(20) % 4
    with pytest.raises(InputError, match="flip map"):
        make_noisy_labels(y, "asym", 0.2, 0, dataset=None)
    with pytest.raises(InputError, match="--flip-map"):
        make_noisy_labels(y, "sym", 0.2, 0, dataset=None, flip_map={1: 2})
    with pytest.raises(InputError, match="features"):
        make_noisy_labels(y, "instance", 0.2, 0, dataset=None)
    with pytest.raises(InputError, match="1-based"):
        make_noisy_labels(y + 1, "sym", 0.2, 0, dataset=None)


def test_exclude_true_never_keeps_true_class():
    y = np.random.default_rng(5).integers(0, 10, 3000)
    noisy = make_noisy_labels(y, "sym", 0.6, seed=2, exclude_true=True)
    # Exactly the selected rows change, every one of them to another class.
    assert (noisy != y).sum() == int(0.6 * 3000)
    idx = list(range(3000))
    random.Random(2).shuffle(idx)
    selected = np.array(idx[:int(0.6 * 3000)])
    assert np.all(noisy[selected] != y[selected])
    assert set(np.unique(noisy[selected])) == set(range(10))


def test_cifar100_superclass_mapping():
    # Standard fine -> coarse table of CIFAR-100 (e.g. 0 apple -> 4 fruit_and_vegetables,
    # 4 beaver -> 0 aquatic_mammals, 99 worm -> 13 non-insect_invertebrates).
    known = [4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6,
             13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10,
             16, 4, 17, 4, 2, 0, 17, 4, 18, 17, 10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16,
             12, 9, 13, 15, 13, 16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13]
    assert list(CIFAR100_COARSE) == known
    t = cifar100_asym_transition()
    assert sorted(t) == list(range(100)) and sorted(t.values()) == list(range(100))
    for f, g in t.items():
        assert f != g and CIFAR100_COARSE[f] == CIFAR100_COARSE[g]
    assert [t[4], t[30], t[55], t[72], t[95]] == [30, 55, 72, 95, 4]  # aquatic mammals, cyclic


def test_cifar100_asym_rate():
    y = np.repeat(np.arange(100), 20)
    noisy = make_noisy_labels(y, "asym", 0.4, seed=0, dataset="cifar100")
    assert (noisy != y).sum() == int(0.4 * 2000)  # every class flips


def test_bad_arguments():
    y = np.zeros(10, dtype=np.int64)
    with pytest.raises(InputError, match="unknown noise mode"):
        make_noisy_labels(y, "pair", 0.2, 0)
    for r in (-0.1, 1.5, float("nan")):
        with pytest.raises(InputError, match=r"\[0, 1\]"):
            make_noisy_labels(y, "sym", r, 0)
    with pytest.raises(InputError, match="asymmetric"):
        make_noisy_labels(y, "asym", 0.2, 0, dataset="svhn", n_classes=10)
    with pytest.raises(InputError, match="out of range"):
        make_noisy_labels(np.array([0, 10]), "sym", 0.2, 0)


def test_noise_report():
    true = np.array([0, 1, 2, 2])
    noisy = np.array([0, 2, 2, 1])
    rep = noise_report(true, noisy, 3)
    assert rep["measured_noise_rate"] == 0.5 and rep["n_noisy"] == 2
    assert rep["confusion"] == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    json.dumps(rep)  # JSON-ready
    # per-class rates as the shares they are (59 of 200 wrong: 0.295, not 1 - 0.705 = 0.29500000000000004)
    true, noisy = np.zeros(200, dtype=np.int64), np.zeros(200, dtype=np.int64)
    noisy[:59] = 1
    assert noise_report(true, noisy, 2)["per_class_noise_rate"][0] == 0.295


# --- the CLI -----------------------------------------------------------------------------------

def test_cli_builds_folder(src, tmp_path):
    out = tmp_path / "out"
    proc = run_script("--features-dir", src, "--mode", "sym", "--rate", 0.5, "--seed", 3, "--out", out)
    assert proc.returncode == 0, proc.stderr
    correct = np.load(src / "correctlabels.npy")
    labels = np.load(out / "trainlabels.npy")
    assert labels.tolist() == make_noisy_labels(correct, "sym", 0.5, 3).tolist()
    assert json.loads((out / "noise_file.json").read_text()) == labels.tolist()
    meta = json.loads((out / "noise.json").read_text())
    assert meta["mode"] == "sym" and meta["rate"] == 0.5 and meta["seed"] == 3
    assert meta["dataset"] is None and meta["n_classes"] == 10 and meta["n_classes_from"] == "correctlabels.npy"
    assert meta["measured_noise_rate"] == pytest.approx(float((labels != correct).mean()))
    assert len(meta["confusion"]) == 10
    for name in ("trainfeatures.npy", "correctlabels.npy", "testfeatures.npy", "testlabels.npy"):
        assert (out / name).resolve() == (src / name).resolve()
        if (out / name).is_symlink():
            assert Path(os.readlink(out / name)).is_absolute()
    # Rerunning over the same output replaces it (links included) without touching the source.
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    proc = run_script("--features-dir", src, "--mode", "asym", "--rate", 0.4, "--dataset", "cifar10", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_cli_optional_files_absent(src, tmp_path):
    (src / "testfeatures.npy").unlink()
    (src / "testlabels.npy").unlink()
    proc = run_script("--features-dir", src, "--mode", "sym", "--rate", 0.2, "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "o" / "testfeatures.npy").exists()


def test_cli_from_noise_file_roundtrip(src, tmp_path):
    correct = np.load(src / "correctlabels.npy")
    noise_file = tmp_path / "0.5_sym.json"
    ref = dividemix_reference(correct.tolist(), 0.5, "sym", 11)
    json.dump(ref, open(noise_file, "w"))  # as DivideMix writes it
    out = tmp_path / "out"
    proc = run_script("--features-dir", src, "--from-noise-file", noise_file, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert np.load(out / "trainlabels.npy").tolist() == ref
    assert json.loads((out / "noise_file.json").read_text()) == ref
    assert json.loads((out / "noise.json").read_text())["source"] == "noise-file"


def test_cli_refuses_source_as_output(src):
    before = (src / "correctlabels.npy").read_bytes()
    proc = run_script("--features-dir", src, "--mode", "sym", "--rate", 0.5, "--out", src)
    assert_cli_error(proc, "--out")
    assert not (src / "trainlabels.npy").exists()
    assert (src / "correctlabels.npy").read_bytes() == before


@pytest.mark.parametrize("args,needle", [
    (["--mode", "pair", "--rate", "0.5"], "--mode"),
    (["--mode", "sym", "--rate", "1.5"], "--rate"),
    (["--mode", "sym", "--rate", "-0.1"], "--rate"),
    (["--mode", "sym", "--rate", "abc"], "--rate"),
    (["--mode", "asym", "--rate", "0.4", "--dataset", "svhn"], "--dataset"),
    (["--rate", "0.4"], "--mode"),
    (["--mode", "sym", "--rate", "0.5", "--bogus"], "--bogus"),
])
def test_cli_bad_arguments(src, tmp_path, args, needle):
    assert_cli_error(run_script("--features-dir", src, "--out", tmp_path / "o", *args), needle)
    assert not (tmp_path / "o" / "trainlabels.npy").exists()


def test_cli_missing_files(src, tmp_path):
    assert_cli_error(run_script("--features-dir", tmp_path / "nope", "--mode", "sym", "--rate", 0.5,
                                "--out", tmp_path / "o"), "--features-dir")
    assert_cli_error(run_script("--features-dir", src, "--from-noise-file", tmp_path / "missing.json",
                                "--out", tmp_path / "o"), "--from-noise-file")
    (src / "correctlabels.npy").unlink()
    assert_cli_error(run_script("--features-dir", src, "--mode", "sym", "--rate", 0.5,
                                "--out", tmp_path / "o"), "correctlabels.npy")


def test_cli_noise_file_wrong_length_or_range(src, tmp_path):
    bad = tmp_path / "bad.json"
    json.dump([0] * 399, open(bad, "w"))
    assert_cli_error(run_script("--features-dir", src, "--from-noise-file", bad, "--out", tmp_path / "o"),
                     "399")
    json.dump([0] * 399 + [10], open(bad, "w"))
    assert_cli_error(run_script("--features-dir", src, "--from-noise-file", bad, "--out", tmp_path / "o"),
                     "out of range")
    bad.write_text("{not json")
    assert_cli_error(run_script("--features-dir", src, "--from-noise-file", bad, "--out", tmp_path / "o"),
                     "JSON")


def test_cli_help():
    proc = run_script("--help")
    assert proc.returncode == 0
    for flag in ("--features-dir", "--mode", "--rate", "--seed", "--out", "--dataset", "--exclude-true",
                 "--cifar-n", "--noise-type", "--from-noise-file", "--flip-map", "instance"):
        assert flag in proc.stdout


# --- any labels through the CLI ------------------------------------------------------------------

def _folder(tmp_path, labels, d=5, name="any"):
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(1)
    np.save(folder / "trainfeatures.npy", rng.standard_normal((len(labels), d)).astype(np.float32))
    np.save(folder / "correctlabels.npy", np.asarray(labels))
    return folder


def test_cli_any_class_count(tmp_path):
    """20 classes without --dataset: C from the labels, sym by DivideMix's rule at C = 20."""
    y = np.random.default_rng(2).integers(0, 20, 700)
    src, out = _folder(tmp_path, y), tmp_path / "out"
    proc = run_script("--features-dir", src, "--mode", "sym", "--rate", 0.5, "--seed", 4, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "20 classes (correctlabels.npy)" in proc.stdout and "measured noise" in proc.stdout
    labels = np.load(out / "trainlabels.npy")
    assert labels.tolist() == dividemix_reference(y.tolist(), 0.5, "sym", 4, dataset=20)
    meta = json.loads((out / "noise.json").read_text())
    assert meta["n_classes"] == 20 and len(meta["confusion"]) == 20


@pytest.mark.parametrize("name,text", [("flips.json", '{"1": 2, "2": 1}'), ("flips.csv", "from,to\n1,2\n2,1\n")])
def test_cli_flip_map(tmp_path, name, text):
    y = np.random.default_rng(3).integers(0, 4, 500)
    src, out = _folder(tmp_path, y), tmp_path / "out"
    (tmp_path / name).write_text(text)
    proc = run_script("--features-dir", src, "--mode", "asym", "--rate", 0.6, "--seed", 1,
                      "--flip-map", tmp_path / name, "--out", out)
    assert proc.returncode == 0, proc.stderr
    expected = make_noisy_labels(y, "asym", 0.6, 1, dataset=None, flip_map={1: 2, 2: 1})
    assert np.load(out / "trainlabels.npy").tolist() == expected.tolist()
    meta = json.loads((out / "noise.json").read_text())
    assert meta["flip_map"] == {"1": 2, "2": 1} and meta["flip_map_file"].endswith(name)
    assert meta["measured_noise_rate"] == pytest.approx(float((expected != y).mean()))


def test_cli_instance(tmp_path):
    from dmlp.idn import instance_noise
    y = np.random.default_rng(4).integers(0, 6, 800)
    src, out = _folder(tmp_path, y, d=7), tmp_path / "out"
    proc = run_script("--features-dir", src, "--mode", "instance", "--rate", 0.3, "--seed", 8, "--out", out)
    assert proc.returncode == 0, proc.stderr
    labels = np.load(out / "trainlabels.npy")
    assert labels.tolist() == instance_noise(y, np.load(src / "trainfeatures.npy"), 0.3, 8).tolist()
    meta = json.loads((out / "noise.json").read_text())
    assert meta["mode"] == "instance" and meta["seed"] == 8 and meta["rate_std"] == 0.1
    assert meta["measured_noise_rate"] == pytest.approx(float((labels != y).mean()))
    assert f"measured noise {100 * meta['measured_noise_rate']:.2f}%" in proc.stdout


@pytest.mark.parametrize("labels,args,needles", [
    (np.arange(300) % 10 + 1, [], ["correctlabels.npy", "label 0 never occurs", "1-based", "subtract 1"]),
    (np.arange(300) % 10 + 1, ["--dataset", "cifar10"], ["label 10 at row 9 out of range for 10 classes", "1-based"]),
    (np.arange(300) % 20, ["--dataset", "cifar100"], ["has 20 classes", "leave out --dataset"]),
    (np.arange(300) % 20, ["--dataset", "cifar10"], ["label 10 at row 10 out of range for 10 classes"]),
])
def test_cli_class_count_messages(tmp_path, labels, args, needles):
    src = _folder(tmp_path, labels)
    assert_cli_error(run_script("--features-dir", src, "--mode", "sym", "--rate", 0.2, "--out", tmp_path / "o",
                                *args), *needles)
    assert not (tmp_path / "o").exists()


def test_cli_testlabels_must_fit_the_class_count(tmp_path):
    src = _folder(tmp_path, np.arange(300) % 5)
    np.save(src / "testfeatures.npy", np.zeros((10, 5), np.float32))
    np.save(src / "testlabels.npy", np.arange(10))
    assert_cli_error(run_script("--features-dir", src, "--mode", "sym", "--rate", 0.2, "--out", tmp_path / "o"),
                     "testlabels.npy", "label 5 at row 5 out of range for 5 classes", "correctlabels.npy")


@pytest.mark.parametrize("args,needles", [
    (["--mode", "asym", "--rate", "0.4"], ["--mode asym needs --flip-map"]),
    (["--mode", "sym", "--rate", "0.4", "--flip-map", "x.json"], ["--flip-map", "asym only"]),
    (["--mode", "instance", "--rate", "0.4", "--exclude-true"], ["--exclude-true"]),
    (["--mode", "instance", "--rate", "0.4", "--seed", "-3"], ["--seed -3"]),
    (["--mode", "asym", "--rate", "0.4", "--flip-map", "missing.json"], ["--flip-map", "not found"]),
])
def test_cli_mode_errors(tmp_path, args, needles):
    src = _folder(tmp_path, np.arange(300) % 5)
    assert_cli_error(run_script("--features-dir", src, "--out", tmp_path / "o", *args), *needles)


def test_cli_flip_map_errors_name_the_file(tmp_path):
    src = _folder(tmp_path, np.arange(300) % 5)
    for text, needle in (('{"1": 7}', "class 7 out of range for 5 classes"), ("1,2\n1,3\n", "mapped twice"),
                         ("", "empty")):
        (tmp_path / "map.txt").write_text(text)
        assert_cli_error(run_script("--features-dir", src, "--mode", "asym", "--rate", 0.4, "--flip-map",
                                    tmp_path / "map.txt", "--out", tmp_path / "o"), "--flip-map", needle)


@pytest.mark.parametrize("name", ["correctlabels.npy", "trainfeatures.npy"])
def test_cli_empty_npy(tmp_path, name):
    src = _folder(tmp_path, np.arange(300) % 5)
    (src / name).write_bytes(b"")
    assert_cli_error(run_script("--features-dir", src, "--mode", "sym", "--rate", 0.2, "--out", tmp_path / "o"),
                     name, "the file is empty (0 bytes)")
