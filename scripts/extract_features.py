#!/usr/bin/env python3
"""Extract features from images with a self-supervised checkpoint: the same as ``dmlp extract``, runnable from a checkout without installing.

See ``dmlp extract --help`` and docs/data_tools.md.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package

from dmlp.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
