"""Encoder-plus-heads checkpoints (SimSiam, BYOL, DINO, any prefix): the backbone loads
strictly, the heads are dropped and listed, and a stray key still fails."""
from __future__ import annotations

import pytest
import torch

from dmlp.errors import InputError
from dmlp.features.backbones import build_backbone
from dmlp.features.checkpoints import load_backbone


def _backbone():
    torch.manual_seed(0)
    model = build_backbone("resnet18", "cifar").eval()
    for m in model.modules():                 # non-default BN buffers: a mis-mapped one shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
    return model


def _head(prefix):
    return {f"{prefix}0.weight": torch.randn(8, 512), f"{prefix}0.bias": torch.randn(8)}


LAYOUTS = {   # name -> (how the checkpoint is stored, backbone prefix, heads beside it)
    "simsiam": (lambda sd: {"state_dict": sd}, "module.encoder.", ["module.encoder.fc.", "module.predictor."]),
    "byol": (lambda sd: sd, "online_encoder.net.",
             ["online_encoder.projector.", "online_predictor.", "target_encoder.net."]),
    "dino": (lambda sd: {"state_dict": sd}, "teacher.backbone.", ["teacher.head.", "student.backbone."]),
}


def _save(tmp_path, name, model, prefix, heads, wrap, extra=None):
    sd = {prefix + k: v for k, v in model.state_dict().items()}
    for h in heads:
        sd.update(_head(h))
    sd.update(extra or {})
    path = tmp_path / f"{name}.pth"
    torch.save(wrap(sd), path)
    return path


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_known_layout_is_detected_and_its_heads_dropped(tmp_path, name):
    wrap, prefix, heads = LAYOUTS[name]
    model = _backbone()
    loaded, info = load_backbone(_save(tmp_path, name, model, prefix, heads, wrap))
    assert info["format"] == name
    assert _same_weights(loaded, model)
    assert info["dropped_keys"] == 2 * len(heads)
    for h in heads:      # every head is named in the list of what was dropped
        assert h.replace("module.", "").split(".")[0] in info["dropped"]


def test_any_prefix_with_named_heads_loads_strictly(tmp_path):
    model = _backbone()
    path = _save(tmp_path, "custom", model, "model.trunk.", ["model.neck.", "ema."], lambda sd: sd)
    loaded, info = load_backbone(path, backbone_prefix="model.trunk", drop_heads=["model.neck", "ema."])
    assert _same_weights(loaded, model) and info["dropped_keys"] == 4


def test_a_key_under_no_named_part_still_fails(tmp_path):
    model = _backbone()
    path = _save(tmp_path, "stray", model, "model.trunk.", ["model.neck."], lambda sd: sd,
                 extra={"queue": torch.zeros(3)})
    with pytest.raises(InputError, match="queue"):
        load_backbone(path, backbone_prefix="model.trunk.", drop_heads=["model.neck."])


def test_drop_heads_needs_a_backbone_prefix(tmp_path):
    model = _backbone()
    path = _save(tmp_path, "plain", model, "", [], lambda sd: sd)
    with pytest.raises(InputError, match="--backbone-prefix"):
        load_backbone(path, drop_heads=["predictor."])
