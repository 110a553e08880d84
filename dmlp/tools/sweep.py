"""``dmlp sweep``: a list of noise settings through DMLP, one table at the end.

    dmlp sweep SRC WORK [--settings sym20,sym50,asym40,instance40] [--seeds 0]
                        [--dataset cifar10|cifar100] [--flip-map FILE] [--skip-done] [purify flags]

SRC holds trainfeatures.npy and correctlabels.npy, of any class count.  A setting is a mode
(sym, asym, instance) followed by its rate: a whole number is a percent (sym20), a number with
a decimal point a fraction (sym0.2).  Default: sym20,sym50,sym80,sym90, plus asym40 when
--dataset or --flip-map gives the asymmetric flips.

For each seed and setting: ``dmlp noise --features-dir SRC --out WORK/data/NAME --mode M --rate R
--seed S [--dataset D] [--flip-map F]``, then ``dmlp purify --data WORK/data/NAME --out
WORK/runs/NAME --quiet [purify flags]``; logs go to ``WORK/logs/NAME.log``, and the table
(setting, measured noise, label accuracy before -> after, changed rows among the purified ones,
seconds) to ``WORK/sweep.md`` and ``WORK/sweep.csv``.  Each setting prints one line when it
starts and one when it ends.  A failed setting is marked ``failed`` in the table and the exit
code is 1.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from pathlib import Path

from ..cli import ArgumentParser
from ..errors import InputError
from ..noise import MODES

PROG = "dmlp sweep"
SYM_DEFAULT = "sym20,sym50,sym80,sym90"
ASYM_DEFAULT = "asym40"
_SETTING = re.compile(rf"^({'|'.join(MODES)})(\d+(?:\.\d*)?)$")


def parse_settings(text: str) -> list:
    """``'sym20,asym0.4'`` -> ``[('sym', 0.2), ('asym', 0.4)]``.

    Parameters
    ----------
    text : str
        Comma-separated settings: a mode of :data:`dmlp.noise.MODES` followed by a rate, a
        percent when a whole number (``sym20``), a fraction when written with a decimal point
        (``sym0.2``).

    Returns
    -------
    list of (str, float)
        (mode, rate in [0, 1]) in the order given.

    Raises
    ------
    InputError
        Naming ``--settings`` and the setting that cannot be read.
    """
    settings = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        match = _SETTING.match(item)
        if not match:
            raise InputError(f"--settings: cannot read {item!r} (expected a mode of {', '.join(MODES)} "
                             "and a rate, e.g. sym20 or sym0.2)")
        mode, number = match.groups()
        rate = float(number) if "." in number else int(number) / 100
        if not 0.0 <= rate <= 1.0:
            raise InputError(f"--settings: rate of {item!r} is not in [0, 1] (write a percent as a whole "
                             "number, sym20, or a fraction with a decimal point, sym0.2)")
        settings.append((mode, rate))
    return settings


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="folder with trainfeatures.npy and correctlabels.npy")
    p.add_argument("work", metavar="WORK", help="folder for the noisy data, runs, logs and the table")
    p.add_argument("--settings", help=f"comma-separated MODE+RATE, e.g. sym20,asym0.4,instance40 (default "
                                      f"{SYM_DEFAULT}, plus {ASYM_DEFAULT} with --dataset or --flip-map)")
    p.add_argument("--seeds", default="0", help="noise seeds, comma-separated (default %(default)s)")
    p.add_argument("--dataset", help="cifar10 or cifar100: the class count and asym preset (default: none, "
                                     "the class count comes from correctlabels.npy)")
    p.add_argument("--flip-map", metavar="FILE", help="the asym flips (JSON or from,to CSV, see dmlp noise)")
    p.add_argument("--skip-done", action="store_true", help="keep settings whose summary.json exists")
    return p


def _seeds(text: str) -> list:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds: expected comma-separated integers such as 0,1,2, got {text!r}") from None


def _check_source(args) -> str:
    """Validate SRC and the asym flips before anything runs; one line describing SRC."""
    from ..flip_map import read_flip_map
    from .make_noisy_labels import load_source, source_class_count
    src = Path(args.src)
    if not src.is_dir():
        raise InputError(f"SRC {src}: not a folder")
    correct, feats = load_source(src)
    n_classes, origin = source_class_count(correct, args.dataset)
    if args.flip_map:
        read_flip_map(args.flip_map, n_classes)
    return f"{feats.shape[0]} rows, {feats.shape[1]} features, {n_classes} classes (from {origin})"


def plan(args) -> list:
    """``[(name, mode, rate, seed)]`` of the sweep, checked: every asym setting has its flips."""
    has_flips = bool(args.dataset or args.flip_map)
    text = args.settings if args.settings is not None else \
        SYM_DEFAULT + ("," + ASYM_DEFAULT if has_flips else "")
    settings = parse_settings(text)
    if any(mode == "asym" for mode, _ in settings) and not has_flips:
        raise InputError("--settings: asym needs --flip-map FILE (or --dataset cifar10|cifar100 for a CIFAR preset)")
    runs = [(f"{mode}_{rate:.2f}_s{seed}", mode, rate, seed) for seed in _seeds(args.seeds) for mode, rate in settings]
    if not runs:
        raise InputError("no settings to run (--settings or --seeds is empty)")
    names = [r[0] for r in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"--settings: {', '.join(twice)} given twice (rates are told apart to 0.01)")
    return runs


def _check_purify_flags(flags: list) -> None:
    """The flags for ``dmlp purify``, parsed as it will: an unknown flag fails before any run."""
    from ..run import build_parser as purify_parser
    parsed = purify_parser(f"{PROG} (purify flags)").parse_args(flags)
    if parsed.data is not None or parsed.out is not None:
        raise InputError("--data/--out: the sweep gives each purify run its own (WORK/data/NAME, WORK/runs/NAME)")


def _run_logged(main, argv, log: Path) -> bool:
    """Run a tool's ``main`` with its output in ``log``; True when it succeeded."""
    from ..cli import run_cli
    with open(log, "a") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        return run_cli(main, argv) == 0


