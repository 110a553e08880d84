"""How good are DMLP's labels against the baselines?  The quality table, setting by setting.

    python benchmarks/quality.py --quick                          # smoke test, seconds
    python benchmarks/quality.py --settings sym50,asym40 --skip-baselines
    python benchmarks/quality.py --dmlp-seeds 0,1,2               # the full table (about 30 min)

On the CIFAR-10 features (``--data``), per noise setting (DivideMix protocol, noise seed
``--seed``) and one fixed clean meta split (``draw_meta_indices(correct, 1000, seed=0)``): the
label accuracy on the other rows, the changed labels, the test accuracy of a linear probe trained
on the labels, seconds and peak memory of every baseline of :data:`dmlp.baselines.ALL_BASELINES`,
DMLP default (over several config seeds), DMLP paper, DMLP ``--meta auto`` and one ablation per
entry of :data:`benchmarks.ablations.ABLATIONS`.  Every DMLP row is one call of
:func:`dmlp.purify_dataset`, the call of ``dmlp purify``.  The per-epoch label accuracy of every
DMLP run (its history) goes to ``quality_history.csv`` and one plot per setting.

Writes ``OUT_DIR/quality.md``, ``benchmark_quality.csv``, ``quality_history.csv`` and
``accuracy_per_epoch_<setting>.png`` (default ``runs/benchmarks/``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import quality_tables as qt  # noqa: E402
from benchmarks.quality_tables import Measure, quality_row  # noqa: E402
from benchmarks.ablations import ABLATIONS, uncovered_config_differences  # noqa: E402
from benchmarks.hardware import header  # noqa: E402
from benchmarks.loader import (DEFAULT_DATA, REPO_ROOT, SETTINGS, Cifar, benchmark_noise, load_cifar,  # noqa: E402
                               log, parse_setting, parse_settings)
from benchmarks.measure import PeakMemory  # noqa: E402
from benchmarks.output import Report, write_csv  # noqa: E402
from dmlp.cli import ArgumentParser, run_cli  # noqa: E402
from dmlp.errors import InputError  # noqa: E402


class Probe:
    """Downstream view: a logistic probe (``baselines.fit_logistic``) trained on all training
    rows' labels, evaluated on the test set (features standardised with the training statistics)."""

    def __init__(self, data: Cifar, enabled: bool = True, max_iter: int = 100):
        self.enabled = enabled and data.X_test is not None
        self.max_iter, self.C = max_iter, data.n_classes
        if self.enabled:
            mu, sd = data.X.mean(0, keepdims=True), np.maximum(data.X.std(0, keepdims=True), 1e-6)
            self.Xs = (data.X - mu) / sd
            self.Xt = ((data.X_test - mu) / sd).astype(np.float32)
            self.yt = data.y_test

    def __call__(self, labels) -> float:
        if not self.enabled:
            return float("nan")
        import torch
        from dmlp.baselines import fit_logistic
        W, b = fit_logistic(self.Xs, labels, self.C, max_iter=self.max_iter, seed=0)
        with torch.no_grad():
            pred = (torch.from_numpy(self.Xt) @ W + b).argmax(1).numpy()
        return float((pred == self.yt).mean())


def run_dmlp(data: Cifar, noisy, mask, meta_idx, cfg, probe: Probe, *, auto: bool = False,
             meta_size: int = 1000, device: str = "cpu") -> Measure:
    """One DMLP run, as ``dmlp purify`` makes it (:func:`dmlp.purify_dataset`): with the clean
    meta rows ``meta_idx`` (``--meta-index``), or ``auto`` (``--meta auto --meta-size meta_size``)."""
    from dmlp.data import Dataset
    from dmlp.metrics import expected_calibration_error, roc_auc
    from dmlp.pipeline import purify_dataset
    y = data.y
    dataset = Dataset.from_arrays(data.X, noisy, true_labels=y, n_classes=data.n_classes, name="benchmark")
    with PeakMemory(device=device) as mem:
        t0 = time.perf_counter()
        out = purify_dataset(dataset, cfg, meta_index=None if auto else meta_idx,
                             meta_size=meta_size if auto else None, auto_meta=auto, device=device)
        seconds = time.perf_counter() - t0
    keep = np.ones(len(y), dtype=bool)
    keep[out.meta_indices] = False
    ev = keep & mask                      # purified rows among the clean split's non-meta rows
    labels = out.labels
    return Measure(float((labels[ev] == y[ev]).mean()), int((labels[ev] != noisy[ev]).sum()),
                   probe(labels), seconds, mem.peak_mb, int(ev.sum()),
                   expected_calibration_error(out.soft_labels[ev], y[ev]),
                   roc_auc(-out.label_quality[ev], noisy[ev] != y[ev]), out.result.history)


