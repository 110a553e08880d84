"""``dmlp purify`` (also ``python DMLP.py``): load a data folder, purify its labels, write the outputs.

The data decide, a config refines: ``--data DIR`` alone runs the default method with the class
count of the labels and writes to ``runs/<folder name>``; ``--config`` picks another method, and
its ``n_classes`` (when set) must agree with the labels.  With neither, the embedded demo
(``labels_cifar10/symmetric20`` of a source checkout, config ``cifar10_sym20``) runs.  Every
output file is written under a temporary name and renamed; ``summary.json`` last.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
import sys
import time
from pathlib import Path

import numpy as np

from . import io
from .cli import ArgumentParser
from .config import config_names, load_config
from .data import load_dataset, load_npy
from .errors import InputError
from .pipeline import SMALL_SET_META_SHARE, PreparedRun, prepare_dataset_run, run_prepared

REPO_ROOT = Path(__file__).resolve().parent.parent   # the source checkout, when there is one
DEMO_CONFIG = "cifar10_sym20"                        # what runs with neither --data nor --config
DEFAULT_CONFIG = "default"                           # what runs on --data DIR without --config
OUTPUT_FILES = ("purified_labels.npy", "purified_soft_labels.npy", "label_quality.npy",
                "meta_indices.npy", "noise_file.json", "summary.json")
REPORT = "report.png"
CHECKPOINT = "checkpoint.pt"
FLAGS = {"meta_size": "--meta-size", "auto_meta": "--meta auto", "auto_meta=True": "--meta auto",
         "meta_index": "--meta-index", "device": "--device"}                   # library name -> flag
log = logging.getLogger("dmlp")

#: Given rows a class below which the command warns (README: about 20 a class or more).
FEW_ROWS_A_CLASS = 15
#: Clean meta rows below which the command warns: a fresh-user check saw 2 rows on a 2-class set end
#: below the given labels in 2 of 5 seeds (docs/deviations.md, section B, T's diagonal dominance).
FEW_META_ROWS = 10


def build_parser(prog: str = "dmlp purify") -> argparse.ArgumentParser:
    """The argument parser of ``dmlp purify`` (``prog`` names the command in messages)."""
    p = ArgumentParser(
        prog=prog,
        description="Purify noisy labels from precomputed features with DMLP (IPC + EAC). "
                    "With --data DIR alone: the default method, the class count of the labels, "
                    "outputs in runs/<folder name>. With no argument: the embedded CIFAR-10 demo.",
        epilog="Shipped configs: " + ", ".join(config_names()))
    p.add_argument("--config", default=None,
                   help="a shipped config's name (e.g. paper, cifar10_sym50_paper) or a .toml path; "
                        "default: 'default' with --data, 'cifar10_sym20' (the demo) without")
    p.add_argument("--data", default=None,
                   help="data folder in the authors' layout (trainfeatures.npy, trainlabels.npy, ...); "
                        "default: the config's data folder (the demo's)")
    p.add_argument("--out", default=None,
                   help="output folder (default: runs/<data folder name> in the current folder, "
                        "runs/<data folder>_<config> with --config, + _meta_auto with --meta auto; "
                        "the demo: runs/cifar10_sym20)")
    p.add_argument("--meta-size", type=int, default=None,
                   help="draw this many clean meta rows (class-stratified, seeded) from the training set, labelled "
                        "by correctlabels.npy (default 1000, as the authors); with --meta auto: pick this many")
    meta = p.add_mutually_exclusive_group()
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
    p.add_argument("--plot", action="store_true",
                   help=f"also write OUT/{REPORT}: the per-epoch curve and the estimated noise-transition "
                        "matrix as a heat map (needs matplotlib: pip install 'dmlp[plot]')")
    p.add_argument("--quiet", action="store_true", help="no progress bars or phase messages")
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


def _check_out_path(out: Path) -> None:
    """The cheap checks of ``--out`` (a folder, or creatable below a folder), made before the
    data are read so that a mistyped OUT is reported at once."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"--out {out}: cannot create the output folder, {parent} is a file, not a folder")


