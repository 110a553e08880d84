#!/usr/bin/env python3
"""Make a noisy-label data folder: the same as ``dmlp noise``, runnable from a checkout without installing.

See ``dmlp noise --help`` and docs/data_tools.md.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package

from dmlp.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["noise", *sys.argv[1:]]))
