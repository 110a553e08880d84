"""A fixed partition of the training rows into batches, and the features served batch by batch.

The partition is drawn once (seeded) and kept for the whole run, so each batch's Gram matrix is
factored once.  Labels and optimiser state are kept in *batch order* (position p holds original
row ``order[p]``), so a batch is always a contiguous slice of them.

Features are held in RAM when they fit under ``resident_limit_gb`` (as float32), in the compute
dtype (bfloat16 on CPUs that multiply it natively, which halves the copy), gathered chunk by
chunk from the memory map, never a whole float64/float16 copy at once; otherwise each batch is
read from the memory map and converted to float32 when it is used, which keeps memory bounded
for Clothing1M-sized inputs.
"""
from __future__ import annotations

from typing import List

import numpy as np
import torch

from .heap import release_freed_memory
from .numerics import GATHER_ROWS, fits_in_ram
from .rows import RowSubset, read_rows
from .seeds import rng


def make_partition(n_rows: int, batch_size: int, seed: int):
    """Seeded permutation of the rows and the slice of each batch (sizes differ by at most 1)."""
    order = rng(seed, "partition").permutation(n_rows)
    n_batches = max(1, -(-n_rows // max(1, batch_size)))
    bounds = np.linspace(0, n_rows, n_batches + 1).round().astype(int)
    return order, [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def gather_rows(array, rows: np.ndarray, out: torch.Tensor, chunk: int = GATHER_ROWS, scaling=None) -> torch.Tensor:
    """Copy ``array[rows]`` into the float tensor ``out`` chunk by chunk, mapped by ``scaling`` (a
    :class:`dmlp.scaling.FeatureScaling`) when one is given.

    Each chunk is read in ascending row order (kind to the page cache of a memory map) into
    two buffers reused for every chunk, converted and scaled in float32 there, then scattered
    to its positions: no temporaries per chunk, whose fresh pages the kernel would have to
    fault in again for every one (Clothing1M-sized features are streamed so every epoch).
    """
    source, rows = (array.array, array.rows[rows]) if isinstance(array, RowSubset) else (array, rows)
    n = min(chunk, len(rows))
    raw = np.empty((n, array.shape[1]), dtype=array.dtype)
    scaled = torch.empty(n, array.shape[1], dtype=torch.float32)
    for start in range(0, len(rows), chunk):
        idx = rows[start:start + chunk]
        by_row = np.argsort(idx, kind="stable")
        block = read_rows(source, idx[by_row], out=raw[:len(idx)])
        X = scaled[:len(idx)]
        X.copy_(torch.from_numpy(block))
        if scaling is not None:
            scaling.apply_in_place(X)
        out[start:start + len(idx)].index_copy_(0, torch.from_numpy(by_row), X.to(out.dtype))
    return out


class FeatureStore:
    """Serves the features of batch ``k`` (in batch order) on ``device``, in ``self.dtype``."""

    def __init__(self, features, order: np.ndarray, batches: List[slice], device,
                 resident_limit_gb: float, dtype=torch.float32, scaling=None):
        self.features, self.order, self.batches, self.device = features, order, batches, device
        self.scaling = scaling          # applied to every row as it is read (dmlp.scaling)
        n, d = len(order), features.shape[1]
        self.resident = fits_in_ram(n, d, resident_limit_gb)
        self.dtype = dtype if self.resident else torch.float32
        self.data = None
        if self.resident:
            if isinstance(features, torch.Tensor):
                data = self._scaled(features[torch.as_tensor(order, device=features.device)]).to(dtype)
            else:
                data = gather_rows(features, order, torch.empty(n, d, dtype=dtype), scaling=scaling)
            self.data = data.to(device)
            release_freed_memory()

    def __len__(self):
        return len(self.batches)

    def batch(self, k: int) -> torch.Tensor:
        """Features of batch ``k``, (b, d), in ``self.dtype``."""
        return self.rows(self.batches[k])

    def float_batch(self, k: int) -> torch.Tensor:
        """Batch ``k`` in float32 (or float64) whatever the storage dtype (read again from the
        source when held in bfloat16)."""
        if self.dtype in (torch.float32, torch.float64):
            return self.batch(k)
        return self._read(self.order[self.batches[k]])

    def rows(self, positions: slice) -> torch.Tensor:
        """Features at a contiguous range of batch-order positions (float32, or the resident dtype)."""
        if self.resident:
            return self.data[positions]
        return self._read(self.order[positions])

    def _scaled(self, X: torch.Tensor) -> torch.Tensor:
        return X.float() if self.scaling is None else self.scaling.apply_torch(X)

    def _read(self, rows: np.ndarray) -> torch.Tensor:
        if isinstance(self.features, torch.Tensor):
            return self._scaled(self.features[torch.as_tensor(rows)]).to(device=self.device)
        out = torch.empty(len(rows), self.features.shape[1], dtype=torch.float32)
        return gather_rows(self.features, rows, out, scaling=self.scaling).to(self.device)
