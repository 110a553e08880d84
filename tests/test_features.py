"""Feature extraction: folder/CIFAR inputs, checkpoint layouts, order, determinism, errors.

Uses the first 30 training images of each CIFAR-10 class from the shared JPEG archive (skipped
when absent) and a randomly initialised ResNet-18 with a CIFAR stem, saved under every
supported checkpoint layout by renaming its keys and adding a fake projection head.
"""
from __future__ import annotations

import argparse
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("PIL")

from dmlp.cli import run_cli  # noqa: E402
from dmlp.features.backbones import build_backbone  # noqa: E402
from dmlp.features.extract import main  # noqa: E402
from shared_data import HOW, SHARED_JPEGS  # noqa: E402

ARCHIVE = SHARED_JPEGS
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS = 30


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    if not ARCHIVE.exists():
        pytest.skip(f"{ARCHIVE} not available ({HOW})")
    root = tmp_path_factory.mktemp("imgs")
    pattern = re.compile(r"^cifar10-jpeg/train/([a-z]+)/(\d+)\.jpg$")
    with tarfile.open(ARCHIVE) as tar:
        for member in tar:
            m = pattern.match(member.name)
            if m and int(m.group(2)) < PER_CLASS and member.isfile():
                dest = root / m.group(1) / Path(member.name).name
                dest.parent.mkdir(exist_ok=True)
                dest.write_bytes(tar.extractfile(member).read())
    return root


def _model():
    torch.manual_seed(0)
    model = build_backbone("resnet18", "cifar")
    # Non-trivial BN statistics, so a mis-mapped BN buffer would change the features.
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
            m.weight.data.uniform_(0.5, 1.5, generator=g)
    return model.eval()


def _rename(sd, fmt):
    """Our (torchvision-style) keys -> the layout of ``fmt``, plus a fake head."""
    head = {"w": torch.randn(128, 512), "b": torch.randn(128)}
    left = {"conv1": "f.0", "bn1": "f.1", "layer1": "f.3", "layer2": "f.4", "layer3": "f.5",
            "layer4": "f.6"}
    out = {}
    for k, v in sd.items():
        if fmt == "c2d":
            out["encoder.module." + k.replace(".downsample.", ".shortcut.")] = v
        elif fmt == "sthalles":
            out["backbone." + k] = v
        elif fmt == "leftthomas":
            first, rest = k.split(".", 1)
            out[f"{left[first]}.{rest}"] = v
        elif fmt == "spijkervet":
            out["encoder." + k] = v
        elif fmt == "moco":
            out["module.encoder_q." + k] = v
            out["module.encoder_k." + k] = v.clone() + 1  # key encoder: must be ignored
    if fmt == "c2d":
        out.update({"head.0.weight": head["w"], "head.0.bias": head["b"]})
        return {"model": out, "opt": argparse.Namespace(lr=0.5), "epoch": 500}
    if fmt == "sthalles":
        out.update({"backbone.fc.0.weight": head["w"], "backbone.fc.2.bias": head["b"]})
        return {"epoch": 100, "arch": "resnet18", "state_dict": out}
    if fmt == "leftthomas":
        out.update({"g.0.weight": head["w"], "g.3.bias": head["b"]})
        return out
    if fmt == "spijkervet":
        out.update({"projector.0.weight": head["w"], "projector.2.weight": head["w"]})
        return out
    out.update({"module.encoder_q.fc.0.weight": head["w"], "module.encoder_q.fc.2.bias": head["b"],
                "module.queue": torch.randn(128, 64), "module.queue_ptr": torch.zeros(1)})
    return {"epoch": 200, "arch": "resnet18", "state_dict": out}


