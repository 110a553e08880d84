"""ResNet-18/34/50 feature extractors in plain torch (no torchvision).

Parameter names follow torchvision (``conv1``, ``bn1``, ``layerK.J.convI``, ``downsample.0/1``)
because most self-supervised checkpoints are torchvision models or a renaming of one; the
checkpoint loaders in :mod:`dmlp.features.checkpoints` translate every other layout to these
names.  Two stems:

* ``cifar``: 3x3 conv, stride 1, no max-pool (SupContrast/C2D, leftthomas/SimCLR) - a 32x32
  image reaches layer4 as 4x4;
* ``imagenet``: 7x7 conv, stride 2, then 3x3 max-pool stride 2 (torchvision; sthalles,
  Spijkervet, MoCo).

The forward pass returns the global-average-pooled output of layer4 (512 or 2048 values per
image): the penultimate features the purifier works on; no classifier or projection head.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import InputError


def _conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity or 1x1-projection shortcut (ResNet-18/34)."""
    expansion = 1

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, planes * self.expansion, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision v1.5 / MoCo), 1x1 expand by 4."""
    expansion = 4

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, planes * self.expansion, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


def _shortcut(cin, cout, stride):
    # Same rule in torchvision and SupContrast: project only when the shape changes.
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


ARCHS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}
STEMS = ("cifar", "imagenet")


class ResNetFeatures(nn.Module):
    """A ResNet trunk whose output is the pooled penultimate feature vector."""

    def __init__(self, arch: str = "resnet18", stem: str = "cifar"):
        super().__init__()
        if arch not in ARCHS:
            raise InputError(f"--arch: unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
        if stem not in STEMS:
            raise InputError(f"--stem: unknown stem {stem!r} (choose from {', '.join(STEMS)})")
        block, counts = ARCHS[arch]
        self.arch, self.stem = arch, stem
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), counts), start=1):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 1 and j == 0) else 1
                blocks.append(block(cin, planes, stride))
                cin = planes * block.expansion
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.feature_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(x.mean(dim=(2, 3)), 1)


def build_backbone(arch: str = "resnet18", stem: str = "cifar") -> ResNetFeatures:
    return ResNetFeatures(arch, stem)


_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def infer_arch(state_dict) -> tuple[str, str]:
    """Guess (arch, stem) from a state dict already in this module's names.

    Block counts per layer and the presence of ``conv3`` tell ResNet-18/34/50 apart; the
    kernel size of ``conv1`` (3 or 7) tells the stem.  Raises :class:`InputError` when the keys
    do not look like any supported ResNet (the caller names the checkpoint).
    """
    counts = [0, 0, 0, 0]
    for key in state_dict:
        m = _BLOCK_KEY.match(key)
        if m:
            i, j = int(m.group(1)) - 1, int(m.group(2))
            counts[i] = max(counts[i], j + 1)
    bottleneck = any(k.startswith("layer1.0.conv3.") for k in state_dict)
    block = Bottleneck if bottleneck else BasicBlock
    arch = next((name for name, (b, c) in ARCHS.items() if b is block and tuple(counts) == c), None)
    if arch is None:
        kind = "bottleneck" if bottleneck else "basic"
        raise InputError(f"cannot infer the architecture: {kind} blocks per layer {counts} match no "
                         f"supported ResNet ({', '.join(ARCHS)}); pass --arch")
    w = state_dict.get("conv1.weight")
    if w is None or getattr(w, "ndim", 0) != 4:
        raise InputError("cannot infer the stem: no 4-D conv1.weight; pass --stem")
    k = int(w.shape[-1])
    if k not in (3, 7):
        raise InputError(f"cannot infer the stem: conv1 kernel is {k}x{k} (expected 3 or 7); pass --stem")
    return arch, ("cifar" if k == 3 else "imagenet")
