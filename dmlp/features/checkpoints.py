"""Load self-supervised ResNet checkpoints of the layouts people actually have.

Each format is a container (which dict holds the weights) plus a renaming of its keys to
:mod:`dmlp.features.backbones` names (torchvision-style) and a set of keys to drop (projection
heads, the MoCo key encoder and queue).  After the renaming the weights are loaded *strictly*:
any missing or unexpected key, or a shape mismatch, is an :class:`InputError` that lists them.
C2D's own loader uses ``strict=False``, so a wrong prefix there silently leaves a randomly
initialised network; here it stops the run instead.

Formats (see docs/feature_extraction.md):

=============  ==================  =========================================  ====================
format         container           backbone keys                              dropped head
=============  ==================  =========================================  ====================
c2d            ``{'model': sd}``   ``encoder.[module.]conv1...``, ``shortcut``  ``head.*``
sthalles       ``{'state_dict'}``  ``backbone.conv1...`` (torchvision)        ``backbone.fc.*``
leftthomas     raw state dict      ``f.0`` conv1, ``f.1`` bn1, ``f.3-6`` layers  ``g.*``
spijkervet     raw state dict      ``encoder.conv1...`` (torchvision)         ``projector.*``
moco           ``{'state_dict'}``  ``module.encoder_q.conv1...``               ``encoder_q.fc``,
                                                                              ``encoder_k``, queue
plain          raw state dict      ``conv1...`` (torchvision)                 ``fc.*``
simsiam        ``{'state_dict'}``  ``module.encoder.conv1...``                ``encoder.fc.*``
                                                                              (projector),
                                                                              ``predictor.*``
byol           raw state dict      ``online_encoder.net.conv1...``            ``online_encoder.``
                                                                              ``projector.*``,
                                                                              ``online_predictor.*``,
                                                                              ``target_encoder.*``
dino           ``{'state_dict'}``  ``teacher.backbone.conv1...``              ``teacher.head.*``,
                                                                              ``student.*``
=============  ==================  =========================================  ====================

Any other encoder-plus-heads layout loads through :func:`prefix_layout` (``dmlp extract
--backbone-prefix P --drop-heads H1,H2``): the keys under the backbone prefix are the backbone,
the keys under the named heads are dropped (and listed), and every other key still fails the
strict load.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Callable, Dict

import torch

from ..errors import InputError
from ..data import require_file
from .backbones import ResNetFeatures, build_backbone, infer_arch

FORMATS = ("c2d", "sthalles", "leftthomas", "spijkervet", "moco", "plain", "simsiam", "byol", "dino")

# encoder-plus-heads layouts: (backbone prefix, head prefixes dropped)
PREFIX_LAYOUTS = {
    "simsiam": ("encoder.", ("encoder.fc.", "predictor.")),
    "byol": ("online_encoder.net.", ("online_encoder.projector.", "online_predictor.", "target_encoder.")),
    "dino": ("teacher.backbone.", ("teacher.head.", "student.")),
}


def read_checkpoint(path) -> object:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only.

    ``argparse.Namespace`` is allowed too because SupContrast/C2D store their options (``opt``)
    beside the weights; it holds only plain values and rebuilds without running code.
    """
    path = require_file(path, f"checkpoint {Path(path).name}", "a checkpoint file")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for garbage/unsafe pickles
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise InputError(f"checkpoint {path}: cannot be loaded with weights_only=True "
                         f"({exc.__class__.__name__}: {first[:200]})") from None


def _state_dict_of(obj, path) -> Dict[str, torch.Tensor]:
    """Find the weights dict: ``obj['model']``, ``obj['state_dict']`` or ``obj`` itself."""
    if not isinstance(obj, dict):
        raise InputError(f"checkpoint {path}: holds a {type(obj).__name__}, not a dict of weights")
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise InputError(f"checkpoint {path}: no tensors found (top-level keys: "
                         f"{_short(list(map(str, obj)))})")
    return tensors


def detect_format(sd) -> str:
    """Guess the layout from the key prefixes (after dropping DataParallel's ``module.``)."""
    keys = [_strip_module(k) for k in sd]
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if has("encoder_q."):
        return "moco"
    for fmt, (backbone, _) in PREFIX_LAYOUTS.items():
        if has(backbone) and (fmt != "simsiam" or has("predictor.")):
            return fmt
    if has("backbone."):
        return "sthalles"
    if has("f.0.") or has("g."):
        return "leftthomas"
    if has("encoder."):
        # SupContrast calls the projection shortcut "shortcut"; torchvision "downsample".
        if any(".shortcut." in k for k in keys) or has("head."):
            return "c2d"
        return "spijkervet"
    if has("conv1."):
        return "plain"
    return "unknown"


