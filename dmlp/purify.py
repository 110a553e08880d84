"""The DMLP loop and the library entry point :func:`purify`.

Per epoch, for each batch of the fixed partition (visited in a seeded order):

1. IPC: the closed-form estimator of the batch's labels is scored on the clean meta set and the
   labels take one Adam step along the meta gradient (``dmlp.ipc``);
2. EAC: the auxiliary classifier takes one Adam step on the batch (``dmlp.eac``);

and every ``relabel_every`` epochs each view's labels move toward the other view's EAC
prediction by an EMA (with ``transition_em_steps``, T is re-counted there from all rows'
posteriors).  At the end the views' label distributions are averaged; the final label is their
argmax, or (``final_decision = "bayes"``) the posterior of the noise-transition model
(``dmlp.posterior``), optionally after EAC is refitted on that posterior
(``eac_refit_fraction``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .batches import FeatureStore, make_partition, release_freed_memory
from .config import Config, load_config
from .eac import AuxiliaryClassifier, exchange
from .errors import InputError, check_finite
from .numerics import RowAdam, safe_log
from .scaling import FeatureScaling, fit_feature_scaling
from .validation import check_meta_covers_classes
from .ipc import BatchFactor, WhitenedBatches, factor_gram, meta_folds, meta_view_weights


@dataclass
class PurifyResult:
    """What :func:`purify` returns (all arrays in the caller's row order)."""
    labels: np.ndarray            # (N,) int64 purified labels
    soft_labels: np.ndarray       # (N, C) float32, rows sum to 1
    label_quality: np.ndarray     # (N,) float32, estimated probability that the given label is right
    n_changed: int
    history: list = field(default_factory=list)   # per epoch: loss, and accuracy if truth given
    timings: dict = field(default_factory=dict)   # seconds: setup, ipc, eac, final
    eac_weight: Optional[np.ndarray] = None       # (d, V*C) auxiliary classifiers, for test accuracy
    eac_bias: Optional[np.ndarray] = None
    n_views: int = 1
    device: str = "cpu"
    notes: dict = field(default_factory=dict)
    transition_matrix: Optional[np.ndarray] = None  # (C, C) float64 final T[true, given], or None
    compute_dtype: str = "float32"                  # dtype the large products ran in
    feature_scaling: Optional[FeatureScaling] = None  # the map applied to every feature row

    def eac_predict_proba(self, features) -> np.ndarray:
        """Class probabilities of the views' auxiliary classifiers, averaged (rows x C).

        ``features`` (rows x d, in the caller's units) are scaled as the training rows were.
        """
        X = np.asarray(features)
        X = torch.as_tensor(X.astype(np.float32) if self.feature_scaling is None else self.feature_scaling.apply(X))
        z = X @ torch.from_numpy(self.eac_weight) + torch.from_numpy(self.eac_bias)
        C = self.soft_labels.shape[1]
        return torch.softmax(z.view(len(X), self.n_views, C), -1).mean(1).numpy()


def resolve_device(device: str) -> torch.device:
    """The torch device named by ``device``.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:<index>"} or None
        ``"auto"`` (or None): the GPU where one is available, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    InputError
        ``device`` is of an unknown kind, or names CUDA on a machine without a GPU.  The message
        starts ``device='<value>':`` (the command line shows its flag there instead).
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device={device!r}: no CUDA GPU is available on this machine (use 'cpu' or 'auto')")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"device={device!r}: must be auto, cpu or cuda")
    return torch.device(device)


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX): then bf16 products
    run 2-3x faster than float32 ones; emulated, they would be slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_compute_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "bfloat16":
        return torch.bfloat16
    if name == "auto" and device.type == "cpu" and native_bf16_cpu():
        return torch.bfloat16
    return torch.float32


def label_distribution(Y: torch.Tensor) -> torch.Tensor:
    """Free label parameters -> distributions: clip at 0 and normalise (uniform if all <= 0)."""
    P = Y.clamp_min(0)
    total = P.sum(-1, keepdim=True)
    uniform = torch.full_like(P, 1.0 / P.shape[-1])
    return torch.where(total > 0, P / total.clamp_min(1e-12), uniform)


def _as_labels(labels, name, n_rows, n_classes):
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n_rows:
        raise InputError(f"{name}: expected {n_rows} labels, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise InputError(f"{name}: labels must be integers, got {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise InputError(f"{name}: labels must lie in 0..{n_classes - 1}")
    return arr.astype(np.int64)


def purify(features, noisy_labels, meta_features, meta_labels, config: Optional[Config] = None, *,
           n_classes: Optional[int] = None, meta_noisy_labels=None, true_labels=None,
           device: str = "auto", progress: bool = True, checkpoint: Optional[dict] = None,
           on_epoch_end: Optional[Callable] = None,
           feature_scaling: Optional[FeatureScaling] = None) -> PurifyResult:
    """Purify noisy labels with DMLP (IPC + EAC) and return the corrected labels.

    Parameters
    ----------
    features : array-like, shape (N, d)
        Label-free features of the rows to purify (float16/32/64; a ``np.memmap`` is read batch
        by batch when too large for RAM).  The meta rows must not be among them.
    noisy_labels : array-like of int, shape (N,)
        The given (noisy) labels, in ``0..C-1``.
    meta_features : array-like, shape (M, d)
        Features of a small clean set.
    meta_labels : array-like of int, shape (M,)
        Their clean labels.  Every class should have at least one meta row.
    config : Config, optional
        Hyper-parameters (``dmlp.load_config(name)``); default: ``configs/default.toml``.
    n_classes : int, optional
        Number of classes C; inferred from the labels if omitted.
    meta_noisy_labels : array-like of int, shape (M,), optional
        The given labels of the meta rows, when they are training rows with known noisy labels;
        used to count the noise-transition matrix for ``final_decision = "bayes"``.
    true_labels : array-like of int, shape (N,), optional
        Ground truth, used only to report accuracy per epoch in ``history``.
    device : {"auto", "cpu", "cuda"}
    progress : bool
        Show a tqdm bar over epochs.
    checkpoint, on_epoch_end
        Resume from a state saved by ``on_epoch_end(epoch, state_fn)``; ``state_fn()`` returns
        the dict to save.  Used by the CLI's ``--resume``.
    feature_scaling : FeatureScaling, optional
        The map from the features' units to the method's (``dmlp.scaling``); default: fitted on
        ``features`` with ``config.feature_scaling``.  Applied to ``meta_features`` alike.

    Returns
    -------
    PurifyResult
        ``labels`` (N,) int64, ``soft_labels`` (N, C), ``label_quality`` (N,) (probability that
        the given label is correct), ``n_changed``, per-epoch ``history`` and ``timings``.

    Raises
    ------
    InputError
        Inputs of the wrong shape, labels outside ``0..C-1``, a class without a meta row.
    NonFiniteError
        A stage produced NaN or infinite values (named in the message); nothing is returned.

    Examples
    --------
    >>> from dmlp import purify, load_config
    >>> result = purify(X, y_noisy, X_meta, y_meta, load_config("default"))  # doctest: +SKIP
    >>> clean_labels = result.labels                                         # doctest: +SKIP
    """
    cfg = config if config is not None else load_config("default")
    t0 = time.perf_counter()
    dev = resolve_device(device)
    if features.ndim != 2 or meta_features.ndim != 2:
        raise InputError("features and meta_features must be 2-D")
    N, d = features.shape
    if meta_features.shape[1] != d:
        raise InputError(f"meta features have {meta_features.shape[1]} columns but features have {d}")
    noisy_np = np.asarray(noisy_labels)
    C = int(n_classes or max(int(np.max(noisy_np)), int(np.max(meta_labels))) + 1)
    noisy_np = _as_labels(noisy_np, "noisy_labels", N, C)
    meta_y_np = _as_labels(meta_labels, "meta_labels", meta_features.shape[0], C)
    check_meta_covers_classes(meta_y_np, C)
    scaling = feature_scaling or fit_feature_scaling(features, method=cfg.feature_scaling,
                                                     name="features", progress=progress)
    V = int(cfg.views)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)

    # --- setup: partition, features, cached factorisations --------------------------------
    order, batches = make_partition(N, cfg.batch_size, cfg.seed)
    compute = resolve_compute_dtype(cfg.compute_dtype, dev)   # of the large products
    store = FeatureStore(features, order, batches, dev, cfg.resident_limit_gb, compute, scaling)
    meta_X = torch.as_tensor(scaling.apply(np.asarray(meta_features)), device=dev)
    meta_y = torch.as_tensor(meta_y_np, device=dev)
    meta_onehot = torch.nn.functional.one_hot(meta_y, C).float()
    balance = slice(0, cfg.balance_rows) if cfg.balance_rows > 0 else slice(None)
    # all batches' IPC at once on whitened copies when they fit in RAM beside the features
    # (the script's whole-tensor Adam couples the batches: it keeps the batch-by-batch path)
    whitened = (store.resident and not cfg.label_update_all_rows
                and 2 * N * d * store.data.element_size() <= cfg.resident_limit_gb * 2 ** 30)
    if whitened:
        ipc_all, factors = WhitenedBatches(store, cfg.ridge, balance, meta_X, store.dtype), None
        release_freed_memory()
    else:
        ipc_all, factors = None, [BatchFactor(store.float_batch(k), cfg.ridge, balance)
                                  for k in range(len(batches))]
    given = torch.as_tensor(noisy_np[order], device=dev)       # batch order
    truth = None if true_labels is None else torch.as_tensor(np.asarray(true_labels)[order], device=dev)

    meta_weights = meta_view_weights(len(meta_y_np), V, cfg.cross_fit_meta, cfg.seed, device=dev)
    transition_np = transition = None
    meta_counts = None           # meta rows' (true, given) counts, for the EM of T at the exchanges
    if cfg.eac_forward_correction or cfg.final_decision == "bayes":
        from .posterior import estimate_transition, transition_counts, transition_from_posteriors
        transition_np = estimate_transition(meta_y_np, meta_noisy_labels, C, cfg.transition_smoothing)
        if transition_np is None:   # meta rows' given labels unknown: T from a meta-fitted estimator
            transition_np = transition_from_posteriors(
                _meta_ridge_proba(store, meta_X, meta_onehot, cfg.ridge), noisy_np[order],
                cfg.transition_smoothing)
        transition = torch.as_tensor(transition_np, dtype=torch.float32, device=dev)
        meta_counts = torch.zeros(C, C, device=dev) if meta_noisy_labels is None else torch.as_tensor(
            transition_counts(meta_y_np, meta_noisy_labels, C), dtype=torch.float32, device=dev)

    # labels of all views, rows x V x C, initialised from the one-hot given labels
    labels = torch.nn.functional.one_hot(given, C).float().unsqueeze(1).repeat(1, V, 1)
    flat = labels.view(N, V * C)
    adam = RowAdam(N, V * C, cfg.label_lr, cfg.label_betas, cfg.label_weight_decay, device=dev)
    eac = AuxiliaryClassifier(d, C, V, cfg, generator, device=dev, compute_dtype=compute) if cfg.eac else None
    start_epoch, history = 0, []
    if checkpoint is not None:
        labels.copy_(checkpoint["labels"].to(dev))
        adam.load_state_dict({k: v.to(dev) for k, v in checkpoint["adam"].items()})
        if eac is not None:
            eac.load_state_dict(checkpoint["eac"])
        if checkpoint.get("transition") is not None:     # re-estimated at the exchanges (EM)
            transition = checkpoint["transition"].to(dev)
        start_epoch, history = int(checkpoint["epoch"]) + 1, list(checkpoint["history"])
    timings = {"setup": time.perf_counter() - t0, "ipc": 0.0, "eac": 0.0, "final": 0.0}
    eac_meta = (meta_X.to(compute), meta_y, meta_weights) if cfg.eac_meta_weight else None

    def state():
        return {"epoch": epoch, "labels": labels.cpu().clone(), "history": list(history),
                "adam": {k: v.cpu().clone() for k, v in adam.state_dict().items()},
                "eac": None if eac is None else eac.state_dict(),
                "transition": None if transition is None else transition.cpu().clone()}

    # --- the loop --------------------------------------------------------------------------
    bar = tqdm(range(start_epoch, cfg.epochs), desc="DMLP", unit="epoch", disable=not progress,
               initial=start_epoch, total=cfg.epochs, leave=False)
    for epoch in bar:
        visit = np.random.default_rng([cfg.seed, epoch]).permutation(len(batches))
        if eac is not None:
            eac.set_epoch(epoch)
        epoch_loss = 0.0
        if ipc_all is not None:     # IPC: every batch's labels take one meta-gradient step
            t = time.perf_counter()
            loss, grad = ipc_all.gradient(flat, meta_onehot, meta_weights, cfg)
            adam.step(flat, slice(None), grad)
            epoch_loss = float(loss)
            timings["ipc"] += time.perf_counter() - t
        for k in visit:
            rows = batches[k]
            X_B = store.batch(k)
            t = time.perf_counter()
            if ipc_all is None:     # IPC batch by batch (features streamed, or whole-tensor Adam)
                loss, grad = factors[k].gradient(flat[rows], X_B.float(), meta_X, meta_onehot, meta_weights, cfg)
                if cfg.label_update_all_rows:   # the script: one Adam over the whole N x C tensor
                    full = torch.zeros_like(flat)
                    full[rows] = grad
                    adam.step(flat, slice(None), full)
                else:
                    adam.step(flat, rows, grad)
                epoch_loss += float(loss)
            t2 = time.perf_counter()
            if eac is not None:
                if cfg.eac_forward_correction:
                    targets = given[rows].unsqueeze(0).expand(V, -1)
                else:
                    targets = labels[rows].argmax(-1).T
                eac.step(X_B, targets, transition if cfg.eac_forward_correction else None, eac_meta)
            timings["ipc"] += t2 - t
            timings["eac"] += time.perf_counter() - t2
        if eac is not None and cfg.relabel_every and (epoch + 1) % cfg.relabel_every == 0:
            t = time.perf_counter()
            posterior = cfg.relabel_posterior and transition is not None
            # EM (Dawid & Skene 1979): T re-counted from all rows' exchanged posteriors
            soft_counts = torch.zeros(C, C, device=dev) if posterior and cfg.transition_em_steps else None
            for rows in batches:
                prediction = eac.predict_proba(store.rows(rows))            # V x b x C
                if posterior:
                    # the other view's posterior of the true class given x and the given label,
                    # formed in log space: a product of small probabilities must not underflow
                    log_q = prediction.clamp_min(1e-30).log() + transition[:, given[rows]].T.clamp_min(1e-30).log()
                    prediction = torch.softmax(log_q, -1)
                    if soft_counts is not None:
                        soft_counts.index_add_(1, given[rows], prediction.mean(0).T)
                exchange(labels[rows], prediction, cfg.relabel_momentum)
            if soft_counts is not None:
                T_new = soft_counts + meta_counts + cfg.transition_smoothing
                transition = check_finite(T_new / T_new.sum(1, keepdim=True),
                                          f"transition EM at the exchange after epoch {epoch + 1}")
            timings["eac"] += time.perf_counter() - t
        record = {"epoch": epoch + 1, "meta_loss": epoch_loss / len(batches)}
        if truth is not None:
            current = label_distribution(labels).mean(1).argmax(-1)
            record["label_accuracy"] = float((current == truth).float().mean())
            bar.set_postfix(acc=f"{record['label_accuracy']:.4f}")
        history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(epoch, state)
    bar.close()

    # --- final labels ----------------------------------------------------------------------
    t = time.perf_counter()
    ipc_all = factors = None                                     # the factorisations are done with
    soft = label_distribution(labels).mean(1)                   # N x C, batch order
    notes = {}
    if cfg.final_decision == "bayes":
        soft, notes = _bayes_decision(soft, eac, store, batches, given, meta_X, meta_y_np,
                                      meta_noisy_labels, transition_np, cfg, dev, compute)
    timings["final"] = time.perf_counter() - t
    inverse = np.empty(N, dtype=np.int64)
    inverse[order] = np.arange(N)
    soft_np = np.asarray(soft.float().cpu().numpy() if torch.is_tensor(soft) else soft, dtype=np.float64)[inverse]
    soft_np /= soft_np.sum(1, keepdims=True)
    check_finite(soft_np, "the final decision (soft labels)")
    purified = soft_np.argmax(1).astype(np.int64)
    quality = soft_np[np.arange(N), noisy_np].astype(np.float32)
    timings["total"] = time.perf_counter() - t0
    return PurifyResult(
        labels=purified, soft_labels=soft_np.astype(np.float32), label_quality=quality,
        n_changed=int((purified != noisy_np).sum()), history=history, timings=timings,
        eac_weight=None if eac is None else eac.weight.detach().cpu().numpy(),
        eac_bias=None if eac is None else eac.bias.detach().cpu().numpy(),
        n_views=V, device=str(dev), notes=notes,
        transition_matrix=_final_transition(notes, transition),
        compute_dtype=str(compute).replace("torch.", ""), feature_scaling=scaling)


def _final_transition(notes: dict, transition) -> Optional[np.ndarray]:
    """The final T[true, given] (C x C float64): the decision's, else the loop's, else None."""
    T = notes.pop("transition_matrix", None)
    if T is None and transition is not None:
        T = transition.double().cpu().numpy()
    return None if T is None else check_finite(np.asarray(T, dtype=np.float64), "the transition matrix")


def _meta_ridge_proba(store, meta_X, meta_onehot, ridge):
    """Class probabilities of the training rows from a ridge estimator fitted on the meta set."""
    L, _ = factor_gram(meta_X, max(ridge, 1e-3))
    W = torch.cholesky_solve(meta_X.T @ meta_onehot, L)
    P = torch.cat([(store.rows(r).float() @ W).clamp_min(0) for r in store.batches]) + 1e-3
    return (P / P.sum(1, keepdim=True)).cpu().numpy()


def _eac_evidence(eac, store, batches, meta_X, fold, cfg):
    """EAC's class probabilities: training rows (geometric mean of the views), meta rows
    out-of-fold (a meta row in fold f is judged by the views that did not see fold f), and
    each view's on the training rows (V x N x C, for the refit's per-view targets)."""
    V = cfg.views
    with torch.no_grad():
        per_view = torch.cat([eac.predict_proba(store.rows(r)) for r in batches], 1)   # V x N x C
        eac_train = torch.softmax(per_view.log().mean(0), -1).cpu().numpy()
        pm = eac.predict_proba(meta_X).cpu().numpy()                  # V x M x C
    seen = np.ones((V, len(fold)))
    if cfg.cross_fit_meta and V > 1:
        seen[fold, np.arange(len(fold))] = 0.0
    log_meta = (np.log(np.clip(pm, 1e-12, None)) * seen[..., None]).sum(0) / seen.sum(0)[:, None]
    eac_meta = np.exp(log_meta - log_meta.max(1, keepdims=True))
    return eac_train, eac_meta / eac_meta.sum(1, keepdims=True), per_view.cpu().numpy()


def _bayes_decision(ipc_soft, eac, store, batches, given, meta_X, meta_y, meta_given,
                    transition, cfg, dev, compute):
    """Gather the evidence (EAC, graph, transition) and call :func:`posterior.bayes_posterior`.

    With ``eac_refit_fraction``, EAC is then trained further on the posterior itself (soft
    targets: the M-step of the EM whose E-step is the posterior) and the posterior recomputed.
    """
    from .graph import knn_graph
    from .posterior import bayes_posterior, graph_evidence
    V = cfg.views
    fold = meta_folds(len(meta_y), V, cfg.seed) if cfg.cross_fit_meta and V > 1 else np.zeros(len(meta_y), int)
    if eac is not None:
        eac_train, eac_meta, eac_views = _eac_evidence(eac, store, batches, meta_X, fold, cfg)
    else:
        eac_train = ipc_soft.cpu().numpy()
        eac_meta = np.full((len(meta_y), ipc_soft.shape[1]), 1.0 / ipc_soft.shape[1])
    graph_terms = None
    if cfg.graph_k > 0:
        release_freed_memory()
        graph = knn_graph(_graph_features(store, batches, meta_X, cfg, compute), cfg.graph_k, cfg.graph_power,
                          cfg.seed, candidates=cfg.graph_candidates,
                          overwrite_input=True)    # a fresh copy: normalise it in place
        graph_terms = graph_evidence(graph, ipc_soft.cpu().numpy(), eac_meta, meta_given, meta_y, fold,
                                     transition, cfg, n_views=V if cfg.cross_fit_meta else 0)
        del graph
        release_freed_memory()
    given_np = given.cpu().numpy()
    shared_graph = None if graph_terms is None else graph_terms[:2]        # (training rows, meta rows)
    q, info, model = bayes_posterior(eac_train, eac_meta, given_np, meta_given, meta_y, transition, cfg,
                                     shared_graph)
    if eac is not None and cfg.eac_refit_fraction:
        targets = torch.as_tensor(_refit_targets(q, model, eac_views, given_np, graph_terms, cfg),
                                  dtype=torch.float32, device=dev)
        # the M-step starts again at EAC's initial rate (its in-loop decay is for noisy targets),
        # and leaves the meta rows out: they stay unseen, to weigh the refitted EAC on
        eac.adam_weight.lr = eac.adam_bias.lr = cfg.eac_lr
        for epoch in range(max(1, round(cfg.eac_refit_fraction * cfg.epochs))):
            for k in np.random.default_rng([cfg.seed, cfg.epochs + epoch]).permutation(len(batches)):
                eac.step(store.batch(k), targets[..., batches[k], :])
        eac_train, eac_meta, _ = _eac_evidence(eac, store, batches, meta_X, fold, cfg)
        q, info, _ = bayes_posterior(eac_train, eac_meta, given_np, meta_given, meta_y, transition, cfg,
                                     shared_graph)
    return torch.as_tensor(q), info


def _refit_targets(q, model, eac_views, given, graph_terms, cfg) -> np.ndarray:
    """Soft targets of the EAC refit: (V x) N x C, in batch order.

    A view's refit must not learn the labels of the meta rows it will be judged on, or the
    exponents fitted on those rows over-trust it (measured: the refitted EAC then scored 87.9 %
    on the meta rows against 83.0 % on the training rows at sym 50 %, and the soft labels were
    4 points over-confident).  So with cross-fitted meta folds view v is refitted on its own
    posterior: its own in-loop EAC (``eac_views[v]``) and the graph seeded with meta fold v alone.
    """
    from .posterior import apply_posterior
    per_view = graph_terms[2] if graph_terms is not None else None
    if not (cfg.cross_fit_meta and cfg.views > 1) or (graph_terms is not None and per_view is None):
        return q
    weights, transition = model
    return np.stack([apply_posterior(weights, transition,
                                     [safe_log(eac_views[v])] + ([per_view[v]] if per_view is not None else []),
                                     given)
                     for v in range(cfg.views)])


def _graph_features(store, batches, meta_X, cfg, dtype) -> torch.Tensor:
    """Rows the kNN graph is built on: training rows (batch order) then meta rows, on the CPU.

    Features wider than ``graph_dims`` are centred and projected batch by batch on their top
    ``graph_dims`` principal directions (estimated on the meta rows and the first batch): the
    search then costs d / graph_dims times less, which buys more candidates in the inverted file,
    i.e. a closer-to-exact graph for the same time, and memory stays N x graph_dims.
    """
    if cfg.graph_dims <= 0 or meta_X.shape[1] <= cfg.graph_dims:
        return torch.cat([store.rows(r).to(dtype).cpu() for r in batches] + [meta_X.to(dtype).cpu()])
    first = batches[0]
    sample = torch.cat([store.rows(slice(first.start, min(first.stop, first.start + 8192))).float(), meta_X])
    mean = sample.mean(0)
    sample -= mean
    _, vectors = torch.linalg.eigh(sample.T @ sample)           # ascending; float32 is plenty here
    del sample
    P = vectors[:, -cfg.graph_dims:].flip(1).contiguous()
    N = sum(r.stop - r.start for r in batches)
    out = torch.empty(N + len(meta_X), cfg.graph_dims, dtype=dtype)
    for s in range(0, N, 4096):                  # in chunks: bounded float32 temporaries
        e = min(s + 4096, N)
        out[s:e] = ((store.rows(slice(s, e)).float() - mean) @ P).to(dtype).cpu()
    out[N:] = ((meta_X - mean) @ P).to(dtype).cpu()
    return out

