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
from typing import NamedTuple

import numpy as np

from .data import check_labels, require_file
from .errors import InputError


class NoiseType(NamedTuple):
    """Where a CIFAR-N noise type lives in the file, and its classes."""
    noisy_key: str       #: key of the noisy labels
    clean_key: str       #: key of the clean labels they must be checked against
    n_classes: int       #: 10 (CIFAR-10N), 100 (CIFAR-100N fine) or 20 (CIFAR-100N coarse)
    dataset: str         #: the CIFAR data set the file labels


NOISE_TYPES = {
    "aggre": NoiseType("aggre_label", "clean_label", 10, "cifar10"),
    "worse": NoiseType("worse_label", "clean_label", 10, "cifar10"),
    "random1": NoiseType("random_label1", "clean_label", 10, "cifar10"),
    "random2": NoiseType("random_label2", "clean_label", 10, "cifar10"),
    "random3": NoiseType("random_label3", "clean_label", 10, "cifar10"),
    "noisy": NoiseType("noisy_label", "clean_label", 100, "cifar100"),
    "noisy_coarse": NoiseType("noisy_coarse_label", "clean_coarse_label", 20, "cifar100"),
}


def lookup_noise_type(name: str) -> NoiseType:
    """The :class:`NoiseType` called ``name``, or :class:`InputError` naming ``--noise-type``."""
    if name not in NOISE_TYPES:
        raise InputError(f"--noise-type: unknown CIFAR-N noise type {name!r} "
                         f"(expected one of: {', '.join(NOISE_TYPES)})")
    return NOISE_TYPES[name]


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
    """Load a CIFAR-N ``*_human.pt`` dict safely (weights_only=True + a numpy allow-list).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
        The file's label arrays (numpy arrays, tensors or lists) by key.

    Raises
    ------
    InputError
        For a missing or empty file, one that is not a torch file, or one that needs more than
        integer numpy arrays to load.
    """
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


def _as_labels(obj: dict, key: str, path: Path, n_classes: int) -> np.ndarray:
    if key not in obj:
        raise InputError(f"--cifar-n {path.name}: has no key {key!r} (keys: {', '.join(sorted(map(str, obj)))})")
    value = obj[key]
    if hasattr(value, "numpy"):  # a tensor is fine too
        value = value.numpy()
    return check_labels(np.asarray(value), f"--cifar-n {path.name}[{key!r}]", n_classes=n_classes)


def _mismatch(path: Path, clean_key: str, clean: np.ndarray, correct: np.ndarray, obj: dict) -> str:
    """Why the file's clean labels differ from correctlabels.npy, in one line."""
    differ = np.flatnonzero(correct != clean)
    text = (f"--cifar-n {path.name}: {clean_key} differs from correctlabels.npy at {differ.size} of "
            f"{clean.shape[0]} rows (first at row {int(differ[0])})")
    if np.array_equal(correct, clean + 1):
        return text + "; correctlabels.npy is the file's labels + 1: it looks 1-based, subtract 1 from it"
    other = next((k for k in ("clean_label", "clean_coarse_label") if k != clean_key and k in obj
                  and np.array_equal(np.asarray(obj[k]), correct)), None)
    if other:
        types = "/".join(t for t, k in NOISE_TYPES.items() if k.clean_key == other and k.noisy_key in obj)
        return text + (f"; correctlabels.npy equals the file's {other}: use --noise-type {types}, or true "
                       f"labels of the {clean_key} classes")
    text += "; the file may be for other data or other labels (another data set, fine vs coarse)"
    if np.array_equal(np.sort(clean), np.sort(correct)):                 # the same class counts
        return text + (", or the same labels in another order (the features must follow the image order "
                       "of the python CIFAR release)")
    return text + ", not only in another order: the classes have other row counts"


def cifar_n_labels(path, noise_type: str, correct_labels=None) -> np.ndarray:
    """The noisy labels of one noise type of a CIFAR-N file, checked against the true labels.

    Parameters
    ----------
    path : str or Path
        ``CIFAR-10_human.pt`` or ``CIFAR-100_human.pt`` (or a file of the same structure).
    noise_type : str
        ``aggre, worse, random1, random2, random3`` (CIFAR-10N) or ``noisy, noisy_coarse``
        (CIFAR-100N): a key of :data:`NOISE_TYPES`.
    correct_labels : array_like of int, shape (N,), optional
        The data folder's true labels; the file's clean labels (``clean_coarse_label`` for
        ``noisy_coarse``) must equal them row for row.

    Returns
    -------
    ndarray of int64, shape (N,)
        Labels in 0..C-1, C the noise type's class count (10, 100 or 20).

    Raises
    ------
    InputError
        For an unknown noise type, a file that cannot be loaded safely, a missing key, labels
        out of the noise type's range (saying so when they look 1-based), or clean labels that
        differ from ``correct_labels`` (saying in how many rows, and what that may mean).
    """
    kind = lookup_noise_type(noise_type)
    path = Path(path)
    obj = load_cifar_n_file(path)
    if kind.noisy_key not in obj:
        fitting = [t for t, k in NOISE_TYPES.items() if k.noisy_key in obj and k.clean_key in obj]
        if fitting:         # a file of the other CIFAR-N: name the types it does hold
            raise InputError(f"--cifar-n {path.name}: has no key {kind.noisy_key!r}: --noise-type {noise_type} is "
                             f"for {kind.dataset.upper()}N files, and this file holds the types "
                             f"{', '.join(fitting)} (pass one of them as --noise-type)")
    noisy = _as_labels(obj, kind.noisy_key, path, kind.n_classes)
    clean = _as_labels(obj, kind.clean_key, path, kind.n_classes)
    if clean.shape != noisy.shape:
        raise InputError(f"--cifar-n {path.name}: {kind.noisy_key} has {noisy.shape[0]} rows but "
                         f"{kind.clean_key} has {clean.shape[0]}")
    if correct_labels is not None:
        correct = check_labels(correct_labels, "correctlabels.npy")
        if correct.shape != clean.shape:
            raise InputError(f"--cifar-n {path.name}: {kind.clean_key} has {clean.shape[0]} rows but "
                             f"correctlabels.npy has {correct.shape[0]} (wrong dataset?)")
        if not np.array_equal(correct, clean):
            raise InputError(_mismatch(path, kind.clean_key, clean, correct, obj))
    return noisy
