"""Synthetic label noise following the DivideMix protocol, bit for bit.

DivideMix (Li et al., ICLR 2020) builds its CIFAR noise files with Python's ``random`` module:
shuffle ``list(range(N))``, call the first ``int(r * N)`` indices noisy, then walk the rows in
order 0..N-1 and, for each noisy row, draw ``random.randint(0, C-1)`` (symmetric) or apply a
fixed class transition (asymmetric).  C2D and DMLP reuse these files, so we reproduce the same
sequence of draws from ``random.Random(seed)``: with the same seed, N and labels, the labels
are identical to what DivideMix writes after ``random.seed(seed)``.

Conventions worth knowing when comparing papers:

* Symmetric noise in DivideMix / C2D / DMLP draws over *all* C classes, true class included, so
  the measured noise is about ``r * (C-1)/C`` (0.45 for r=0.5, C=10).  Co-teaching / JoCoR draw
  among the other C-1 classes only (``exclude_true=True`` here), so measured noise equals r.
* Asymmetric CIFAR-10 flips truck->automobile, bird->airplane, deer->horse, cat<->dog for the
  selected rows; rows of the other classes keep their label, so measured noise is about r/2.
* Asymmetric CIFAR-100 (not in DivideMix) maps each class to the next class of its superclass,
  cyclically.  We use the *real* CIFAR-100 fine->coarse mapping (:data:`CIFAR100_COARSE`).
  Beware: ELR-style code uses blocks of 5 consecutive fine indices (0-4, 5-9, ...) as the
  "superclasses", which are not the real ones, so its asym CIFAR-100 labels differ from ours.
"""
from __future__ import annotations

import random
from typing import Optional

import numpy as np

from .data import check_labels
from .errors import InputError

MODES = ("sym", "asym")
DATASETS = {"cifar10": 10, "cifar100": 100}

# DivideMix's asymmetric CIFAR-10 transition (class indices of the CIFAR-10 python batches:
# 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog, 7 horse, 8 ship, 9 truck).
CIFAR10_ASYM = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

# CIFAR-100 fine label names in label-index order (they are alphabetical, as in the
# ``meta`` file of the python release).
CIFAR100_FINE_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch "
    "crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo "
    "keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse "
    "mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy "
    "porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper "
    "snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television "
    "tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()

# The 20 superclasses in coarse-label order with their members, as listed on the CIFAR page
# (https://www.cs.toronto.edu/~kriz/cifar.html).  The mapping below is derived from this table
# rather than typed as 100 numbers, so it can be checked against the published list by eye.
CIFAR100_SUPERCLASSES = (
    ("aquatic_mammals", "beaver dolphin otter seal whale"),
    ("fish", "aquarium_fish flatfish ray shark trout"),
    ("flowers", "orchid poppy rose sunflower tulip"),
    ("food_containers", "bottle bowl can cup plate"),
    ("fruit_and_vegetables", "apple mushroom orange pear sweet_pepper"),
    ("household_electrical_devices", "clock keyboard lamp telephone television"),
    ("household_furniture", "bed chair couch table wardrobe"),
    ("insects", "bee beetle butterfly caterpillar cockroach"),
    ("large_carnivores", "bear leopard lion tiger wolf"),
    ("large_man-made_outdoor_things", "bridge castle house road skyscraper"),
    ("large_natural_outdoor_scenes", "cloud forest mountain plain sea"),
    ("large_omnivores_and_herbivores", "camel cattle chimpanzee elephant kangaroo"),
    ("medium_mammals", "fox porcupine possum raccoon skunk"),
    ("non-insect_invertebrates", "crab lobster snail spider worm"),
    ("people", "baby boy girl man woman"),
    ("reptiles", "crocodile dinosaur lizard snake turtle"),
    ("small_mammals", "hamster mouse rabbit shrew squirrel"),
    ("trees", "maple_tree oak_tree palm_tree pine_tree willow_tree"),
    ("vehicles_1", "bicycle bus motorcycle pickup_truck train"),
    ("vehicles_2", "lawn_mower rocket streetcar tank tractor"),
)


def _cifar100_coarse() -> tuple:
    index = {name: i for i, name in enumerate(CIFAR100_FINE_NAMES)}
    coarse = [None] * len(CIFAR100_FINE_NAMES)
    for c, (_, members) in enumerate(CIFAR100_SUPERCLASSES):
        for name in members.split():
            coarse[index[name]] = c
    return tuple(coarse)


#: fine label -> coarse label (superclass) of CIFAR-100, standard convention.
CIFAR100_COARSE = _cifar100_coarse()