FORMATS = ["c2d", "sthalles", "leftthomas", "spijkervet", "moco"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    sd = _model().state_dict()
    paths = {}
    for fmt in FORMATS:
        paths[fmt] = folder / f"{fmt}.pth"
        torch.save(_rename(sd, fmt), paths[fmt])
    return paths


def _error_line(err):
    """The run ended with exactly one ``error: ...`` line (after any progress messages)."""
    lines = err.strip().splitlines()
    return lines[-1].startswith("error: ") and sum(x.startswith("error") for x in lines) == 1


def _run(capsys, *argv):
    rc = run_cli(main, [str(a) for a in argv] + ["--quiet", "--device", "cpu"])
    return rc, capsys.readouterr().err


@pytest.fixture(scope="module")
def subset_list(image_root, tmp_path_factory):
    """A 20-image list (2 per class, interleaved) for the cheaper per-format runs."""
    lst = tmp_path_factory.mktemp("list") / "files.txt"
    lines = [f"{c}/{k:04d}.jpg" for k in (3, 7) for c in CLASSES]
    lst.write_text("# subset\n" + "\n".join(lines) + "\n")
    return lst, lines


def test_folder_shapes_labels_determinism(image_root, ckpts, tmp_path, capsys):
    out1, out2 = tmp_path / "a" / "trainfeatures.npy", tmp_path / "b" / "trainfeatures.npy"
    labels = tmp_path / "a" / "labels.npy"
    rc, err = _run(capsys, "--input", image_root, "--checkpoint", ckpts["c2d"], "--out", out1,
                   "--labels-out", labels, "--classes-out", tmp_path / "a" / "classes.json",
                   "--batch-size", 64)
    assert rc == 0, err
    feats = np.load(out1)
    assert feats.shape == (10 * PER_CLASS, 512) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    # Order: class by class (sorted folder names = CIFAR order), files in number order.
    np.testing.assert_array_equal(np.load(labels), np.repeat(np.arange(10), PER_CLASS))
    assert (tmp_path / "a" / "classes.json").read_text().count('"') == 20
    rc, err = _run(capsys, "--input", image_root, "--checkpoint", ckpts["c2d"], "--out", out2,
                   "--batch-size", 64)
    assert rc == 0, err
    assert out1.read_bytes() == out2.read_bytes()  # deterministic, byte for byte
    assert not [p for p in out1.parent.iterdir() if p.name.startswith(".")]  # no temp left
    # kNN across runs: each row's nearest neighbour in the other run is the same image.
    a = np.load(out1)
    b = np.load(out2)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_array_equal((a @ b.T).argmax(axis=1), np.arange(len(a)))


def test_every_format_gives_identical_features(image_root, ckpts, subset_list, tmp_path, capsys):
    lst, lines = subset_list
    results = {}
    for fmt in FORMATS:
        out, lab = tmp_path / f"{fmt}.npy", tmp_path / f"{fmt}_labels.npy"
        rc, err = _run(capsys, "--input", image_root, "--checkpoint", ckpts[fmt], "--out", out,
                       "--labels-out", lab, "--file-list", lst)
        assert rc == 0, err
        assert f"{fmt} checkpoint" in err  # auto-detected
        results[fmt] = np.load(out)
        np.testing.assert_array_equal(np.load(lab), [CLASSES.index(x.split("/")[0]) for x in lines])
    for fmt in FORMATS[1:]:
        assert results[fmt].tobytes() == results["c2d"].tobytes(), fmt
    # The file list's order is honoured: its rows equal the matching rows of a reference run.
    model = _model()
    ref = _run_model_on(model, [image_root / x for x in lines])
    np.testing.assert_allclose(results["c2d"], ref, rtol=1e-4, atol=1e-4)
    # Explicit --checkpoint-format and --float16 also work.
    out = tmp_path / "half.npy"
    rc, err = _run(capsys, "--input", image_root, "--checkpoint", ckpts["moco"], "--out", out,
                   "--file-list", lst, "--checkpoint-format", "moco", "--float16")
    assert rc == 0, err
    half = np.load(out)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), results["moco"], rtol=1e-2, atol=1e-2)


def _run_model_on(model, paths):
    from PIL import Image
    mean = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
    std = torch.tensor((0.2023, 0.1994, 0.2010)).view(1, 3, 1, 1)
    x = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))) for p in paths])
    x = x.permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        return model((x - mean) / std).numpy()


