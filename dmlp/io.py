"""Atomic outputs: every file is written to a temporary name in its folder, then renamed.

A run killed at any moment therefore leaves either the previous complete file or none, never a
half-written one (``os.replace`` is atomic on POSIX within one filesystem).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def _atomic_write(path, write):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give outputs the usual permissions (umask applied)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def save_with(path, write) -> Path:
    """Write ``path`` atomically with ``write(binary_file)`` (e.g. a figure's ``savefig``)."""
    return _atomic_write(path, write)


def save_torch(path, obj) -> Path:
    """``torch.save`` atomically (checkpoints)."""
    import torch
    return _atomic_write(path, lambda fh: torch.save(obj, fh))


def save_npy(path, array) -> Path:
    """Save ``array`` as ``.npy`` at ``path`` atomically (never pickled)."""
    array = np.asarray(array)
    return _atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))


def save_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary name, then a rename."""
    return _atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def save_json(path, obj, indent=None) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`save_text`)."""
    return save_text(path, json.dumps(obj, indent=indent) + ("\n" if indent else ""))


def save_noise_file(path, labels) -> Path:
    """Write labels in the DivideMix / C2D ``--noise_file`` format: a JSON list of N ints."""
    labels = np.asarray(labels)
    return save_json(path, [int(v) for v in labels.tolist()])
