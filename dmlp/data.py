"""Load and validate the authors' data layout, memory-mapped.

A data folder holds ``trainfeatures.npy`` (N x d), ``trainlabels.npy`` (N, the noisy labels),
and optionally ``testfeatures.npy`` / ``testlabels.npy``, ``correctlabels.npy`` (the true train
labels) and a separate clean meta set ``metafeatures.npy`` / ``metalabels.npy``.  Features are
opened with ``mmap_mode='r'`` and never copied whole; nothing is ever loaded with pickles.
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import InputError

from .validation import FEATURE_DTYPES, check_features, check_labels  # noqa: F401  (re-exported)


def require_file(path, name: str, kind: str) -> Path:
    """Raise :class:`InputError` unless ``path`` is an existing file (``kind`` names what it should be)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{name}: file not found ({path})")
    if path.is_dir():
        raise InputError(f"{name}: is a folder, not {kind} ({path})")
    return path


def load_npy(path, *, what: Optional[str] = None, mmap: bool = True) -> np.ndarray:
    """Open a ``.npy`` file read-only (memory-mapped when possible), refusing pickles.

    Raises :class:`InputError` naming the file for a missing, truncated, non-.npy or
    object-dtype file.
    """
    path = Path(path)
    name = what or path.name
    require_file(path, name, "a .npy file")
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


def _file_backed(array) -> bool:
    """A read-only, C-ordered memory map of a whole .npy file (what :func:`load_npy` returns)."""
    return (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)
            and getattr(array, "filename", None) is not None and array.flags.c_contiguous
            and array.ndim >= 1)


def read_rows(array, rows) -> np.ndarray:
    """``array[rows]`` as an ordinary array; from a memory-mapped .npy, by plain file reads.

    Indexing a memory map faults the pages it touches (and their neighbours: the kernel maps
    up to 64 KB around each fault) into the process, where they count as resident memory until
    unmapped -- reading random rows of a batch can map the whole file.  Reading with ``pread``
    instead leaves them in the OS page cache only, so streaming features keeps the process's
    memory bounded by the batch, whatever the size of the file.  ``rows`` is a slice or an
    integer index array (any order, repeats allowed).
    """
    if isinstance(rows, slice):
        rows = np.arange(*rows.indices(array.shape[0]))
    rows = np.asarray(rows, dtype=np.int64)
    if not _file_backed(array) or rows.ndim != 1:
        return np.array(array[rows])
    n = array.shape[0]
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise IndexError(f"row index out of range for {n} rows")
    rows = np.where(rows < 0, rows + n, rows)
    ordered = rows.size < 2 or bool(np.all(np.diff(rows) > 0))
    wanted, inverse = (rows, None) if ordered else np.unique(rows, return_inverse=True)
    out = np.empty((len(wanted),) + array.shape[1:], dtype=array.dtype)
    row_bytes = out[0:1].nbytes if len(wanted) else 0
    if len(wanted):
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
        starts = np.concatenate([[0], breaks])
        stops = np.concatenate([breaks, [len(wanted)]])
        flat = memoryview(out.reshape(-1).view(np.uint8))
        fd = os.open(array.filename, os.O_RDONLY)
        try:
            for a, b in zip(starts.tolist(), stops.tolist()):
                pos, end = a * row_bytes, b * row_bytes
                offset = array.offset + int(wanted[a]) * row_bytes
                while pos < end:
                    got = os.preadv(fd, [flat[pos:end]], offset) if hasattr(os, "preadv") else \
                        _pread_into(fd, flat[pos:end], offset)
                    if got <= 0:
                        raise InputError(f"{Path(array.filename).name}: file shrank while being read")
                    pos += got
                    offset += got
        finally:
            os.close(fd)
    return out if inverse is None else out[inverse.reshape(-1)]


def _pread_into(fd, view, offset) -> int:
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


@dataclass
class Dataset:
    """The authors' folder layout, validated; feature arrays stay memory-mapped."""
    folder: Path
    train_features: np.ndarray
    noisy_labels: np.ndarray
    n_classes: int
    true_labels: Optional[np.ndarray] = None
    test_features: Optional[np.ndarray] = None
    test_labels: Optional[np.ndarray] = None
    meta_features: Optional[np.ndarray] = None
    meta_labels: Optional[np.ndarray] = None
    files: dict = field(default_factory=dict)
    n_classes_from: Optional[str] = None   # the file whose largest label set n_classes (None: given)


