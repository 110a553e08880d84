"""The library entry point :func:`purify`: check the inputs, build the run, fit, decide.

The method's loop is :mod:`dmlp.loop` (IPC :mod:`dmlp.ipc`, EAC :mod:`dmlp.eac`), the learned
state :mod:`dmlp.state`, the final decision :mod:`dmlp.decision`.  Here the parts are built from
a :class:`dmlp.config.Config` and the result is put back in the caller's row order.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from .audit import audit_changes
from .batches import FeatureStore, make_partition
from .config import Config, load_config
from .decision import BayesDecision
from .device import dtype_name, native_bf16_cpu, resolve_compute_dtype, resolve_device  # noqa: F401 (public)
from .eac import AuxiliaryClassifier, LabelledRows
from .errors import InputError, check_finite
from .graph import require_search
from .heap import heap_reuse
from .ipc import make_ipc, meta_ridge_proba
from .loop import LoopSettings, Run, Timings, fit
from .meta import check_meta_labels
from .seeds import torch_seed
from .scaling import FeatureScaling, check_outlier_rows, fit_feature_scaling
from .state import LabelState, MetaSet, label_distribution  # noqa: F401 (public)
from .transition import TransitionModel, estimate_transition, transition_counts, transition_from_posteriors
from .validation import check_features, check_labels

log = logging.getLogger("dmlp")


@dataclass
class PurifyResult:
    """What :func:`purify` returns (all arrays in the caller's row order)."""
    labels: np.ndarray            # (N,) int64 purified labels
    soft_labels: np.ndarray       # (N, C) float32, rows sum to 1
    label_quality: np.ndarray     # (N,) float32, estimated probability that the given label is right
    n_changed: int
    history: list = field(default_factory=list)   # per epoch: loss, and accuracy if truth given
    timings: dict = field(default_factory=dict)   # seconds: setup, read, ipc, eac, report, checkpoint, final, total
    eac_weight: Optional[np.ndarray] = None       # (d, V*C) auxiliary classifiers, for test accuracy
    eac_bias: Optional[np.ndarray] = None
    n_views: int = 1
    device: str = "cpu"
    notes: dict = field(default_factory=dict)
    transition_matrix: Optional[np.ndarray] = None  # (C, C) float64 final T[true, given], or None
    compute_dtype: str = "float32"                  # dtype the large products ran in
    feature_scaling: Optional[FeatureScaling] = None  # the map applied to every feature row

    def eac_predict_proba(self, features) -> np.ndarray:
        """Class probabilities of the views' auxiliary classifiers, averaged.

        Parameters
        ----------
        features : array-like of shape (rows, d)
            In the caller's units: scaled as the training rows were.

        Returns
        -------
        np.ndarray of shape (rows, C), float32
        """
        X = np.asarray(features)
        X = torch.as_tensor(X.astype(np.float32) if self.feature_scaling is None else self.feature_scaling.apply(X))
        z = X @ torch.from_numpy(self.eac_weight) + torch.from_numpy(self.eac_bias)
        C = self.soft_labels.shape[1]
        return torch.softmax(z.view(len(X), self.n_views, C), -1).mean(1).numpy()


@dataclass
class _Inputs:
    """The validated inputs of :func:`purify`."""
    features: object                  # (N, d) array, memory map or tensor (read batch by batch)
    noisy_labels: np.ndarray          # (N,) int64
    meta_features: np.ndarray         # (M, d)
    meta_labels: np.ndarray           # (M,) int64
    meta_noisy_labels: Optional[np.ndarray]
    n_classes: int


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
        Their clean labels.  Every class needs at least one meta row.
    config : Config, optional
        Hyper-parameters (``dmlp.load_config(name)``); default: the ``default`` config.
    n_classes : int, optional
        Number of classes C; inferred from the labels if omitted.
    meta_noisy_labels : array-like of int, shape (M,), optional
        The given labels of the meta rows, when they are training rows with known noisy labels;
        used to count the noise-transition matrix.
    true_labels : array-like of int, shape (N,), optional
        Ground truth, used only to report accuracy per epoch in ``history``.
    device : {"auto", "cpu", "cuda"}
    progress : bool
        Progress bars over the scaling pass, the epochs and the final decision.
    checkpoint, on_epoch_end
        Resume from a state saved by ``on_epoch_end(epoch, state_fn)``; ``state_fn()`` returns
        the dict to save (:func:`dmlp.loop.checkpoint`), sharing the run's tensors: save it
        before ``on_epoch_end`` returns, or copy it.  Used by the CLI's ``--resume``.
    feature_scaling : FeatureScaling, optional
        The map from the features' units to the method's (``dmlp.scaling``); default: fitted on
        ``features`` with ``config.run.feature_scaling``.  Applied to ``meta_features`` alike.

    Returns
    -------
    PurifyResult
        ``labels`` (N,) int64, ``soft_labels`` (N, C), ``label_quality`` (N,) (probability that
        the given label is correct), ``n_changed``, per-epoch ``history`` and ``timings``.

    Raises
    ------
    InputError
        Inputs of the wrong shape or dtype, labels outside ``0..C-1``, non-finite features, a
        class without a meta row, an unavailable ``device``.
    NonFiniteError
        A stage produced NaN or infinite values (named in the message); nothing is returned.

    Examples
    --------
    >>> from dmlp import purify, load_config
    >>> result = purify(X, y_noisy, X_meta, y_meta, load_config("default"))  # doctest: +SKIP
    >>> clean_labels = result.labels                                         # doctest: +SKIP
    """
    cfg = config if config is not None else load_config("default")
    timings = Timings(setup=0.0, read=0.0, ipc=0.0, eac=0.0, report=0.0, checkpoint=0.0, final=0.0)
    start = time.perf_counter()
    with timings("setup"):
        dev = resolve_device(device)
        if cfg.decision.rule == "bayes" and cfg.graph.k > 0:
            require_search(cfg.graph.search)          # before the loop, not after it
        inputs = _check_inputs(features, noisy_labels, meta_features, meta_labels, n_classes, meta_noisy_labels)
        scaling = feature_scaling or fit_feature_scaling(inputs.features, method=cfg.run.feature_scaling,
                                                         name="features", progress=progress)
        compute = resolve_compute_dtype(cfg.run.compute_dtype, dev)          # of the large products
        run, initial_transition = _build_run(inputs, cfg, dev, scaling, true_labels, compute)
        state = LabelState.initial(run.given, inputs.n_classes, cfg.run.views, cfg.ipc,
                                   _transition_model(run.meta, initial_transition, cfg, dev),
                                   run.ipc.support)
        if checkpoint is not None:
            state.load_state_dict(checkpoint)
            if run.eac is not None:
                run.eac.load_state_dict(checkpoint["eac"])
    settings = LoopSettings(cfg.exchange, cfg.eac.forward_correction, cfg.run.seed)
    with heap_reuse():                  # the epochs allocate the same large arrays step after step
        fit(run, state, settings, cfg.run.epochs, timings, progress=progress, on_epoch_end=on_epoch_end)
    with timings("final"):
        run.ipc.release()                                    # its factorisations are done with
        decision = _bayes_decision(run, initial_transition, cfg, compute, progress) \
            if cfg.decision.rule == "bayes" else None
        offsets = state.fold_free_offsets() if _meta_check_applies(cfg, run, decision) else None
        soft, posterior = state.release(), None              # (N, C), batch order
        if decision is not None:
            posterior = decision(soft, offsets)
            del offsets
            soft = torch.as_tensor(posterior.q)
        audit = None
        if cfg.decision.audit:
            given = run.given.cpu().numpy()
            audit = audit_changes(run.store, given, soft.argmax(1).cpu().numpy(), inputs.n_classes,
                                  ridge=cfg.ipc.ridge, seed=cfg.run.seed,
                                  meta_label_belief=None if posterior is None else posterior.info.get("meta_label_belief"))

    timings["total"] = time.perf_counter() - start
    meta_check = None if posterior is None else posterior.info.pop("meta_check", None)
    result = _result(run, state, inputs, soft, posterior, scaling, compute, timings,
                     keep_given=(audit is not None and not audit.purified_better)
                     or (meta_check is not None and not meta_check.passed),
                     quality_credible=audit is None or audit.model_credible())
    if run.ipc.support is not None:
        result.notes["label_support"] = int(run.ipc.support.shape[1])     # classes a row's labels took
    if meta_check is not None:
        result.notes["meta_check"] = meta_check.to_dict()
        if not meta_check.passed:
            log.warning("check on the meta rows (their own fold's information held out): the final model "
                        "fixes %d of their given labels and breaks %d; the given labels are kept "
                        "(notes['meta_check'])", meta_check.fixed, meta_check.broken)
    if audit is not None:
        result.notes["label_audit"] = audit.to_dict()
        if not audit.purified_better:
            log.warning("label check without ground truth: %s; the given labels are kept "
                        "(notes['label_audit'])", audit.why_kept())
    return result


def _check_inputs(features, noisy_labels, meta_features, meta_labels, n_classes, meta_noisy_labels) -> _Inputs:
    if not (isinstance(features, torch.Tensor) or hasattr(features, "shape") and hasattr(features, "dtype")):
        features = np.asarray(features)
    if isinstance(features, torch.Tensor):
        if features.ndim != 2:
            raise InputError(f"features: expected a 2-D feature matrix, got shape {tuple(features.shape)}")
    else:                       # a memory map's finiteness is the loader's to check, once
        check_features(features, "features", check_finite=type(features) is np.ndarray)
    meta_features = check_features(np.asarray(meta_features), "meta_features")
    check_outlier_rows(meta_features, "meta_features")
    N, d = features.shape
    if meta_features.shape[1] != d:
        raise InputError(f"meta_features have {meta_features.shape[1]} columns but features have {d}")
    noisy = check_labels(noisy_labels, "noisy_labels", n_rows=N, rows_of="features")
    meta_y = check_labels(meta_labels, "meta_labels", n_rows=len(meta_features), rows_of="meta_features")
    C = int(n_classes or max(int(noisy.max()), int(meta_y.max())) + 1)
    check_labels(noisy, "noisy_labels", C)
    check_labels(meta_y, "meta_labels", C)
    check_meta_labels(meta_y, C, "meta_labels", n_classes_from=None if n_classes else "noisy_labels")
    meta_given = None if meta_noisy_labels is None else check_labels(
        meta_noisy_labels, "meta_noisy_labels", C, n_rows=len(meta_y), rows_of="meta_labels")
    return _Inputs(features, noisy, meta_features, meta_y, meta_given, C)


def _build_run(inputs: _Inputs, cfg: Config, dev: torch.device, scaling: FeatureScaling, true_labels,
               compute: torch.dtype):
    """The run's fixed parts (partition, features, meta set, IPC, EAC) and the initial T (or None)."""
    torch.manual_seed(cfg.run.seed)
    generator = torch.Generator().manual_seed(torch_seed(cfg.run.seed, "eac_init"))
    C, V, N, d = inputs.n_classes, int(cfg.run.views), *inputs.features.shape
    order, batches = make_partition(N, cfg.run.batch_size, cfg.run.seed)
    store = FeatureStore(inputs.features, order, batches, dev, cfg.run.resident_limit_gb, compute, scaling)
    meta = MetaSet.build(torch.as_tensor(scaling.apply(inputs.meta_features), device=dev), inputs.meta_labels,
                         inputs.meta_noisy_labels, C, V, cfg.decision.cross_fit_meta, cfg.run.seed)
    ipc = make_ipc(store, meta, cfg.ipc, cfg.run.resident_limit_gb, given=inputs.noisy_labels[order],
                   seed=cfg.run.seed)
    given = torch.as_tensor(inputs.noisy_labels[order], device=dev)           # batch order
    truth = None if true_labels is None else torch.as_tensor(np.asarray(true_labels)[order], device=dev)
    initial = None
    if cfg.eac.forward_correction or cfg.decision.rule == "bayes":
        initial = _initial_transition(store, meta, inputs.noisy_labels[order], C, cfg)
    eac = AuxiliaryClassifier(d, C, V, cfg.eac, generator, device=dev, compute_dtype=compute) if cfg.eac.enabled else None
    eac_meta = LabelledRows(meta.features.to(compute), meta.labels, meta.view_weights) if cfg.eac.meta_weight else None
    return Run(store, meta, ipc, eac, eac_meta, given, truth), initial


def _transition_model(meta: MetaSet, initial_transition: Optional[np.ndarray], cfg: Config,
                      dev: torch.device) -> Optional[TransitionModel]:
    """The loop's T: the initial T, re-estimated at the exchanges with the meta rows' counts."""
    if initial_transition is None:
        return None
    C = len(initial_transition)
    meta_counts = torch.zeros(C, C, device=dev) if meta.given_labels is None else torch.as_tensor(
        transition_counts(meta.clean_labels, meta.given_labels, C), dtype=torch.float32, device=dev)
    return TransitionModel(torch.as_tensor(initial_transition, dtype=torch.float32, device=dev), meta_counts,
                           cfg.transition.smoothing, em=cfg.transition.em_steps > 0)


def _initial_transition(store, meta: MetaSet, given: np.ndarray, n_classes: int, cfg: Config) -> np.ndarray:
    """T counted on the meta rows; without their given labels, from a meta-fitted estimator."""
    T = estimate_transition(meta.clean_labels, meta.given_labels, n_classes, cfg.transition.smoothing)
    if T is None:
        T = transition_from_posteriors(meta_ridge_proba(store, meta.features, meta.onehot, cfg.ipc.ridge), given,
                                       cfg.transition.smoothing)
    return T


def _epochs_for(fraction: float, epochs: int) -> int:
    """Epochs of a final-decision stage given as a fraction of the loop's (at least one; 0: none)."""
    return max(1, round(fraction * epochs)) if fraction else 0


#: The check of :class:`dmlp.decision.MetaCheck` holds about six N x C float32 arrays more
#: (the views' offsets and their propagation, EAC's per-view probabilities, the fold-free terms);
#: above this it is skipped (1,000 classes x 49,000 rows: 1.2 GB).
META_CHECK_LIMIT_GB = 1.0


def _meta_check_applies(cfg: Config, run: Run, decision: Optional[BayesDecision]) -> bool:
    """Whether :class:`dmlp.decision.MetaCheck` is asked for, can run
    (:meth:`dmlp.decision.BayesDecision.can_check`) and fits in :data:`META_CHECK_LIMIT_GB`."""
    N, C = len(run.given), run.meta.onehot.shape[1]
    return (cfg.decision.meta_check and decision is not None and decision.can_check(cfg.run.views)
            and 6 * N * C * 4 <= META_CHECK_LIMIT_GB * 2 ** 30)


def _bayes_decision(run: Run, transition: np.ndarray, cfg: Config, compute: torch.dtype,
                    progress: bool) -> BayesDecision:
    return BayesDecision(run.store, run.meta, run.eac, run.given, transition, graph=cfg.graph,
                         transition_params=cfg.transition, seed=cfg.run.seed,
                         refit_epochs=_epochs_for(cfg.eac.refit_fraction, cfg.run.epochs),
                         first_refit_epoch=cfg.run.epochs, compute_dtype=compute,
                         heldout_epochs=_epochs_for(cfg.decision.heldout_fraction, cfg.run.epochs),
                         heldout_rounds=cfg.decision.heldout_rounds,
                         exponent_prior_std=cfg.decision.exponent_prior_std,
                         remove_eac_echo=cfg.decision.eac_echo, progress=progress)


def _result(run: Run, state: LabelState, inputs: _Inputs, soft: torch.Tensor, posterior, scaling,
            compute: torch.dtype, timings: Timings, keep_given: bool = False,
            quality_credible: bool = True) -> PurifyResult:
    """Back to the caller's row order, checked finite.  ``keep_given``: the labels stay as given
    (soft labels one-hot on them), the label quality stays the purifier's estimate unless
    ``quality_credible`` is false: then every row gets its mean (no row ranked above another)."""
    N = len(inputs.noisy_labels)
    inverse = np.empty(N, dtype=np.int64)
    inverse[run.store.order] = np.arange(N)
    soft_np = np.asarray(soft.float().cpu().numpy(), dtype=np.float64)[inverse]
    soft_np /= soft_np.sum(1, keepdims=True)
    check_finite(soft_np, "the final decision (soft labels)")
    quality = soft_np[np.arange(N), inputs.noisy_labels].astype(np.float32)
    if not quality_credible:
        quality[:] = quality.mean()
    if keep_given:
        soft_np = np.zeros_like(soft_np)
        soft_np[np.arange(N), inputs.noisy_labels] = 1.0
    purified = soft_np.argmax(1).astype(np.int64)
    if posterior is not None:
        T = posterior.transition
    else:
        T = None if state.transition is None else state.transition.matrix.double().cpu().numpy()
    eac = run.eac
    return PurifyResult(
        labels=purified, soft_labels=soft_np.astype(np.float32),
        label_quality=quality,
        n_changed=int((purified != inputs.noisy_labels).sum()), history=state.history, timings=dict(timings),
        eac_weight=None if eac is None else eac.weight.detach().cpu().numpy(),
        eac_bias=None if eac is None else eac.bias.detach().cpu().numpy(),
        n_views=run.meta.view_weights.shape[0], device=str(run.given.device),
        notes={} if posterior is None else posterior.info,
        transition_matrix=None if T is None else check_finite(np.asarray(T, dtype=np.float64), "the transition matrix"),
        compute_dtype=dtype_name(compute),
        feature_scaling=scaling)
