#!/usr/bin/env python
"""Baselines-only label-accuracy table: a thin wrapper over ``scripts/benchmark.py``.

Superseded by the benchmark; kept so that old commands still work.  Equivalent to::

    python scripts/benchmark.py --skip-dmlp --no-probe --out-dir runs/baselines [ARGS]

e.g. ``python scripts/run_baselines.py --settings sym50 --baselines knn_vote,ridge_on_meta``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cli import main as cli  # noqa: E402
from benchmarks.harness import REPO_ROOT  # noqa: E402

if __name__ == "__main__":
    argv = ["--skip-dmlp", "--no-probe", *sys.argv[1:]]
    if not any(a == "--out-dir" or a.startswith("--out-dir=") for a in argv):
        argv += ["--out-dir", str(REPO_ROOT / "runs" / "baselines")]
    sys.exit(cli(argv))