def _check_out(out: Path, fingerprint: str, overwrite: bool, resume: bool):
    """Validate ``--out`` against this run without creating or changing anything (its path was
    checked by :func:`_check_out_path` before the data were read).

    Returns ``(checkpoint, complete)``: the checkpoint to resume from (or ``None``) and whether
    OUT already holds the complete results of exactly this run.
    """
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


class _Phases:
    """One line on stdout per phase of a run that is not the purifier's own (loading, writing);
    stderr keeps the progress bars and, on bad input, the one error line."""

    def __init__(self, quiet: bool):
        self.quiet, self.t0 = quiet, time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:6.1f} s] {message}", flush=True)


def _resolve_inputs(args):
    """Config, data folder and default output folder from the flags: the data decide.

    Returns ``(config, data_dir, default_out)``.  Without ``--config`` a ``--data`` folder runs
    the default method; without both, the demo config and its folder.
    """
    if args.config is None and args.data is not None:
        cfg = load_config(DEFAULT_CONFIG, epochs=args.epochs, seed=args.seed)
    else:
        cfg = load_config(args.config or DEMO_CONFIG, epochs=args.epochs, seed=args.seed)
    if args.data is not None:
        data_dir = Path(args.data)
    else:
        data_dir = Path(cfg.data)
        if not data_dir.is_absolute():
            checkout = REPO_ROOT / data_dir
            data_dir = checkout if checkout.exists() or not data_dir.exists() else data_dir
        if not data_dir.exists():
            raise InputError(f"no --data given and the config's data folder {cfg.data} is not here "
                             f"(the demo ships with a source checkout); give --data DIR")
    data_dir = data_dir.resolve() if data_dir.exists() else data_dir.absolute()
    if args.data is None:
        name = cfg.name
    elif args.config is None:
        name = data_dir.name
    else:
        name = f"{data_dir.name}_{cfg.name}"
    if getattr(args, "meta", None) == "auto":       # beside the clean-meta run, not in its place
        name += "_meta_auto"
    return cfg, data_dir, Path.cwd() / "runs" / name


def _check_plotting(enabled: bool) -> None:
    if enabled:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InputError("--plot: needs matplotlib (pip install matplotlib, or 'dmlp[plot]')") from None


