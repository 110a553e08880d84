"""The default against variants of it, on several feature sets: label accuracy and agreement.

    python benchmarks/config_ablation.py projected=DIR,raw=DIR,c100=DIR \
        --variants 'float32: compute_dtype="float32"; standardise: feature_scaling="standardise"' 

For each feature set and setting: label accuracy (%) of the default and of each variant on the
non-meta rows, and the fraction of rows whose purified labels agree with the default's, each the
mean over ``--seeds``.  Each seed draws its own noise, meta rows (1,000 clean rows) and config
seed; seed 0 is the quality table's draw (``benchmarks/feature_set_quality.py``; that table
hands DMLP the features already scaled, for the baselines' sake, so its default figures can
differ from these by a row or two of rounding).  Overrides are config keys (``dmlp.Config``); values
are read as TOML scalars.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loader import benchmark_noise, load_cifar, parse_feature_sets, parse_setting  # noqa: E402
from benchmarks.output import emit, md_table  # noqa: E402
from dmlp.cli import ArgumentParser, run_cli  # noqa: E402


def parse_variants(text: str) -> dict:
    """``"a: k=v, k2=v2; b: k=v"`` -> ``{"a": {"k": v, "k2": v2}, "b": {"k": v}}``."""
    from dmlp.config import tomllib
    from dmlp.errors import InputError
    variants = {}
    for item in filter(None, (x.strip() for x in text.split(";"))):
        name, sep, body = item.partition(":")
        if not sep or not name.strip():
            raise InputError(f"--variants: expected NAME: KEY=VALUE[, ...], got {item!r}")
        try:
            variants[name.strip()] = tomllib.loads("\n".join(p.strip() for p in body.split(",") if p.strip()))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"--variants: {name.strip()}: {exc}") from None
    return variants


def run_setting(data, setting: str, variants: dict, meta_size: int = 1000, seed: int = 0) -> dict:
    """``{name: (accuracy, agreement with the default, compute dtype)}`` for one setting and seed.

    ``seed`` seeds the noise, the meta rows and the config alike.
    """
    from dmlp import load_config
    from dmlp.data import Dataset
    from dmlp.meta import draw_meta_indices
    from dmlp.pipeline import purify_dataset
    mode, rate = parse_setting(setting)
    noisy = benchmark_noise(data, mode, rate, seed)
    meta = draw_meta_indices(data.y, meta_size, seed)
    rows = np.setdiff1d(np.arange(len(data.y)), meta)
    dataset = Dataset.from_arrays(data.X, noisy, true_labels=data.y, n_classes=data.n_classes, name=setting)
    labels, out = {}, {}
    for name, overrides in {"default": {}, **variants}.items():
        res = purify_dataset(dataset, load_config("default", **{"seed": seed, **overrides}), meta_index=meta,
                             device="cpu").result
        labels[name] = res.labels
        out[name] = (float((res.labels == data.y[rows]).mean()),
                     float((res.labels == labels["default"]).mean()), res.compute_dtype)
    return out


def main(argv=None) -> int:
    p = ArgumentParser(prog="benchmarks/config_ablation.py", description=__doc__.split("\n\n")[0])
    p.add_argument("feature_sets", help="NAME=DIR[,NAME=DIR...]")
    p.add_argument("--variants", required=True, help='"NAME: KEY=VALUE[, KEY=VALUE]; NAME: ..."')
    p.add_argument("--settings", default="sym20,sym50,sym80,sym90,asym40")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; figures are their mean")
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    args = p.parse_args(argv)
    variants = parse_variants(args.variants)
    table = []
    for name, folder in parse_feature_sets(args.feature_sets).items():
        data = load_cifar(folder)
        for setting in [s for s in args.settings.split(",") if s]:
            if setting == "sym90" and data.superclass is not None:
                continue
            runs = [run_setting(data, setting, variants, seed=int(s)) for s in args.seeds.split(",")]
            found = {v: (np.mean([r[v][0] for r in runs]), np.mean([r[v][1] for r in runs]), runs[0][v][2])
                     for v in runs[0]}
            acc0 = found["default"][0]
            line = [name, setting, f"{100 * acc0:.2f} ({found['default'][2]})"]
            for v in variants:
                acc, agree, ran = found[v]
                line.append(f"{100 * acc:.2f} ({100 * (acc - acc0):+.2f}; agree {100 * agree:.2f} %; {ran})")
            print("[ablation] " + " | ".join(line), flush=True)
            table.append(line)
    text = md_table(["feature set", "setting", "default", *variants], table)
    text += ("\n\nLabel accuracy (%) on the non-meta rows; in brackets the difference from the default, "
             "the rows whose label agrees with the default's, and the dtype the products ran in; "
             f"means over seeds {args.seeds}.\n")
    emit(text, args.out, "benchmarks/config_ablation.py", argv)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
