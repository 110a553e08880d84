"""Validation of the library's inputs: feature matrices, label vectors, the meta set's classes.

One place for the rules, called by :func:`dmlp.purify` callers and the data loader alike.
Messages name the argument (or file) they are given as ``name``; the CLI adds its flag names.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import InputError
from .rows import read_rows

FEATURE_DTYPES = (np.float16, np.float32, np.float64)


def check_features(array: np.ndarray, name: str, *, check_finite: bool = True,
                   chunk_bytes: int = 16 * 2 ** 20, progress: bool = False) -> np.ndarray:
    """Validate a 2-D float feature matrix; scans for NaN/inf chunk by chunk (no full copy).

    ``progress`` shows a bar for the scan when it reads more than 256 MB.
    """
    if array.ndim != 2:
        raise InputError(f"{name}: expected a 2-D feature matrix, got shape {array.shape}")
    if array.dtype.type not in FEATURE_DTYPES:
        raise InputError(f"{name}: features must be float16/float32/float64, got {array.dtype}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{name}: empty feature matrix (shape {array.shape})")
    if check_finite:
        chunk_rows = max(1, chunk_bytes // (array.shape[1] * array.dtype.itemsize))
        from .progress import progress_bar
        for start in progress_bar(range(0, array.shape[0], chunk_rows), desc=f"checking {name}", unit="chunk",
                                  enabled=progress and array.nbytes >= 256 * 2 ** 20):
            block = read_rows(array, slice(start, start + chunk_rows))
            if not np.isfinite(block).all():
                bad = start + int(np.argwhere(~np.isfinite(block))[0, 0])
                raise InputError(f"{name}: contains NaN or infinite values (first at row {bad}); drop those rows "
                                 "(and their labels) or replace the values before saving")
    return array


def check_labels(array: np.ndarray, name: str, n_classes: Optional[int] = None,
                 n_rows: Optional[int] = None, rows_of: str = "", allow_unknown: bool = False) -> np.ndarray:
    """Validate a 1-D integer label vector in 0..C-1 and return it as an int64 array in RAM.

    Parameters
    ----------
    array : array_like of int (or integral float), shape (N,) or (N, 1)
    name : str
        The file or argument, for messages.
    n_classes : int, optional
        C: labels must be below it.  None: no upper bound.
    n_rows : int, optional
        The row count required, that of ``rows_of``.
    rows_of : str
        What ``n_rows`` counts, for messages.
    allow_unknown : bool
        -1 marks a row whose label is unknown (any other negative value is still refused).

    Returns
    -------
    ndarray of int64, shape (N,)

    Raises
    ------
    InputError
        For a wrong shape or row count, non-integer values, or a label out of range; a label
        vector running 1..C says that it looks 1-based.
    """
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(f"{name}: expected a 1-D label vector, got shape {array.shape}")
    if n_rows is not None and array.shape[0] != n_rows:
        raise InputError(f"{name} has {array.shape[0]} rows but {rows_of} has {n_rows}: the two must hold "
                         "the same rows in the same order (one label a feature row)")
    if array.dtype.kind == "f":
        fractional = ~np.isfinite(array) | (array != np.round(array))
        if fractional.any():
            row = int(np.argmax(fractional))
            raise InputError(f"{name}: labels must be integers, got non-integer {array.dtype} values (first "
                             f"{array[row]} at row {row}); labels are class indices 0..C-1 (for soft labels "
                             "or scores, save their argmax)")
    elif array.dtype.kind not in "iu":                  # bool too: True/False are no class indices
        raise InputError(f"{name}: labels must be integers, got dtype {array.dtype}")
    labels = array.astype(np.int64)
    floor = -1 if allow_unknown else 0
    if labels.size and labels.min() < floor:
        row = int(np.argmax(labels < floor))
        raise InputError(f"{name}: negative label {int(labels[row])} at row {row} (labels must be 0..C-1"
                         f"{', or -1 for unknown' if allow_unknown else ''})")
    if n_classes is not None and labels.size and labels.max() >= n_classes:
        row = int(np.argmax(labels >= n_classes))
        raise InputError(f"{name}: label {int(labels[row])} at row {row} out of range for {n_classes} classes"
                         f"{one_based_hint(labels, n_classes)}")
    return labels


def one_based_hint(labels: np.ndarray, n_classes: Optional[int] = None) -> str:
    """``"; the labels look 1-based ..."`` when ``labels`` do, else ``""``: the tail of a message.

    Labels look 1-based when the smallest is 1 and, if ``n_classes`` (C) is known, the largest
    is C: they then run 1..C instead of the 0..C-1 the package reads.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
    n_classes : int, optional
        The class count known from elsewhere (a ``--dataset``, another file).

    Returns
    -------
    str
        Empty, or a clause starting with ``"; "`` that tells to subtract 1.
    """
    labels = np.asarray(labels)
    if not labels.size or int(labels.min()) != 1:
        return ""
    top = int(labels.max())
    if n_classes is not None and top != n_classes:
        return ""
    return f"; the labels look 1-based (1..{top}, no 0): subtract 1 so that they run 0..{top - 1}"


def infer_n_classes(labels: np.ndarray, name: str) -> int:
    """The class count of a full label vector: its largest label plus one.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
        Valid labels (as :func:`check_labels` returns them), every row known.
    name : str
        The file or argument the labels came from, for messages.

    Returns
    -------
    int
        ``max(labels) + 1``, at least 2.

    Raises
    ------
    InputError
        When label 0 never occurs (1-based labels would get an empty class 0, which a noise
        model would then draw), or fewer than 2 classes result.
    """
    labels = np.asarray(labels)
    if not labels.size:
        raise InputError(f"{name}: no labels")
    if int(labels.min()) > 0:
        raise InputError(f"{name}: label 0 never occurs (smallest label {int(labels.min())}), so the "
                         f"class count cannot come from the labels{one_based_hint(labels)}")
    n_classes = int(labels.max()) + 1
    if n_classes < 2:
        raise InputError(f"{name}: need at least 2 classes, all labels are {int(labels.max())}")
    return n_classes


def check_meta_indices(indices, n_rows: int, argument: str = "meta_index") -> np.ndarray:
    """Validate meta row indices (1-D, non-empty, distinct, in ``0..n_rows-1``) as sorted int64.

    Parameters
    ----------
    indices : array_like of int, shape (M,)
    n_rows : int
        Rows of the training set.
    argument : str
        Names the indices in the error (the command line shows its flag and file instead).

    Raises
    ------
    InputError
        With ``argument``, naming the problem.
    """
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0:
        raise InputError(f"expected a non-empty 1-D array of row indices, got shape {idx.shape}", argument=argument)
    if idx.dtype.kind not in "iu":
        raise InputError(f"row indices must be integers, got {idx.dtype}", argument=argument)
    if idx.min() < 0 or idx.max() >= n_rows:
        raise InputError(f"row index {int(idx.min() if idx.min() < 0 else idx.max())} "
                         f"out of range for {n_rows} training rows", argument=argument)
    if len(np.unique(idx)) != len(idx):
        raise InputError("contains duplicate row indices", argument=argument)
    return np.sort(idx.astype(np.int64))


def check_meta_labels(labels, n_classes: int, argument: str, *, n_classes_from: Optional[str] = None,
                      **value) -> np.ndarray:
    """Check that a meta set has at least C rows and one row of every class.

    Parameters
    ----------
    labels : array_like of int, shape (M,)
        The meta set's clean labels, already checked to lie in ``0..n_classes-1``.
    n_classes : int
    argument : str
        Names the meta set's source in the error (a file, an argument); ``value=`` adds the
        argument's value, as :class:`InputError` takes it.
    n_classes_from : str, optional
        The file whose largest label set ``n_classes`` when the class count was inferred; named
        in the error, since the mistake is then often a stray label in that file rather than a
        gap in the meta set.

    Returns
    -------
    numpy.ndarray
        ``labels`` as an array.

    Raises
    ------
    InputError
        Naming the source, the missing classes (at most ten) and the class count.
    """
    labels = np.asarray(labels)
    if len(labels) < n_classes:
        raise InputError(f"meta set has {len(labels)} rows, fewer than the {n_classes} classes "
                         "(every class needs a clean example)", argument=argument, **value)
    missing = sorted(set(range(n_classes)) - set(np.unique(labels).tolist()))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        why = ("every class needs a clean example: add clean rows of those classes with meta_index, "
               "or give them as metafeatures.npy/metalabels.npy")
        if n_classes_from is not None:
            why += (f"; the class count {n_classes} is inferred from the largest label, {n_classes - 1}, in "
                    f"{n_classes_from}: if that label is a mistake, correct it")
        raise InputError(f"meta set has no row of class {shown} "
                         f"({len(missing)} of {n_classes} classes missing; {why})", argument=argument, **value)
    return labels
