"""``python DMLP.py``: load a data folder, purify its labels, write the outputs atomically."""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from . import io
from .cli import ArgumentParser
from .config import CONFIG_DIR, load_config
from .data import gram_warning, load_dataset, load_npy, read_rows
from .errors import InputError
from .meta import MetaSet, auto_meta_indices, check_meta_indices, check_meta_labels, draw_meta_indices
from .metrics import accuracy, expected_calibration_error, per_class_accuracy, roc_auc

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_FILES = ("purified_labels.npy", "purified_soft_labels.npy", "label_quality.npy",
                "meta_indices.npy", "noise_file.json", "summary.json")
CHECKPOINT = "checkpoint.pt"
log = logging.getLogger("dmlp")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="DMLP.py",
        description="Purify noisy labels from precomputed features with DMLP (IPC + EAC).",
        epilog="Configs: " + ", ".join(sorted(x.stem for x in CONFIG_DIR.glob("*.toml"))))
    p.add_argument("--config", default=None,
                   help="config name in configs/ (e.g. cifar10_sym50, cifar10_sym50_paper) or a .toml path "
                        "(default: cifar10_sym20, the embedded demo)")
    p.add_argument("--data", default=None,
                   help="data folder in the authors' layout (trainfeatures.npy, trainlabels.npy, ...); "
                        "default: the config's data folder")
    p.add_argument("--out", default=None, help="output folder (default: runs/<config name>)")
    meta = p.add_mutually_exclusive_group()
    meta.add_argument("--meta-size", type=int, default=None,
                      help="draw this many clean meta rows (seeded) from the training set, labelled by "
                           "correctlabels.npy (default 1000, as the authors)")
    meta.add_argument("--meta-index", default=None,
                      help=".npy of training-row indices to use as the clean meta set")
    meta.add_argument("--meta", choices=["auto"], default=None,
                      help="'auto': no clean labels; pick a confident subset of the noisy data as meta set")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (config: epochs)")
    p.add_argument("--seed", type=int, default=None, help="random seed (config: seed)")
    p.add_argument("--device", default="auto", help="auto (GPU if available), cpu or cuda")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt of an interrupted run (same config and data)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results in OUT that came from a different config or data")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _file_identity(path: Path, hash_limit: int = 64 * 2 ** 20) -> str:
    """Content hash for files up to ``hash_limit`` bytes (labels, indices), else size + mtime."""
    st = path.stat()
    if st.st_size <= hash_limit:
        h = hashlib.sha256()
        with open(path, "rb") as fh:                      # read-only
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return f"sha256:{h.hexdigest()}"
    return f"size:{st.st_size}:mtime:{st.st_mtime_ns}"


def _fingerprint(cfg, data, meta_spec, meta_index_path=None) -> str:
    """Identity of a run's inputs: config, data files and meta choice."""
    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for name, path in sorted(data.files.items()):
        h.update(f"{name}:{_file_identity(path)}".encode())
    h.update(str(meta_spec).encode())
    if meta_index_path is not None:
        h.update(_file_identity(Path(meta_index_path)).encode())
    return h.hexdigest()[:16]