def _baseline_rows(setting, names, data: Cifar, noisy, mask, meta_idx, probe, noise_seed, knn, notes) -> List[dict]:
    """One row per baseline of ``names`` (a missing optional package: a note, no row)."""
    from dmlp.baselines import ALL_BASELINES, MissingDependencyError
    X, y, cache, rows = data.X, data.y, {}, []
    for name in names:
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            try:
                res = ALL_BASELINES[name](X, noisy, meta_idx, y[meta_idx], data.n_classes, seed=noise_seed,
                                          knn=knn, cache=cache, true_labels=y)
            except MissingDependencyError as exc:
                res, msg = None, f"{qt.BASELINE_NAMES.get(name, name)} skipped: {exc}"
                notes.extend([] if msg in notes else [msg])
            dt = time.perf_counter() - t0
        if res is None:
            continue
        note = f"oracle: β={res.info['beta']:g} chosen on the truth" if res.info and "beta" in res.info else ""
        if name == "cleanlab_relabel" and ("cv_probe_probs", noise_seed) in cache:
            note = (note + "; " if note else "") + "reuses the CV probe's out-of-fold probabilities"
        m = Measure(float((res.labels[mask] == y[mask]).mean()), int((res.labels[mask] != noisy[mask]).sum()),
                    probe(res.labels), dt, mem.peak_mb, int(mask.sum()))
        kind = "oracle" if name == "label_propagation_best_beta" else "baseline"
        rows.append(quality_row(setting, qt.BASELINE_NAMES.get(name, name), kind, [m], note=note))
        log(f"{setting} {name}: {100 * m.label_accuracy:.2f} % in {dt:.1f} s")
    return rows


def dmlp_runs(seeds: Sequence[int], meta_size: int, epochs: Optional[int], ablations: bool) -> list:
    """``(method, kind, config, seeds, auto, note)`` of every DMLP row of a setting."""
    from dmlp.config import load_config
    ep = {} if epochs is None else {"epochs": epochs}
    runs = [(qt.DMLP_DEFAULT, "dmlp", load_config("default", **ep), list(seeds), False, ""),
            (qt.DMLP_PAPER, "dmlp", load_config("paper", **ep), [seeds[0]], False, ""),
            (qt.DMLP_AUTO, "dmlp", load_config("default", **ep), [seeds[0]], True,
             f"no clean labels: its own {meta_size} meta rows (auto_meta_indices, given labels trusted); "
             "evaluated on its purified rows ∩ the clean split's non-meta rows; its probe uses no clean label")]
    for name, desc, over in (ABLATIONS if ablations else []):
        over = dict(over)
        base = over.pop("inherit", "default")          # script-accident rows start from paper
        runs.append((f"ablation: {name}", "ablation", load_config(base, **ep).replace(**over), [seeds[0]], False,
                     desc))
    return runs


