"""``dmlp noise``: make a noisy-label data folder in the authors' layout, ready for ``dmlp purify --data OUT``.

Reads SRC/correctlabels.npy (the true train labels), builds noisy labels from one source --
synthetic noise by DivideMix's rule (default), CIFAR-10N/100N human labels (--cifar-n), or an
existing DivideMix/C2D JSON noise file (--from-noise-file) -- and writes OUT/trainlabels.npy,
OUT/noise_file.json (same labels as a DivideMix JSON list) and OUT/noise.json (settings and
measured noise).  The feature/label files of SRC are symlinked into OUT (copied where links
are not possible); SRC is never modified.  See docs/data_tools.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import ArgumentParser as _Parser, run_cli
from ..data import check_labels, load_npy
from ..errors import InputError
from ..export import check_output_folder, read_noise_file, write_noisy_folder
from ..noise import DATASETS, MODES, make_noisy_labels, noise_report

PROG = "dmlp noise"


def parse_args(argv=None):
    p = _Parser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features-dir", required=True, metavar="SRC",
                   help="source folder with trainfeatures.npy and correctlabels.npy (optionally "
                        "testfeatures.npy, testlabels.npy); read only")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created; must not be SRC); existing outputs in it are replaced")
    p.add_argument("--mode", metavar="sym|asym",
                   help="synthetic noise: 'sym' = uniform random label for the selected rows "
                        "(true class included unless --exclude-true), 'asym' = class flips "
                        "(CIFAR-10: truck->automobile, bird->airplane, deer->horse, cat<->dog)")
    p.add_argument("--rate", type=str, metavar="R",
                   help="fraction in [0,1] of rows selected for corruption, DivideMix's --r "
                        "(measured noise is about 0.9*R for sym CIFAR-10, R/2 for asym)")
    p.add_argument("--seed", type=int, default=123, metavar="S",
                   help="seed of Python's random.Random (default 123, DivideMix's default)")
    p.add_argument("--dataset", default="cifar10", metavar="cifar10|cifar100",
                   help="class count and asym transition to use (default cifar10)")
    p.add_argument("--exclude-true", action="store_true",
                   help="sym only: draw the noisy label among the other C-1 classes "
                        "(Co-teaching/JoCoR convention; DivideMix/C2D/DMLP include the true class)")
    p.add_argument("--cifar-n", metavar="FILE.pt",
                   help="take human noisy labels from the official CIFAR-10_human.pt / "
                        "CIFAR-100_human.pt instead of synthetic noise (needs --noise-type)")
    p.add_argument("--noise-type", metavar="TYPE",
                   help="with --cifar-n: aggre|worse|random1|random2|random3 (CIFAR-10N), "
                        "noisy|noisy_coarse (CIFAR-100N)")
    p.add_argument("--from-noise-file", metavar="FILE.json",
                   help="take labels from a DivideMix/C2D JSON noise file (list of N ints); "
                        "--mode/--rate/--seed are then only recorded in noise.json")
    return p.parse_args(argv)


def _load_source(src: Path, n_classes: int, dataset: str):
    if not src.is_dir():
        raise InputError(f"--features-dir: not a folder ({src})")
    correct = check_labels(load_npy(src / "correctlabels.npy", what="correctlabels.npy"),
                           "correctlabels.npy", n_classes=n_classes)
    found = int(correct.max()) + 1 if correct.size else 0
    if found != n_classes:
        raise InputError(f"--dataset: {src / 'correctlabels.npy'} has {found} classes (labels 0..{found - 1}) "
                         f"but --dataset {dataset} has {n_classes}; give the --dataset of these labels")
    feats = load_npy(src / "trainfeatures.npy", what="trainfeatures.npy")  # header only (mmap)
    if feats.ndim != 2 or feats.shape[0] != correct.shape[0]:
        raise InputError(f"trainfeatures.npy has shape {feats.shape} but correctlabels.npy has "
                         f"{correct.shape[0]} rows")
    return correct


def main(argv=None):
    args = parse_args(argv)
    if args.dataset not in DATASETS:
        raise InputError(f"--dataset: unknown dataset {args.dataset!r} (expected one of: {', '.join(DATASETS)})")
    if args.cifar_n and args.from_noise_file:
        raise InputError("--cifar-n and --from-noise-file are alternative label sources; give one")
    if args.noise_type and not args.cifar_n:
        raise InputError("--noise-type needs --cifar-n FILE.pt")
    if args.cifar_n and not args.noise_type:
        raise InputError("--cifar-n needs --noise-type (aggre, worse, random1-3, noisy, noisy_coarse)")
    if args.cifar_n and (args.mode or args.rate is not None or args.exclude_true):
        raise InputError("--mode/--rate/--exclude-true do not apply to --cifar-n (the noise is given)")
    synthetic = not (args.cifar_n or args.from_noise_file)
    if synthetic and (args.mode is None or args.rate is None):
        raise InputError("--mode and --rate are required for synthetic noise")
    if args.mode is not None and args.mode not in MODES:
        raise InputError(f"--mode: unknown noise mode {args.mode!r} (expected one of: {', '.join(MODES)})")
    if args.exclude_true and (args.mode != "sym" or not synthetic):
        raise InputError("--exclude-true: applies to synthetic --mode sym only "
                         f"(asym flips never keep the true class); got --mode {args.mode}")
    rate = None
    if args.rate is not None:
        try:
            rate = float(args.rate)
        except ValueError:
            raise InputError(f"--rate: not a number: {args.rate!r}") from None
        if not (0.0 <= rate <= 1.0):
            raise InputError(f"--rate: noise rate must be in [0, 1], got {args.rate}")

    src, out = Path(args.features_dir), Path(args.out)
    check_output_folder(src, out)  # before any work, so a bad --out fails fast
    n_classes = DATASETS[args.dataset]
    correct = _load_source(src, n_classes, args.dataset)

    meta = {"dataset": args.dataset, "source_dir": str(src.resolve()), "n_train": int(correct.shape[0])}
    if args.cifar_n:
        from ..cifar_n import cifar_n_labels  # imports torch: only when needed

        noisy = cifar_n_labels(args.cifar_n, args.noise_type, correct_labels=correct)
        noisy = check_labels(noisy, f"--cifar-n {Path(args.cifar_n).name}", n_classes=n_classes)
        meta.update(source="cifar-n", cifar_n_file=str(Path(args.cifar_n).resolve()),
                    noise_type=args.noise_type, mode=None, rate=None, seed=None)
    elif args.from_noise_file:
        noisy = read_noise_file(args.from_noise_file, n_rows=correct.shape[0], n_classes=n_classes)
        meta.update(source="noise-file", noise_file=str(Path(args.from_noise_file).resolve()),
                    mode=args.mode, rate=rate, seed=None)
    else:
        noisy = make_noisy_labels(correct, args.mode, rate, args.seed, dataset=args.dataset,
                                  exclude_true=args.exclude_true)
        meta.update(source="synthetic", mode=args.mode, rate=rate, seed=args.seed,
                    exclude_true=bool(args.exclude_true))

    report = noise_report(correct, noisy, n_classes=n_classes)
    meta.update(measured_noise_rate=report["measured_noise_rate"], n_noisy=report["n_noisy"],
                per_class_noise_rate=report["per_class_noise_rate"], confusion=report["confusion"])
    how = write_noisy_folder(src, out, noisy, meta)
    linked = ", ".join(f"{k} ({v})" for k, v in how.items())
    print(f"wrote {out}/trainlabels.npy: {correct.shape[0]} labels, measured noise "
          f"{100 * report['measured_noise_rate']:.2f}%; took over {linked}")
    return 0

