#!/usr/bin/env python
"""DMLP benchmark: quality table (CIFAR-10 features, baselines, DMLP configs, ablations), speed
and Clothing1M-scale tables.  Writes docs/benchmarks.md, docs/benchmark_quality.csv and
docs/benchmark_speed.csv (``--out-dir`` elsewhere).  The code is in ``benchmarks/`` at the
repository root (not part of the installed package).

    python scripts/benchmark.py --quick                       # smoke test, seconds
    python scripts/benchmark.py --settings sym50,asym40 --skip-baselines
    python scripts/benchmark.py --all                         # quality + speed + scale
    python scripts/benchmark.py --speed --scale --device cuda # GPU speed/scale tables
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