def run_quality(data: Cifar, settings: Sequence[str], *, noise_seed: int = 0, meta_size: int = 1000,
                dmlp_seeds: Sequence[int] = (0, 1, 2), baselines: Optional[Sequence[str]] = None,
                run_dmlp_rows: bool = True, ablations: bool = True, probe: Optional[Probe] = None,
                epochs: Optional[int] = None, device: str = "cpu", notes: Optional[list] = None):
    """Quality rows for every setting, and ``{(setting, method): history}`` of every DMLP row."""
    from dmlp.baselines import ALL_BASELINES, cosine_knn
    from dmlp.meta import draw_meta_indices
    notes = notes if notes is not None else []
    probe = probe or Probe(data, enabled=False)
    y = data.y
    meta_idx = draw_meta_indices(y, meta_size, 0)
    mask = np.ones(len(y), dtype=bool)
    mask[meta_idx] = False
    names = list(ALL_BASELINES) if baselines is None else list(baselines)
    knn = None
    if {"knn_vote", "label_propagation_best_beta"} & set(names):
        t0 = time.perf_counter()
        knn = cosine_knn(data.X, 20)
        notes.append(f"The cosine kNN-20 graph ({time.perf_counter() - t0:.1f} s) is computed once and "
                     "shared by kNN vote and label propagation; their seconds exclude it.")
    runs = dmlp_runs(list(dmlp_seeds), meta_size, epochs, ablations) if run_dmlp_rows else []
    rows, histories = [], {}
    for setting in settings:
        noisy = benchmark_noise(data, *parse_setting(setting), noise_seed)
        log(f"{setting}: given labels {100 * (noisy[mask] == y[mask]).mean():.2f} % correct")
        rows.append(quality_row(setting, qt.NOISY, "given", [Measure(
            float((noisy[mask] == y[mask]).mean()), 0, probe(np.where(mask, noisy, y)), 0.0, 0.0,
            int(mask.sum()))], note="meta rows keep their clean labels in the probe"))
        rows += _baseline_rows(setting, names, data, noisy, mask, meta_idx, probe, noise_seed, knn, notes)
        for method, kind, cfg, seeds, auto, note in runs:
            ms = []
            for s in seeds:
                ms.append(run_dmlp(data, noisy, mask, meta_idx, cfg.replace(seed=s), probe, auto=auto,
                                   meta_size=meta_size, device=device))
                log(f"{setting} {method} seed {s}: {100 * ms[-1].label_accuracy:.2f} % in {ms[-1].seconds:.1f} s")
            histories[(setting, method)] = ms[0].history
            rows.append(quality_row(setting, method, kind, ms, ",".join(map(str, seeds)), note))
    return rows, histories


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="benchmarks/quality.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke test: sym50, a 10k-row subset, 3 epochs, one DMLP seed, no ablations or probe")
    p.add_argument("--data", default=DEFAULT_DATA, help=f"CIFAR-10 feature folder (default {DEFAULT_DATA}, "
                   "relative to the repo root)")
    p.add_argument("--settings", default=None, help="comma-separated, e.g. sym50,asym40 (default all five)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (DivideMix protocol); also the baselines' seed")
    p.add_argument("--dmlp-seeds", default="0,1,2", help="config seeds of the DMLP default rows (mean ± std)")
    p.add_argument("--meta-size", type=int, default=1000, help="clean meta rows (draw_meta_indices, seed 0)")
    p.add_argument("--epochs", type=int, default=None, help="override DMLP epochs")
    p.add_argument("--subset", type=int, default=None, help="use a random subset of this many training rows")
    p.add_argument("--skip-baselines", action="store_true", help="no baseline rows")
    p.add_argument("--baselines", default=None, help="comma-separated subset of the baselines")
    p.add_argument("--skip-dmlp", action="store_true", help="no DMLP rows (baselines only)")
    p.add_argument("--skip-ablations", action="store_true", help="no ablation rows")
    p.add_argument("--no-probe", action="store_true", help="skip the downstream linear probe")
    p.add_argument("--device", "--quality-device", dest="device", default="cpu",
                   help="device of the DMLP rows (baselines and probes run on the CPU)")
    p.add_argument("--out-dir", default=None, help="where quality.md, the CSVs and the plots go "
                   "(default runs/benchmarks/; with --quick runs/benchmarks-quick/)")
    return p


