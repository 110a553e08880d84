"""Encoder-plus-heads checkpoints: SimSiam, BYOL, DINO, solo-learn, Lightning and lightly
layouts, and any prefix layout.

Each synthetic checkpoint holds a randomly initialised ResNet-18 under the layout's backbone
prefix and fake heads beside it; the loaded backbone must give exactly the features of the
original model (or of the same weights saved in the plain layout), and the dropped heads must be
listed.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from dmlp.errors import InputError
from dmlp.features.backbones import build_backbone
from dmlp.features.checkpoints import FORMATS, detect_format, load_backbone


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


@pytest.fixture(scope="module")
def cifar_batch(tmp_path_factory):
    """A CIFAR python batch file of 5 random images (protocol 2, as the official files)."""
    rng = np.random.default_rng(0)
    batch = {b"batch_label": b"synthetic", b"labels": [int(x) for x in rng.integers(0, 10, 5)],
             b"data": rng.integers(0, 256, (5, 3072), dtype=np.uint8),
             b"filenames": [b"img%d.png" % i for i in range(5)]}
    path = tmp_path_factory.mktemp("batch") / "data_batch_1"
    with open(path, "wb") as fh:
        pickle.dump(batch, fh, protocol=2)
    return path


def _extract(capsys, batch, ckpt, out, *extra):
    """``dmlp extract`` on ``batch``: (exit status, stderr)."""
    from dmlp.cli import run_cli
    from dmlp.features.extract import main
    argv = ["--input", batch, "--checkpoint", ckpt, "--out", out, "--quiet", "--device", "cpu", *extra]
    rc = run_cli(main, [str(a) for a in argv])
    return rc, capsys.readouterr().err


def test_extract_command_with_prefix_flags(model, cifar_batch, tmp_path, capsys):
    ckpt, _ = _layout(model.state_dict(), "simsiam")
    torch.save(ckpt, tmp_path / "simsiam.pth")

    def run(out, *extra):
        return _extract(capsys, cifar_batch, tmp_path / "simsiam.pth", tmp_path / out, *extra)

    rc, err = run("auto.npy")
    assert rc == 0, err
    assert "simsiam checkpoint" in err and "predictor.*" in err
    rc, err = run("named.npy", "--backbone-prefix", "encoder.", "--drop-heads", "encoder.fc.,predictor.")
    assert rc == 0, err
    assert np.load(tmp_path / "named.npy").tobytes() == np.load(tmp_path / "auto.npy").tobytes()
    rc, err = run("bad.npy", "--drop-heads", "predictor.")
    assert rc == 2 and "--drop-heads: needs --backbone-prefix" in err
    assert not (tmp_path / "bad.npy").exists()


# --- solo-learn, PyTorch Lightning and lightly ------------------------------------------------

# torchvision's ResNet children as an nn.Sequential (lightly): conv1, bn1, relu, maxpool, layer1-4
SEQUENTIAL = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
LIGHTNING = {"epoch": 99, "global_step": 3900, "pytorch-lightning_version": "2.2.1",
             "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 99}}}},
             "callbacks": {}, "lr_schedulers": [{"last_epoch": 99, "base_lrs": [0.06]}],
             "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.06, "params": [0, 1]}]}],
             "hparams_name": "kwargs", "hyper_parameters": {"lr": 0.06, "max_epochs": 100}}


def _sequential(sd, prefix):
    out = {}
    for k, v in sd.items():
        first, rest = k.split(".", 1)
        out[f"{prefix}{SEQUENTIAL[first]}.{rest}"] = v
    return out


def _new_layout(sd, name):
    """(checkpoint object, dropped head groups, format reported): layouts of other libraries."""
    under = lambda prefix, shift=0: {f"{prefix}{k}": v + shift for k, v in sd.items()}  # noqa: E731
    if name == "solo-learn":  # vturrisi/solo-learn BYOL: a Lightning checkpoint
        weights = {**under("backbone."), **_head("projector."), **_head("predictor."),
                   **under("momentum_backbone.", 1), **_head("momentum_projector."),
                   "classifier.weight": torch.randn(10, 512), "classifier.bias": torch.randn(10)}
        heads = ["projector.*", "predictor.*", "momentum_backbone.*", "momentum_projector.*",
                 "classifier.*"]
        return {**LIGHTNING, "state_dict": weights}, heads, "solo-learn"
    if name == "lightning-model":  # LightningModule holding self.model = Net(backbone, head)
        weights = {**under("model.backbone."), **_head("model.head.")}
        return {**LIGHTNING, "state_dict": weights}, ["model.head.*"], "lightning"
    if name == "lightning":  # LightningModule with self.backbone and a projection head
        weights = {**under("backbone."), **_head("projection_head.layers.")}
        return {**LIGHTNING, "state_dict": weights}, ["projection_head.*"], "lightning"
    if name == "lightly":  # lightly MoCo module: torch.save(model.state_dict())
        weights = {**_sequential(sd, "backbone."), **_head("projection_head.layers."),
                   **{k: v + 1 for k, v in _sequential(sd, "backbone_momentum.").items()},
                   **_head("projection_head_momentum.layers.")}
        return weights, ["projection_head.*", "backbone_momentum.*", "projection_head_momentum.*"], "lightly"
    if name == "lightly-lightning":  # the same backbone in a LightningModule's checkpoint
        weights = {**_sequential(sd, "model.backbone."), **_head("model.projection_head.layers.")}
        return {**LIGHTNING, "state_dict": weights}, ["model.projection_head.*"], "lightly"
    raise ValueError(name)


NEW_LAYOUTS = ["solo-learn", "lightning-model", "lightning", "lightly", "lightly-lightning"]


@pytest.fixture(scope="module", params=["cifar", "imagenet"])
def weights(request):
    """A ResNet-18 with non-trivial BN statistics: solo-learn's CIFAR stem, lightly's torchvision one."""
    torch.manual_seed(3)
    net = build_backbone("resnet18", request.param)
    g = torch.Generator().manual_seed(4)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
    return request.param, net.eval().state_dict()


@pytest.mark.parametrize("name", NEW_LAYOUTS)
def test_other_libraries_load_under_auto(name, weights, cifar_batch, tmp_path, capsys):
    """Detected from the keys, heads dropped and listed, features byte-identical to the same
    weights saved in the plain layout."""
    stem, sd = weights
    ckpt, heads, fmt = _new_layout(sd, name)
    torch.save(ckpt, tmp_path / "ckpt.pth")
    torch.save(sd, tmp_path / "plain.pth")
    assert detect_format(ckpt.get("state_dict", ckpt), ckpt) == fmt
    loaded, info = load_backbone(tmp_path / "ckpt.pth")
    assert (info["format"], info["arch"], info["stem"]) == (fmt, "resnet18", stem)
    for head in heads:
        assert head in info["dropped"], info["dropped"]
    assert info["dropped_keys"] == len(ckpt.get("state_dict", ckpt)) - len(sd)
    rc, err = _extract(capsys, cifar_batch, tmp_path / "ckpt.pth", tmp_path / "f.npy")
    assert rc == 0, err
    assert f"{fmt} checkpoint" in err
    rc, err = _extract(capsys, cifar_batch, tmp_path / "plain.pth", tmp_path / "plain.npy")
    assert rc == 0 and "plain checkpoint" in err, err
    assert np.load(tmp_path / "f.npy").tobytes() == np.load(tmp_path / "plain.npy").tobytes()


def test_lightning_backbone_needs_the_lightning_marker(model, tmp_path):
    """``backbone.*`` beside other modules outside a Lightning checkpoint is not guessed at: the
    strict load names the extra keys and the flags that name the parts."""
    ckpt, _, _ = _new_layout(model.state_dict(), "lightning")
    del ckpt["pytorch-lightning_version"]
    torch.save(ckpt, tmp_path / "c.pth")
    with pytest.raises(InputError, match=r"unexpected keys \[projection_head.*--backbone-prefix"):
        load_backbone(tmp_path / "c.pth")
    loaded, info = load_backbone(tmp_path / "c.pth", fmt="lightning")
    x = torch.randn(2, 3, 32, 32)
    assert _features(loaded, x).tobytes() == _features(model, x).tobytes()


def test_sequential_backbone_under_any_prefix(model, tmp_path):
    """--backbone-prefix over an nn.Sequential of torchvision's children renames its indices."""
    sd = {**_sequential(model.state_dict(), "net.trunk."), **_head("net.proj.")}
    torch.save(sd, tmp_path / "c.pth")
    loaded, info = load_backbone(tmp_path / "c.pth", backbone_prefix="net.trunk", drop_heads=["net.proj"])
    assert info["dropped_keys"] == 3
    x = torch.randn(2, 3, 32, 32)
    assert _features(loaded, x).tobytes() == _features(model, x).tobytes()


