"""Reading rows of a feature matrix held in a memory-mapped ``.npy`` file, with bounded memory."""
from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import InputError


def _file_backed(array) -> bool:
    """A read-only, C-ordered memory map of a whole .npy file (what :func:`load_npy` returns)."""
    return (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)
            and getattr(array, "filename", None) is not None and array.flags.c_contiguous
            and array.ndim >= 1)


def read_rows(array, rows, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``array[rows]`` as an ordinary array (into ``out`` when given, which must have the
    result's shape and dtype); from a memory-mapped .npy, by plain file reads.

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
        return np.array(array[rows]) if out is None else np.take(array, rows, axis=0, out=out)
    n = array.shape[0]
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise IndexError(f"row index out of range for {n} rows")
    rows = np.where(rows < 0, rows + n, rows)
    ordered = rows.size < 2 or bool(np.all(np.diff(rows) > 0))
    wanted, inverse = (rows, None) if ordered else np.unique(rows, return_inverse=True)
    target = out
    if out is None or not ordered:
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
    if inverse is None:
        return out
    if target is None:
        return out[inverse.reshape(-1)]
    return np.take(out, inverse.reshape(-1), axis=0, out=target)


def _pread_into(fd, view, offset) -> int:
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


class RowSubset:
    """Rows of a (memory-mapped) array, indexable like one; reads only what is asked for.

    Parameters
    ----------
    array : numpy.ndarray or numpy.memmap, shape (N, d)
    rows : numpy.ndarray of int, shape (n,)
        The rows of ``array`` this subset holds, in its order.
    """

    def __init__(self, array, rows):
        self.array, self.rows = array, rows
        self.shape = (len(rows), array.shape[1])
        self.ndim, self.dtype = 2, array.dtype

    def __getitem__(self, idx):
        return read_rows(self.array, self.rows[idx])   # file reads: bounded memory when streaming

    def __array__(self, dtype=None, copy=None):
        out = self[np.arange(len(self.rows))]
        return out if dtype is None else out.astype(dtype)
