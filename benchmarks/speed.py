"""How fast is a whole CIFAR-10 run on this hardware, and where does the time go?

    python benchmarks/speed.py                          # default and paper, 3 runs each, the median
    python benchmarks/speed.py --quick                  # a 10k-row subset, 3 epochs, one run
    python benchmarks/speed.py --device cuda            # on a GPU

Each config runs ``--repeats`` times as ``dmlp purify`` runs it (:func:`dmlp.purify_dataset`, the
CIFAR-10 ``--setting`` with all non-meta rows); its row is the run with the median total.  The
table names the hardware on every row -- CPU model, the vector extensions that decide the speed
of the batch products (AVX2, AVX-512, AVX512-BF16, AMX-BF16), the device, the compute dtype that
ran (``PurifyResult.compute_dtype``: bfloat16 on CPUs with native bf16, float32 elsewhere) and
the torch threads -- then the seconds of every phase of ``PurifyResult.timings`` (setup: input
checks, partition, Gram factorisations; read: streaming feature batches from disk; IPC; EAC;
report: the epoch's history entry; checkpoint; final: the final decision), which add up to its
total, and the wall time of the whole call (meta selection and the feature scaling included).
Tables of several machines can be pasted together.  Writes ``OUT_DIR/speed[_DEVICE].md`` and
``benchmark_speed[_DEVICE].csv`` (default ``runs/benchmarks/``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hardware import cpu_model, device_name, extensions_text, header  # noqa: E402
from benchmarks.loader import (DEFAULT_DATA, REPO_ROOT, Cifar, benchmark_noise, load_cifar, log,  # noqa: E402
                               parse_setting)
from benchmarks.measure import PHASES, PeakMemory, phase_seconds, process_seconds, warm_up  # noqa: E402
from benchmarks.output import Report, md_table, num, pct, write_csv  # noqa: E402
from dmlp.cli import ArgumentParser, run_cli  # noqa: E402

SPEED_FIELDS = ["part", "config", "cpu", "extensions", "device", "compute_dtype", "threads", "n_rows", "dim",
                "n_classes", "epochs", *(f"{p}_s" for p in PHASES), "total_s", "per_epoch_s", "wall_s",
                "peak_rss_mb", "gpu_peak_mb", "label_accuracy", "goal", "note"]
#: Column titles of the speed table, in order (the phases as ``PurifyResult.timings`` names them).
SPEED_COLUMNS = ["part", "config", "CPU", "vector extensions", "device", "compute dtype", "threads", "rows", "d",
                 "epochs", *(f"{p} (s)" for p in PHASES), "total (s)", "wall (s)", "peak RSS (MB)",
                 "label acc. (%)", "goal"]


def hardware_row(device: str) -> dict:
    """The hardware columns every row of the table repeats."""
    import torch
    return {"cpu": cpu_model(), "extensions": extensions_text(),
            "device": device_name(device), "threads": torch.get_num_threads()}


def speed_row(part: str, config: str, timings: dict, *, compute_dtype: str, device: str, n_rows: int, dim: int,
              n_classes: int, epochs: int, wall: float, peak_mb: float, accuracy: float, note: str = "",
              goal: str = "", gpu_peak_mb=None) -> dict:
    """A row of :data:`SPEED_FIELDS`: a run's ``timings`` (``PurifyResult.timings`` or
    ``summary.json``'s) and what ran, on this machine's hardware."""
    t = phase_seconds(timings)
    return {"part": part, "config": config, **hardware_row(device), "compute_dtype": compute_dtype,
            "n_rows": n_rows, "dim": dim, "n_classes": n_classes, "epochs": epochs, **t,
            "per_epoch_s": (t["ipc_s"] + t["eac_s"]) / max(1, epochs), "wall_s": wall, "peak_rss_mb": peak_mb,
            "gpu_peak_mb": gpu_peak_mb, "label_accuracy": accuracy, "goal": goal, "note": note}


def speed_table(rows: Sequence[dict], per_epoch: bool = False) -> str:
    """The per-hardware table: :data:`SPEED_COLUMNS`, a row per run (``per_epoch``: and the
    seconds per epoch, (IPC + EAC) / epochs, after the total)."""
    columns = SPEED_COLUMNS[:-4] + ["s / epoch"] * per_epoch + SPEED_COLUMNS[-4:]
    body = [[r["part"], r["config"], r["cpu"], r["extensions"], r["device"], r["compute_dtype"], r["threads"],
             r["n_rows"], r["dim"], r["epochs"], *(num(r[f"{p}_s"], "{:.2f}") for p in PHASES),
             num(r["total_s"], "{:.2f}"), *[num(r["per_epoch_s"], "{:.3f}")] * per_epoch, num(r["wall_s"], "{:.2f}"),
             num(r["peak_rss_mb"], "{:.0f}"), pct(r["label_accuracy"]), r.get("goal", "")] for r in rows]
    return md_table(columns, body)


def _median_run(dataset, cfg, meta_idx, device: str, repeats: int):
    """``(result, wall, memory, totals)`` of the run with the median total of ``repeats`` runs."""
    from dmlp.pipeline import purify_dataset
    runs = []
    for _ in range(max(1, repeats)):
        with PeakMemory(device=device) as mem:
            t0 = time.perf_counter()
            res = purify_dataset(dataset, cfg, meta_index=meta_idx, device=device).result
            wall = time.perf_counter() - t0
        runs.append((res.timings["total"], res, wall, mem))
    _, res, wall, mem = sorted(runs, key=lambda r: r[0])[(len(runs) - 1) // 2]
    return res, wall, mem, [r[0] for r in runs]


def run_speed(data: Cifar, *, setting: str = "sym50", noise_seed: int = 0, meta_size: int = 1000,
              epochs: Optional[int] = None, device: str = "cpu", repeats: int = 1,
              configs: Sequence[str] = ("default", "paper"), overrides: Optional[dict] = None) -> List[dict]:
    """Speed rows (:data:`SPEED_FIELDS`): every config of ``configs`` on ``data``'s ``setting``.

    Each config runs ``repeats`` times; its row is the run with the median total, and the note
    lists every total (shared machines vary from run to run).  ``overrides``: config keys set on
    every config (e.g. ``{"compute_dtype": "float32"}``).
    """
    from dmlp.config import load_config
    from dmlp.data import Dataset
    from dmlp.meta import draw_meta_indices
    noisy = benchmark_noise(data, *parse_setting(setting), noise_seed)
    dataset = Dataset.from_arrays(data.X, noisy, true_labels=data.y, n_classes=data.n_classes, name="benchmark")
    meta_idx = draw_meta_indices(data.y, meta_size, 0)
    keep = np.ones(len(data.y), dtype=bool)
    keep[meta_idx] = False
    warm_up(device, data.X.shape[1], data.n_classes)
    out = []
    for name in configs:
        cfg = load_config(name, **({} if epochs is None else {"epochs": epochs}), **(overrides or {}))
        res, wall, mem, totals = _median_run(dataset, cfg, meta_idx, device, repeats)
        note = f"{setting}, {cfg.run.views} views, batch {cfg.run.batch_size}; peak = RSS increase"
        if len(totals) > 1:
            note += f"; median of {len(totals)} runs, totals " + " / ".join(f"{x:.2f}" for x in totals) + " s"
        if mem.gpu_peak_mb is not None:
            note += f"; GPU peak allocated {mem.gpu_peak_mb:.0f} MB"
        full = len(data.y) >= 50_000 and cfg.run.epochs == 100
        goal = f"≤ 10 s {'✓' if res.timings['total'] <= 10 else '✗'}" + ("" if full else " (not the full run)")
        out.append(speed_row("cifar10", name, res.timings, compute_dtype=res.compute_dtype, device=device,
                             n_rows=int(keep.sum()), dim=data.X.shape[1], n_classes=data.n_classes,
                             epochs=cfg.run.epochs, wall=wall, peak_mb=mem.peak_mb,
                             accuracy=float((res.labels == data.y[keep]).mean()), note=note, goal=goal,
                             gpu_peak_mb=mem.gpu_peak_mb))
        log(f"speed {name}: {res.timings['total']:.2f} s, {100 * out[-1]['label_accuracy']:.2f} %")
    return out


SPEED_CAPTION = (
    "Each row: one `dmlp.purify_dataset` call (what `dmlp purify` runs) on all non-meta rows. Phases: "
    "`PurifyResult.timings` (setup = input checks, partition, Gram factorisations; read = streaming feature "
    "batches from disk; ipc; eac; report = the epoch's history entry; checkpoint; final = the final "
    "decision), which add up to total; wall = the whole call (meta selection and feature scaling "
    "included). compute dtype: of the large batch products (`compute_dtype = \"auto\"`: bfloat16 on CPUs "
    "with avx512_bf16 or amx_bf16, float32 elsewhere). peak RSS: RSS increase during the call. Goal: "
    "≤ 10 s total for the full CIFAR-10 run (49,000 rows, 100 epochs).")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="benchmarks/speed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a 10k-row subset, 3 epochs, one run per config")
    p.add_argument("--data", default=DEFAULT_DATA, help=f"CIFAR-10 feature folder (default {DEFAULT_DATA})")
    p.add_argument("--setting", default="sym50", help="noise setting of the runs (default sym50)")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--meta-size", type=int, default=None, help="clean meta rows (default 1000; --quick 500)")
    p.add_argument("--configs", default="default,paper", help="comma-separated config names")
    p.add_argument("--epochs", type=int, default=None, help="override the configs' epochs")
    p.add_argument("--subset", type=int, default=None, help="a random subset of this many training rows")
    p.add_argument("--repeats", "--speed-repeats", dest="repeats", type=int, default=None,
                   help="runs per config; the median run is reported (default 3; --quick 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out-dir", default=None, help="where speed.md and the CSV go (default runs/benchmarks/)")
    return p


def main(argv=None) -> int:
    from dmlp.device import resolve_device
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = str(resolve_device(args.device))
    parse_setting(args.setting)
    data = load_cifar(args.data, args.subset or (10_000 if args.quick else None))   # before any output
    out_dir = Path(args.out_dir) if args.out_dir else REPO_ROOT / "runs" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = "" if device == "cpu" else "_" + device.replace(":", "")
    report = Report(out_dir / f"speed{tag}.md")
    report.add(header("DMLP speed on this hardware", "benchmarks/speed.py", argv, device))
    rows = run_speed(data, setting=args.setting, noise_seed=args.seed,
                     meta_size=args.meta_size or (500 if args.quick else 1000),
                     epochs=args.epochs or (3 if args.quick else None), device=device,
                     repeats=args.repeats or (1 if args.quick else 3),
                     configs=[c.strip() for c in args.configs.split(",") if c.strip()])
    report.add(speed_table(rows))
    report.add(SPEED_CAPTION + (" On a GPU the split between phases is approximate (kernels run "
                                "asynchronously; each batch's loss read synchronises)." if device != "cpu" else "")
               + (f" Data: {data.note}." if data.note else "")
               + f" Process wall time: {process_seconds():.1f} s (interpreter start to this table: imports, "
               "data loading, every run).")
    write_csv(out_dir / f"benchmark_speed{tag}.csv", rows, SPEED_FIELDS)
    log(f"wrote {report.write()}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
