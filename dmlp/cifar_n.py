"""Real human label noise from CIFAR-10N / CIFAR-100N (Wei et al., ICLR 2022).

The official files ``CIFAR-10_human.pt`` and ``CIFAR-100_human.pt`` are ``torch.save``-d dicts:

* CIFAR-10N: ``clean_label``, ``aggre_label``, ``worse_label``, ``random_label1/2/3``
  (int64 numpy arrays of 50,000, in the order of the CIFAR python batches);
* CIFAR-100N: ``clean_label``, ``noisy_label`` (fine, numpy arrays) and
  ``clean_coarse_label``, ``noisy_coarse_label`` (20 superclasses, Python lists).

Their labels are indexed like the training set of the python CIFAR release, so they can only be
attached to features extracted in that same order; we check ``clean_label`` against the
feature folder's ``correctlabels.npy`` and refuse on any difference (e.g. TensorFlow-datasets
order, or CIFAR-100 labels given for CIFAR-10 features).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import check_labels
from .errors import InputError
from .data import require_file

# noise type -> (key of the noisy labels, key of the clean labels it must be checked against)
NOISE_TYPES = {
    "aggre": ("aggre_label", "clean_label"),
    "worse": ("worse_label", "clean_label"),
    "random1": ("random_label1", "clean_label"),
    "random2": ("random_label2", "clean_label"),
    "random3": ("random_label3", "clean_label"),
    "noisy": ("noisy_label", "clean_label"),
    "noisy_coarse": ("noisy_coarse_label", "clean_coarse_label"),
}


def _numpy_safe_globals() -> list:
    """The numpy callables/classes a pickled integer ndarray needs, and nothing else.

    The CIFAR-N files pickle numpy arrays, which ``torch.load(weights_only=True)`` (the default
    since torch 2.6) refuses.  We never fall back to ``weights_only=False`` (that would run
    arbitrary code from a downloaded file); instead we allow-list exactly the globals that
    rebuilding an int ndarray touches.  Files written under numpy 1.x name the rebuild function
    ``numpy.core.multiarray._reconstruct``, numpy 2.x writes ``numpy._core...``: we register the
    same function under both names.
    """
    try:
        from numpy._core import multiarray as ma  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as ma
    allowed = [ma._reconstruct, np.ndarray, np.dtype]
    for name in ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"):
        allowed.append((ma._reconstruct, name))
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25; unpickling a dtype builds one of these
    if dtypes is not None:
        for cls in ("Int8DType", "Int16DType", "Int32DType", "Int64DType", "UInt8DType",
                    "UInt16DType", "UInt32DType", "UInt64DType", "LongDType", "ULongDType",
                    "LongLongDType", "ULongLongDType", "ByteDType", "UByteDType", "ShortDType",
                    "UShortDType", "IntDType", "UIntDType"):
            if hasattr(dtypes, cls):
                allowed.append(getattr(dtypes, cls))
    return allowed


def _short_reason(exc: Exception) -> str:
    """One line from torch's long weights_only error: the reason, not its advice to unlock."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = lines[0] if lines else exc.__class__.__name__
    reason = reason.split(" Please use", 1)[0]  # drop the hint to allow-list it: we do not
    return f"{exc.__class__.__name__}: {reason[:200]}"


def load_cifar_n_file(path) -> dict:
    """Load a CIFAR-N ``*_human.pt`` dict safely (weights_only=True + a numpy allow-list)."""
    import torch  # local: the rest of the package does not need torch at import time

    path = require_file(path, "--cifar-n", "a .pt file")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or a pickle needing globals we refuse to allow
        detail = _short_reason(exc)
        raise InputError(f"--cifar-n {path.name}: cannot load safely as a CIFAR-N .pt file ({detail})") from None
    if not isinstance(obj, dict):
        raise InputError(f"--cifar-n {path.name}: expected a dict of label arrays, got {type(obj).__name__}")
    return obj


def _as_labels(obj: dict, key: str, path: Path) -> np.ndarray:
    if key not in obj:
        raise InputError(f"--cifar-n {path.name}: has no key {key!r} (keys: {', '.join(sorted(map(str, obj)))})")
    value = obj[key]
    if hasattr(value, "numpy"):  # a tensor is fine too
        value = value.numpy()
    return check_labels(np.asarray(value), f"--cifar-n {path.name}[{key!r}]")


def cifar_n_labels(path, noise_type: str, correct_labels=None) -> np.ndarray:
    """Return the ``noise_type`` labels of a CIFAR-N file as int64, checked against ``correct_labels``.

    ``noise_type`` is one of ``aggre, worse, random1, random2, random3`` (CIFAR-10N) or
    ``noisy, noisy_coarse`` (CIFAR-100N).  When ``correct_labels`` is given, the file's clean
    labels (``clean_coarse_label`` for ``noisy_coarse``) must equal it element for element.
    """
    if noise_type not in NOISE_TYPES:
        raise InputError(f"--noise-type: unknown CIFAR-N noise type {noise_type!r} "
                         f"(expected one of: {', '.join(NOISE_TYPES)})")
    path = Path(path)
    obj = load_cifar_n_file(path)
    noisy_key, clean_key = NOISE_TYPES[noise_type]
    noisy = _as_labels(obj, noisy_key, path)
    clean = _as_labels(obj, clean_key, path)
    if clean.shape != noisy.shape:
        raise InputError(f"--cifar-n {path.name}: {noisy_key} has {noisy.shape[0]} rows but "
                         f"{clean_key} has {clean.shape[0]}")
    if correct_labels is not None:
        correct = check_labels(correct_labels, "correctlabels.npy")
        if correct.shape != clean.shape:
            raise InputError(f"--cifar-n {path.name}: {clean_key} has {clean.shape[0]} rows but "
                             f"correctlabels.npy has {correct.shape[0]} (wrong dataset?)")
        differ = np.flatnonzero(correct != clean)
        if differ.size:
            raise InputError(
                f"--cifar-n {path.name}: {clean_key} differs from correctlabels.npy at {differ.size} of "
                f"{clean.shape[0]} rows (first at row {int(differ[0])}); the features must be in the "
                f"CIFAR python-release order of the same dataset (not e.g. TensorFlow's)")
    return noisy
