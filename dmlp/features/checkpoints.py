"""Load self-supervised ResNet checkpoints of the layouts people actually have.

The weights are taken out of the checkpoint's container and renamed by their layout
(:mod:`dmlp.features.layouts`: the formats, their detection and their heads).  After the
renaming they are loaded *strictly*: any missing or unexpected key, or a shape mismatch, is an
:class:`InputError` that lists them.
C2D's own loader uses ``strict=False``, so a wrong prefix there silently leaves a randomly
initialised network; here it stops the run instead.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Dict

import torch

from ..errors import InputError
from ..data import require_file
from .backbones import ResNetFeatures, build_backbone, infer_arch
from .layouts import (FORMATS, choose_layout, convert_state_dict, detect_format,  # noqa: F401 (public)
                      dropped_summary, prefix_layout, unrecognised)


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
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if unsafe:  # e.g. a Lightning checkpoint whose hyper_parameters are an OmegaConf config
            raise InputError(f"checkpoint {path}: cannot be loaded with weights_only=True (it holds "
                             f"a {unsafe.group(1)}, which only running its code could rebuild); "
                             "save its state_dict alone from a trusted copy") from None
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
        :func:`prefix_layout`); replaces ``fmt``.  A backbone saved as an ``nn.Sequential`` of
        torchvision's ResNet children (indices under the prefix) is renamed as ``lightly``'s.
    drop_heads : iterable of str
        With ``backbone_prefix``: the key prefixes of the heads to drop.

    Returns
    -------
    (torch.nn.Module, dict)
        The model in eval mode, and ``format``, ``arch``, ``stem``, ``dropped_keys`` (count),
        ``dropped`` (the dropped keys grouped by head) and ``feature_dim``.

    Raises
    ------
    InputError
        The file cannot be read safely, its layout is not recognised (the message lists the
        key prefixes found and the layouts understood), or the weights do not match the
        backbone exactly.
    """
    container = read_checkpoint(path)
    sd = _state_dict_of(container, path)
    renamer, fmt, heads = choose_layout(sd, fmt, container, backbone_prefix, drop_heads,
                                        where=f"checkpoint {path}")
    dropped: list = []
    converted = convert_state_dict(sd, renamer, dropped)
    where = f"checkpoint {path} (format {fmt})"
    if arch == "auto" or stem == "auto":
        guess_arch, guess_stem = _infer(converted, sd, where)
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


_BLOCK_KEY = re.compile(r"^layer[1-4]\.\d+\.")


def _infer(converted, sd, where):
    """(arch, stem) of the renamed weights; no ResNet block among them names what was found."""
    if not any(_BLOCK_KEY.match(k) for k in converted):
        raise InputError(unrecognised(f"{where}: no ResNet blocks (layer1.0.* ...) among its keys", sd))
    try:
        return infer_arch(converted)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


