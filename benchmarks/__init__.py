"""The benchmark harness of DMLP: quality, speed and scale tables over the shared features.

It lives at the repository root, beside ``dmlp/``, and is not installed with the package: it
needs the repository's data layout and writes into ``docs/``.  Run it with
``python scripts/benchmark.py`` (see :mod:`benchmarks.cli`).
"""
