"""The DMLP loop (Tu et al., CVPR 2023, Alg. 1): per epoch, for each batch in a seeded order,

1. IPC: the labels take one Adam step along the meta gradient of the batch's closed-form
   estimator (``dmlp.ipc``);
2. EAC: the auxiliary classifier takes one Adam step on the batch (``dmlp.eac``);

and every ``relabel_every`` epochs each view's labels move toward the other view's EAC
prediction by an EMA, its posterior ``p(c|x) T[c, given]`` with ``relabel_posterior``; with
``transition_em_steps`` T is re-counted there from all rows' posteriors (Dawid & Skene, 1979).
IPC and EAC meet only here.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .batches import FeatureStore
from .config import ExchangeParams
from .eac import AuxiliaryClassifier, LabelledRows, exchange, training_targets
from .errors import check_finite
from .ipc import IPCCorrection
from .progress import progress_bar
from .seeds import rng
from .state import LabelState, MetaSet


class Timings(dict):
    """Seconds per phase; ``with timings("ipc"): ...`` adds the block's wall time to ``"ipc"``."""

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[phase] = self.get(phase, 0.0) + time.perf_counter() - start


@dataclass(frozen=True)
class Run:
    """The parts the loop reads: features, meta set, the two corrections, the given labels."""
    store: FeatureStore                  # the training rows' features, batch by batch
    meta: MetaSet
    ipc: IPCCorrection
    eac: Optional[AuxiliaryClassifier]   # None without EAC
    eac_meta: Optional[LabelledRows]     # the meta rows EAC fits (eac_meta_weight), or None
    given: torch.Tensor                  # (N,) int64 given labels, batch order
    truth: Optional[torch.Tensor]        # (N,) true labels (reporting only), or None


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs its parts: the exchange, EAC's targets, the seed of the visit orders."""
    exchange: ExchangeParams
    forward_correction: bool             # EAC fits the given labels through T
    seed: int


def visit_order(seed: int, epoch: int, n_batches: int) -> np.ndarray:
    """The seeded order in which the batches are visited in ``epoch``."""
    return rng(seed, "visit_order", epoch).permutation(n_batches)


def run_epoch(run: Run, state: LabelState, settings: LoopSettings, timings: Timings) -> dict:
    """One epoch of IPC and EAC, the exchange when due; returns the epoch's record."""
    epoch = state.epochs_done
    if run.eac is not None:
        run.eac.set_epoch(epoch)
    with timings("ipc"):
        loss = run.ipc.epoch_step(state)              # all batches at once (or 0: per batch)
    for k in visit_order(settings.seed, epoch, len(run.store)):
        with timings("read"):                     # a memory map streamed from disk: real time
            X_B = run.store.batch(k)
        with timings("ipc"):
            loss += run.ipc.batch_step(state, k, X_B)
        if run.eac is not None:
            with timings("eac"):
                eac_step(run, state, k, X_B, settings.forward_correction)
    if run.eac is not None and settings.exchange.every and (epoch + 1) % settings.exchange.every == 0:
        with timings("eac"):
            exchange_views(run, state, epoch, settings.exchange)
    with timings("report"):                       # the epoch's history entry (label accuracy)
        return state.record(loss / len(run.store), run.truth)


def eac_step(run: Run, state: LabelState, k: int, X_B: torch.Tensor, forward_correction: bool) -> None:
    """EAC's Adam step on batch ``k``."""
    rows = run.store.batches[k]
    targets = training_targets(state, rows, run.given[rows], forward_correction)
    transition = state.transition.matrix if forward_correction else None
    run.eac.step(X_B, targets, transition, run.eac_meta)


def exchange_views(run: Run, state: LabelState, epoch: int, params: ExchangeParams) -> None:
    """The EMA exchange: each view moves toward the other view's prediction (or posterior), and
    T takes an EM step from all rows' posteriors when ``transition_em_steps`` asks for it."""
    transition = state.transition if params.posterior else None
    soft_counts = transition.soft_counts() if transition is not None and transition.em else None
    for rows in run.store.batches:
        prediction = run.eac.predict_proba(run.store.rows(rows))            # V x b x C
        if transition is not None:
            prediction = transition.posterior(prediction, run.given[rows])
            if soft_counts is not None:
                soft_counts.index_add_(1, run.given[rows], prediction.mean(0).T)
        exchange(state.labels[rows], state.at_support(prediction, rows), params.momentum)
    if soft_counts is not None:
        transition.update(soft_counts, f"transition EM at the exchange after epoch {epoch + 1}")


def fit(run: Run, state: LabelState, settings: LoopSettings, epochs: int, timings: Timings, *,
        progress: bool = True, on_epoch_end: Optional[Callable] = None) -> None:
    """Run the epochs from ``state.epochs_done`` to ``epochs``, with a progress bar.

    ``on_epoch_end(epoch, state_fn)`` is called after each epoch; ``state_fn()`` returns the
    checkpoint to save (:meth:`LabelState.state_dict` plus EAC's ``"eac"``), whose large
    tensors are the run's own: save it before returning (the run goes on changing them).
    """
    bar = progress_bar(total=epochs, initial=state.epochs_done, desc="DMLP", unit="epoch", enabled=progress)
    while state.epochs_done < epochs:
        record = run_epoch(run, state, settings, timings)
        check_finite(np.array([record["meta_loss"]]), f"IPC's meta loss at epoch {state.epochs_done}")
        bar.update()
        if "label_accuracy" in record:
            bar.set_postfix(label_acc=f"{record['label_accuracy']:.4f}")
        if on_epoch_end is not None:
            with timings("checkpoint"):
                on_epoch_end(state.epochs_done - 1, lambda: checkpoint(run, state))
    bar.close()


def checkpoint(run: Run, state: LabelState) -> dict:
    """The resumable state of a run: the labels' state and EAC's."""
    return {**state.state_dict(), "eac": None if run.eac is None else run.eac.state_dict()}
