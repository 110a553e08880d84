"""``dmlp export``: write a labels .npy (e.g. OUT/purified_labels.npy) as the noise file DivideMix / C2D read.

DivideMix opens DATA_PATH/<r as %.1f>_<mode>.json (e.g. 0.5_sym.json), C2D opens
DATA_PATH/<r as %.2f>_<mode>.json (e.g. 0.50_sym.json); both silently generate *new random
noise* when their file is missing, so the names written here match theirs exactly.  For each
file written, the training command whose --data_path, --r and --noise_mode open it is printed:
run that one.  See docs/data_tools.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import ArgumentParser as _Parser, run_cli
from ..data import check_labels, load_npy
from ..errors import InputError
from ..export import (DATASETS, TRAINERS, expand_formats, export_noise_files, labels_from_npy,
                      trainer_command, trainer_dataset)

PROG = "dmlp export"


def parse_args(argv=None):
    p = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", required=True, metavar="FILE.npy",
                   help="labels to export: N ints, or N x C float scores (argmax is taken)")
    p.add_argument("--data-path", required=True, metavar="DIR",
                   help="the trainer's --data_path (the CIFAR python folder); the JSON goes here")
    p.add_argument("--r", required=True, metavar="R",
                   help="the --r the trainer will be run with (only used in the file name)")
    p.add_argument("--noise-mode", required=True, metavar="MODE",
                   help="the --noise_mode the trainer will be run with, e.g. sym or asym")
    p.add_argument("--format", default="both", metavar="dividemix|c2d|both",
                   help="which consumer's file name to write (default both)")
    p.add_argument("--dataset", choices=tuple(DATASETS), default=None,
                   help="the trainer's --dataset in the printed command (default: cifar100 when "
                        "--n-classes or a label says more than 10 classes, else cifar10)")
    p.add_argument("--n-classes", type=int, default=None, metavar="C",
                   help="check labels are in 0..C-1 (e.g. 10 for CIFAR-10, 100 for CIFAR-100)")
    p.add_argument("--correct-labels", metavar="FILE.npy",
                   help="optional true labels (e.g. correctlabels.npy): checks the row count and "
                        "prints the label accuracy of the exported labels")
    p.add_argument("--mkdir", action="store_true",
                   help="create --data-path if it does not exist (by default a missing folder is an "
                        "error: a typo there would leave the trainer without its noise file)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing noise file of the same name (refused by default, it "
                        "may be the original noise file of a published run)")
    return p.parse_args(argv)


#: Rows of the CIFAR-10/100 training set, which DivideMix and C2D index their noise file by.
CIFAR_TRAIN_ROWS = 50_000


def main(argv=None):
    args = parse_args(argv)
    formats = expand_formats(args.format)
    if args.n_classes is not None and args.n_classes < 2:
        raise InputError(f"--n-classes: must be at least 2, got {args.n_classes}")
    correct = None
    if args.correct_labels:
        correct = check_labels(load_npy(args.correct_labels, what="--correct-labels", mmap=False),
                               "--correct-labels", n_classes=args.n_classes)
    labels = labels_from_npy(args.labels, n_classes=args.n_classes,
                             n_rows=None if correct is None else correct.shape[0],
                             rows_of="--correct-labels")
    try:
        dataset = trainer_dataset(labels, args.dataset, args.n_classes)
    except InputError as exc:
        raise exc.for_flags({"dataset": "--dataset"}) from None
    written = export_noise_files(labels, args.data_path, args.r, args.noise_mode,
                                 formats=formats, overwrite=args.overwrite,
                                 mkdir=args.mkdir)
    extra = ""
    if correct is not None:
        extra = f", label accuracy {100 * float((labels == correct).mean()):.2f}%"
    for fmt, path in zip(formats, written):
        print(f"wrote {path} ({labels.shape[0]} labels{extra})")
        print(f"  train {TRAINERS[fmt][0]} on it: "
              f"{trainer_command(fmt, args.data_path, args.r, args.noise_mode, dataset)}")
    if labels.shape[0] != CIFAR_TRAIN_ROWS:
        print(f"warning: {labels.shape[0]} labels, but DivideMix and C2D read the noise file as the labels of the "
              f"{CIFAR_TRAIN_ROWS} CIFAR training images in their order: the commands above train on it only "
              "if these are the purified labels of the whole CIFAR training set", file=sys.stderr)
    if "dividemix" in formats and args.noise_mode not in ("sym", "asym"):
        print(f"note: DivideMix's warm-up handles --noise_mode sym or asym only; with "
              f"{args.noise_mode!r} it stops at its first batch", file=sys.stderr)
    return 0

