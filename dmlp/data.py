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
from .rows import RowSubset, read_rows  # noqa: F401  (re-exported)
from .validation import FEATURE_DTYPES, check_features, check_labels, one_based_hint  # noqa: F401  (re-exported)


def require_file(path, name: str, kind: str) -> Path:
    """The path of an existing, non-empty file.

    Parameters
    ----------
    path : str or Path
    name : str
        The file or flag, for messages.
    kind : str
        What the file should be (``"a .npy file"``), for messages.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        When ``path`` is missing, a folder, or 0 bytes long (an interrupted download or copy).
    """
    path = Path(path)
    if not path.exists():
        others = sorted(p.name for p in path.parent.glob(path.stem + ".*")) if path.parent.is_dir() else []
        hint = f"; found {', '.join(others)}: save its array with numpy.save as {path.name}" \
            if others and path.suffix == ".npy" else ""
        raise InputError(f"{name}: file not found ({path}){hint}")
    if path.is_dir():
        raise InputError(f"{name}: is a folder, not {kind} ({path})")
    if path.stat().st_size == 0:
        raise InputError(f"{name}: the file is empty (0 bytes), not {kind}; was its download or copy "
                         f"interrupted? ({path})")
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
        reason = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"
        raise InputError(f"{name}: not a valid .npy file ({reason}); write the array with numpy.save "
                         "(np.save(path, array)), not as text or another format") from None
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

    @classmethod
    def from_arrays(cls, train_features, noisy_labels, *, true_labels=None, test_features=None, test_labels=None,
                    meta_features=None, meta_labels=None, n_classes: int = 0, name: str = "arrays") -> "Dataset":
        """A data set held in memory, validated as a folder's files would be.

        Parameters
        ----------
        train_features : array_like, shape (N, d), float16/32/64
        noisy_labels : array_like of int, shape (N,)
        true_labels : array_like of int, shape (N,), optional
            -1 where unknown.
        test_features, test_labels, meta_features, meta_labels : optional
            As the folder's ``test*.npy`` and ``meta*.npy``.
        n_classes : int
            0: the largest label plus one.
        name : str
            Stands for the folder in messages and ``summary.json``.

        Returns
        -------
        Dataset

        Raises
        ------
        InputError
            As :func:`load_dataset`; the messages name each array by its file in the folder
            layout (``trainlabels.npy`` for ``noisy_labels``, ``correctlabels.npy`` for
            ``true_labels``, ...).
        """
        arrays = {"trainfeatures.npy": train_features, "trainlabels.npy": noisy_labels,
                  "correctlabels.npy": true_labels, "testfeatures.npy": test_features,
                  "testlabels.npy": test_labels, "metafeatures.npy": meta_features, "metalabels.npy": meta_labels}
        return _validated(Path(name), {k: None if v is None else np.asarray(v) for k, v in arrays.items()},
                          n_classes, check_finite=True, progress=False, files={})


def _check_one_based_against(labels, name: str, other, other_name: str) -> None:
    """Refuse ``labels`` that run 1..C beside ``other`` labels of the same rows running 0..C-1."""
    if labels is None or other is None:
        return
    a, b = np.asarray(labels), np.asarray(other)
    if a.dtype.kind not in "iu" or b.dtype.kind not in "iu" or a.shape != b.shape:
        return
    known = (a >= 0) & (b >= 0)                                 # rows known in both (-1: unknown)
    a, b = a[known], b[known]
    if not a.size or not (b == 0).any():
        return
    if one_based_hint(a, n_classes=int(b.max()) + 1):           # 1..C beside the other's 0..C-1
        raise InputError(f"{name}: its labels run 1..{int(a.max())} while {other_name}'s run 0..{int(b.max())}: "
                         f"{name} looks 1-based; subtract 1 from it")


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
        return load_npy(path(name), mmap=name.endswith("features.npy")) if (folder / name).exists() else None

    arrays = {name: optional(name) for name in ("trainfeatures.npy", "trainlabels.npy", "correctlabels.npy",
                                                "testfeatures.npy", "testlabels.npy", "metafeatures.npy",
                                                "metalabels.npy")}
    if arrays["trainfeatures.npy"] is None:
        load_npy(path("trainfeatures.npy"))               # names the missing file
    if arrays["trainlabels.npy"] is None:
        load_npy(path("trainlabels.npy"))
    return _validated(folder, arrays, n_classes, check_finite=check_finite, progress=progress,
                      files={k: v for k, v in files.items() if v.exists()})


def _validated(folder: Path, arrays: dict, n_classes: int, *, check_finite: bool, progress: bool,
               files: dict) -> Dataset:
    """A :class:`Dataset` from the layout's arrays (by file name; None: absent), every rule checked."""
    train = check_features(arrays["trainfeatures.npy"], "trainfeatures.npy", check_finite=check_finite,
                           progress=progress)
    N, d = train.shape
    noisy_raw = np.asarray(arrays["trainlabels.npy"])
    true_raw, test, test_raw = arrays["correctlabels.npy"], arrays["testfeatures.npy"], arrays["testlabels.npy"]
    meta_f, meta_raw = arrays["metafeatures.npy"], arrays["metalabels.npy"]
    if (meta_f is None) != (meta_raw is None):
        raise InputError("metafeatures.npy and metalabels.npy must be given together")

    n_classes_from = None
    if not n_classes:
        n_classes = 1
        for name, arr in (("trainlabels.npy", noisy_raw), ("correctlabels.npy", true_raw),
                          ("testlabels.npy", test_raw), ("metalabels.npy", meta_raw)):
            a = np.asarray(arr) if arr is not None else np.zeros(0)
            if a.size and a.dtype.kind in "iuf" and np.isfinite(a).all() and int(np.max(a)) + 1 > n_classes:
                n_classes = int(np.max(a)) + 1
                n_classes_from = f"{name} (row {int(np.argmax(a))})"     # where a mistaken label would sit
    if n_classes_from is not None:                      # inferred: 1..C labels would add a class 0
        seen = [np.asarray(a) for a in (noisy_raw, true_raw) if a is not None]
        if all(a.size and a.dtype.kind in "iu" and not (a == 0).any() for a in seen):
            hint = one_based_hint(np.concatenate([a[a >= 0] for a in seen]))
            if hint:
                raise InputError(f"trainlabels.npy: no row has label 0{hint} (the class count is read from the "
                                 "labels as the largest label plus one)")
        _check_one_based_against(noisy_raw, "trainlabels.npy", true_raw, "correctlabels.npy")
        _check_one_based_against(true_raw, "correctlabels.npy", noisy_raw, "trainlabels.npy")
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
                   files, n_classes_from)


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