_MODULE = re.compile(r"(^|\.)module\.")


def _strip_module(key: str) -> str:
    # DataParallel / DDP insert "module." at the top or right after a wrapped submodule
    # (C2D: "encoder.module.conv1...", MoCo: "module.encoder_q...").
    return _MODULE.sub(r"\1", key)


def _strip_prefix(key, prefix):
    return key[len(prefix):] if key.startswith(prefix) else None


def _c2d(key):
    if key.startswith(("head.", "fc.")):
        return None  # projection head (SupCon) or classifier (SupCE)
    rest = _strip_prefix(key, "encoder.")
    if rest is None:
        return key
    return rest.replace(".shortcut.", ".downsample.")


def _sthalles(key):
    if key.startswith("backbone.fc."):
        return None
    rest = _strip_prefix(key, "backbone.")
    return key if rest is None else rest


_LEFTTHOMAS = {"0": "conv1", "1": "bn1", "3": "layer1", "4": "layer2", "5": "layer3", "6": "layer4"}


def _leftthomas(key):
    if key.startswith("g."):
        return None
    m = re.match(r"^f\.(\d+)\.(.*)$", key)
    if m and m.group(1) in _LEFTTHOMAS:
        return f"{_LEFTTHOMAS[m.group(1)]}.{m.group(2)}"
    return key


def _spijkervet(key):
    if key.startswith(("projector.", "encoder.fc.")):
        return None
    rest = _strip_prefix(key, "encoder.")
    return key if rest is None else rest


def _moco(key):
    if key.startswith(("encoder_k.", "queue", "encoder_q.fc.", "fc.")):
        return None  # key encoder, negatives queue, MLP/linear heads
    rest = _strip_prefix(key, "encoder_q.")
    return key if rest is None else rest


def _plain(key):
    return None if key.startswith("fc.") else key


def prefix_layout(backbone_prefix: str, heads=()) -> Callable[[str], object]:
    """A key renamer for any encoder-plus-heads checkpoint.

    Parameters
    ----------
    backbone_prefix : str
        The prefix of the backbone's keys (after DataParallel's ``module.``), e.g. ``encoder.``;
        ``""`` for a backbone at the top level.  A missing final dot is added.
    heads : iterable of str
        Prefixes of the keys to drop: projection and prediction heads, a momentum or teacher
        network.  The backbone's own classifier ``fc.`` is always dropped.

    Returns
    -------
    callable
        ``key -> new key``, or ``None`` for a dropped key.  A key under neither prefix is kept
        as it is, so the strict load reports it as unexpected.
    """
    dot = lambda p: p if not p or p.endswith(".") else p + "."  # noqa: E731
    prefix, heads = dot(backbone_prefix), tuple(dot(h) for h in heads if h)

    def rename(key):
        if key.startswith(heads):
            return None
        rest = _strip_prefix(key, prefix)
        if rest is None:
            return key
        return None if rest.startswith("fc.") else rest.replace(".shortcut.", ".downsample.")
    return rename


_RENAMERS: Dict[str, Callable[[str], object]] = {
    "c2d": _c2d, "sthalles": _sthalles, "leftthomas": _leftthomas,
    "spijkervet": _spijkervet, "moco": _moco, "plain": _plain,
    **{fmt: prefix_layout(*layout) for fmt, layout in PREFIX_LAYOUTS.items()},
}


def convert_state_dict(sd, fmt, dropped: list = None) -> Dict[str, torch.Tensor]:
    """Rename ``sd`` from ``fmt`` to backbone names and drop its head; other keys pass unchanged
    (so that a strict load reports them as unexpected).

    ``fmt`` is a format name or a renamer (:func:`prefix_layout`); the dropped keys are appended
    to ``dropped`` when a list is given.
    """
    renamer = _RENAMERS[fmt] if isinstance(fmt, str) else fmt
    out = {}
    for key, value in sd.items():
        new = renamer(_strip_module(key))
        if new is not None:
            out[new] = value
        elif dropped is not None:
            dropped.append(key)
    return out


