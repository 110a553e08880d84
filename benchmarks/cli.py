"""Command-line entry point of the benchmark harness (``scripts/benchmark.py`` calls it).

    python scripts/benchmark.py --quick                       # smoke test, seconds
    python scripts/benchmark.py --settings sym50,asym40 --skip-baselines
    python scripts/benchmark.py --all                         # quality + speed + scale
    python scripts/benchmark.py --speed --scale --device cuda # GPU speed/scale tables
"""
from __future__ import annotations

from dmlp.cli import run_cli

from . import harness


def main(argv=None) -> int:
    """Run the benchmark with command-line arguments ``argv`` (default: ``sys.argv[1:]``).

    Parameters
    ----------
    argv : list of str, optional
        The arguments, as :func:`benchmarks.harness.build_parser` reads them.

    Returns
    -------
    int
        The exit code: 0 on success, 2 on bad input (one ``error:`` line on stderr), 1 when the
        environment fails (an ``OSError``), 130 on interruption.
    """
    return run_cli(harness.main, argv)
