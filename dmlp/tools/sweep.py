"""``dmlp sweep``: the standard noise settings through DMLP, one table at the end.

    dmlp sweep SRC WORK [--sym-rates 0.2,0.5,0.8,0.9] [--asym-rates 0.4] [--seeds 0] [purify flags]

For each seed and rate: ``dmlp noise --features-dir SRC --out WORK/data/NAME --mode M --rate R``,
then ``dmlp purify --data WORK/data/NAME --out WORK/runs/NAME [purify flags]``; logs go to
``WORK/logs/NAME.log``, and the table (setting, measured noise, label accuracy before -> after,
changed rows, seconds) to ``WORK/sweep.md`` and ``WORK/sweep.csv``.  Each setting prints one
line when it starts and one when it ends, so a sweep of several minutes always shows where it
is.  A failed setting is marked ``failed`` in the table and the exit code is 1.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from ..cli import ArgumentParser
from ..errors import InputError

PROG = "dmlp sweep"


def _rates(text: str, flag: str) -> list:
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{flag}: expected comma-separated rates such as 0.2,0.5, got {text!r}") from None
    if any(not 0.0 <= r <= 1.0 for r in rates):
        raise InputError(f"{flag}: rates must lie in [0, 1], got {text}")
    return rates


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="folder with trainfeatures.npy and correctlabels.npy")
    p.add_argument("work", metavar="WORK", help="folder for the noisy data, runs, logs and the table")
    p.add_argument("--sym-rates", default="0.2,0.5,0.8,0.9", help="symmetric noise rates (default %(default)s)")
    p.add_argument("--asym-rates", default="0.4", help="asymmetric noise rates ('' for none; default %(default)s)")
    p.add_argument("--seeds", default="0", help="noise seeds, comma-separated (default %(default)s)")
    p.add_argument("--dataset", default="cifar10", help="cifar10 or cifar100 (the asymmetric rule)")
    p.add_argument("--skip-done", action="store_true", help="keep settings whose summary.json exists")
    return p


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
    if not src.is_dir():
        raise InputError(f"SRC {src}: not a folder")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds.strip() else []
    settings = [(mode, rate, seed) for seed in seeds
                for mode, rates in (("sym", _rates(args.sym_rates, "--sym-rates")),
                                    ("asym", _rates(args.asym_rates, "--asym-rates")))
                for rate in rates]
    if not settings:
        raise InputError("no settings to run (--sym-rates, --asym-rates and --seeds are empty)")
    for sub in ("data", "runs", "logs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (mode, rate, seed) in enumerate(settings, 1):
        name = f"{mode}_{rate:.2f}_s{seed}"
        data, out, log = work / "data" / name, work / "runs" / name, work / "logs" / f"{name}.log"
        rows.append((name, data, out))
        if args.skip_done and (out / "summary.json").exists():
            print(f"[{i}/{len(settings)}] {name}: kept (summary.json exists)", flush=True)
            continue
        print(f"[{i}/{len(settings)}] {name}: noisy labels, then purify (log: {log})", flush=True)
        (out / "summary.json").unlink(missing_ok=True)     # a stale summary must not pass as this run's
        t0 = time.perf_counter()
        ok = _run_logged(make_noisy_labels.main, ["--features-dir", str(src), "--out", str(data), "--mode", mode,
                                                  "--rate", str(rate), "--seed", str(seed), "--dataset", args.dataset],
                         log) and _run_logged(run.main, ["--data", str(data), "--out", str(out), "--quiet", *purify_flags], log)
        print(f"[{i}/{len(settings)}] {name}: {'done' if ok else 'FAILED, see ' + str(log)} "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)
    specs = [f"{name}={data}:{out}" for name, data, out in rows]
    rc = sweep_table.main(["--out-md", str(work / "sweep.md"), "--out-csv", str(work / "sweep.csv"), *specs])
    print(f"table: {work / 'sweep.md'}, {work / 'sweep.csv'}")
    return rc


if __name__ == "__main__":
    from ..cli import run_cli
    sys.exit(run_cli(main))