def main(argv=None, prog: str = "dmlp purify") -> int:
    """Run ``dmlp purify ARGS``; returns the exit code (bad input raises :class:`InputError`).

    Parameters
    ----------
    argv : list of str, optional
        The flags (default: ``sys.argv[1:]``); ``dmlp purify --help`` lists them.
    prog : str
        The command's name in messages.

    Returns
    -------
    int
        0 when the outputs are written (or already complete on ``--resume``).
    """
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    t0 = time.perf_counter()
    phase = _Phases(args.quiet)
    # --- validate every input before anything is created or written -----------------------
    cfg, data_dir, default_out = _resolve_inputs(args)
    epochs_from = "--epochs" if args.epochs is not None else f"config {cfg.name}: epochs"
    if args.meta_index is not None and args.meta_size is not None:
        raise InputError("--meta-size: not with --meta-index (the index file fixes the meta set)")
    for flag, value in ((epochs_from, cfg.run.epochs), ("--meta-size", args.meta_size)):
        if value is not None and value <= 0:
            raise InputError(f"{flag} must be positive, got {value}")
    _check_plotting(args.plot)
    out = Path(args.out).absolute() if args.out else default_out
    _check_out_path(out)
    phase(f"reading and checking {data_dir}")
    data = load_dataset(data_dir, 0, progress=not args.quiet)
    meta_index, index_name = None, f"--meta-index {Path(args.meta_index or '').name}"
    if args.meta_index is not None:
        meta_index = load_npy(args.meta_index, what=index_name, mmap=False)
    try:
        prepared = prepare_dataset_run(data, cfg, meta_index=meta_index, meta_size=args.meta_size,
                                       auto_meta=args.meta == "auto", device=args.device, progress=not args.quiet,
                                       meta_index_name=index_name)
    except InputError as exc:                            # the library names its arguments, we our flags
        raise exc.for_flags(FLAGS) from None
    from .device import native_bf16_cpu          # torch: only once the data are known good
    meta_spec = (args.meta_index, args.meta, args.meta_size)
    fingerprint = _fingerprint(prepared.config, data, (meta_spec, prepared.compute_dtype, native_bf16_cpu()),
                               args.meta_index)
    checkpoint, complete = _check_out(out, fingerprint, args.overwrite, args.resume)
    if args.resume and complete:
        print(f"DMLP: nothing to resume, {out}/ already holds the complete results of this run")
        return 0
    # --- inputs are valid: from here on OUT is created and written ------------------------
    created = _make_out(out)
    if prepared.warning:
        log.warning("%s", prepared.warning)
    n_meta, n_rows = len(prepared.meta.indices), data.train_features.shape[0]
    if n_meta * SMALL_SET_META_SHARE > n_rows and args.meta != "auto":     # auto's size is its own rule
        log.warning("the meta set takes %d of the %d training rows (%.0f %%); they keep their clean labels and "
                    "are not purified: a smaller --meta-size leaves more rows to purify", n_meta, n_rows,
                    100.0 * n_meta / n_rows)
    if len(prepared.meta.labels) < FEW_META_ROWS and args.meta != "auto":
        log.warning("the meta set has only %d clean rows: the noise model and the final decision's weights rest "
                    "on them, and with so few the purified labels can end below the given ones; %d or more "
                    "(--meta-size, --meta-index) are safer", len(prepared.meta.labels), FEW_META_ROWS)
    _warn_about_class_sizes(data.noisy_labels, data.n_classes, auto=args.meta == "auto")
    try:
        return _run(args, prepared, out, fingerprint, checkpoint, t0, phase)
    except BaseException:
        _remove_empty(created)      # a run that failed before writing anything leaves no folder
        raise


def _warn_about_class_sizes(labels: np.ndarray, n_classes: int, *, auto: bool) -> None:
    """Warn about classes of a single given row (often a mistaken label, which also sets the class
    count) and about classes given fewer than :data:`FEW_ROWS_A_CLASS` rows, rarest first."""
    counts = np.bincount(labels, minlength=n_classes)
    lone = np.nonzero(counts == 1)[0]
    if len(lone):
        rows = [int(np.argmax(labels == c)) for c in lone[:5]]
        log.warning("trainlabels.npy: class %s has a single row (row %s)%s; if a label is a mistake, correct it",
                    ", ".join(map(str, lone[:5])), ", ".join(map(str, rows)), ", ..." if len(lone) > 5 else "")
    rare = np.nonzero((counts > 1) & (counts < FEW_ROWS_A_CLASS))[0]
    if len(rare):
        rare = rare[np.argsort(counts[rare], kind="stable")]
        named = ", ".join(f"{c} ({counts[c]} rows)" for c in rare[:5]) + (", ..." if len(rare) > 5 else "")
        trusted = " and --meta auto's trusted rows for them can be rows of larger classes" if auto else ""
        log.warning("trainlabels.npy: %d class(es) have fewer than %d rows: %s; rows given a rare class's label "
                    "can mostly belong to larger classes under noise, so these classes can lose recall%s; "
                    "clean meta rows for them (--meta-index) help", len(rare), FEW_ROWS_A_CLASS, named, trusted)


