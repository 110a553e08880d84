"""The key layouts of self-supervised ResNet checkpoints, and their renaming to backbone names.

Each format is a container (which dict holds the weights, found by
:mod:`dmlp.features.checkpoints`) plus a renaming of its keys to :mod:`dmlp.features.backbones`
names (torchvision-style) and a set of keys to drop (projection heads, the MoCo key encoder and
queue, momentum networks).  :func:`detect_format` tells the formats apart by their key
prefixes; :func:`unrecognised` says what was found when none fits.

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
solo-learn     ``{'state_dict'}``  ``backbone.conv1...`` (torchvision)        every other key:
                                                                              ``projector.*``,
                                                                              ``momentum_*``,
                                                                              ``classifier.*``
lightning      ``{'state_dict'}``  ``[model.]backbone.conv1...``              every other key
               + Lightning's
               version entry
lightly        raw state dict or   ``[model.]backbone.0`` conv1, ``.1`` bn1,  every other key
               ``{'state_dict'}``  ``.4-7`` layer1-4 (``nn.Sequential``)
=============  ==================  =========================================  ====================

Any other encoder-plus-heads layout loads through :func:`prefix_layout` (``dmlp extract
--backbone-prefix P --drop-heads H1,H2``): the keys under the backbone prefix are the backbone,
the keys under the named heads are dropped (and listed), and every other key still fails the
strict load.
"""
from __future__ import annotations

import re
from typing import Callable, Dict

import torch

from ..errors import InputError

FORMATS = ("c2d", "sthalles", "leftthomas", "spijkervet", "moco", "plain", "simsiam", "byol", "dino",
           "solo-learn", "lightning", "lightly")

#: what each format's keys look like, for the message about an unrecognised checkpoint.
LAYOUT_KEYS = {
    "c2d": "encoder.conv1.*, head.*", "sthalles": "backbone.conv1.*, backbone.fc.*",
    "leftthomas": "f.0.*, g.*", "spijkervet": "encoder.conv1.*, projector.*",
    "moco": "encoder_q.conv1.*, encoder_k.*", "plain": "conv1.*",
    "simsiam": "encoder.conv1.*, predictor.*", "byol": "online_encoder.net.conv1.*",
    "dino": "teacher.backbone.conv1.*", "solo-learn": "backbone.conv1.*, projector.*, classifier.*",
    "lightning": "[model.]backbone.conv1.* under pytorch-lightning_version",
    "lightly": "[model.]backbone.0.* ... backbone.7.*",
}

# encoder-plus-heads layouts: (backbone prefix, head prefixes dropped)
PREFIX_LAYOUTS = {
    "simsiam": ("encoder.", ("encoder.fc.", "predictor.")),
    "byol": ("online_encoder.net.", ("online_encoder.projector.", "online_predictor.", "target_encoder.")),
    "dino": ("teacher.backbone.", ("teacher.head.", "student.")),
}

#: sibling modules of solo-learn's ``backbone`` (any one of them marks the layout).
SOLO_LEARN_HEADS = ("projector.", "momentum_backbone.", "momentum_projector.", "classifier.")
#: the top-level key PyTorch Lightning writes into every checkpoint.
LIGHTNING_KEY = "pytorch-lightning_version"


def detect_format(sd, container=None) -> str:
    """Guess the layout from the key prefixes (after dropping DataParallel's ``module.``).

    Parameters
    ----------
    sd : dict
        The weights (``str -> tensor``).
    container : dict, optional
        The whole checkpoint ``sd`` came from: a PyTorch Lightning checkpoint is told by its
        ``pytorch-lightning_version`` entry.

    Returns
    -------
    str
        A name of :data:`FORMATS`, or ``"unknown"``.
    """
    keys = [_strip_module(k) for k in sd]
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if has("encoder_q."):
        return "moco"
    for fmt, (backbone, _) in PREFIX_LAYOUTS.items():
        if has(backbone) and (fmt != "simsiam" or has("predictor.")):
            return fmt
    prefix = backbone_prefix_of(keys)
    if prefix is not None:
        if _is_sequential(keys, prefix):
            return "lightly"
        if prefix == "backbone." and any(map(has, SOLO_LEARN_HEADS)):
            return "solo-learn"
        if prefix == "model.backbone." or (isinstance(container, dict) and LIGHTNING_KEY in container):
            return "lightning"
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


def backbone_prefix_of(keys):
    """Where a Lightning, solo-learn or lightly module keeps its backbone.

    Parameters
    ----------
    keys : iterable of str
        Checkpoint keys, DataParallel's ``module.`` removed.

    Returns
    -------
    str or None
        ``"model.backbone."`` or ``"backbone."``, the first that holds a key; ``None`` if neither.
    """
    keys = list(keys)
    for prefix in ("model.backbone.", "backbone."):
        if any(k.startswith(prefix) for k in keys):
            return prefix
    return None


