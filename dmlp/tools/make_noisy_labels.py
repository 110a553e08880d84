"""``dmlp noise``: make a noisy-label data folder in the authors' layout, ready for ``dmlp purify --data OUT``.

Reads SRC/correctlabels.npy (the true train labels, any class count), builds noisy labels from
one source -- synthetic noise (--mode sym|asym|instance), CIFAR-10N/100N human labels
(--cifar-n), or an existing DivideMix/C2D JSON noise file (--from-noise-file) -- and writes
OUT/trainlabels.npy, OUT/noise_file.json (same labels as a DivideMix JSON list) and
OUT/noise.json (settings, class count and measured noise).  The class count C is the
--dataset's, the CIFAR-N noise type's, or else the largest label of correctlabels.npy plus one.
The feature/label files of SRC are symlinked into OUT (copied where links are not possible);
SRC is never modified.  See docs/data_tools.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..cifar_n import cifar_n_labels, lookup_noise_type
from ..cli import ArgumentParser as _Parser
from ..data import check_labels, load_npy
from ..errors import InputError
from ..export import check_output_folder, read_noise_file, write_noisy_folder
from ..flip_map import read_flip_map
from ..idn import RATE_STD
from ..noise import DATASETS, MODES, asym_transition, check_dataset, check_rate, make_noisy_labels, noise_report
from ..validation import infer_n_classes

PROG = "dmlp noise"


def parse_args(argv=None):
    p = _Parser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features-dir", required=True, metavar="SRC",
                   help="source folder with trainfeatures.npy and correctlabels.npy (optionally "
                        "testfeatures.npy, testlabels.npy); read only")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created; must not be SRC); existing outputs in it are replaced")
    p.add_argument("--mode", metavar="sym|asym|instance",
                   help="synthetic noise: 'sym' = uniform random label for the selected rows "
                        "(true class included unless --exclude-true); 'asym' = the selected rows take "
                        "the class of a flip map (--flip-map, or the --dataset preset; CIFAR-10: "
                        "truck->automobile, bird->airplane, deer->horse, cat<->dog); 'instance' = "
                        "instance-dependent noise from the features (Xia et al., NeurIPS 2020)")
    p.add_argument("--rate", type=str, metavar="R",
                   help="in [0,1]: sym/asym, the fraction of rows selected for corruption, DivideMix's --r "
                        "(measured noise is about R*(C-1)/C for sym, R/2 for asym CIFAR-10); instance, "
                        "the mean per-row flip rate (measured noise about R)")
    p.add_argument("--seed", type=int, default=123, metavar="S",
                   help="seed of Python's random.Random for sym/asym (default 123, DivideMix's default), "
                        "of numpy's RandomState for instance (0..2**32-1)")
    p.add_argument("--dataset", metavar="cifar10|cifar100",
                   help="a CIFAR data set: its class count and asym preset (default: none, the class "
                        "count is the largest label of correctlabels.npy plus one)")
    p.add_argument("--flip-map", metavar="FILE",
                   help="asym: the class flips, a JSON object {\"3\": 5, ...} or a CSV of from,to lines; "
                        "classes absent keep their label")
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


FLAGS = {"rate": "--rate", "seed": "--seed", "features": "--features-dir"}


def _check_flags(args) -> None:
    """The flag combinations, checked before any file is read."""
    if args.cifar_n and args.from_noise_file:
        raise InputError("--cifar-n and --from-noise-file are alternative label sources; give one")
    if args.noise_type and not args.cifar_n:
        raise InputError("--noise-type needs --cifar-n FILE.pt")
    if args.cifar_n and not args.noise_type:
        raise InputError("--cifar-n needs --noise-type (aggre, worse, random1-3, noisy, noisy_coarse)")
    if args.cifar_n and (args.mode or args.rate is not None or args.exclude_true or args.flip_map):
        raise InputError("--mode/--rate/--exclude-true/--flip-map do not apply to --cifar-n (the noise is given)")
    synthetic = not (args.cifar_n or args.from_noise_file)
    if synthetic and (args.mode is None or args.rate is None):
        raise InputError("--mode and --rate are required for synthetic noise")
    if args.rate is not None:
        check_rate(args.rate)
    if args.mode is not None and args.mode not in MODES:
        raise InputError(f"--mode: unknown noise mode {args.mode!r} (expected one of: {', '.join(MODES)})")
    if args.exclude_true and (args.mode != "sym" or not synthetic):
        raise InputError("--exclude-true: applies to synthetic --mode sym only "
                         f"(the other modes never keep the true class of a flipped row); got --mode {args.mode}")
    if args.flip_map and (args.mode != "asym" or not synthetic):
        raise InputError(f"--flip-map: applies to synthetic --mode asym only; got --mode {args.mode}")
    check_dataset(args.dataset)
    if synthetic and args.mode == "asym" and not (args.flip_map or args.dataset):
        raise InputError("--mode asym needs --flip-map FILE (or --dataset cifar10|cifar100 for a CIFAR preset)")
    if args.cifar_n:
        kind = lookup_noise_type(args.noise_type)
        if args.dataset not in (None, kind.dataset):
            raise InputError(f"--dataset {args.dataset}: --noise-type {args.noise_type} labels {kind.dataset} "
                             f"({kind.n_classes} classes); leave out --dataset or give {kind.dataset}")


def load_source(src: Path) -> tuple:
    """The true labels and the features of a source folder.

    Parameters
    ----------
    src : Path
        The folder holding ``correctlabels.npy`` and ``trainfeatures.npy``.

    Returns
    -------
    (ndarray of int64, shape (N,), ndarray of float, shape (N, d))
        ``correctlabels.npy`` (valid labels, any class count) and ``trainfeatures.npy``
        (memory-mapped).

    Raises
    ------
    InputError
        For a missing folder or file, an invalid file, or row counts that differ.
    """
    if not src.is_dir():
        raise InputError(f"--features-dir: not a folder ({src})")
    correct = check_labels(load_npy(src / "correctlabels.npy", what="correctlabels.npy"), "correctlabels.npy")
    feats = load_npy(src / "trainfeatures.npy", what="trainfeatures.npy")  # memory-mapped
    if feats.ndim != 2 or feats.shape[0] != correct.shape[0]:
        raise InputError(f"trainfeatures.npy has shape {feats.shape} but correctlabels.npy has "
                         f"{correct.shape[0]} rows")
    return correct, feats


def source_class_count(correct, dataset=None, noise_type=None) -> tuple:
    """The class count of a noisy folder made from ``correct``, and where it comes from.

    Parameters
    ----------
    correct : ndarray of int64, shape (N,)
        The true labels (``correctlabels.npy``), already valid labels.
    dataset : {'cifar10', 'cifar100'}, optional
    noise_type : str, optional
        A CIFAR-N noise type (:data:`dmlp.cifar_n.NOISE_TYPES`).

    Returns
    -------
    (int, str)
        C and its origin: the noise type's count, the dataset's, or the largest label plus one
        (``"correctlabels.npy"``).

    Raises
    ------
    InputError
        When the labels do not have exactly the dataset's classes, or (without a dataset) label
        0 never occurs; both say when the labels look 1-based.
    """
    if noise_type is not None:
        return lookup_noise_type(noise_type).n_classes, f"--noise-type {noise_type}"
    if check_dataset(dataset) is None:
        return infer_n_classes(correct, "correctlabels.npy"), "correctlabels.npy"
    n_classes = DATASETS[dataset]
    check_labels(correct, "correctlabels.npy", n_classes=n_classes)
    found = int(correct.max()) + 1
    if found != n_classes:
        raise InputError(f"correctlabels.npy has {found} classes (labels 0..{found - 1}) but --dataset "
                         f"{dataset} has {n_classes}; leave out --dataset to take the class count from the labels")
    return n_classes, f"--dataset {dataset}"


def _check_other_labels(src: Path, n_classes: int, origin: str) -> None:
    """The label files the output folder takes over must fit the same C."""
    for name in ("testlabels.npy", "metalabels.npy"):
        if (src / name).exists():
            check_labels(load_npy(src / name, what=name), f"{name} (C = {n_classes} from {origin})",
                         n_classes=n_classes)


def _synthetic(args, correct, feats, n_classes: int) -> tuple:
    """(noisy labels, noise.json entries) of --mode/--rate/--seed."""
    rate = check_rate(args.rate)
    flip_map = read_flip_map(args.flip_map, n_classes) if args.flip_map else None
    if args.mode == "asym" and flip_map is None:
        flip_map = asym_transition(args.dataset)
    try:
        noisy = make_noisy_labels(correct, args.mode, rate, args.seed, dataset=args.dataset, n_classes=n_classes,
                                  exclude_true=args.exclude_true, flip_map=flip_map,
                                  features=feats if args.mode == "instance" else None)
    except InputError as exc:
        raise exc.for_flags(FLAGS) from None
    meta = {"source": "synthetic", "mode": args.mode, "rate": rate, "seed": args.seed,
            "exclude_true": bool(args.exclude_true)}
    if flip_map is not None:
        meta.update(flip_map={str(k): v for k, v in sorted(flip_map.items())},
                    flip_map_file=str(Path(args.flip_map).resolve()) if args.flip_map else None)
    if args.mode == "instance":
        meta.update(rate_std=RATE_STD, reference="Xia et al., NeurIPS 2020 (part-dependent label noise)")
    return noisy, meta


def main(argv=None):
    args = parse_args(argv)
    _check_flags(args)
    src, out = Path(args.features_dir), Path(args.out)
    check_output_folder(src, out)  # before any work, so a bad --out fails fast
    correct, feats = load_source(src)
    n_classes, origin = source_class_count(correct, args.dataset, args.noise_type)
    _check_other_labels(src, n_classes, origin)

    meta = {"dataset": args.dataset, "n_classes": n_classes, "n_classes_from": origin,
            "source_dir": str(src.resolve()), "n_train": int(correct.shape[0])}
    if args.cifar_n:
        noisy = cifar_n_labels(args.cifar_n, args.noise_type, correct_labels=correct)
        meta.update(source="cifar-n", cifar_n_file=str(Path(args.cifar_n).resolve()),
                    noise_type=args.noise_type, mode=None, rate=None, seed=None)
    elif args.from_noise_file:
        noisy = read_noise_file(args.from_noise_file, n_rows=correct.shape[0], n_classes=n_classes)
        meta.update(source="noise-file", noise_file=str(Path(args.from_noise_file).resolve()),
                    mode=args.mode, rate=None if args.rate is None else check_rate(args.rate), seed=None)
    else:
        noisy, settings = _synthetic(args, correct, feats, n_classes)
        meta.update(settings)

    report = noise_report(correct, noisy, n_classes=n_classes)
    meta.update(measured_noise_rate=report["measured_noise_rate"], n_noisy=report["n_noisy"],
                per_class_noise_rate=report["per_class_noise_rate"], confusion=report["confusion"])
    how = write_noisy_folder(src, out, noisy, meta)
    linked = ", ".join(f"{k} ({v})" for k, v in how.items())
    print(f"wrote {out}/trainlabels.npy: {correct.shape[0]} labels, {n_classes} classes ({origin}), "
          f"measured noise {100 * report['measured_noise_rate']:.2f}%; took over {linked}")
    return 0