def main(argv=None) -> int:
    """Run the sweep; returns 0 when every setting succeeded, 1 otherwise."""
    from .. import run, sweep_table
    from . import make_noisy_labels
    args, purify_flags = build_parser().parse_known_args(argv)
    src, work = Path(args.src), Path(args.work)
    runs = plan(args)
    _check_purify_flags(purify_flags)
    print(f"{src}: {_check_source(args)}; {len(runs)} settings", flush=True)
    dataset_flags = ["--dataset", args.dataset] if args.dataset else []
    flip_flags = ["--flip-map", str(Path(args.flip_map).resolve())] if args.flip_map else []
    for sub in ("data", "runs", "logs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (name, mode, rate, seed) in enumerate(runs, 1):
        data, out, log = work / "data" / name, work / "runs" / name, work / "logs" / f"{name}.log"
        rows.append((name, data, out))
        if args.skip_done and (out / "summary.json").exists():
            print(f"[{i}/{len(runs)}] {name}: kept (summary.json exists)", flush=True)
            continue
        print(f"[{i}/{len(runs)}] {name}: noisy labels, then purify (log: {log})", flush=True)
        (out / "summary.json").unlink(missing_ok=True)     # a stale summary must not pass as this run's
        t0 = time.perf_counter()
        flags = dataset_flags + (flip_flags if mode == "asym" else [])
        ok = _run_logged(make_noisy_labels.main, ["--features-dir", str(src), "--out", str(data), "--mode", mode,
                                                  "--rate", str(rate), "--seed", str(seed), *flags], log) \
            and _run_logged(run.main, ["--data", str(data), "--out", str(out), "--quiet", *purify_flags], log)
        print(f"[{i}/{len(runs)}] {name}: {'done' if ok else 'FAILED, see ' + str(log)} "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)
    specs = [f"{name}={data}:{out}" for name, data, out in rows]
    rc = sweep_table.main(["--out-md", str(work / "sweep.md"), "--out-csv", str(work / "sweep.csv"), *specs])
    print(f"table: {work / 'sweep.md'}, {work / 'sweep.csv'}")
    return rc


if __name__ == "__main__":
    from ..cli import run_cli
    sys.exit(run_cli(main))