def _is_sequential(keys, prefix) -> bool:
    # nn.Sequential(*list(resnet.children())[:-1]): every key under the prefix starts with an index.
    under = [k[len(prefix):] for k in keys if k.startswith(prefix)]
    return bool(under) and all(re.match(r"^\d+\.", rest) for rest in under)


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
# torchvision's ResNet children in order: conv1, bn1, relu, maxpool, layer1..4 (avgpool, fc).
TORCHVISION_CHILDREN = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3",
                        "7": "layer4"}


def _child_names(key, children):
    """``'4.0.conv1.weight'`` -> ``'layer1.0.conv1.weight'`` by the index -> name map; ``None``
    for a key that starts with no mapped index."""
    m = re.match(r"^(\d+)\.(.*)$", key)
    return f"{children[m.group(1)]}.{m.group(2)}" if m and m.group(1) in children else None


def _leftthomas(key):
    if key.startswith("g."):
        return None
    rest = _strip_prefix(key, "f.")
    return (rest is not None and _child_names(rest, _LEFTTHOMAS)) or key


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


def _dot(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith(".") else prefix + "."


def prefix_layout(backbone_prefix: str, heads=(), drop_rest: bool = False,
                  children=None) -> Callable[[str], object]:
    """A key renamer for any encoder-plus-heads checkpoint.

    Parameters
    ----------
    backbone_prefix : str
        The prefix of the backbone's keys (after DataParallel's ``module.``), e.g. ``encoder.``;
        ``""`` for a backbone at the top level.  A missing final dot is added.
    heads : iterable of str
        Prefixes of the keys to drop: projection and prediction heads, a momentum or teacher
        network.  The backbone's own classifier ``fc.`` is always dropped.
    drop_rest : bool
        Drop every key outside the backbone prefix too (solo-learn, Lightning, lightly), instead
        of keeping it for the strict load to report.
    children : dict, optional
        A backbone saved as an ``nn.Sequential`` of a ResNet's children: its index -> name map
        (:data:`TORCHVISION_CHILDREN`).

    Returns
    -------
    callable
        ``key -> new key``, or ``None`` for a dropped key.  Unless ``drop_rest``, a key under
        neither prefix is kept as it is, so the strict load reports it as unexpected.
    """
    prefix, heads = _dot(backbone_prefix), tuple(_dot(h) for h in heads if h)

    def rename(key):
        if key.startswith(heads):
            return None
        rest = _strip_prefix(key, prefix)
        if rest is None:
            return None if drop_rest else key
        if children:
            rest = _child_names(rest, children) or rest
        return None if rest.startswith("fc.") else rest.replace(".shortcut.", ".downsample.")
    return rename


_RENAMERS: Dict[str, Callable[[str], object]] = {
    "c2d": _c2d, "sthalles": _sthalles, "leftthomas": _leftthomas,
    "spijkervet": _spijkervet, "moco": _moco, "plain": _plain,
    "solo-learn": prefix_layout("backbone.", drop_rest=True),
    **{fmt: prefix_layout(*layout) for fmt, layout in PREFIX_LAYOUTS.items()},
}


def renamer_for(fmt: str, sd) -> Callable[[str], object]:
    """The key renamer of format ``fmt`` for the weights ``sd``.

    Parameters
    ----------
    fmt : str
        A name of :data:`FORMATS`.
    sd : dict
        The weights: Lightning and lightly keep the backbone under ``model.backbone.`` or
        ``backbone.``, whichever ``sd`` has.

    Returns
    -------
    callable
        ``key -> new key``, or ``None`` for a dropped key (see :func:`prefix_layout`).
    """
    if fmt in ("lightning", "lightly"):
        prefix = backbone_prefix_of([_strip_module(k) for k in sd]) or "backbone."
        return prefix_layout(prefix, drop_rest=True,
                             children=TORCHVISION_CHILDREN if fmt == "lightly" else None)
    if fmt not in _RENAMERS:
        raise InputError(f"--checkpoint-format: unknown format {fmt!r} (choose from auto, "
                         f"{', '.join(FORMATS)})")
    return _RENAMERS[fmt]


def convert_state_dict(sd, fmt, dropped: list = None) -> Dict[str, torch.Tensor]:
    """Rename ``sd`` from ``fmt`` to backbone names and drop its head; other keys pass unchanged
    (so that a strict load reports them as unexpected).

    ``fmt`` is a format name or a renamer (:func:`prefix_layout`); the dropped keys are appended
    to ``dropped`` when a list is given.
    """
    renamer = renamer_for(fmt, sd) if isinstance(fmt, str) else fmt
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
            head = ".".join(parts[:2] if parts[0] in ("encoder", "online_encoder", "teacher", "backbone", "model")
                            and len(parts) > 2 else parts[:1])
        groups[head] = groups.get(head, 0) + 1
    items = [f"{h}.* ({n} key{'s' if n > 1 else ''})" for h, n in sorted(groups.items())]
    return ", ".join(items[:limit]) + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")



def choose_layout(sd, fmt: str = "auto", container=None, backbone_prefix=None, drop_heads=(),
                  where: str = "checkpoint"):
    """The renaming for ``sd``: a named format, the detected one, or a backbone prefix.

    Parameters
    ----------
    sd : dict
        The checkpoint's weights.
    fmt : str
        A name of :data:`FORMATS`, or ``"auto"`` to detect it (:func:`detect_format`).
    container : dict, optional
        The whole checkpoint (tells a PyTorch Lightning one).
    backbone_prefix : str, optional
        Any other layout: the backbone's key prefix (:func:`prefix_layout`); replaces ``fmt``.
        A backbone saved as an ``nn.Sequential`` of torchvision's ResNet children (indices
        under the prefix) is renamed as ``lightly``'s.
    drop_heads : iterable of str
        With ``backbone_prefix``: the key prefixes of the heads to drop.
    where : str
        Names the checkpoint in messages.

    Returns
    -------
    (callable, str, tuple of str)
        The renamer, the format as reported (``"prefix 'encoder.'"`` for a prefix) and the head
        prefixes that group the dropped keys (:func:`dropped_summary`).

    Raises
    ------
    InputError
        ``drop_heads`` without ``backbone_prefix``, an unknown ``fmt``, or a layout that
        ``"auto"`` does not recognise (the message lists the key prefixes found).
    """
    drop_heads = tuple(drop_heads)
    if backbone_prefix is not None:
        heads = tuple(_dot(h) for h in drop_heads if h)
        keys = [k for k in map(_strip_module, sd) if not k.startswith(heads)]
        children = TORCHVISION_CHILDREN if _is_sequential(keys, _dot(backbone_prefix)) else None
        return (prefix_layout(backbone_prefix, drop_heads, children=children),
                f"prefix {backbone_prefix!r}", drop_heads)
    if drop_heads:
        raise InputError("--drop-heads: needs --backbone-prefix (the key prefix of the backbone)")
    if fmt == "auto":
        fmt = detect_format(sd, container)
        if fmt == "unknown":
            raise InputError(unrecognised(f"{where}: layout not recognised", sd))
    return renamer_for(fmt, sd), fmt, PREFIX_LAYOUTS.get(fmt, ("", ()))[1]


def unrecognised(problem: str, sd) -> str:
    """``problem``, then the key prefixes of ``sd`` and the layouts understood: one line.

    Parameters
    ----------
    problem : str
        What went wrong, naming the checkpoint.
    sd : dict
        The checkpoint's weights.

    Returns
    -------
    str
        The message, ending with the two ways out (``--checkpoint-format``, ``--backbone-prefix``).
    """
    layouts = "; ".join(f"{fmt} ({keys})" for fmt, keys in LAYOUT_KEYS.items())
    return (f"{problem}; key prefixes found: {key_prefixes(sd)}; layouts understood: {layouts}; "
            "pass --checkpoint-format, or name the parts with --backbone-prefix P --drop-heads H1,H2")


_RESNET_PART = re.compile(r"^(\d+|conv1|bn1|layer[1-4]|fc|downsample|shortcut)$")


def key_prefixes(keys, limit: int = 6) -> str:
    """``'backbone.* (122 keys, e.g. backbone.0.weight), projection_head.* (4 keys, ...)'``.

    Parameters
    ----------
    keys : iterable of str
        Checkpoint keys (DataParallel's ``module.`` is removed).
    limit : int
        At most this many groups are shown, the largest first.

    Returns
    -------
    str
        Each key is counted under the name parts before its first ResNet part (``conv1``,
        ``layer2``, an ``nn.Sequential`` index ...); a key with none under all but its last
        part; keys of a bare ResNet under ``(top level)``.
    """
    groups: Dict[str, list] = {}
    for key in map(_strip_module, keys):
        parts = key.split(".")
        stop = next((i for i, part in enumerate(parts[:-1]) if _RESNET_PART.match(part)), len(parts) - 1)
        group = ".".join(parts[:stop]) + ".*" if stop else (key if len(parts) == 1 else "(top level)")
        groups.setdefault(group, [0, key])[0] += 1
    ordered = sorted(groups.items(), key=lambda item: (-item[1][0], item[0]))
    items = [f"{g} ({n} key{'s' if n > 1 else ''}, e.g. {example})" for g, (n, example) in ordered]
    return ", ".join(items[:limit]) + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")
