"""Does DMLP reach Clothing1M's scale (1M x 2048) in time and memory, and how does it grow?

    python benchmarks/scale.py                          # 1M x 2048: DMLP.py runs, then the N / d sweeps
    python benchmarks/scale.py --sizes small            # 20k rows: a check in a few minutes
    python benchmarks/scale.py --configs clothing1m --no-sweep --device cuda

On a synthetic Clothing1M-shaped data set (:mod:`benchmarks.clothing_like`: N x d float16 in a
memory map, 14 classes in confusable groups, ~38 % class-dependent noise, a separate clean meta
set; generated once into ``--scale-dir`` and reused):

* each config of ``--configs`` as a user runs it: ``DMLP.py --config CONFIG --quiet`` (the
  ``dmlp purify`` command) in a subprocess -- its wall time, its own peak RSS (``os.wait4``)
  and its ``summary.json`` (timings, compute dtype, label accuracy);
* the sweeps: the ``clothing1m`` config (``--sweep-epochs`` epochs) through
  :func:`dmlp.purify_dataset` on the first N rows and on the first d columns, with the fitted
  log-log slopes of seconds per epoch in N and in d.

Writes ``OUT_DIR/scale[_DEVICE].md`` and ``benchmark_scale[_DEVICE].csv`` (default
``runs/benchmarks/``).  Goal: under 10 minutes and 12 GB at 1M x 2048.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.clothing_like import make_clothing_like  # noqa: E402
from benchmarks.hardware import header  # noqa: E402
from benchmarks.loader import REPO_ROOT, log  # noqa: E402
from benchmarks.measure import PeakMemory, warm_up  # noqa: E402
from benchmarks.output import Report, write_csv  # noqa: E402
from benchmarks.speed import SPEED_FIELDS, speed_row, speed_table  # noqa: E402
from dmlp.cli import ArgumentParser, run_cli  # noqa: E402

DEFAULT_SCALE_DIR = str(Path(tempfile.gettempdir()) / "dmlp_clothing_scale")
SCALE_SIZES = {   # generated rows, dim, meta rows, test rows, DMLP.py epochs (None = config), sweeps
    "full": dict(n=1_000_000, d=2048, meta=2800, test=10000, epochs=None, sweep_epochs=2,
                 sweep_n=(50_000, 200_000, 1_000_000), sweep_d=(256, 512, 1024, 2048), sweep_d_n=200_000),
    "small": dict(n=20_000, d=2048, meta=1400, test=2000, epochs=3, sweep_epochs=2,
                  sweep_n=(5_000, 10_000, 20_000), sweep_d=(256, 512, 1024, 2048), sweep_d_n=10_000),
    "tiny": dict(n=3_000, d=128, meta=280, test=500, epochs=2, sweep_epochs=1,
                 sweep_n=(1_000, 3_000), sweep_d=(64, 128), sweep_d_n=2_000),
}


def scale_folder(scale_dir, sizes: str) -> Tuple[Path, dict]:
    """The generated data folder of ``sizes`` under ``scale_dir`` (made if missing) and its spec."""
    p = SCALE_SIZES[sizes]
    folder = Path(scale_dir) / sizes
    spec = make_clothing_like(folder, p["n"], p["d"], p["meta"], p["test"])
    return folder, spec


def run_dmlp_cli(data_dir, out_dir, *, config: str = "clothing1m", device: str = "cpu",
                 epochs: Optional[int] = None) -> dict:
    """``python DMLP.py --config CONFIG --data DIR --out OUT --quiet`` in a subprocess: wall
    seconds, the child's own peak RSS (``os.wait4``) and its summary.json."""
    cmd = [sys.executable, str(REPO_ROOT / "DMLP.py"), "--config", config, "--data", str(data_dir),
           "--out", str(out_dir), "--quiet", "--overwrite", "--device", device]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(shlex.quote, cmd))} failed ({proc.returncode}):\n{output}")
    summary = json.loads((Path(out_dir) / "summary.json").read_text())
    return {"command": " ".join(map(shlex.quote, cmd)), "wall_s": wall,
            "peak_rss_mb": usage.ru_maxrss / 1024, "summary": summary, "output": output}