def cifar100_asym_transition() -> dict:
    """Map each CIFAR-100 fine class to the next fine class (by index) of its superclass, cyclic."""
    transition = {}
    for c in range(len(CIFAR100_SUPERCLASSES)):
        members = sorted(f for f, cc in enumerate(CIFAR100_COARSE) if cc == c)
        for k, f in enumerate(members):
            transition[f] = members[(k + 1) % len(members)]
    return transition


def asym_transition(dataset: str) -> dict:
    """The class transition of asymmetric noise for ``dataset`` (classes absent map to themselves)."""
    if dataset == "cifar10":
        return dict(CIFAR10_ASYM)
    if dataset == "cifar100":
        return cifar100_asym_transition()
    raise InputError(f"--dataset: asymmetric noise is defined for cifar10 and cifar100 only, not {dataset!r}")


def _check_args(mode, rate, dataset, n_classes):
    if mode not in MODES:
        raise InputError(f"--mode: unknown noise mode {mode!r} (expected one of: {', '.join(MODES)})")
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise InputError(f"--rate: not a number: {rate!r}") from None
    if not (0.0 <= rate <= 1.0):  # also rejects NaN
        raise InputError(f"--rate: noise rate must be in [0, 1], got {rate}")
    if n_classes is None:
        if dataset not in DATASETS:
            raise InputError(f"--dataset: unknown dataset {dataset!r} (expected one of: "
                             f"{', '.join(DATASETS)}, or give n_classes)")
        n_classes = DATASETS[dataset]
    if int(n_classes) < 2:
        raise InputError(f"n_classes must be at least 2, got {n_classes}")
    if mode == "asym" and dataset not in DATASETS:
        raise InputError(f"--dataset: asymmetric noise is defined for cifar10 and cifar100 only, not {dataset!r}")
    if mode == "asym" and int(n_classes) != DATASETS[dataset]:
        raise InputError(f"n_classes={n_classes} does not match dataset {dataset} ({DATASETS[dataset]} classes)")
    return rate, int(n_classes)


def make_noisy_labels(true_labels, mode: str, rate: float, seed: int, dataset: str = "cifar10",
                      n_classes: Optional[int] = None, exclude_true: bool = False) -> np.ndarray:
    """Return noisy labels (int64, same length) made from ``true_labels`` by DivideMix's rule.

    ``mode`` is ``'sym'`` or ``'asym'``; ``rate`` in [0, 1] is the fraction of rows selected for
    corruption (not the measured noise, see module doc); ``seed`` seeds ``random.Random``.
    ``n_classes`` defaults to the dataset's class count.  ``exclude_true`` (symmetric only)
    draws the new label among the other C-1 classes, the Co-teaching convention.
    """
    rate, n_classes = _check_args(mode, rate, dataset, n_classes)
    labels = check_labels(true_labels, "true labels", n_classes=n_classes)
    n = labels.shape[0]
    rng = random.Random(seed)
    idx = list(range(n))
    rng.shuffle(idx)
    # DivideMix tests `i in noise_idx` on a list; a boolean mask gives the same rows in O(N).
    noisy_rows = np.zeros(n, dtype=bool)
    noisy_rows[idx[:int(rate * n)]] = True
    out = labels.copy()
    transition = asym_transition(dataset) if mode == "asym" else None
    # Rows must be visited in index order so the random draws match DivideMix's sequence.
    for i in np.flatnonzero(noisy_rows).tolist():
        y = int(labels[i])
        if mode == "asym":
            out[i] = transition.get(y, y)
        elif exclude_true:
            v = rng.randint(0, n_classes - 2)
            out[i] = v + 1 if v >= y else v  # skip over the true class: uniform on the others
        else:
            out[i] = rng.randint(0, n_classes - 1)
    return out


def noise_report(true, noisy, n_classes: Optional[int] = None) -> dict:
    """Measured noise of ``noisy`` against ``true``: rate, counts and confusion matrix.

    ``confusion[i][j]`` counts rows whose true class is i and noisy label is j (nested lists,
    JSON-ready).  ``n_classes`` defaults to 1 + the largest label seen.
    """
    true = check_labels(true, "true labels", n_classes=n_classes)
    noisy = check_labels(noisy, "noisy labels", n_classes=n_classes, n_rows=true.shape[0],
                         rows_of="true labels")
    if n_classes is None:
        n_classes = int(max(true.max(initial=-1), noisy.max(initial=-1))) + 1
    n = int(true.shape[0])
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (true, noisy), 1)
    n_noisy = int((true != noisy).sum())
    per_class = []
    for c in range(n_classes):
        row = int(confusion[c].sum())
        per_class.append(float(1.0 - confusion[c, c] / row) if row else 0.0)
    return {
        "n": n,
        "n_classes": int(n_classes),
        "n_noisy": n_noisy,
        "measured_noise_rate": float(n_noisy / n) if n else 0.0,
        "per_class_noise_rate": per_class,
        "confusion": confusion.tolist(),
    }