def _read_fingerprint(summary: Path):
    try:
        return json.loads(summary.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _check_out(out: Path, fingerprint: str, overwrite: bool, resume: bool):
    """Validate ``--out`` without creating or changing anything.

    Returns ``(checkpoint, complete)``: the checkpoint to resume from (or ``None``) and whether
    OUT already holds the complete results of exactly this run.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"--out {out}: cannot create the output folder, {parent} is a file, not a folder")
    if not out.exists():
        if resume:
            log.warning("--resume: %s does not exist yet, nothing to resume: starting from epoch 0", out)
        return None, False
    summary, ckpt = out / "summary.json", out / CHECKPOINT
    old = _read_fingerprint(summary) if summary.exists() else None
    checkpoint = None
    if resume and ckpt.exists():
        import torch
        try:
            checkpoint = torch.load(ckpt, weights_only=True, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - any unpickling problem means "unusable"
            raise InputError(f"--resume: {ckpt} is unreadable ({exc.__class__.__name__}); "
                             "delete it to start from epoch 0") from None
        if not isinstance(checkpoint, dict) or checkpoint.get("fingerprint") != fingerprint:
            raise InputError(f"--resume: {ckpt} comes from a different config or data "
                             "(same --config, --data, meta and flags are needed to resume; "
                             "or use another --out)")
        return checkpoint, False                          # resuming this very run
    if summary.exists() and old != fingerprint and not overwrite:
        raise InputError(f"--out {out}: holds results of a different config or data "
                         "(use --overwrite to replace them, or another --out)")
    complete = old == fingerprint and all((out / f).exists() for f in OUTPUT_FILES)
    if resume and not complete:
        log.warning("--resume: no %s in %s: starting from epoch 0", CHECKPOINT, out)
    return None, complete


def _make_out(out: Path) -> list:
    """Create OUT (and missing parents) and prove it writable; return the folders created."""
    created, p = [], out
    while not p.exists():
        created.append(p)
        p = p.parent
    created.reverse()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise InputError(f"--out {out}: cannot create the output folder ({exc.strerror or exc})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".dmlp-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _remove_empty(created)
        raise InputError(f"--out {out}: output folder is not writable ({exc.strerror or exc})") from None
    _remove_stale_temporaries(out)
    return created


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files of our own atomic writes left by a killed run (``.NAME.xxxx.tmp``)."""
    for name in (*OUTPUT_FILES, CHECKPOINT):
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    for tmp in out.glob(".dmlp-write-test.*"):
        tmp.unlink(missing_ok=True)


def _remove_empty(created: list) -> None:
    """Remove the folders this run created, deepest first, if they are still empty."""
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break


def _select_meta(args, cfg, data) -> MetaSet:
    N = data.train_features.shape[0]
    C = data.n_classes
    if args.meta_index is not None:
        what = f"--meta-index {Path(args.meta_index).name}"
        raw = load_npy(args.meta_index, what=what, mmap=False)
        idx = check_meta_indices(raw, N, what)
        if data.true_labels is None:
            raise InputError(f"{what}: needs correctlabels.npy in the data folder for the meta labels")
        source = f"rows from {args.meta_index}"
        what += " (labels from correctlabels.npy)"
    elif args.meta == "auto":
        size = args.meta_size or max(cfg.n_classes or C, int(round(cfg.auto_meta_fraction * N)))
        idx = auto_meta_indices(_Subset(data.train_features, np.arange(N)), data.noisy_labels, C, size, cfg.seed)
        check_meta_labels(data.noisy_labels[idx], C, "--meta auto")
        return MetaSet(_rows(data.train_features, idx), data.noisy_labels[idx], idx, None,
                       f"auto: {len(idx)} confident rows of the noisy data (no clean labels used)")
    elif data.meta_features is not None and args.meta_size is None:
        check_meta_labels(data.meta_labels, C, "metalabels.npy")
        return MetaSet(data.meta_features, data.meta_labels, np.zeros(0, np.int64), None,
                       "metafeatures.npy / metalabels.npy")
    else:
        if data.true_labels is None:
            raise InputError(f"{data.folder}: no correctlabels.npy and no metafeatures.npy/metalabels.npy: "
                             "give --meta-index, or --meta auto to run without clean labels")
        size = args.meta_size if args.meta_size is not None else cfg.meta_size
        what = f"--meta-size {size}" if args.meta_size is not None else f"meta_size = {size} (config {cfg.name})"
        if size < C:
            raise InputError(f"{what}: meta set has {size} rows, fewer than the {C} classes "
                             "(every class needs a clean example)")
        if not 0 < size < N:
            raise InputError(f"{what}: must be between {C} and {N - 1} (rows of trainfeatures.npy)")
        idx = draw_meta_indices(data.true_labels, size, cfg.seed)
        source = f"{len(idx)} rows drawn with seed {cfg.seed}"
        what += " (labels from correctlabels.npy)"
    labels = data.true_labels[idx]
    check_meta_labels(labels, C, what)
    if len(idx) >= N:
        raise InputError(f"{what}: the meta set takes all {N} training rows, none is left to purify")
    return MetaSet(_rows(data.train_features, idx), labels, idx, data.noisy_labels[idx], source)


def _rows(features, idx):
    return read_rows(features, np.sort(idx)).astype(np.float32, copy=False)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    t0 = time.perf_counter()
    # --- validate every input before anything is created or written -----------------------
    cfg = load_config(args.config or "cifar10_sym20", epochs=args.epochs, seed=args.seed)
    for flag, value in (("--epochs", cfg.epochs), ("--meta-size", args.meta_size)):
        if value is not None and value <= 0:
            raise InputError(f"{flag} must be positive, got {value}")
    data_dir = Path(args.data) if args.data else (REPO_ROOT / cfg.data if not Path(cfg.data).is_absolute() else Path(cfg.data))
    data = load_dataset(data_dir, cfg.n_classes)
    meta = _select_meta(args, cfg, data)
    from .purify import purify, resolve_device          # torch: only once the data are known good
    try:
        device = resolve_device(args.device)
    except InputError as exc:                            # the library names the argument, we the flag
        raise InputError(str(exc).replace(f"device={args.device!r}", f"--device {args.device}", 1)
                         .replace("(use 'cpu' or 'auto')", "(use --device cpu or auto)")) from None

    N = data.train_features.shape[0]
    keep = np.ones(N, dtype=bool)
    keep[meta.indices] = False
    rows = np.nonzero(keep)[0]
    features = _Subset(data.train_features, rows)        # reads only what is asked for
    truth = None if data.true_labels is None else data.true_labels[rows]
    n_batches = max(1, -(-len(rows) // max(1, cfg.batch_size)))
    gram_note = gram_warning(features, len(rows) // n_batches, cfg.ridge, "trainfeatures.npy", cfg.seed)

    out = Path(args.out) if args.out else REPO_ROOT / "runs" / cfg.name
    meta_spec = (args.meta_index, args.meta, args.meta_size)
    fingerprint = _fingerprint(cfg, data, meta_spec, args.meta_index)
    checkpoint, complete = _check_out(out, fingerprint, args.overwrite, args.resume)
    if args.resume and complete:
        print(f"DMLP: nothing to resume, {out}/ already holds the complete results of this run")
        return 0
    # --- inputs are valid: from here on OUT is created and written ------------------------
    created = _make_out(out)
    if gram_note:
        log.warning("%s", gram_note)
    try:
        return _run(args, cfg, data, data_dir, meta, rows, features, truth, out, fingerprint,
                    checkpoint, device, purify, t0)
    except BaseException:
        _remove_empty(created)      # a run that failed before writing anything leaves no folder
        raise


def _run(args, cfg, data, data_dir, meta, rows, features, truth, out, fingerprint, checkpoint,
         device, purify, t0) -> int:
    N = data.train_features.shape[0]

    def on_epoch_end(epoch, state):
        if cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0 and epoch + 1 < cfg.epochs:
            io.save_torch(out / CHECKPOINT, {**state(), "fingerprint": fingerprint})

    result = purify(features, data.noisy_labels[rows], meta.features, meta.labels, cfg,
                    n_classes=data.n_classes, meta_noisy_labels=meta.noisy_labels, true_labels=truth,
                    device=str(device), progress=not args.quiet, checkpoint=checkpoint,
                    on_epoch_end=on_epoch_end)

    # assemble full-length outputs: meta rows keep their clean labels
    C = data.n_classes
    labels = data.noisy_labels.copy()
    labels[rows] = result.labels
    labels[meta.indices] = meta.labels if len(meta.indices) else labels[meta.indices]
    soft = np.zeros((N, C), dtype=np.float32)
    soft[rows] = result.soft_labels
    soft[meta.indices, labels[meta.indices]] = 1.0
    quality = np.ones(N, dtype=np.float32)
    quality[rows] = result.label_quality

    summary = {
        "fingerprint": fingerprint, "data": str(data_dir), "config_name": cfg.name,
        "n_train": int(N), "n_purified": int(len(rows)), "n_meta": int(len(meta.labels)),
        "meta_source": meta.source, "n_classes": int(C), "n_changed": int(result.n_changed),
        "device": result.device, "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "config": cfg.to_dict(), "history": result.history, "notes": result.notes,
        "features_in_ram": bool(len(rows) * data.train_features.shape[1] * 4 <= cfg.resident_limit_gb * 2 ** 30),
    }
    if truth is not None:
        given = data.noisy_labels[rows]
        summary.update({
            "label_accuracy_before": accuracy(given, truth),
            "label_accuracy_after": accuracy(result.labels, truth),
            "per_class_accuracy_after": per_class_accuracy(result.labels, truth, C),
            "soft_label_ece": expected_calibration_error(result.soft_labels, truth),
            "label_quality_auc": roc_auc(-result.label_quality, given != truth),
        })
    if data.test_labels is not None and result.eac_weight is not None:
        pred = []
        for s in range(0, data.test_features.shape[0], 8192):
            block = read_rows(data.test_features, slice(s, s + 8192)).astype(np.float32)
            pred.append(result.eac_predict_proba(block).argmax(1))
        pred = np.concatenate(pred)
        summary["test_accuracy"] = accuracy(pred, data.test_labels)
    summary["seconds"] = round(time.perf_counter() - t0, 3)

    # summary.json marks a complete set of outputs: drop the old one first, write the new one
    # last, so a run killed in between leaves whole files but no claim that they belong together
    (out / "summary.json").unlink(missing_ok=True)
    written = [io.save_npy(out / "purified_labels.npy", labels.astype(np.int64)),
               io.save_npy(out / "purified_soft_labels.npy", soft),
               io.save_npy(out / "label_quality.npy", quality),
               io.save_npy(out / "meta_indices.npy", meta.indices.astype(np.int64)),
               io.save_noise_file(out / "noise_file.json", labels)]
    summary["output_sha256"] = {p.name: _file_identity(p, hash_limit=2 ** 62).split(":", 1)[1]
                                for p in written}
    io.save_json(out / "summary.json", summary, indent=1)   # last: marks the results complete
    (out / CHECKPOINT).unlink(missing_ok=True)
    _print_summary(summary, out)
    return 0


def _print_summary(s, out):
    lines = [f"DMLP [{s['config_name']}] on {s['data']}: {s['n_purified']} rows purified, "
             f"{s['n_meta']} meta rows ({s['meta_source']}), {s['n_classes']} classes, device {s['device']}",
             f"  changed {s['n_changed']} labels in {s['seconds']:.1f} s"]
    if "label_accuracy_after" in s:
        lines.append(f"  label accuracy {100 * s['label_accuracy_before']:.2f} % -> "
                     f"{100 * s['label_accuracy_after']:.2f} % (soft-label ECE {s['soft_label_ece']:.3f}, "
                     f"wrong-label AUC {s['label_quality_auc']:.3f})")
    if "test_accuracy" in s:
        lines.append(f"  EAC classifier test accuracy {100 * s['test_accuracy']:.2f} %")
    lines.append(f"  outputs in {out}/ (purified_labels.npy, purified_soft_labels.npy, noise_file.json, summary.json)")
    print("\n".join(lines))


class _Subset:
    """Rows of a (memory-mapped) array, indexable like one; reads only what is asked for."""

    def __init__(self, array, rows):
        self.array, self.rows = array, rows
        self.shape = (len(rows), array.shape[1])
        self.ndim, self.dtype = 2, array.dtype

    def __getitem__(self, idx):
        return read_rows(self.array, self.rows[idx])   # file reads: bounded memory when streaming

    def __array__(self, dtype=None, copy=None):
        out = self[np.arange(len(self.rows))]
        return out if dtype is None else out.astype(dtype)


def cli(argv=None) -> int:
    from .cli import run_cli
    return run_cli(main, argv)
