"""Does DMLP beat the baselines on other feature sets too?  One table across feature sets.

    python benchmarks/feature_set_quality.py projected=DIR,raw=DIR,c100=DIR [--settings ...]
    python benchmarks/feature_set_quality.py ... --baselines-from runs/benchmarks/feature_sets.csv

The first feature set's default row is the mean of ``--dmlp-seeds`` (shown ``mean ± sd``); the
other sets and the other DMLP rows use the first of those seeds.

Each feature set is a folder with ``trainfeatures.npy`` and ``correctlabels.npy`` (and
``superclass.npy`` for a 100-class set, whose ``asym`` setting then flips a row to the next fine
class of its superclass).  Every method reads the features after the same centring and RMS
scaling (``dmlp.scaling``, "rms"): DMLP applies it itself, and the baselines are given it so
that none is judged on the units of the features.  No ablations, no probe: the full per-setting
detail of one feature set is ``benchmarks/quality.py``.  Writes ``OUT_DIR/feature_sets.md`` and
``feature_sets.csv`` after every feature set (default ``runs/benchmarks/``).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Dict, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loader import (REPO_ROOT, load_cifar, log, parse_feature_sets, parse_settings,  # noqa: E402
                               require_cifar)
from benchmarks.output import md_table, write_csv  # noqa: E402
from benchmarks.quality import run_quality  # noqa: E402
from benchmarks.quality_tables import DMLP_AUTO, DMLP_DEFAULT, DMLP_PAPER, NOISY, QUALITY_FIELDS  # noqa: E402
from dmlp.cli import ArgumentParser, run_cli  # noqa: E402
from dmlp.errors import InputError  # noqa: E402


def run_feature_sets(feature_sets: Dict[str, str], settings_of: Dict[str, Sequence[str]], *,
                     meta_size: int = 1000, noise_seed: int = 0, epochs=None,
                     dmlp_seeds: Sequence[int] = (0,), baselines=None) -> List[dict]:
    """Quality rows of every feature set (each row gains a ``feature_set`` key).

    ``dmlp_seeds``: the config seeds of the DMLP default rows (their mean and sd are reported);
    ``baselines``: names of the baselines to run (None: all).
    """
    from dmlp.scaling import fit_feature_scaling
    rows = []
    for name, folder in feature_sets.items():
        data = load_cifar(folder)
        data.X = fit_feature_scaling(data.X, method="rms").apply(data.X)
        log(f"feature set {name}: {data.X.shape[0]} x {data.X.shape[1]}, {data.n_classes} classes")
        found, _ = run_quality(data, settings_of[name], noise_seed=noise_seed, meta_size=meta_size,
                               dmlp_seeds=list(dmlp_seeds), ablations=False, epochs=epochs,
                               baselines=baselines)
        rows += [dict(r, feature_set=name, dims=data.X.shape[1], classes=data.n_classes) for r in found]
    return rows


def feature_set_table(rows: List[dict]) -> str:
    """One Markdown table: a row per (feature set, setting), a column per method."""
    methods = [NOISY] + [m for m in dict.fromkeys(r["method"] for r in rows)
                         if m not in (NOISY, DMLP_DEFAULT, DMLP_PAPER, DMLP_AUTO)] + [DMLP_AUTO, DMLP_PAPER, DMLP_DEFAULT]
    methods = [m for m in methods if any(r["method"] == m for r in rows)]
    keys = list(dict.fromkeys((r["feature_set"], r["setting"]) for r in rows))
    table = []
    for fs, setting in keys:
        cells = {r["method"]: r for r in rows if r["feature_set"] == fs and r["setting"] == setting}
        best = max((cells[m]["label_accuracy"] for m in methods
                    if m in cells and m not in (NOISY, DMLP_DEFAULT, DMLP_PAPER, DMLP_AUTO)), default=float("nan"))
        line = [fs, setting] + [_cell(cells[m]) if m in cells else "–" for m in methods]
        default = cells.get(DMLP_DEFAULT, {}).get("label_accuracy", float("nan"))
        table.append(line + [f"{100 * (default - best):+.2f}"])
    return md_table(["feature set", "setting", *methods, "default − best baseline"], table)


def _cell(row: dict) -> str:
    """``"93.58"``, or ``"93.58 ± 0.04"`` for a row averaged over several seeds."""
    sd = row.get("label_accuracy_std", float("nan"))
    text = f"{100 * row['label_accuracy']:.2f}"
    return text if sd != sd else f"{text} ± {100 * sd:.2f}"


def baseline_rows_from(path: str, feature_sets: Sequence[str]) -> List[dict]:
    """The baseline rows of an earlier run's ``feature_sets.csv``, for the named feature sets.

    The baselines do not depend on DMLP's config, so a change of DMLP is measured without
    running them again.  Numbers are read back as floats.

    Raises
    ------
    InputError
        The file is missing or holds no baseline row of these feature sets.
    """
    import csv
    try:
        with open(path, newline="") as fh:
            found = [r for r in csv.DictReader(fh)
                     if r["kind"] in ("baseline", "oracle") and r["feature_set"] in feature_sets]
    except OSError as exc:
        raise InputError(f"--baselines-from: cannot read {path} ({exc.strerror})") from None
    if not found:
        raise InputError(f"--baselines-from: {path} has no baseline row of {', '.join(feature_sets)}")
    numeric = ("label_accuracy", "label_accuracy_std", "n_changed", "probe_test_accuracy",
               "probe_test_accuracy_std", "seconds", "seconds_std", "peak_rss_increase_mb",
               "soft_label_ece", "label_quality_auc")
    return [{k: (float(v) if k in numeric and v != "" else v) for k, v in r.items()} for r in found]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="benchmarks/feature_set_quality.py", description=__doc__.split("\n\n")[0])
    p.add_argument("feature_sets", metavar="NAME=DIR[,NAME=DIR...]",
                   help="the feature folders (a 100-class set, with superclass.npy, skips sym90)")
    p.add_argument("--settings", default=None, help="comma-separated, e.g. sym50,asym40 (default all five)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (DivideMix protocol); also the baselines' seed")
    p.add_argument("--dmlp-seeds", default="0,1,2", help="config seeds of the first set's DMLP default row")
    p.add_argument("--meta-size", type=int, default=1000, help="clean meta rows (draw_meta_indices, seed 0)")
    p.add_argument("--epochs", type=int, default=None, help="override DMLP epochs")
    p.add_argument("--baselines-from", default=None, metavar="FEATURE_SETS.csv",
                   help="take the baseline rows from an earlier run's feature_sets.csv instead of running them "
                        "again (they do not depend on DMLP's config)")
    p.add_argument("--out-dir", default=None, help="where feature_sets.md/.csv go (default runs/benchmarks/)")
    return p


def _write(args, argv, rows, out_dir: Path) -> None:
    command = " ".join(["python benchmarks/feature_set_quality.py", *map(shlex.quote, argv)])
    text = ("# DMLP across feature sets\n\nCommand: `" + command + "`\n\n" + feature_set_table(rows) + "\n\n"
            f"Label accuracy (%) on the non-meta rows ({args.meta_size:,} clean meta rows drawn with seed 0, "
            f"noise seed {args.seed}); every method reads the features centred and RMS-scaled. Last column: the DMLP "
            "default minus the best baseline (the oracle label propagation included)."
            + (f" Baseline columns read from `{args.baselines_from}` (an earlier run of this command; the "
               "baselines do not depend on DMLP's config)." if args.baselines_from else "") + "\n")
    print(text)
    (out_dir / "feature_sets.md").write_text(text)
    write_csv(out_dir / "feature_sets.csv", rows, ["feature_set", "dims", "classes"] + list(QUALITY_FIELDS))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    sets = parse_feature_sets(args.feature_sets)
    found = {name: require_cifar(folder) for name, folder in sets.items()}   # before any output
    chosen = parse_settings(args.settings)
    settings_of = {name: [x for x in chosen if not (x == "sym90" and (found[name] / "superclass.npy").exists())]
                   for name in sets}
    seeds = [int(s) for s in args.dmlp_seeds.split(",") if s.strip()]
    if not seeds:
        raise InputError("--dmlp-seeds: give at least one seed")
    reused = baseline_rows_from(args.baselines_from, list(sets)) if args.baselines_from else []
    out_dir = Path(args.out_dir) if args.out_dir else REPO_ROOT / "runs" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (name, folder) in enumerate(sets.items()):   # the table so far is written after every set
        rows += run_feature_sets({name: folder}, settings_of, meta_size=args.meta_size, noise_seed=args.seed,
                                 epochs=args.epochs, dmlp_seeds=seeds if i == 0 else seeds[:1],
                                 baselines=[] if reused else None)
        rows += [r for r in reused if r["feature_set"] == name and r["setting"] in settings_of[name]]
        _write(args, argv, rows, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
