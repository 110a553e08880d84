"""A whole data set through DMLP: :func:`purify_dataset`, what ``dmlp purify`` and the benchmark run.

:func:`dmlp.purify` purifies the rows it is given against a meta set it is given.  Around it a
data set needs more, and this module does it once for every caller:

1. choose the clean meta set (:func:`select_meta`: given row indices, separate meta files, a
   seeded class-stratified draw, or ``auto`` without any clean label);
2. leave the meta rows out of the rows to purify, fit the feature scaling on the rest;
3. run :func:`dmlp.purify`;
4. put the outputs back at full length, the meta rows holding their clean labels
   (:class:`DatasetResult`), and measure them where the truth is known.

:func:`prepare_dataset_run` does steps 1-2 (every input check, nothing written), so that a
command can validate everything before it creates an output folder; :func:`run_prepared` does
the rest.  :func:`purify_dataset` is the two in one call.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from .config import Config, load_config
from .data import Dataset, RowSubset, gram_warning, load_dataset, read_rows
from .errors import InputError
from .meta import (MetaSelection, auto_meta_config, auto_meta_indices, check_meta_indices, check_meta_labels,
                   draw_meta_indices)
from .metrics import accuracy, expected_calibration_error, per_class_accuracy, roc_auc

log = logging.getLogger("dmlp")


@dataclass(frozen=True)
class PreparedRun:
    """A data set ready for :func:`run_prepared`: every input checked, nothing run or written."""
    data: Dataset
    config: Config                     # resolved: n_classes of the data, auto-meta adjustments
    meta: MetaSelection
    rows: np.ndarray                   # (n,) int64 training rows to purify (not meta rows), sorted
    features: RowSubset                # their features, read on demand
    truth: Optional[np.ndarray]        # (n,) their true labels (-1: unknown), or None
    scaling: object                    # dmlp.scaling.FeatureScaling fitted on ``features``
    device: object                     # torch.device
    compute_dtype: str                 # dtype of the large products ("float32", "bfloat16")
    warning: Optional[str]             # a near-singular Gram matrix, or None


@dataclass
class DatasetResult:
    """:func:`purify_dataset`'s outputs, at the data set's full length N.

    Attributes
    ----------
    labels : numpy.ndarray of int64, shape (N,)
        Purified labels; meta rows hold their clean (``auto``: trusted given) labels.
    soft_labels : numpy.ndarray of float32, shape (N, C)
        Rows sum to one; a meta row is one-hot on its label.
    label_quality : numpy.ndarray of float32, shape (N,)
        Estimated probability that the given label is right (1 on meta rows).
    prepared : PreparedRun
        What ran: the resolved config, the meta selection, the purified rows.
    result : dmlp.PurifyResult
        :func:`dmlp.purify`'s result on the purified rows (history, timings, T, EAC weights).
    """
    labels: np.ndarray
    soft_labels: np.ndarray
    label_quality: np.ndarray
    prepared: PreparedRun
    result: object

    @property
    def meta_indices(self) -> np.ndarray:
        """(M,) int64 training rows used as the meta set (empty with separate meta files)."""
        return self.prepared.meta.indices

    def evaluation(self, progress: bool = False) -> dict:
        """Figures against the truth, on the purified rows whose true label is known.

        Returns
        -------
        dict
            ``n_truth_known``; where it is positive ``label_accuracy_before`` / ``_after``
            (fractions), ``per_class_accuracy_after``, ``soft_label_ece``, ``label_quality_auc``
            (AUC of ``-label_quality`` for a wrong given label; None where undefined); and
            ``test_accuracy`` of the EAC classifier when the data set has test labels.
        """
        p, res = self.prepared, self.result
        out = {"n_truth_known": 0}
        if p.truth is not None:
            known = p.truth >= 0
            given, after, true = p.data.noisy_labels[p.rows][known], res.labels[known], p.truth[known]
            auc = roc_auc(-res.label_quality[known], given != true)
            out = {"n_truth_known": int(known.sum()),
                   "label_accuracy_before": accuracy(given, true),
                   "label_accuracy_after": accuracy(after, true),
                   "per_class_accuracy_after": per_class_accuracy(after, true, p.data.n_classes),
                   "soft_label_ece": expected_calibration_error(res.soft_labels[known], true),
                   # undefined (None) when every given label is right, or every one wrong
                   "label_quality_auc": None if auc is None or not np.isfinite(auc) else auc}
        if p.data.test_labels is not None and res.eac_weight is not None:
            out["test_accuracy"] = accuracy(_predict_test(res, p.data.test_features, progress), p.data.test_labels)
        return out


def select_meta(data: Dataset, config: Config, *, meta_index=None, meta_size: Optional[int] = None,
                auto: bool = False, meta_index_name: str = "meta_index") -> MetaSelection:
    """Choose the clean meta set of ``data``, in the command's order of precedence.

    Parameters
    ----------
    data : Dataset
    config : Config
        ``meta_size``, ``auto_meta_fraction``, ``seed`` and ``feature_scaling`` are read.
    meta_index : array_like of int, optional
        Training rows to use; their labels come from ``correctlabels.npy``.
    meta_size : int, optional
        Rows to draw (class-stratified, seeded; default ``config.meta.size``) or, with ``auto``,
        to pick.  Ignored when the data set has separate meta files and ``meta_size`` is None.
    auto : bool
        Pick the meta rows from the noisy data (:func:`dmlp.meta.auto_meta_indices`), no clean label.
    meta_index_name : str
        Names ``meta_index`` in messages (a command names its file).

    Returns
    -------
    MetaSelection

    Raises
    ------
    InputError
        No way to a meta set (no true labels, no meta files), bad indices, a class with no
        meta row.
    """
    N, C = data.train_features.shape[0], data.n_classes
    if meta_index is not None:
        idx = check_meta_indices(meta_index, N, meta_index_name)
        if data.true_labels is None:
            raise InputError("needs correctlabels.npy in the data folder for the meta labels", argument=meta_index_name)
        unknown = idx[data.true_labels[idx] < 0]
        if len(unknown):
            raise InputError(f"row {int(unknown[0])} has no known true label (-1 in correctlabels.npy); "
                             f"{len(unknown)} of the {len(idx)} meta rows are unknown", argument=meta_index_name)
        naming, source = {"argument": meta_index_name}, f"rows from {meta_index_name}"
    elif auto:
        from .scaling import fit_feature_scaling
        size = meta_size or auto_meta_size(N, config.run.n_classes or C, config.meta.auto_fraction)
        _require_a_row_a_class(size, C, "trusted example: a meta size of at least {C}",
                               argument="meta_size", value=size)
        if size // C < FEW_PICKED_ROWS:
            log.warning("--meta auto picks %d row(s) a class here (%d rows, %d classes): with so few trusted rows "
                        "its check without ground truth can pass labels below the given ones where the features "
                        "separate the classes weakly (docs/deviations.md, section C); a few clean rows a class "
                        "(--meta-index, or meta_index in the library) are safer", size // C, N, C)
        everything = RowSubset(data.train_features, np.arange(N))
        scaling = fit_feature_scaling(everything, method=config.run.feature_scaling, name="trainfeatures.npy")
        idx = auto_meta_indices(everything, data.noisy_labels, C, size, config.run.seed, ridge=config.ipc.ridge,
                                scaling=scaling)
        check_meta_labels(data.noisy_labels[idx], C, "auto_meta", n_classes_from=data.n_classes_from)
        return MetaSelection(_meta_rows(data.train_features, idx), data.noisy_labels[idx], idx, None,
                             f"auto: {len(idx)} confident rows of the noisy data (no clean labels used)")
    elif data.meta_features is not None and meta_size is None:
        check_meta_labels(data.meta_labels, C, "metalabels.npy", n_classes_from=data.n_classes_from)
        return MetaSelection(data.meta_features, data.meta_labels, np.zeros(0, np.int64), None,
                             "metafeatures.npy / metalabels.npy")
    else:
        idx, naming, source = _draw(data, config, meta_size)
    labels = data.true_labels[idx]
    check_meta_labels(labels, C, n_classes_from=data.n_classes_from, **naming)
    if len(idx) >= N:
        raise InputError(f"the meta set takes all {N} training rows, none is left to purify", **naming)
    return MetaSelection(_meta_rows(data.train_features, idx), labels, idx, data.noisy_labels[idx], source)


#: Below this many picked rows a class ``--meta auto`` warns that its check is weak (measured in
#: docs/deviations.md, section C: losses of 1 to 10 points at one or two rows a class).
FEW_PICKED_ROWS = 3

#: ``--meta auto`` picks at least this many rows a class where a fifth of the rows allows: with one
#: or two trusted rows a class, IPC's meta gradient and the exponent fit have too little to go on,
#: and the check of its labels misses losses (docs/deviations.md, section C).
AUTO_META_ROWS_A_CLASS = 4
AUTO_META_SHARE = 5


def auto_meta_size(n_rows: int, n_classes: int, fraction: float) -> int:
    """How many rows ``--meta auto`` picks: ``fraction`` of the rows, at least
    :data:`AUTO_META_ROWS_A_CLASS` a class where a :data:`AUTO_META_SHARE`-th of the rows
    allows, and at least one a class."""
    return max(n_classes, int(round(fraction * n_rows)),
               min(AUTO_META_ROWS_A_CLASS * n_classes, n_rows // AUTO_META_SHARE))


#: A drawn meta set takes at most one row in this many (at least one a class) unless its size is
#: given: the authors' 1,000 rows are 2 % of CIFAR's 50,000, but would be most of a small set.
SMALL_SET_META_SHARE = 10


def _draw(data: Dataset, config: Config, meta_size: Optional[int]):
    """The seeded draw of the meta rows: ``(indices, naming of the size in errors, source)``."""
    N, C = data.train_features.shape[0], data.n_classes
    if data.true_labels is None:
        raise InputError(f"{data.folder}: no correctlabels.npy and no metafeatures.npy/metalabels.npy: "
                         "give meta_index, or auto_meta=True to run without clean labels")
    if not (data.true_labels >= 0).any():
        raise InputError("correctlabels.npy: no row has a known true label (all -1), so no meta set can be "
                         "drawn: give metafeatures.npy/metalabels.npy, meta_index, or auto_meta=True")
    size = meta_size if meta_size is not None else min(config.meta.size, max(C, N // SMALL_SET_META_SHARE))
    capped = "" if meta_size is not None or size == config.meta.size else \
        f", capped at a {SMALL_SET_META_SHARE}th of the {N} rows"
    naming = ({"argument": "meta_size", "value": size} if meta_size is not None
              else {"argument": f"meta_size = {size} (config {config.name}{capped})"})
    _require_a_row_a_class(size, C, "clean example: a meta size of at least {C}, meta_index, or "
                                    "metafeatures.npy/metalabels.npy", **naming)
    if not 0 < size < N:
        raise InputError(f"must be between {C} and {N - 1} (rows of trainfeatures.npy)", **naming)
    n_known = int((data.true_labels >= 0).sum())
    if meta_size is None and n_known < min(size, N):
        size = n_known                    # every row whose truth is known (the config asks for more)
        naming = {"argument": f"all {n_known} rows with a known true label (meta_size = {config.meta.size}, "
                              f"config {config.name})"}
    idx = draw_meta_indices(data.true_labels, size, config.run.seed, argument=naming["argument"])
    source = f"{len(idx)} rows drawn with seed {config.run.seed}" + (
        "" if n_known == N else f" from the {n_known} rows whose true label is known")
    return idx, naming, source


def _require_a_row_a_class(size: int, n_classes: int, way_out: str, **naming) -> None:
    """Refuse a meta size below the class count; ``way_out`` (``{C}``: the class count) ends the message."""
    if size < n_classes:
        raise InputError(f"meta set has {size} rows, fewer than the {n_classes} classes (every class needs a "
                         f"{way_out.format(C=n_classes)})", **naming)


def _meta_rows(features, idx) -> np.ndarray:
    """The meta rows' features in RAM, float32."""
    return read_rows(features, np.sort(idx)).astype(np.float32, copy=False)


