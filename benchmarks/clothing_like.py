"""A synthetic data set shaped like Clothing1M, for the scale benchmark (``benchmarks/scale.py``).

:func:`make_clothing_like` writes a data folder in the authors' layout: ``trainfeatures.npy``
(N x d float16, written chunk by chunk through a memory map, so 1M x 2048 needs no 8 GB of RAM),
``trainlabels.npy`` (~38 % class-dependent noise), ``correctlabels.npy``, a separate clean
meta set (``metafeatures.npy`` / ``metalabels.npy``) and a test set, with ``spec.json`` and
``noise.json``.  A folder whose ``spec.json`` matches is reused, not regenerated.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from benchmarks.loader import log

# Clothing1M's classes in confusable groups (T-shirt/shirt/chiffon, knitwear/sweater/hoodie,
# windbreaker/jacket/down coat, suit/vest, shawl/dress/underwear).
CLOTHING_GROUPS = ((0, 1, 3), (2, 4, 5), (6, 7, 8), (9, 12), (10, 11, 13))


def _group_of() -> np.ndarray:
    group_of = np.empty(14, dtype=np.int64)
    for g, members in enumerate(CLOTHING_GROUPS):
        group_of[list(members)] = g
    return group_of


def _mixture(rng, d: int):
    """Class means (group centre + class offset), per-dimension sd, class priors."""
    scale = 2048 / d                     # keep the separation (|mu_i - mu_j| ~ sqrt(d) * a) fixed
    centres = rng.normal(size=(len(CLOTHING_GROUPS), d)) * 0.07 * math.sqrt(scale)
    means = (centres[_group_of()] + rng.normal(size=(14, d)) * 0.05 * math.sqrt(scale)).astype(np.float32)
    sd = np.exp(rng.normal(size=d) * 0.3).astype(np.float32)
    prior = rng.uniform(0.5, 1.5, size=14)
    return means, sd, prior / prior.sum()


def _transition(rates: np.ndarray) -> np.ndarray:
    """T[true, given]: class c flips with ``rates[c]``, 75 % within its group, 25 % to any class."""
    C, group_of = len(rates), _group_of()
    T = np.zeros((C, C))
    for c in range(C):
        mates = [m for m in CLOTHING_GROUPS[group_of[c]] if m != c]
        others = [m for m in range(C) if m != c]
        T[c, mates] += 0.75 * rates[c] / len(mates)
        T[c, others] += 0.25 * rates[c] / len(others)
        T[c, c] = 1.0 - rates[c]
    return T


def make_clothing_like(folder, n: int, d: int, n_meta: int, n_test: int, *, seed: int = 0,
                       noise: float = 0.38, chunk: int = 50_000) -> dict:
    """Write a Clothing1M-shaped synthetic data set (generated once; reused if the spec matches).

    14-class Gaussian mixture: each class mean is its group's centre plus a class offset (classes
    in a group are close, so confusable), anisotropic per-dimension noise, mildly unequal class
    priors.  Noise: each class flips with its own rate (mean ``noise``), 75 % of the flips to the
    other classes of its group, 25 % to any other class.  ``trainfeatures.npy`` is float16,
    written through ``np.lib.format.open_memmap`` chunk by chunk; ``correctlabels.npy`` holds the
    truth, ``metafeatures.npy``/``metalabels.npy`` a separate clean set, plus a test set.
    """
    folder = Path(folder)
    spec = {"n": n, "d": d, "meta": n_meta, "test": n_test, "seed": seed, "noise": noise, "version": 1}
    stamp = folder / "spec.json"
    if stamp.exists() and json.loads(stamp.read_text()) == spec and (folder / "noise.json").exists():
        return {**spec, **json.loads((folder / "noise.json").read_text())}
    folder.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    C = 14
    rng = np.random.default_rng(seed)
    means, sd, prior = _mixture(rng, d)
    rates = rng.uniform(0.25, 0.5, size=C)
    rates *= noise / float(prior @ rates)
    T = _transition(rates)

    def sample(n_rows, out=None):
        y = rng.choice(C, size=n_rows, p=prior)
        feats = out if out is not None else np.empty((n_rows, d), dtype=np.float16)
        for s in range(0, n_rows, chunk):
            e = min(n_rows, s + chunk)
            z = rng.standard_normal((e - s, d), dtype=np.float32)
            z *= sd
            z += means[y[s:e]]
            feats[s:e] = z
        return feats, y

    log(f"scale: generating {n} x {d} float16 features in {folder} ...")
    train = np.lib.format.open_memmap(folder / "trainfeatures.npy", mode="w+", dtype=np.float16, shape=(n, d))
    _, y = sample(n, train)
    train.flush()
    del train
    cum = T.cumsum(1)
    u = rng.random(n)
    noisy = np.minimum((u[:, None] > cum[y]).sum(1), C - 1).astype(np.int64)
    np.save(folder / "correctlabels.npy", y.astype(np.int64))
    np.save(folder / "trainlabels.npy", noisy)
    ml = rng.permutation(np.arange(n_meta) % C)     # balanced clean set, every class present
    mf = (rng.standard_normal((n_meta, d), dtype=np.float32) * sd + means[ml]).astype(np.float16)
    np.save(folder / "metafeatures.npy", mf)
    np.save(folder / "metalabels.npy", ml.astype(np.int64))
    tf, tl = sample(n_test)
    np.save(folder / "testfeatures.npy", tf)
    np.save(folder / "testlabels.npy", tl.astype(np.int64))
    spec["measured_noise"] = float((noisy != y).mean())
    stamp.write_text(json.dumps({k: v for k, v in spec.items() if k != "measured_noise"}))
    (folder / "noise.json").write_text(json.dumps({"measured_noise": spec["measured_noise"]}))
    return spec
