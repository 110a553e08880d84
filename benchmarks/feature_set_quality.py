"""Label quality of DMLP and the baselines on several feature sets, side by side.

    python scripts/benchmark.py --feature-sets projected=DIR,raw=DIR,c100=DIR [--settings ...]

The first feature set's default row is the mean of ``--dmlp-seeds`` (shown ``mean ± sd``); the
other sets and the other DMLP rows use the first of those seeds.

Each feature set is a folder with ``trainfeatures.npy`` and ``correctlabels.npy`` (and
``superclass.npy`` for a 100-class set, whose ``asym`` setting then flips a row to the next fine
class of its superclass).  Every method reads the features after the same centring and RMS
scaling (``dmlp.scaling``, "rms"): DMLP applies it itself, and the baselines are given it so
that none is judged on the units of the features.  No ablations, no probe: the full per-setting
detail of one feature set is the ordinary ``--quality`` part.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from benchmarks.harness import (DMLP_AUTO, DMLP_DEFAULT, DMLP_PAPER, NOISY, load_cifar, log, md_table,
                                run_quality)


def parse_feature_sets(text: str) -> Dict[str, str]:
    """``"a=DIR,b=DIR"`` -> ``{"a": "DIR", "b": "DIR"}`` (order kept)."""
    from dmlp.errors import InputError
    sets = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise InputError(f"--feature-sets: expected NAME=DIR[,NAME=DIR...], got {item!r}")
        sets[name] = folder
    return sets


def run_feature_sets(feature_sets: Dict[str, str], settings_of: Dict[str, Sequence[str]], *,
                     meta_size: int = 1000, noise_seed: int = 0, epochs=None,
                     dmlp_seeds: Sequence[int] = (0,), baselines=None) -> List[dict]:
    """Quality rows of every feature set (each row gains a ``feature_set`` key).

    ``dmlp_seeds``: the config seeds of the DMLP default rows (their mean and sd are reported);
    ``baselines``: names of the baselines to run (None: all).
    """
    from dmlp.scaling import fit_feature_scaling
    rows = []
    for name, folder in feature_sets.items():
        data = load_cifar(folder)
        data.X = fit_feature_scaling(data.X, method="rms").apply(data.X)
        log(f"feature set {name}: {data.X.shape[0]} x {data.X.shape[1]}, {data.n_classes} classes")
        found, _ = run_quality(data, settings_of[name], noise_seed=noise_seed, meta_size=meta_size,
                               dmlp_seeds=list(dmlp_seeds), ablations=False, epochs=epochs,
                                 baselines=baselines)
        rows += [dict(r, feature_set=name, dims=data.X.shape[1], classes=data.n_classes) for r in found]
    return rows


def feature_set_table(rows: List[dict]) -> str:
    """One Markdown table: a row per (feature set, setting), a column per method."""
    methods = [NOISY] + [m for m in dict.fromkeys(r["method"] for r in rows)
                         if m not in (NOISY, DMLP_DEFAULT, DMLP_PAPER, DMLP_AUTO)] + [DMLP_AUTO, DMLP_PAPER, DMLP_DEFAULT]
    methods = [m for m in methods if any(r["method"] == m for r in rows)]
    keys = list(dict.fromkeys((r["feature_set"], r["setting"]) for r in rows))
    table = []
    for fs, setting in keys:
        cells = {r["method"]: r for r in rows if r["feature_set"] == fs and r["setting"] == setting}
        best = max((cells[m]["label_accuracy"] for m in methods
                    if m in cells and m not in (NOISY, DMLP_DEFAULT, DMLP_PAPER, DMLP_AUTO)), default=float("nan"))
        line = [fs, setting] + [_cell(cells[m]) if m in cells else "–" for m in methods]
        default = cells.get(DMLP_DEFAULT, {}).get("label_accuracy", float("nan"))
        table.append(line + [f"{100 * (default - best):+.2f}"])
    return md_table(["feature set", "setting", *methods, "default − best baseline"], table)


def _cell(row: dict) -> str:
    """``"93.58"``, or ``"93.58 ± 0.04"`` for a row averaged over several seeds."""
    sd = row.get("label_accuracy_std", float("nan"))
    text = f"{100 * row['label_accuracy']:.2f}"
    return text if sd != sd else f"{text} ± {100 * sd:.2f}"


def baseline_rows_from(path: str, feature_sets: Sequence[str]) -> List[dict]:
    """The baseline rows of an earlier run's ``feature_sets.csv``, for the named feature sets.

    The baselines do not depend on DMLP's config, so a change of DMLP is measured without
    running them again.  Numbers are read back as floats.

    Raises
    ------
    InputError
        The file is missing or holds no baseline row of these feature sets.
    """
    import csv
    from dmlp.errors import InputError
    try:
        with open(path, newline="") as fh:
            found = [r for r in csv.DictReader(fh)
                     if r["kind"] in ("baseline", "oracle") and r["feature_set"] in feature_sets]
    except OSError as exc:
        raise InputError(f"--baselines-from: cannot read {path} ({exc.strerror})") from None
    if not found:
        raise InputError(f"--baselines-from: {path} has no baseline row of {', '.join(feature_sets)}")
    numeric = ("label_accuracy", "label_accuracy_std", "n_changed", "probe_test_accuracy",
               "probe_test_accuracy_std", "seconds", "seconds_std", "peak_rss_increase_mb",
               "soft_label_ece", "label_quality_auc")
    return [{k: (float(v) if k in numeric and v != "" else v) for k, v in r.items()} for r in found]