def cli_rows(folder: Path, sizes: str, configs: Sequence[str], *, device: str, scale_dir) -> List[dict]:
    """One row per config: ``DMLP.py`` on the generated folder in a subprocess."""
    p = SCALE_SIZES[sizes]
    noise = json.loads((folder / "noise.json").read_text())["measured_noise"]
    rows = []
    for config in configs:
        log(f"scale: DMLP.py --config {config} on {p['n']} x {p['d']} ...")
        r = run_dmlp_cli(folder, Path(scale_dir) / f"out_{sizes}_{config}_{device.replace(':', '')}",
                         config=config, device=device, epochs=p["epochs"])
        s = r["summary"]
        note = (f"DMLP.py subprocess, peak = child's ru_maxrss; given labels "
                f"{100 * s.get('label_accuracy_before', float('nan')):.1f} % correct (noise {100 * noise:.1f} %)")
        if "test_accuracy" in s:
            note += f"; EAC test accuracy {100 * s['test_accuracy']:.1f} %"
        fits = r["peak_rss_mb"] < 12 * 1024
        goal = (f"< 10 min {'✓' if r['wall_s'] < 600 else '✗'}, < 12 GB {'✓' if fits else '✗'}"
                + ("" if sizes == "full" else f" ({sizes} size, not the goal's)"))
        rows.append(speed_row("clothing1m-scale", config, s["timings"], compute_dtype=s.get("compute_dtype", "?"),
                              device=device, n_rows=s["n_purified"], dim=p["d"], n_classes=14,
                              epochs=s["config"]["epochs"], wall=r["wall_s"], peak_mb=r["peak_rss_mb"],
                              accuracy=s.get("label_accuracy_after"), note=note, goal=goal)
                    | {"command": r["command"]})
        log(f"scale: {config}: {r['wall_s']:.1f} s wall, {r['peak_rss_mb'] / 1024:.2f} GB peak")
    return rows


def _sweep_dataset(folder: Path, n: int, d: int, full: Tuple[int, int]):
    """The data of one sweep point: the folder itself at full size (the command's own reading
    path), else the first ``n`` rows / ``d`` columns as arrays."""
    from dmlp.data import Dataset, load_dataset, load_npy
    if (n, d) == full:
        return load_dataset(folder)
    X = load_npy(folder / "trainfeatures.npy")
    return Dataset.from_arrays(X[:n, :d], np.load(folder / "trainlabels.npy")[:n],
                               true_labels=np.load(folder / "correctlabels.npy")[:n],
                               meta_features=np.load(folder / "metafeatures.npy")[:, :d],
                               meta_labels=np.load(folder / "metalabels.npy"), n_classes=14, name=f"sweep {n}x{d}")


def _slope(xs, ys) -> float:
    xs, ys = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(xs, ys, 1)[0]) if len(xs) > 1 else float("nan")