def prepare_dataset_run(data: Union[Dataset, str, Path], config: Optional[Config] = None, *, meta_index=None,
                        meta_size: Optional[int] = None, auto_meta: bool = False, device: str = "auto",
                        progress: bool = False, meta_index_name: str = "meta_index") -> PreparedRun:
    """Check everything and prepare a run of :func:`run_prepared` (meta set, rows, scaling).

    Parameters
    ----------
    data : Dataset or path
        A :class:`dmlp.data.Dataset` (:func:`dmlp.data.load_dataset`, :meth:`Dataset.from_arrays`)
        or a data folder in the authors' layout.
    config : Config, optional
        Default: the default method.  Its ``n_classes``, when set, must agree with the data.
    meta_index, meta_size, auto_meta, meta_index_name
        The meta set, as :func:`select_meta` takes it (``auto_meta`` is its ``auto``).
    device : {"auto", "cpu", "cuda"}
    progress : bool
        A progress bar over the scaling pass.

    Returns
    -------
    PreparedRun

    Raises
    ------
    InputError
        Any problem with the data, the meta set, the config or the device, in one line.
    """
    from .device import dtype_name, resolve_compute_dtype, resolve_device
    from .scaling import check_outlier_rows, fit_feature_scaling   # torch: only once the data are known good
    data = data if isinstance(data, Dataset) else load_dataset(data)
    cfg = config if config is not None else load_config("default")
    if cfg.run.n_classes and cfg.run.n_classes != data.n_classes:
        k = cfg.run.n_classes
        beyond = [(name, labels) for name, labels in (("trainlabels.npy", data.noisy_labels),
                  ("correctlabels.npy", data.true_labels), ("metalabels.npy", data.meta_labels))
                  if labels is not None and (labels >= k).any()]
        if beyond:                  # a label past the config's classes: most likely the label is wrong
            name, labels = beyond[0]
            row = int(np.argmax(labels >= k))
            raise InputError(f"config {cfg.name}: n_classes = {k}, but {name} has label {int(labels[row])} at "
                             f"row {row} (labels must be 0..{k - 1}): correct that label, or set n_classes "
                             "in the config to the data's class count")
        raise InputError(f"config {cfg.name}: n_classes = {k} but the labels in {data.folder} "
                         f"have {data.n_classes} classes (labels 0..{data.n_classes - 1}); run without "
                         "--config, or use a config for this data")
    cfg = cfg.replace(n_classes=data.n_classes, data=str(data.folder))   # as summary.json records it
    if auto_meta:
        cfg = auto_meta_config(cfg)
    meta = select_meta(data, cfg, meta_index=meta_index, meta_size=meta_size, auto=auto_meta,
                       meta_index_name=meta_index_name)
    if len(meta.indices):
        check_outlier_rows(meta.features, "trainfeatures.npy", row_numbers=np.sort(meta.indices))
    else:
        check_outlier_rows(meta.features, "metafeatures.npy")
    dev = resolve_device(device)
    keep = np.ones(data.train_features.shape[0], dtype=bool)
    keep[meta.indices] = False
    rows = np.nonzero(keep)[0]
    features = RowSubset(data.train_features, rows)             # reads only what is asked for
    truth = None if data.true_labels is None else data.true_labels[rows]
    if truth is not None and not (truth >= 0).any():
        truth = None                                             # no known true label among the purified rows
    n_batches = max(1, -(-len(rows) // max(1, cfg.run.batch_size)))
    scaling = fit_feature_scaling(features, method=cfg.run.feature_scaling, name="trainfeatures.npy",
                                  progress=progress, row_numbers=rows)
    warning = gram_warning(features, len(rows) // n_batches, cfg.ipc.ridge, "trainfeatures.npy", cfg.run.seed,
                           scaling=scaling)
    return PreparedRun(data, cfg, meta, rows, features, truth, scaling, dev,
                       dtype_name(resolve_compute_dtype(cfg.run.compute_dtype, dev)), warning)


def run_prepared(prepared: PreparedRun, *, progress: bool = False, checkpoint: Optional[dict] = None,
                 on_epoch_end: Optional[Callable] = None) -> DatasetResult:
    """Purify a :class:`PreparedRun` and put the outputs back at full length.

    Parameters
    ----------
    prepared : PreparedRun
    progress : bool
        Progress bars over the epochs and the final decision.
    checkpoint, on_epoch_end
        As :func:`dmlp.purify` takes them (resuming an interrupted run).

    Returns
    -------
    DatasetResult

    Raises
    ------
    NonFiniteError
        A stage produced NaN or infinite values; nothing is returned.
    """
    from .purify import purify
    p, data = prepared, prepared.data
    known = None if p.truth is None else p.truth >= 0
    result = purify(p.features, data.noisy_labels[p.rows], p.meta.features, p.meta.labels, p.config,
                    n_classes=data.n_classes, meta_noisy_labels=p.meta.noisy_labels,
                    true_labels=p.truth if known is not None and known.all() else None,
                    device=str(p.device), progress=progress, checkpoint=checkpoint,
                    on_epoch_end=on_epoch_end, feature_scaling=p.scaling)
    N, C = data.train_features.shape[0], data.n_classes
    meta_rows = p.meta.indices
    labels = data.noisy_labels.copy()
    labels[p.rows] = result.labels
    labels[meta_rows] = p.meta.labels if len(meta_rows) else labels[meta_rows]
    soft = np.zeros((N, C), dtype=np.float32)
    soft[p.rows] = result.soft_labels
    soft[meta_rows, labels[meta_rows]] = 1.0
    quality = np.ones(N, dtype=np.float32)
    quality[p.rows] = result.label_quality
    return DatasetResult(labels.astype(np.int64), soft, quality, p, result)


def purify_dataset(data: Union[Dataset, str, Path], config: Optional[Config] = None, *, meta_index=None,
                   meta_size: Optional[int] = None, auto_meta: bool = False, device: str = "auto",
                   progress: bool = True) -> DatasetResult:
    """Purify a whole data set: choose its meta set, purify the other rows, assemble the outputs.

    What ``dmlp purify`` runs (the command adds files: flags, output folder, checkpoints).

    Parameters
    ----------
    data : Dataset or path
        A data folder in the authors' layout, or a :class:`dmlp.data.Dataset`
        (:meth:`Dataset.from_arrays` for arrays in memory).
    config : Config, optional
        Default: ``load_config("default")``.
    meta_index : array_like of int, optional
        Training rows to use as the clean meta set (labels from the true labels).
    meta_size : int, optional
        Size of the drawn (or, with ``auto_meta``, picked) meta set.
    auto_meta : bool
        No clean label: pick confident rows of the noisy data as the meta set.
    device : {"auto", "cpu", "cuda"}
    progress : bool
        Progress bars (on stderr) over the scaling pass, the epochs and the final decision, as
        :func:`dmlp.purify` shows them.

    Returns
    -------
    DatasetResult
        Full-length ``labels``, ``soft_labels``, ``label_quality``; ``evaluation()`` for the
        figures against the truth.

    Raises
    ------
    InputError
        Bad data, meta set, config or device (one line).
    NonFiniteError
        A stage produced non-finite values.

    Examples
    --------
    >>> from dmlp import purify_dataset
    >>> out = purify_dataset("my_data/", meta_size=1000)          # doctest: +SKIP
    >>> out.labels, out.evaluation()["label_accuracy_after"]      # doctest: +SKIP
    """
    prepared = prepare_dataset_run(data, config, meta_index=meta_index, meta_size=meta_size, auto_meta=auto_meta,
                                   device=device, progress=progress)
    return run_prepared(prepared, progress=progress)


def _predict_test(result, test_features, progress: bool, block: int = 8192) -> np.ndarray:
    """The EAC classifier's test-set predictions, read from the file block by block."""
    from .progress import progress_bar
    starts = range(0, test_features.shape[0], block)
    pred = [result.eac_predict_proba(read_rows(test_features, slice(s, s + block)).astype(np.float32)).argmax(1)
            for s in progress_bar(starts, desc="test set", unit="block", enabled=progress and len(starts) >= 4)]
    return np.concatenate(pred)
