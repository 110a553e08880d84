"""Named seed streams: every random choice of a run draws from a stream of its own.

One config seed drives the run; each use derives its generator from ``[seed, stream, *index]``
so that two uses never share a sequence (the meta folds and the held-out halves, say, are
independent draws), and adding a random choice to one stage leaves every other stage's draws
unchanged.
"""
from __future__ import annotations

import numpy as np

#: The run's random choices, one stream each.
STREAMS = {
    "partition": 1,        # rows -> batches (dmlp.batches.make_partition)
    "visit_order": 2,      # per epoch: the order the batches are visited in (loop, then EAC's refit)
    "meta_folds": 3,       # meta rows -> views (cross-fitted meta folds)
    "heldout_halves": 4,   # training rows -> the two halves of the held-out classifier
    "heldout_order": 5,    # per epoch: the held-out classifier's batch and minibatch order
    "meta_draw": 6,        # the class-stratified draw of the meta rows
    "auto_meta": 7,        # --meta auto: the halves of its cross-fitted scores
    "graph_index": 8,      # the kNN search's inverted-file centroids (and faiss's training sample)
    "eac_init": 9,         # EAC's initial weights
    "audit_halves": 10,    # rows -> the two halves of the audit's held-out estimator
    "audit_permutations": 11,  # the audit's shuffles of held-out predictions (its test against chance)
}


def rng(seed: int, stream: str, *index: int) -> np.random.Generator:
    """The NumPy generator of ``stream`` for the run seeded ``seed`` (``index``: an epoch, say).

    Parameters
    ----------
    seed : int
        The run's seed (config key ``seed``).
    stream : str
        A key of :data:`STREAMS`.
    *index : int
        Further entropy within the stream (the epoch of a per-epoch order).

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng([int(seed), STREAMS[stream], *map(int, index)])


def torch_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for a ``torch.Generator`` of ``stream`` (drawn from :func:`rng`)."""
    return int(rng(seed, stream).integers(2 ** 63 - 1))