def sweep_rows(folder: Path, sizes: str, *, device: str) -> Tuple[List[dict], Dict[str, float]]:
    """The N and d sweeps (``clothing1m`` config, :func:`dmlp.purify_dataset`) and the fitted slopes."""
    from dmlp.config import load_config
    from dmlp.pipeline import purify_dataset
    p = SCALE_SIZES[sizes]
    cfg = load_config("clothing1m", epochs=p["sweep_epochs"])
    sweep = [("N", n, p["d"]) for n in p["sweep_n"]] + [("d", p["sweep_d_n"], d) for d in p["sweep_d"]]
    points: Dict[str, List] = {"N": [], "d": []}
    rows = []
    warm_up(device, p["d"], 14)
    for axis, n, d in sweep:
        dataset = _sweep_dataset(folder, n, d, (p["n"], p["d"]))
        with PeakMemory(device=device) as mem:
            t0 = time.perf_counter()
            out = purify_dataset(dataset, cfg, device=device)
            wall = time.perf_counter() - t0
        res = out.result
        row = speed_row(f"sweep-{axis}", "clothing1m", res.timings, compute_dtype=res.compute_dtype, device=device,
                        n_rows=n, dim=d, n_classes=14, epochs=cfg.run.epochs, wall=wall, peak_mb=mem.peak_mb,
                        accuracy=out.evaluation().get("label_accuracy_after"), gpu_peak_mb=mem.gpu_peak_mb,
                        note=("features resident in RAM" if n * d * 4 <= cfg.run.resident_limit_gb * 2 ** 30
                              else "features streamed from the memory map") + "; peak = RSS increase")
        rows.append(row)
        points[axis].append((n if axis == "N" else d, row["per_epoch_s"]))
        log(f"scale sweep N={n} d={d}: {row['per_epoch_s']:.3f} s/epoch")
    return rows, {axis: _slope(*zip(*pts)) if len(pts) > 1 else float("nan") for axis, pts in points.items()}


def scale_caption(spec: dict, noise: float, folder: Path, slopes: Optional[dict]) -> str:
    text = (f"clothing1m-scale: `DMLP.py --config CONFIG --quiet` in a subprocess on synthetic Clothing1M-shaped "
            f"data ({spec['n']} x {spec['d']} float16 memory map, 14 classes in confusable groups, "
            f"{100 * noise:.1f} % class-dependent noise, separate clean meta set of {spec['meta']} rows; in "
            f"{folder}); goal < 10 min and < 12 GB peak RSS (the child's own ru_maxrss). Phases: the run's "
            "summary.json timings.")
    if slopes:
        text += (" sweep-N / sweep-d: `dmlp.purify_dataset` with the clothing1m config on the first N rows / first "
                 "d columns (peak RSS: increase during the call). s / epoch = (IPC + EAC) / epochs; fitted "
                 f"log-log slope of s / epoch: **{slopes['N']:.2f} in N**, **{slopes['d']:.2f} in d**.")
    return text


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="benchmarks/scale.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", "--scale-sizes", dest="sizes", choices=sorted(SCALE_SIZES), default="full",
                   help="full (1M x 2048), small (20k rows, a check) or tiny (tests)")
    p.add_argument("--scale-dir", default=DEFAULT_SCALE_DIR,
                   help=f"folder of the generated data (made once, reused; default {DEFAULT_SCALE_DIR})")
    p.add_argument("--configs", default="clothing1m,clothing1m_paper", help="configs of the DMLP.py runs")
    p.add_argument("--no-sweep", action="store_true", help="no N / d sweeps")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out-dir", default=None, help="where scale.md and the CSV go (default runs/benchmarks/)")
    return p


def main(argv=None) -> int:
    from dmlp.device import resolve_device
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = str(resolve_device(args.device))
    out_dir = Path(args.out_dir) if args.out_dir else REPO_ROOT / "runs" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = "" if device == "cpu" else "_" + device.replace(":", "")
    report = Report(out_dir / f"scale{tag}.md")
    report.add(header("DMLP at Clothing1M scale", "benchmarks/scale.py", argv, device))
    folder, spec = scale_folder(args.scale_dir, args.sizes)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    rows = cli_rows(folder, args.sizes, configs, device=device, scale_dir=args.scale_dir)
    slopes = None
    if not args.no_sweep:
        more, slopes = sweep_rows(folder, args.sizes, device=device)
        rows += more
    report.add(speed_table(rows, per_epoch=True))
    report.add(scale_caption(spec, spec["measured_noise"], folder, slopes))
    write_csv(out_dir / f"benchmark_scale{tag}.csv", rows, SPEED_FIELDS + ["command"])
    log(f"wrote {report.write()}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