def _run(args, prepared: PreparedRun, out: Path, fingerprint: str, checkpoint, t0: float, phase) -> int:
    from .device import native_bf16_cpu
    from .numerics import fits_in_ram
    cfg, data, meta, rows = prepared.config, prepared.data, prepared.meta, prepared.rows
    N, C = data.train_features.shape[0], data.n_classes

    last = time.perf_counter()                           # of the last checkpoint (or the start)

    def on_epoch_end(epoch, state):
        nonlocal last
        due = cfg.run.checkpoint_every and (epoch + 1) % cfg.run.checkpoint_every == 0 and epoch + 1 < cfg.run.epochs
        if due and time.perf_counter() - last >= cfg.run.checkpoint_seconds:
            io.save_torch(out / CHECKPOINT, {**state(), "fingerprint": fingerprint})
            last = time.perf_counter()

    phase(f"purifying {len(rows)} rows ({C} classes, config {cfg.name}, {cfg.run.epochs} epochs, "
          f"device {prepared.device})")
    full = run_prepared(prepared, progress=not args.quiet, checkpoint=checkpoint, on_epoch_end=on_epoch_end)
    result = full.result
    summary = {
        "fingerprint": fingerprint, "data": str(data.folder), "config_name": cfg.name,
        "n_train": int(N), "n_purified": int(len(rows)), "n_meta": int(len(meta.labels)),
        "meta_source": meta.source, "n_classes": int(C), "n_changed": int(result.n_changed),
        "device": result.device, "compute_dtype": result.compute_dtype,
        "cpu_native_bf16": native_bf16_cpu(), "feature_scaling": result.feature_scaling.summary(),
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "config": cfg.to_dict(), "history": result.history, "notes": result.notes,
        "features_in_ram": fits_in_ram(len(rows), data.train_features.shape[1], cfg.run.resident_limit_gb),
        **_noise_estimate(result),
        **full.evaluation(progress=not args.quiet),
    }
    _check_finite_summary(summary)                      # before anything is written
    phase(f"writing the outputs to {out}")

    # summary.json marks a complete set of outputs: drop the old one first, write the new one
    # last, so a run killed in between leaves whole files but no claim that they belong together
    (out / "summary.json").unlink(missing_ok=True)
    if args.plot:
        from .report import write_report
        write_report(out / REPORT, summary)
    written = [io.save_npy(out / "purified_labels.npy", full.labels),
               io.save_npy(out / "purified_soft_labels.npy", full.soft_labels),
               io.save_npy(out / "label_quality.npy", full.label_quality),
               io.save_npy(out / "meta_indices.npy", meta.indices.astype(np.int64)),
               io.save_noise_file(out / "noise_file.json", full.labels)]
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["output_sha256"] = {p.name: _file_identity(p, hash_limit=2 ** 62).split(":", 1)[1]
                                for p in written}
    io.save_json(out / "summary.json", summary, indent=1)   # last: marks the results complete
    (out / CHECKPOINT).unlink(missing_ok=True)
    _print_summary(summary, out)
    return 0


def _noise_estimate(result) -> dict:
    """The estimated noise-transition matrix and noise rate, known without any ground truth.

    ``transition_matrix[c][k]``: estimated probability that a row of true class ``c`` was given
    label ``k`` (``None`` when the method estimated none); ``estimated_noise_rate``: one minus
    the mean estimated probability that a purified row's given label is right.
    """
    T = getattr(result, "transition_matrix", None)
    return {"transition_matrix": None if T is None else np.asarray(T, dtype=np.float64).round(6).tolist(),
            "estimated_noise_rate": float(1.0 - np.mean(result.label_quality, dtype=np.float64))}


def _flatten(values):
    """The non-list items of nested lists and tuples, in order."""
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from _flatten(value)
        else:
            yield value