def test_official_order(image_root, ckpts, tmp_path, capsys):
    # A made-up "official" order of the 300 images: classes interleaved at random.
    true = np.random.default_rng(0).permutation(np.repeat(np.arange(10), PER_CLASS))
    np.save(tmp_path / "correctlabels.npy", true)
    plain, official = tmp_path / "plain.npy", tmp_path / "official.npy"
    rc, err = _run(capsys, "--input", image_root, "--checkpoint", ckpts["leftthomas"],
                   "--out", plain)
    assert rc == 0, err
    rc, err = _run(capsys, "--input", image_root, "--checkpoint", ckpts["leftthomas"],
                   "--out", official, "--official-order", tmp_path / "correctlabels.npy",
                   "--labels-out", tmp_path / "labels.npy")
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), true)
    a, b = np.load(plain), np.load(official)
    for c in range(10):  # the k-th image of class c sits at the k-th occurrence of c
        np.testing.assert_allclose(b[true == c], a[c * PER_CLASS:(c + 1) * PER_CLASS],
                                   rtol=1e-5, atol=1e-5)
    # Counts that do not match the folder are refused.
    np.save(tmp_path / "bad.npy", true[:-1])
    rc, err = _run(capsys, "--input", image_root, "--checkpoint", ckpts["c2d"], "--out",
                   tmp_path / "x.npy", "--official-order", tmp_path / "bad.npy")
    assert rc == 2 and "299 labels" in err and not (tmp_path / "x.npy").exists()


def test_key_mismatch_fails_listing_keys(image_root, ckpts, subset_list, tmp_path, capsys):
    lst, _ = subset_list
    ck = torch.load(ckpts["c2d"], weights_only=False)
    del ck["model"]["encoder.module.bn1.running_mean"]
    ck["model"]["encoder.module.layer1.0.conv9.weight"] = torch.zeros(1)
    torch.save(ck, tmp_path / "bad.pth")
    out = tmp_path / "out" / "f.npy"
    rc, err = _run(capsys, "--input", image_root, "--checkpoint", tmp_path / "bad.pth",
                   "--out", out, "--file-list", lst, "--labels-out", tmp_path / "out" / "l.npy")
    assert rc == 2 and _error_line(err), err
    assert "missing keys [bn1.running_mean]" in err
    assert "unexpected keys [layer1.0.conv9.weight]" in err
    assert not (tmp_path / "out").exists()
    # A checkpoint of the wrong layout forced by the flag fails the same way.
    rc, err = _run(capsys, "--input", image_root, "--checkpoint", ckpts["sthalles"],
                   "--out", out, "--file-list", lst, "--checkpoint-format", "spijkervet",
                   "--arch", "resnet18", "--stem", "cifar")
    assert rc == 2 and "missing keys" in err and "backbone." in err


@pytest.mark.parametrize("case", ["missing_folder", "empty_folder", "bad_image", "bad_ckpt",
                                  "no_ckpt"])
def test_bad_input_exit_2_nothing_written(case, image_root, ckpts, tmp_path, capsys):
    inp, ck = image_root, ckpts["c2d"]
    if case == "missing_folder":
        inp = tmp_path / "nope"
    elif case == "empty_folder":
        inp = tmp_path / "empty"
        (inp / "cat").mkdir(parents=True)
    elif case == "bad_image":
        inp = tmp_path / "imgs"
        (inp / "cat").mkdir(parents=True)
        (inp / "cat" / "0000.jpg").write_bytes((image_root / "cat" / "0000.jpg").read_bytes())
        (inp / "cat" / "0001.jpg").write_bytes(b"not a jpeg")
    elif case == "bad_ckpt":
        ck = tmp_path / "garbage.pth"
        ck.write_bytes(b"\x00garbage")
    else:
        ck = tmp_path / "missing.pth"
    out = tmp_path / "out"
    rc, err = _run(capsys, "--input", inp, "--checkpoint", ck, "--out", out / "f.npy",
                   "--labels-out", out / "l.npy")
    assert rc == 2
    assert _error_line(err), err
    assert not out.exists()
    if case == "bad_image":
        assert "0001.jpg" in err