def load_dataset(folder, n_classes: int = 0, check_finite: bool = True, progress: bool = False) -> Dataset:
    """Open and validate a data folder in the authors' layout.

    ``n_classes = 0`` infers C from the largest label present.  ``correctlabels.npy`` may hold -1
    for rows whose true label is unknown.  Every problem raises
    :class:`InputError` naming the file, e.g.
    ``trainlabels.npy has 49999 rows but trainfeatures.npy has 50000``.
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"data folder not found: {folder}")
    if not folder.is_dir():
        raise InputError(f"data folder is not a folder: {folder}")
    files = {}

    def path(name):
        files[name] = folder / name
        return folder / name

    def optional(name):
        return load_npy(path(name)) if (folder / name).exists() else None

    train = check_features(load_npy(path("trainfeatures.npy")), "trainfeatures.npy", check_finite=check_finite,
                           progress=progress)
    N, d = train.shape
    noisy_raw = load_npy(path("trainlabels.npy"), mmap=False)
    true_raw = optional("correctlabels.npy")
    test = optional("testfeatures.npy")
    test_raw = optional("testlabels.npy")
    meta_f = optional("metafeatures.npy")
    meta_raw = optional("metalabels.npy")
    if (meta_f is None) != (meta_raw is None):
        raise InputError("metafeatures.npy and metalabels.npy must be given together")

    n_classes_from = None
    if not n_classes:
        n_classes = 1
        for name, arr in (("trainlabels.npy", noisy_raw), ("correctlabels.npy", true_raw),
                          ("testlabels.npy", test_raw), ("metalabels.npy", meta_raw)):
            a = np.asarray(arr) if arr is not None else np.zeros(0)
            if a.size and a.dtype.kind in "iuf" and np.isfinite(a).all() and int(np.max(a)) + 1 > n_classes:
                n_classes, n_classes_from = int(np.max(a)) + 1, name
    noisy = check_labels(noisy_raw, "trainlabels.npy", n_classes, N, "trainfeatures.npy")
    true = None if true_raw is None else check_labels(
        np.asarray(true_raw), "correctlabels.npy", n_classes, N, "trainfeatures.npy", allow_unknown=True)
    if test is not None:
        check_features(test, "testfeatures.npy", check_finite=check_finite)
        if test.shape[1] != d:
            raise InputError(f"testfeatures.npy has {test.shape[1]} columns but trainfeatures.npy has {d}")
    test_labels = None
    if test_raw is not None:
        if test is None:
            raise InputError("testlabels.npy is given without testfeatures.npy")
        test_labels = check_labels(np.asarray(test_raw), "testlabels.npy", n_classes,
                                   test.shape[0], "testfeatures.npy")
    meta_labels = None
    if meta_f is not None:
        check_features(meta_f, "metafeatures.npy", check_finite=check_finite)
        if meta_f.shape[1] != d:
            raise InputError(f"metafeatures.npy has {meta_f.shape[1]} columns but trainfeatures.npy has {d}")
        meta_labels = check_labels(np.asarray(meta_raw), "metalabels.npy", n_classes,
                                   meta_f.shape[0], "metafeatures.npy")
    if n_classes < 2:
        raise InputError("trainlabels.npy: need at least 2 classes")
    return Dataset(folder, train, noisy, n_classes, true, test, test_labels, meta_f, meta_labels,
                   {k: v for k, v in files.items() if v.exists()}, n_classes_from)


def gram_warning(features, batch_rows: int, ridge: float, name: str = "trainfeatures.npy",
                 seed: int = 0, scaling=None) -> Optional[str]:
    """A warning (or ``None``) when the Gram matrix ``X'X`` of a batch is (nearly) singular.

    IPC solves ``(X'X + lambda I) W = X'Y`` per batch; duplicated, constant or otherwise
    rank-deficient features (or batches with fewer rows than columns) make ``X'X`` singular.
    The ridge term ``lambda`` keeps the solve defined, so this is not an error -- but the user
    should know.  Checked on one batch-sized sample of the rows (seeded draw), with the Gram
    matrix in float32 as IPC computes it (after ``scaling``, as IPC sees the features) and its
    spectrum in float64.  All-zero features are an
    error: no ridge makes a closed form out of them.
    """
    n, d = features.shape
    b = max(1, min(int(batch_rows), n))
    rows = np.sort(np.random.default_rng(seed).choice(n, b, replace=False)) if b < n else np.arange(n)
    X = np.empty((b, d), dtype=np.float32)
    for start in range(0, b, 16384):
        block = features[rows[start:start + 16384]]
        X[start:start + 16384] = np.asarray(block, np.float32) if scaling is None else scaling.apply(block)
    G = (X.T @ X).astype(np.float64)
    scale = float(np.trace(G)) / d
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"{name}: the training features are all zero (the Gram matrix X'X is zero; "
                         "no ridge term can make the closed form meaningful)")
    eig = np.linalg.eigvalsh(G)
    lam_min, lam_max = float(eig[0]), float(eig[-1])
    if lam_min > max(10.0 * max(float(ridge), 0.0) * scale, 1e-5 * lam_max):
        return None
    rank = int((eig > 1e-5 * lam_max).sum())
    why = (f"a batch has {b} rows, fewer than the {d} feature columns" if b < d else
           f"numerical rank about {rank} of {d}: duplicated, constant or linearly dependent features?")
    return (f"{name}: the Gram matrix X'X of a batch is singular or nearly singular ({why}); "
            f"the ridge term (ridge = {ridge:g} x trace/d) keeps the closed-form solve defined, "
            "but labels may be less well corrected")