def _check_finite_summary(summary: dict, where: str = "summary.json") -> None:
    """Raise :class:`NonFiniteError` naming the first key of ``summary`` holding NaN or inf."""
    from .errors import NonFiniteError
    if isinstance(summary, dict):
        for key, value in summary.items():
            _check_finite_summary(value, f"{where}: {key}")
    elif isinstance(summary, (list, tuple)):
        items = list(_flatten(summary))
        numbers = [v for v in items if isinstance(v, float)]
        if numbers and not np.isfinite(numbers).all():     # one vectorised check: T has C^2 cells
            bad = next(v for v in numbers if not np.isfinite(v))
            raise NonFiniteError(f"{where} would hold a non-finite value ({bad}); nothing written")
        for value in items:
            if isinstance(value, dict):
                _check_finite_summary(value, where)
    elif isinstance(summary, float) and not np.isfinite(summary):
        raise NonFiniteError(f"{where} would hold a non-finite value ({summary}); nothing written")


def _print_summary(s, out):
    lines = [f"DMLP [{s['config_name']}] on {s['data']}: {s['n_purified']} rows purified, "
             f"{s['n_meta']} meta rows ({s['meta_source']}), {s['n_classes']} classes, device {s['device']}",
             f"  changed {s['n_changed']} label{'' if s['n_changed'] == 1 else 's'} in {s['seconds']:.1f} s"]
    from .audit import LabelAudit            # here: the module needs torch, which a bad input never loads
    audit = s["notes"].get("label_audit") if isinstance(s.get("notes"), dict) else None
    audit = None if audit is None else LabelAudit(**audit)
    if "label_accuracy_after" in s:
        rows = "" if s["n_truth_known"] == s["n_purified"] else \
            f" on the {s['n_truth_known']} of {s['n_purified']} purified rows whose true label is known"
        lines.append(f"  label accuracy{rows} {100 * s['label_accuracy_before']:.2f} % -> "
                     f"{100 * s['label_accuracy_after']:.2f} % (soft-label ECE {s['soft_label_ece']:.3f}, "
                     "wrong-label AUC " + ("undefined" if s["label_quality_auc"] is None
                                           else f"{s['label_quality_auc']:.3f}") + ")")
    else:
        disowned = audit is not None and audit.n_changed > 0 and not audit.model_credible()
        lines.append(f"  estimated noise rate {100 * s['estimated_noise_rate']:.2f} % "
                     "(no ground truth for these rows: nothing to measure against"
                     + ("; the check below finds the purifier's model not credible here" if disowned else "") + ")")
    if audit is not None:
        if audit.n_changed == 0:
            lines.append("  check without ground truth: no label changed, nothing to check (the run found no "
                         "evidence against the given labels, which is not evidence that they are clean)")
        elif not audit.purified_better:
            lines.append(f"  check without ground truth: {audit.why_kept()}; the given labels are kept "
                         f"(held-out agreement of a classifier fitted on the purified labels "
                         f"{100 * audit.support_purified:.2f} %, on the given labels {100 * audit.support_given:.2f} %)")
        else:
            lines.append(f"  check without ground truth: {audit.comparison()}: the purified labels are kept")
    check = s["notes"].get("meta_check") if isinstance(s.get("notes"), dict) else None
    if check is not None:
        lines.append(f"  check on the {check['rows']} meta rows, each judged without its own fold's information: "
                     f"the final model fixes {check['fixed']} of their given labels and breaks {check['broken']}: "
                     + ("the purified labels are kept" if check["passed"] else
                        "the given labels are kept (docs/deviations.md, \"The check on the meta rows\")"))
    if "test_accuracy" in s:
        lines.append(f"  EAC classifier test accuracy {100 * s['test_accuracy']:.2f} %")
    written = [name for name in OUTPUT_FILES if (Path(out) / name).exists()]
    lines.append(f"  outputs in {out}/ ({', '.join(written)})")
    print("\n".join(lines))


def cli(argv=None, prog: str = "dmlp purify") -> int:
    """``main`` with input errors turned into one line and exit code 2 (see :func:`dmlp.cli.run_cli`)."""
    from .cli import run_cli
    return run_cli(lambda a: main(a, prog=prog), argv)