def _options(args):
    """``(settings, dmlp seeds, subset, epochs, meta size, baseline names)`` after --quick."""
    from dmlp.baselines import ALL_BASELINES
    settings = parse_settings(args.settings, ("sym50",) if args.quick else SETTINGS)
    seeds = [int(s) for s in args.dmlp_seeds.split(",") if s.strip()]
    if args.quick and args.dmlp_seeds == "0,1,2":
        seeds = [0]
    if not seeds:
        raise InputError("--dmlp-seeds: give at least one seed")
    names = None
    if args.skip_baselines:
        names = []
    elif args.baselines:
        names = [b.strip() for b in args.baselines.split(",") if b.strip()]
        unknown = [b for b in names if b not in ALL_BASELINES]
        if unknown:
            raise InputError(f"--baselines: unknown baseline {unknown[0]!r} (known: {', '.join(ALL_BASELINES)})")
    subset = args.subset or (10_000 if args.quick else None)
    epochs = args.epochs or (3 if args.quick else None)
    meta_size = 500 if args.quick and args.meta_size == 1000 else args.meta_size
    return settings, seeds, subset, epochs, meta_size, names


def _write_histories(report: Report, histories: dict, settings, out_dir: Path, notes: list) -> None:
    write_csv(out_dir / "quality_history.csv", qt.history_rows(histories), qt.HISTORY_FIELDS)
    for setting in settings:
        png = qt.plot_histories(histories, out_dir / f"accuracy_per_epoch_{setting}.png", setting)
        if png is None:
            notes.append("Plots skipped: matplotlib is not installed (pip install matplotlib).")
            return
        report.add(f"![label accuracy per epoch, {setting}](accuracy_per_epoch_{setting}.png)  \n"
                   f"Label accuracy per epoch of DMLP default and paper on {setting} (accuracy of the views' "
                   "averaged labels, before the final decision); every DMLP run's history is in "
                   "quality_history.csv.")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    settings, seeds, subset, epochs, meta_size, names = _options(args)
    data = load_cifar(args.data, subset, test_subset=2000 if args.quick else None)   # before any output
    out_dir = Path(args.out_dir) if args.out_dir else REPO_ROOT / "runs" / ("benchmarks-quick" if args.quick
                                                                            else "benchmarks")
    out_dir.mkdir(parents=True, exist_ok=True)
    report, notes = Report(out_dir / "quality.md"), [f"Data: {data.note}."] if data.note else []
    report.add(header("DMLP quality against the baselines", "benchmarks/quality.py", argv, args.device))
    rows, histories = run_quality(
        data, settings, noise_seed=args.seed, meta_size=meta_size, dmlp_seeds=seeds, baselines=names,
        run_dmlp_rows=not args.skip_dmlp, ablations=not (args.skip_ablations or args.quick),
        probe=Probe(data, enabled=not (args.no_probe or args.quick)), epochs=epochs, device=args.device,
        notes=notes)
    report.add("## Quality: summary (label accuracy, %)")
    report.add(qt.summary_table(rows, settings, verdicts=not args.quick))
    report.add(qt.summary_caption(len(data.y) - meta_size, meta_size, args.seed, seeds, args.quick))
    report.add("## Quality: all methods per setting")
    report.add(qt.quality_table(rows))
    report.add(qt.COLUMNS_CAPTION)
    if not args.skip_dmlp:
        report.add("## DMLP soft labels and label quality")
        report.add(qt.diagnostics_table(rows))
        report.add(qt.DIAGNOSTICS_CAPTION)
        report.add("## DMLP label accuracy per epoch")
        _write_histories(report, histories, settings, out_dir, notes)
    if epochs is not None:
        notes.append(f"DMLP epochs overridden to {epochs} (config: 100).")
    write_csv(out_dir / "benchmark_quality.csv", rows, qt.QUALITY_FIELDS)
    missing = uncovered_config_differences()
    if missing:
        notes.append("Config keys where default differs from paper without an ablation row: "
                     + ", ".join(f"{k} ({a!r} vs {b!r})" for k, (a, b) in missing.items()) + ".")
    if notes:
        report.add("## Notes\n\n" + "\n".join(f"- {n}" for n in notes))
    log(f"wrote {report.write()}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