def dropped_summary(keys, heads=(), limit: int = 6) -> str:
    """``'encoder.fc.* (4 keys), predictor.* (6 keys)'``: the dropped keys grouped by head.

    Parameters
    ----------
    keys : iterable of str
        The dropped keys, as in the checkpoint.
    heads : iterable of str
        Head prefixes: a key under one of them is counted under it (the longest that matches);
        any other key under its first two name parts (``encoder.fc``) when it lies inside an
        encoder, else under its first.
    limit : int
        At most this many groups are shown.
    """
    heads = sorted((h if h.endswith(".") else h + "." for h in heads if h), key=len, reverse=True)
    groups: Dict[str, int] = {}
    for key in keys:
        key = _strip_module(key)
        head = next((h[:-1] for h in heads if key.startswith(h)), None)
        if head is None:
            parts = key.split(".")
            head = ".".join(parts[:2] if parts[0] in ("encoder", "online_encoder", "teacher", "backbone")
                            and len(parts) > 2 else parts[:1])
        groups[head] = groups.get(head, 0) + 1
    items = [f"{h}.* ({n} key{'s' if n > 1 else ''})" for h, n in sorted(groups.items())]
    return ", ".join(items[:limit]) + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def _short(keys, limit=8):
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_strict(model: ResNetFeatures, sd, where: str) -> None:
    """Load ``sd`` into ``model`` requiring an exact key and shape match.

    The only tolerance is BatchNorm's ``num_batches_tracked`` counter, absent from checkpoints
    saved by PyTorch < 0.4.1; it does not affect eval-mode outputs.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys [{_short(missing)}]")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys [{_short(unexpected)}]")
        raise InputError(f"{where}: key mismatch with {model.arch} ({model.stem} stem): "
                         + "; ".join(parts))
    bad = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
           if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if bad:
        raise InputError(f"{where}: shape mismatch with {model.arch} ({model.stem} stem): "
                         f"{len(bad)} tensors [{_short(bad, 4)}]")
    full = dict(expected)
    full.update({k: v.to(expected[k].dtype) for k, v in sd.items()})
    model.load_state_dict(full, strict=True)


def load_backbone(path, fmt: str = "auto", arch: str = "auto", stem: str = "auto",
                  backbone_prefix=None, drop_heads=()):
    """Build the backbone for checkpoint ``path`` and load its weights strictly.

    Parameters
    ----------
    path : path
        The checkpoint (read with ``weights_only=True``).
    fmt : str
        A name of :data:`FORMATS`, or ``"auto"`` to detect it from the keys.
    arch, stem : str
        The ResNet and its stem, or ``"auto"`` to infer them from the weights.
    backbone_prefix : str, optional
        Any other encoder-plus-heads layout: the backbone's key prefix (see
        :func:`prefix_layout`); replaces ``fmt``.
    drop_heads : iterable of str
        With ``backbone_prefix``: the key prefixes of the heads to drop.

    Returns
    -------
    (torch.nn.Module, dict)
        The model in eval mode, and ``format``, ``arch``, ``stem``, ``dropped_keys`` (count),
        ``dropped`` (the dropped keys grouped by head) and ``feature_dim``.
    """
    sd = _state_dict_of(read_checkpoint(path), path)
    if backbone_prefix is not None:
        renamer, heads = prefix_layout(backbone_prefix, drop_heads), tuple(drop_heads)
        fmt = f"prefix {backbone_prefix!r}"
    elif drop_heads:
        raise InputError("--drop-heads: needs --backbone-prefix (the key prefix of the backbone)")
    elif fmt == "auto":
        fmt = detect_format(sd)
        if fmt == "unknown":
            raise InputError(f"checkpoint {path}: layout not recognised (first keys: "
                             f"{_short(list(sd), 5)}); pass --checkpoint-format "
                             f"{'|'.join(FORMATS)}")
    if backbone_prefix is None and fmt not in _RENAMERS:
        raise InputError(f"--checkpoint-format: unknown format {fmt!r} (choose from auto, "
                         f"{', '.join(FORMATS)})")
    if backbone_prefix is None:
        heads = PREFIX_LAYOUTS.get(fmt, ("", ()))[1]
    dropped: list = []
    converted = convert_state_dict(sd, renamer if backbone_prefix is not None else fmt, dropped)
    where = f"checkpoint {path} (format {fmt})"
    if arch == "auto" or stem == "auto":
        try:
            guess_arch, guess_stem = infer_arch(converted)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        arch = guess_arch if arch == "auto" else arch
        stem = guess_stem if stem == "auto" else stem
    model = build_backbone(arch, stem)
    try:
        load_strict(model, converted, where)
    except InputError as exc:
        hint = ("" if backbone_prefix is not None else
                "; for an encoder-plus-heads checkpoint name its parts with --backbone-prefix P --drop-heads H1,H2")
        raise InputError(f"{exc}{hint}") from None
    model.eval()
    info = {"format": fmt, "arch": arch, "stem": stem, "dropped_keys": len(dropped),
            "dropped": dropped_summary(dropped, heads), "feature_dim": model.feature_dim}
    return model, info
