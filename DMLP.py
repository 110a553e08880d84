#!/usr/bin/env python3
"""DMLP: purify noisy labels from precomputed features (IPC + EAC); the same as ``dmlp purify``.

    python DMLP.py                      # the embedded CIFAR-10 sym 20 % demo in labels_cifar10/
    python DMLP.py --data DIR           # any data folder: the default method, classes from the labels
"""
import sys

from dmlp.run import cli

if __name__ == "__main__":
    sys.exit(cli(prog="DMLP.py"))
