#!/usr/bin/env python
"""DMLP benchmark, one question per script of ``benchmarks/`` (the same as ``dmlp benchmark``).

    python scripts/benchmark.py --help                      # the questions
    python scripts/benchmark.py quality --quick             # smoke test of the quality table, seconds
    python scripts/benchmark.py speed                       # seconds per phase on this hardware
    python scripts/benchmark.py scale --sizes small         # Clothing1M-shaped synthetic data
    python scripts/benchmark.py gpu-check --device cuda     # the prepared GPU check

Outputs go to ``runs/benchmarks/`` (``--out-dir`` elsewhere).  The code is in ``benchmarks/`` at
the repository root (not part of the installed package).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
