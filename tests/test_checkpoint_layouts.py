"""Encoder-plus-heads checkpoints: SimSiam, BYOL and DINO layouts and any prefix layout.

Each synthetic checkpoint holds a randomly initialised CIFAR ResNet-18 under the layout's
backbone prefix and fake heads beside it; the loaded backbone must give exactly the features of
the original model, and the dropped heads must be listed.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from dmlp.errors import InputError
from dmlp.features.backbones import build_backbone
from dmlp.features.checkpoints import detect_format, load_backbone


def _model():
    torch.manual_seed(0)
    model = build_backbone("resnet18", "cifar")
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # a mis-mapped BN buffer must show
            m.running_mean.uniform_(-0.1, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
    return model.eval()


def _head(prefix):
    return {f"{prefix}0.weight": torch.randn(64, 512), f"{prefix}0.bias": torch.randn(64),
            f"{prefix}2.weight": torch.randn(32, 64)}


def _layout(sd, name):
    """(checkpoint object, head prefixes that must be reported as dropped)."""
    if name == "simsiam":   # facebookresearch/simsiam: DDP, projector as encoder.fc
        out = {f"module.encoder.{k}": v for k, v in sd.items()}
        out.update(_head("module.encoder.fc."))
        out.update(_head("module.predictor."))
        return {"epoch": 100, "arch": "resnet18", "state_dict": out}, ["encoder.fc.*", "predictor.*"]
    if name == "byol":      # lucidrains/byol-pytorch: online/target encoders, predictor
        out = {f"online_encoder.net.{k}": v for k, v in sd.items()}
        out.update({f"target_encoder.net.{k}": v + 1 for k, v in sd.items()})
        out.update(_head("online_encoder.projector.net."))
        out.update(_head("online_predictor.net."))
        return out, ["online_encoder.projector.*", "online_predictor.*", "target_encoder.*"]
    if name == "dino":      # DINO-style: teacher and student, each a backbone plus a head
        out = {f"teacher.backbone.{k}": v for k, v in sd.items()}
        out.update({f"student.backbone.{k}": v - 1 for k, v in sd.items()})
        out.update(_head("teacher.head.mlp."))
        out.update(_head("student.head.mlp."))
        return {"state_dict": out}, ["teacher.head.*", "student.*"]
    raise ValueError(name)


@pytest.fixture(scope="module")
def model():
    return _model()


def _features(model, x):
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("name", ["simsiam", "byol", "dino"])
def test_known_layouts_detect_and_load_strictly(name, model, tmp_path):
    ckpt, heads = _layout(model.state_dict(), name)
    path = tmp_path / f"{name}.pth"
    torch.save(ckpt, path)
    sd = ckpt.get("state_dict", ckpt)
    assert detect_format(sd) == name
    loaded, info = load_backbone(path)
    assert info["format"] == name and info["arch"] == "resnet18" and info["stem"] == "cifar"
    for head in heads:
        assert head in info["dropped"], info["dropped"]
    n_backbone = len(model.state_dict())
    assert info["dropped_keys"] == len(sd) - n_backbone
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert _features(loaded, x).tobytes() == _features(model, x).tobytes()


@pytest.mark.parametrize("name", ["simsiam", "byol", "dino"])
def test_same_layouts_through_the_general_prefix(name, model, tmp_path):
    """The named formats are just prefix layouts: naming the prefix and heads gives the same."""
    ckpt, _ = _layout(model.state_dict(), name)
    path = tmp_path / f"{name}.pth"
    torch.save(ckpt, path)
    prefix, heads = {"simsiam": ("encoder", ["encoder.fc", "predictor"]),
                     "byol": ("online_encoder.net.", ["online_encoder.projector.", "online_predictor.",
                                                      "target_encoder."]),
                     "dino": ("teacher.backbone", ["teacher.head", "student"])}[name]
    loaded, info = load_backbone(path, backbone_prefix=prefix, drop_heads=heads)
    assert info["format"].startswith("prefix")
    x = torch.randn(2, 3, 32, 32)
    assert _features(loaded, x).tobytes() == _features(model, x).tobytes()


def test_custom_layout_and_its_errors(model, tmp_path):
    sd = {f"net.trunk.{k}": v for k, v in model.state_dict().items()}
    sd.update(_head("net.proj."))
    sd.update(_head("net.cls."))
    path = tmp_path / "custom.pth"
    torch.save({"model": sd}, path)
    # Not a known layout: refused, with the way to name its parts.
    with pytest.raises(InputError, match="layout not recognised"):
        load_backbone(path)
    # One head left undropped: the strict load names its keys.
    with pytest.raises(InputError, match=r"unexpected keys \[net\.cls\.0\.bias"):
        load_backbone(path, backbone_prefix="net.trunk.", drop_heads=["net.proj."])
    # Both heads named: loads, and lists what was dropped.
    loaded, info = load_backbone(path, backbone_prefix="net.trunk", drop_heads=["net.proj", "net.cls"])
    assert info["dropped_keys"] == 6 and "net.proj" in info["dropped"] and "net.cls" in info["dropped"]
    x = torch.randn(2, 3, 32, 32)
    assert _features(loaded, x).tobytes() == _features(model, x).tobytes()
    # A wrong prefix: every backbone key is missing, and the message says so.
    with pytest.raises(InputError, match="missing keys"):
        load_backbone(path, backbone_prefix="net.body.", drop_heads=["net.proj", "net.cls"],
                      arch="resnet18", stem="cifar")
    with pytest.raises(InputError, match="--drop-heads: needs --backbone-prefix"):
        load_backbone(path, drop_heads=["net.proj"])


def test_extract_command_with_prefix_flags(model, tmp_path, capsys):
    pytest.importorskip("PIL")
    from dmlp.cli import run_cli
    from dmlp.features.extract import main
    rng = np.random.default_rng(0)
    batch = {b"batch_label": b"synthetic", b"labels": [int(x) for x in rng.integers(0, 10, 5)],
             b"data": rng.integers(0, 256, (5, 3072), dtype=np.uint8),
             b"filenames": [b"img%d.png" % i for i in range(5)]}
    with open(tmp_path / "data_batch_1", "wb") as fh:
        pickle.dump(batch, fh, protocol=2)
    ckpt, _ = _layout(model.state_dict(), "simsiam")
    torch.save(ckpt, tmp_path / "simsiam.pth")
    base = ["--input", str(tmp_path / "data_batch_1"), "--checkpoint", str(tmp_path / "simsiam.pth"),
            "--quiet", "--device", "cpu"]
    rc = run_cli(main, base + ["--out", str(tmp_path / "auto.npy")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "simsiam checkpoint" in err and "predictor.*" in err
    rc = run_cli(main, base + ["--out", str(tmp_path / "named.npy"), "--backbone-prefix", "encoder.",
                               "--drop-heads", "encoder.fc.,predictor."])
    assert rc == 0, capsys.readouterr().err
    assert np.load(tmp_path / "named.npy").tobytes() == np.load(tmp_path / "auto.npy").tobytes()
    rc = run_cli(main, base + ["--out", str(tmp_path / "bad.npy"), "--drop-heads", "predictor."])
    err = capsys.readouterr().err
    assert rc == 2 and "--drop-heads: needs --backbone-prefix" in err
    assert not (tmp_path / "bad.npy").exists()
