"""The CIFAR class tables the noise presets need: CIFAR-10's flips, CIFAR-100's superclasses.

* :data:`CIFAR10_ASYM`: DivideMix's asymmetric CIFAR-10 flips (truck->automobile,
  bird->airplane, deer->horse, cat<->dog).
* :data:`CIFAR100_COARSE`: the official CIFAR-100 fine->coarse mapping, derived from the
  superclass table of the CIFAR page rather than typed as 100 numbers.
* :func:`cifar100_asym_transition`: each fine class to the next fine class of its superclass,
  cyclically (the usual asymmetric CIFAR-100 noise; not in DivideMix).  ELR-style code takes
  blocks of 5 consecutive fine indices (0-4, 5-9, ...) as "superclasses", which are not the
  real ones, so its asymmetric CIFAR-100 labels differ from these.
"""
from __future__ import annotations

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
    """Each CIFAR-100 fine class mapped to the next fine class (by index) of its superclass.

    Returns
    -------
    dict of int to int
        100 entries, cyclic within each superclass: {4: 30, 30: 55, 55: 72, 72: 95, 95: 4, ...}
        for the aquatic mammals.
    """
    transition = {}
    for c in range(len(CIFAR100_SUPERCLASSES)):
        members = sorted(f for f, cc in enumerate(CIFAR100_COARSE) if cc == c)
        for k, f in enumerate(members):
            transition[f] = members[(k + 1) % len(members)]
    return transition
