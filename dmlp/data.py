"""Load and validate the authors' data layout, memory-mapped.

A data folder holds ``trainfeatures.npy`` (N x d), ``trainlabels.npy`` (N, the noisy labels),
and optionally ``testfeatures.npy`` / ``testlabels.npy``, ``correctlabels.npy`` (the true train
labels) and a separate clean meta set ``metafeatures.npy`` / ``metalabels.npy``.  Features are
opened with ``mmap_mode='r'`` and never copied whole; nothing is ever loaded with pickles.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import InputError

FEATURE_DTYPES = (np.float16, np.float32, np.float64)


def load_npy(path, *, what: Optional[str] = None, mmap: bool = True) -> np.ndarray:
    """Open a ``.npy`` file read-only (memory-mapped when possible), refusing pickles.

    Raises :class:`InputError` naming the file for a missing, truncated, non-.npy or
    object-dtype file.
    """
    path = Path(path)
    name = what or path.name
    if not path.exists():
        raise InputError(f"{name}: file not found ({path})")
    if path.is_dir():
        raise InputError(f"{name}: is a folder, not a .npy file ({path})")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
    except Exception as exc:  # numpy raises ValueError/EOFError/... for garbage
        raise InputError(f"{name}: not a valid .npy file ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if dtype.hasobject:
        raise InputError(f"{name}: holds an object (pickled) array; only numeric arrays are accepted")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise InputError(f"{name}: truncated file ({size} bytes, header says {expected})")
    if int(np.prod(shape, dtype=np.int64)) == 0:
        return np.zeros(shape, dtype=dtype)
    if mmap:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    return np.load(path, allow_pickle=False)


def check_features(array: np.ndarray, name: str, *, check_finite: bool = True,
                   chunk_rows: int = 65536) -> np.ndarray:
    """Validate a 2-D float feature matrix; scans for NaN/inf chunk by chunk (no full copy)."""
    if array.ndim != 2:
        raise InputError(f"{name}: expected a 2-D feature matrix, got shape {array.shape}")
    if array.dtype.type not in FEATURE_DTYPES:
        raise InputError(f"{name}: features must be float16/float32/float64, got {array.dtype}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{name}: empty feature matrix (shape {array.shape})")
    if check_finite:
        for start in range(0, array.shape[0], chunk_rows):
            block = np.asarray(array[start:start + chunk_rows])
            if not np.isfinite(block).all():
                bad = start + int(np.argwhere(~np.isfinite(block))[0, 0])
                raise InputError(f"{name}: contains NaN or infinite values (first at row {bad})")
    return array


def check_labels(array: np.ndarray, name: str, n_classes: Optional[int] = None,
                 n_rows: Optional[int] = None, rows_of: str = "") -> np.ndarray:
    """Validate a 1-D integer label vector in 0..C-1 and return it as an int64 array in RAM."""
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(f"{name}: expected a 1-D label vector, got shape {array.shape}")
    if n_rows is not None and array.shape[0] != n_rows:
        raise InputError(f"{name} has {array.shape[0]} rows but {rows_of} has {n_rows}")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.all(array == np.round(array)):
            raise InputError(f"{name}: labels must be integers, got non-integer {array.dtype} values")
    elif array.dtype.kind not in "iub":
        raise InputError(f"{name}: labels must be integers, got dtype {array.dtype}")
    labels = array.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise InputError(f"{name}: negative label {int(labels.min())} (labels must be 0..C-1)")
    if n_classes is not None and labels.size and labels.max() >= n_classes:
        raise InputError(f"{name}: label {int(labels.max())} out of range for {n_classes} classes")
    return labels