def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"synthetic", b"labels": [int(x) for x in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [b"img%d.png" % i for i in range(n)]}


def test_cifar_pickle_batches(ckpts, tmp_path, capsys):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [_cifar_batch(6, s) for s in range(2)]
    for i, b in enumerate(batches, start=1):
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump(b, fh, protocol=2)  # as the official files: protocol 2
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(_cifar_batch(4, 9), fh)
    out, lab = tmp_path / "trainfeatures.npy", tmp_path / "trainlabels.npy"
    rc, err = _run(capsys, "--input", folder, "--checkpoint", ckpts["spijkervet"],
                   "--out", out, "--labels-out", lab)
    assert rc == 0, err
    feats = np.load(out)
    assert feats.shape == (12, 512)
    np.testing.assert_array_equal(np.load(lab), batches[0][b"labels"] + batches[1][b"labels"])
    # Row i is image i: CHW planes -> HWC, same normalisation as the folder path.
    data = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
    mean = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
    std = torch.tensor((0.2023, 0.1994, 0.2010)).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = _model()((torch.from_numpy(data).float() / 255.0 - mean) / std).numpy()
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=1e-4)
    rc, err = _run(capsys, "--input", folder, "--split", "test", "--checkpoint",
                   ckpts["spijkervet"], "--out", tmp_path / "test.npy")
    assert rc == 0 and np.load(tmp_path / "test.npy").shape == (4, 512)
    # A batch pickle that tries to build any other object is refused, nothing written.
    evil = tmp_path / "evil_batch"
    with open(evil, "wb") as fh:
        pickle.dump({b"data": argparse.Namespace(x=1), b"labels": [0]}, fh)
    rc, err = _run(capsys, "--input", evil, "--checkpoint", ckpts["c2d"],
                   "--out", tmp_path / "evil.npy")
    assert rc == 2 and "refusing to load global argparse.Namespace" in err
    assert not (tmp_path / "evil.npy").exists()


def test_resnet50_imagenet_stem_autodetect(tmp_path, capsys):
    """A MoCo-style ResNet-50 (ImageNet stem) is recognised from its keys: 2048-d output."""
    torch.manual_seed(0)
    model = build_backbone("resnet50", "imagenet").eval()
    sd = {"module.encoder_q." + k: v for k, v in model.state_dict().items()}
    sd["module.encoder_q.fc.weight"] = torch.zeros(128, 2048)
    torch.save({"state_dict": sd}, tmp_path / "moco.pth")
    folder = tmp_path / "c"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(_cifar_batch(2, 3), fh)
    rc, err = _run(capsys, "--input", folder, "--split", "test", "--checkpoint",
                   tmp_path / "moco.pth", "--out", tmp_path / "f.npy", "--resize", 48,
                   "--crop", 40, "--norm", "imagenet")
    assert rc == 0, err
    assert "resnet50 (imagenet stem, moco checkpoint" in err
    assert np.load(tmp_path / "f.npy").shape == (2, 2048)


def test_script_entry_point(tmp_path):
    """The thin script wires main() through run_cli: one error line, exit status 2."""
    import subprocess
    import sys
    script = Path(__file__).resolve().parents[1] / "scripts" / "extract_features.py"
    proc = subprocess.run([sys.executable, str(script), "--input", str(tmp_path / "none"),
                           "--checkpoint", str(tmp_path / "c.pth"), "--out",
                           str(tmp_path / "f.npy")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: input folder") and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("device,message", [
    ("tpu", "error: --device tpu: must be auto, cpu or cuda"),
    pytest.param("cuda:0", "error: --device cuda:0: no CUDA GPU is available on this machine",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")),
])
def test_device_flag_resolved_like_every_command(device, message, tmp_path, capsys):
    """--device goes through dmlp.device.resolve_device; its error names the flag, before any
    input is read."""
    rc = run_cli(main, ["--input", str(tmp_path / "none"), "--checkpoint", str(tmp_path / "c.pth"),
                        "--out", str(tmp_path / "f.npy"), "--device", device])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(message) and err.count("\n") == 1, err