def test_unrecognised_keys_are_listed_with_the_layouts_understood(model, cifar_batch, tmp_path, capsys):
    # A Sequential backbone whose children are not torchvision's (no maxpool, so layer1 is 2).
    sd = {f"trunk.{i}.weight": torch.randn(8) for i in range(6)}
    sd.update(_head("head."))
    torch.save({"state_dict": sd}, tmp_path / "odd.pth")
    rc, err = _extract(capsys, cifar_batch, tmp_path / "odd.pth", tmp_path / "f.npy")
    assert rc == 2 and err.count("error:") == 1, err
    assert "layout not recognised; key prefixes found: trunk.* (6 keys, e.g. trunk.0.weight), head.* (3 keys" in err
    for fmt in FORMATS:  # every layout understood, with what its keys look like
        assert f" {fmt} (" in err, fmt
    assert "lightly ([model.]backbone.0.* ... backbone.7.*)" in err
    assert "--backbone-prefix P --drop-heads" in err and not (tmp_path / "f.npy").exists()
    # A lightly checkpoint forced into a layout with torchvision names: no blocks after the
    # renaming, so the message lists the prefixes instead of asking for --arch.
    ckpt, _, _ = _new_layout(model.state_dict(), "lightly")
    torch.save(ckpt, tmp_path / "lightly.pth")
    rc, err = _extract(capsys, cifar_batch, tmp_path / "lightly.pth", tmp_path / "f.npy",
                       "--checkpoint-format", "sthalles")
    assert rc == 2, err
    assert "(format sthalles): no ResNet blocks (layer1.0.* ...) among its keys" in err
    assert f"backbone.* ({len(model.state_dict())} keys, e.g. backbone.0.weight)" in err
    assert "--arch" not in err


class Config(dict):
    """Stands for an OmegaConf config in a Lightning checkpoint's hyper_parameters."""


def test_unsafe_object_in_a_lightning_checkpoint_is_named(model, tmp_path):
    ckpt, _, _ = _new_layout(model.state_dict(), "lightning")
    ckpt["hyper_parameters"] = Config(lr=0.1)
    torch.save(ckpt, tmp_path / "c.pth")
    with pytest.raises(InputError, match=r"weights_only=True \(it holds a \S*Config, .* state_dict alone"):
        load_backbone(tmp_path / "c.pth")
