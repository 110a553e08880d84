#!/usr/bin/env python3
"""DMLP: purify noisy labels from precomputed features (IPC + EAC).  See README.md.

    python DMLP.py                                  # CIFAR-10 sym 20 % demo in labels_cifar10/
    python DMLP.py --config cifar10_sym50 --data DIR --out OUT
"""
import sys

from dmlp.run import cli

if __name__ == "__main__":
    sys.exit(cli())
