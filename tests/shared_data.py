"""Where the tests find the shared data: ``../shared/data`` next to the checkout, or the folder
``DMLP_SHARED_DATA`` names (holding ``cifar10-effnet-lite2/`` and ``cifar10-jpeg.tar.gz``)."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DMLP_SHARED_DATA", ROOT.parent / "shared" / "data"))
SHARED_CIFAR10 = SHARED_DATA / "cifar10-effnet-lite2"     # the CIFAR-10 features
SHARED_JPEGS = SHARED_DATA / "cifar10-jpeg.tar.gz"         # the CIFAR-10 images
HOW = "set DMLP_SHARED_DATA to the folder holding cifar10-effnet-lite2/ and cifar10-jpeg.tar.gz"
