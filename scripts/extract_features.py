#!/usr/bin/env python
"""Extract trainfeatures.npy / testfeatures.npy from images with a SimCLR/MoCo checkpoint.

See docs/feature_extraction.md.  Example:
    python scripts/extract_features.py --input cifar10-jpeg/train --checkpoint ckpt.pth \
        --out data/cifar10/trainfeatures.npy --labels-out data/cifar10/correctlabels.npy
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from dmlp.cli import run_cli  # noqa: E402
from dmlp.features.extract import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
