#!/usr/bin/env python3
"""DMLP: purify noisy labels from precomputed features (IPC + EAC); the same as ``dmlp purify``.

    python DMLP.py                      # the embedded CIFAR-10 sym 20 % demo in labels_cifar10/
    python DMLP.py --data DIR           # any data folder: the default method, classes from the labels
"""
import sys

if __name__ == "__main__":
    from dmlp.heap import restart_with_huge_pages
    restart_with_huge_pages()           # large allocations on huge pages (dmlp/heap.py)
    from dmlp.run import cli
    sys.exit(cli(prog="DMLP.py"))
