"""The prepared device check: speed, CPU/GPU agreement, 100 and 1,000 classes, Clothing1M scale.

    python benchmarks/gpu_check.py --device cuda --out-dir OUT     # on a GPU machine, one call
    python benchmarks/gpu_check.py --device cpu --quick            # the same on the CPU, tiny sizes

One call, made for a machine that is lent for minutes: every part is appended to
``OUT_DIR/gpu_check.md`` as soon as it is done, so a run stopped by a time limit keeps what it
finished.  Parts, in order (``--skip`` leaves some out):

1. **speed** -- :func:`benchmarks.speed.run_speed` on the CIFAR-10 features (``--data``):
   default and paper configs, sym50, the per-phase table with the hardware of every row;
2. **agreement** -- the default config, seed 0, sym50, once on ``device="cpu"`` with
   ``compute_dtype = "float32"`` and once on ``--device`` (its own ``auto`` dtype: float32 on a
   GPU, bfloat16 on a CPU with native bf16): the fraction of purified rows whose labels are equal;
3. **classes** -- the default on ``--device`` on a 100-class and a 1,000-class problem made from
   the same features by :func:`benchmarks.feature_sets.split_classes`, the construction of
   ``feature_sets.py cifar100-like`` / ``cifar1000-like``: each CIFAR-10 class split into 10 / 100
   k-means clusters (20 / 5 restarts; ``--restarts`` overrides).  The clusters are made on the
   lite0 features of ``--lite0 DIR`` (the documented 100-class set) when given, else on the
   purified features themselves (then the fine classes are separable by construction: the
   accuracies are not those of docs/benchmarks.md's c100 rows).  Noise sym50; meta rows: 10 per
   class (100 classes) and 2 per class (1,000 classes), seeded, at most half of a class;
4. **scale** -- ``DMLP.py --config clothing1m`` in a subprocess on the Clothing1M-shaped
   synthetic set of :mod:`benchmarks.scale` (``--scale-sizes``, generated into ``--scale-dir``).

Every DMLP run is one :func:`dmlp.purify_dataset` call (the scale run: the ``dmlp purify``
command itself).  ``--quick``: a 2,000-row subset, 2 epochs, tiny scale set, one repeat.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.feature_sets import split_classes, unit_rows  # noqa: E402
from benchmarks.hardware import header  # noqa: E402
from benchmarks.loader import DEFAULT_DATA, REPO_ROOT, Cifar, benchmark_noise, load_cifar, log  # noqa: E402
from benchmarks.measure import PeakMemory, process_seconds, warm_up  # noqa: E402
from benchmarks.output import md_table, pct, write_csv  # noqa: E402
from benchmarks.scale import DEFAULT_SCALE_DIR, SCALE_SIZES, cli_rows, scale_folder  # noqa: E402
from benchmarks.speed import SPEED_FIELDS, run_speed, speed_row, speed_table  # noqa: E402
from dmlp.cli import ArgumentParser, run_cli  # noqa: E402

PARTS = ("speed", "agreement", "classes", "scale")
#: fine classes per CIFAR-10 class -> (k-means restarts, initial centroids, meta rows per fine class)
CLASS_SETS = {10: (20, "++", 10), 100: (5, "points", 2)}


def _run(data: Cifar, noisy, meta_idx, cfg, device: str):
    """One :func:`dmlp.purify_dataset` call: ``(DatasetResult, wall seconds, PeakMemory)``."""
    from dmlp.data import Dataset
    from dmlp.pipeline import purify_dataset
    dataset = Dataset.from_arrays(data.X, noisy, true_labels=data.y, n_classes=data.n_classes, name="gpu-check")
    with PeakMemory(device=device) as mem:
        t0 = time.perf_counter()
        out = purify_dataset(dataset, cfg, meta_index=meta_idx, device=device)
        wall = time.perf_counter() - t0
    return out, wall, mem


def _row(part: str, data: Cifar, out, wall, mem, device: str, note: str) -> dict:
    res, rows = out.result, out.prepared.rows
    return speed_row(part, out.prepared.config.name, res.timings, compute_dtype=res.compute_dtype, device=device,
                     n_rows=len(rows), dim=data.X.shape[1], n_classes=data.n_classes,
                     epochs=out.prepared.config.run.epochs, wall=wall, peak_mb=mem.peak_mb,
                     accuracy=float((res.labels == data.y[rows]).mean()), gpu_peak_mb=mem.gpu_peak_mb, note=note)


def agreement(data: Cifar, device: str, epochs=None):
    """The default on the CPU in float32 and on ``device``: ``(rows, table line)``."""
    from dmlp.config import load_config
    from dmlp.meta import draw_meta_indices
    noisy = benchmark_noise(data, "sym", 0.5, 0)
    meta = draw_meta_indices(data.y, min(1000, len(data.y) // 4), 0)
    ep = {} if epochs is None else {"epochs": epochs}
    cpu = _run(data, noisy, meta, load_config("default", compute_dtype="float32", **ep), "cpu")
    warm_up(device, data.X.shape[1], data.n_classes)
    dev = _run(data, noisy, meta, load_config("default", **ep), device)
    rows = [_row("agreement: cpu float32", data, *cpu, "cpu", "sym50, seed 0"),
            _row(f"agreement: {device}", data, *dev, device, "sym50, seed 0")]
    a, b = cpu[0].result.labels, dev[0].result.labels
    line = [len(a), pct(rows[0]["label_accuracy"]), f"{pct(rows[1]['label_accuracy'])} ({rows[1]['compute_dtype']})",
            f"{100 * float((a == b).mean()):.3f}", int((a != b).sum())]
    log(f"agreement cpu float32 / {device}: {line[3]} % equal")
    return rows, line


def fine_class_data(data: Cifar, per_class: int, lite0=None, restarts=None) -> Cifar:
    """``data`` with each class split into ``per_class`` k-means fine classes (:func:`split_classes`)."""
    n_restarts, minit, _ = CLASS_SETS[per_class]
    source = data.X if lite0 is None else np.asarray(lite0 if data.rows is None else lite0[data.rows])
    cluster = {"train": unit_rows(source), "test": np.zeros((0, source.shape[1]))}
    fine, _ = split_classes(cluster, {"train": data.y, "test": np.zeros(0, np.int64)}, per_class,
                            restarts=restarts or n_restarts, minit=minit)
    return Cifar(data.X, fine["train"], None, None, per_class * data.n_classes,
                 f"{per_class} k-means clusters per class", data.y)


def class_rows(data: Cifar, device: str, *, lite0=None, epochs=None, restarts=None) -> list:
    """The default on ``device`` on the 100-class and the 1,000-class problem."""
    from dmlp.config import load_config
    from dmlp.meta import draw_meta_indices
    rows = []
    for per_class, (_, _, meta_per_class) in CLASS_SETS.items():
        t0 = time.perf_counter()
        fine = fine_class_data(data, per_class, lite0, restarts)
        built = time.perf_counter() - t0
        noisy = benchmark_noise(fine, "sym", 0.5, 0)
        size = max(fine.n_classes, min(meta_per_class * fine.n_classes, len(fine.y) // 2))   # small --quick sets
        meta = draw_meta_indices(fine.y, size, 0)          # the command's class-stratified draw
        warm_up(device, fine.X.shape[1], fine.n_classes)
        out = _run(fine, noisy, meta, load_config("default", **({} if epochs is None else {"epochs": epochs})), device)
        note = (f"sym50; {len(meta)} meta rows ({meta_per_class} per class); clusters on "
                f"{'lite0' if lite0 is not None else 'the purified'} features, built in {built:.1f} s")
        rows.append(_row(f"{fine.n_classes} classes", fine, *out, device, note))
        log(f"{fine.n_classes} classes: {100 * rows[-1]['label_accuracy']:.2f} % in {rows[-1]['total_s']:.1f} s")
    return rows


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="benchmarks/gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (a GPU where there is one)")
    p.add_argument("--quick", action="store_true", help="2,000 rows, 2 epochs, the tiny scale set, one repeat")
    p.add_argument("--data", default=DEFAULT_DATA, help=f"CIFAR-10 feature folder (default {DEFAULT_DATA})")
    p.add_argument("--subset", type=int, default=None, help="a random subset of this many training rows")
    p.add_argument("--epochs", type=int, default=None, help="override the configs' epochs")
    p.add_argument("--repeats", type=int, default=None, help="runs per speed config (default 3; --quick 1)")
    p.add_argument("--lite0", default=None, metavar="DIR",
                   help="cluster the fine classes on DIR/trainfeatures.npy (lite0, as feature_sets.py does)")
    p.add_argument("--restarts", type=int, default=None, help="k-means restarts (default 20 / 5 per the recipe)")
    p.add_argument("--scale-sizes", choices=sorted(SCALE_SIZES), default=None, help="default full; --quick tiny")
    p.add_argument("--scale-dir", default=DEFAULT_SCALE_DIR, help="folder of the generated scale data")
    p.add_argument("--skip", default="", help=f"comma-separated parts to leave out ({', '.join(PARTS)})")
    p.add_argument("--out-dir", default=None, help="where gpu_check.md and its CSV go (default runs/benchmarks/)")
    return p


class CheckReport:
    """The Markdown of the check so far, rewritten to ``path`` (and its rows to the CSV) after every part."""

    def __init__(self, path: Path, head: str, data: Cifar, device: str):
        self.path, self.head, self.data, self.device = path, head, data, device
        self.rows, self.agreement, self.written = [], None, None

    def text(self) -> str:
        parts = [self.head, "## Runs", speed_table(self.rows, per_epoch=True), _caption(self.data)]
        if self.agreement is not None:
            parts += [f"## Labels: CPU float32 against {self.device}", md_table(
                ["rows", "CPU float32: label acc. (%)", f"{self.device}: label acc. (%) (dtype)", "labels equal (%)",
                 "rows differing"], [self.agreement]),
                "Labels equal: the purified rows whose label is the same in both runs (default config, seed 0)."]
        return "\n\n".join(parts) + "\n"

    def write(self) -> None:
        self.written = self.text()      # kept: the caption's process time moves on after the write
        self.path.write_text(self.written)
        write_csv(self.path.with_suffix(".csv"), self.rows, SPEED_FIELDS)


def run_parts(args, data: Cifar, device: str, report: CheckReport) -> None:
    """Every part not in ``--skip``, the report rewritten after each."""
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    epochs = args.epochs or (2 if args.quick else None)
    if "speed" not in skip:
        report.rows += run_speed(data, meta_size=min(1000, len(data.y) // 4), epochs=epochs, device=device,
                                 repeats=args.repeats or (1 if args.quick else 3))
        report.write()
    if "agreement" not in skip:
        more, report.agreement = agreement(data, device, epochs)
        report.rows += more
        report.write()
    if "classes" not in skip:
        lite0 = None if args.lite0 is None else np.load(Path(args.lite0) / "trainfeatures.npy", mmap_mode="r")
        report.rows += class_rows(data, device, lite0=lite0, epochs=epochs, restarts=args.restarts)
        report.write()
    if "scale" not in skip:
        sizes = args.scale_sizes or ("tiny" if args.quick else "full")
        folder, _ = scale_folder(args.scale_dir, sizes)
        report.rows += cli_rows(folder, sizes, ["clothing1m"], device=device, scale_dir=args.scale_dir)
        report.write()


def _caption(data: Cifar) -> str:
    return ("Rows: speed (cifar10: default and paper, sym50), the two agreement runs, the 100- and 1,000-class "
            "runs, the Clothing1M-scale run (`DMLP.py --config clothing1m` in a subprocess, peak = the child's "
            "ru_maxrss); each row's note is in gpu_check.csv. Phases: `PurifyResult.timings` (they add up to "
            "total); wall = the whole call; s / epoch = (IPC + EAC) / epochs. "
            + (f"Data: {data.note}. " if data.note else "")
            + f"Process wall time so far: {process_seconds():.1f} s.")


def main(argv=None) -> int:
    from dmlp.device import resolve_device
    from dmlp.errors import InputError
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = str(resolve_device(args.device))
    unknown = {s.strip() for s in args.skip.split(",") if s.strip()} - set(PARTS)
    if unknown:
        raise InputError(f"--skip: unknown part {sorted(unknown)[0]!r} (parts: {', '.join(PARTS)})")
    if args.lite0 is not None and not (Path(args.lite0) / "trainfeatures.npy").is_file():
        raise InputError(f"--lite0 {args.lite0}: no trainfeatures.npy there")
    data = load_cifar(args.data, args.subset or (2000 if args.quick else None))   # before any output
    out_dir = Path(args.out_dir) if args.out_dir else REPO_ROOT / "runs" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = CheckReport(out_dir / "gpu_check.md", header("DMLP device check", "benchmarks/gpu_check.py", argv, device),
                         data, device)
    run_parts(args, data, device, report)
    print(report.written or report.text())
    log(f"wrote {report.path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
