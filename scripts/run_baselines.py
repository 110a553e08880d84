#!/usr/bin/env python
"""Baselines-only label-accuracy table: a thin wrapper over ``benchmarks/quality.py``.

The baselines part of the quality benchmark alone.  Equivalent to::

    python benchmarks/quality.py --skip-dmlp --no-probe --out-dir runs/baselines [ARGS]

e.g. ``python scripts/run_baselines.py --settings sym50 --baselines knn_vote,ridge_on_meta``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loader import REPO_ROOT  # noqa: E402
from benchmarks.quality import main  # noqa: E402
from dmlp.cli import run_cli  # noqa: E402

if __name__ == "__main__":
    argv = ["--skip-dmlp", "--no-probe", *sys.argv[1:]]
    if not any(a == "--out-dir" or a.startswith("--out-dir=") for a in argv):
        argv += ["--out-dir", str(REPO_ROOT / "runs" / "baselines")]
    sys.exit(run_cli(main, argv))
