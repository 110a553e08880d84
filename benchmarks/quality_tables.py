"""The quality benchmark's names, rows, tables, captions and per-epoch plot
(``benchmarks/quality.py`` runs the methods; this module only turns their measures into rows)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from benchmarks.output import md_table, num, pct

TARGETS = {"sym20": 93.5, "sym50": 86.0, "sym80": 77.5, "sym90": 76.0, "asym40": 93.5}
BASELINE_NAMES = {
    "knn_vote": "kNN-20 vote",
    "cv_probe_relabel": "CV probe relabel",
    "cleanlab_relabel": "cleanlab relabel",
    "ridge_on_meta": "ridge on meta",
    "label_propagation_best_beta": "label propagation (best β, oracle)",
    "forward_corrected_bayes": "forward-corrected probe + Bayes",
}
DMLP_DEFAULT, DMLP_PAPER, DMLP_AUTO, NOISY = "DMLP default", "DMLP paper", "DMLP --meta auto", "noisy labels (given)"
DMLP_METHODS = (DMLP_DEFAULT, DMLP_PAPER, DMLP_AUTO)
SUMMARY_COLUMNS = [  # (column title, method name in the quality rows)
    ("noisy", NOISY), ("kNN-20 vote", BASELINE_NAMES["knn_vote"]),
    ("CV probe relabel", BASELINE_NAMES["cv_probe_relabel"]),
    ("cleanlab relabel", BASELINE_NAMES["cleanlab_relabel"]),
    ("ridge on 1k meta", BASELINE_NAMES["ridge_on_meta"]),
    ("label propagation (oracle β)", BASELINE_NAMES["label_propagation_best_beta"]),
    ("forward-corrected probe + Bayes", BASELINE_NAMES["forward_corrected_bayes"]),
    ("DMLP default", DMLP_DEFAULT), ("DMLP --meta auto", DMLP_AUTO), ("DMLP paper", DMLP_PAPER),
]
QUALITY_FIELDS = ["setting", "method", "kind", "seeds", "n_eval", "label_accuracy", "label_accuracy_std",
                  "n_changed", "probe_test_accuracy", "probe_test_accuracy_std", "seconds", "seconds_std",
                  "peak_rss_increase_mb", "soft_label_ece", "label_quality_auc", "note"]

@dataclass
class Measure:
    """One run of one method: what a quality row averages over seeds."""
    label_accuracy: float
    n_changed: int
    probe: float
    seconds: float
    peak_mb: float
    n_eval: int
    ece: float = float("nan")
    auc: float = float("nan")
    history: list = field(default_factory=list)


def _agg(values: Sequence[float]) -> Tuple[float, float]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0 or np.all(np.isnan(v)):
        return float("nan"), float("nan")
    return float(np.nanmean(v)), (float(np.nanstd(v, ddof=1)) if v.size > 1 else float("nan"))


def quality_row(setting, method, kind, measures: List[Measure], seeds="0", note="") -> dict:
    """A row of :data:`QUALITY_FIELDS`: the mean (and sd) over ``measures``."""
    acc, acc_sd = _agg([m.label_accuracy for m in measures])
    probe, probe_sd = _agg([m.probe for m in measures])
    sec, sec_sd = _agg([m.seconds for m in measures])
    return {"setting": setting, "method": method, "kind": kind, "seeds": seeds,
            "n_eval": measures[0].n_eval, "label_accuracy": acc, "label_accuracy_std": acc_sd,
            "n_changed": _agg([m.n_changed for m in measures])[0], "probe_test_accuracy": probe,
            "probe_test_accuracy_std": probe_sd, "seconds": sec, "seconds_std": sec_sd,
            "peak_rss_increase_mb": max(m.peak_mb for m in measures),
            "soft_label_ece": _agg([m.ece for m in measures])[0],
            "label_quality_auc": _agg([m.auc for m in measures])[0], "note": note}


COLUMNS_CAPTION = (
    "Columns: label accuracy on the evaluated non-meta rows; changed rows = evaluated rows whose label differs "
    "from the given one; probe test acc. = a logistic probe (`baselines.fit_logistic`, standardised features) "
    "trained on all training rows' labels (meta rows with their clean labels) and scored on "
    "testfeatures/testlabels; seconds = wall time of the method (DMLP: `dmlp.purify_dataset`, the call of "
    "`dmlp purify`: meta selection, scaling and `purify`, without the probe); peak RSS incr. = highest "
    "resident set size sampled every 10 ms during the method minus the RSS just before it (a process-wide "
    "measure, so memory the method reuses from earlier allocations is not counted). Ablation rows: the "
    "default config with one deviation set back to the paper's value (`ABLATIONS` in benchmarks/ablations.py).")
DIAGNOSTICS_CAPTION = (
    "Soft-label ECE: expected calibration error (15 bins) of the purified soft labels against the truth. "
    "Wrong-label ROC-AUC: how well low `label_quality` ranks the truly wrong given labels above the right "
    "ones (0.5 = chance, 1 = perfect). Mean over the seeds listed.")


def summary_caption(n_eval: int, meta_size: int, noise_seed: int, seeds: Sequence[int], quick: bool) -> str:
    return (f"Label accuracy (%) of each method's labels on the {n_eval} non-meta rows (DivideMix-protocol "
            f"noise, noise seed {noise_seed}; the same {meta_size} clean meta rows, "
            f"`draw_meta_indices(correct, {meta_size}, seed=0)`, for every method). DMLP default: mean ± std "
            f"over config seeds {','.join(map(str, seeds))}. "
            + ("--quick: a smoke run, so no target is judged. " if quick else
               "Target: the accuracy DMLP default is expected to reach (✓ = mean reaches it). ")
            + "Label propagation picks its β with hindsight on the truth (an oracle). "
            "DMLP --meta auto uses no clean label: its own meta rows are chosen from the noisy data.")


def _target_cell(setting: str, default: Optional[dict]) -> str:
    target = TARGETS.get(setting)
    if target is None:
        return "–"
    if default is None:
        return f"≥{target:g} (not run)"
    return f"≥{target:g} {'✓' if 100 * default['label_accuracy'] >= target else '✗'}"


def summary_table(rows: List[dict], settings: Sequence[str], verdicts: bool = True) -> str:
    """A row per setting, a column per method; ``verdicts=False`` (``--quick``): no target column."""
    by = {(r["setting"], r["method"]): r for r in rows}
    body = []
    for s in settings:
        cells = [s] + [pct(by[s, m]["label_accuracy"], by[s, m]["label_accuracy_std"]) if (s, m) in by else "n/a"
                       for _, m in SUMMARY_COLUMNS]
        body.append(cells + ([_target_cell(s, by.get((s, DMLP_DEFAULT)))] if verdicts else []))
    return md_table(["setting"] + [c for c, _ in SUMMARY_COLUMNS] + (["target (DMLP default)"] if verdicts else []),
                    body)


def quality_table(rows: List[dict]) -> str:
    """Every method of every setting: accuracy, changed rows, probe, seconds, memory, note."""
    body = [[r["setting"], r["method"], pct(r["label_accuracy"], r["label_accuracy_std"]),
             num(r["n_changed"], "{:.0f}"), pct(r["probe_test_accuracy"], r["probe_test_accuracy_std"]),
             num(r["seconds"], "{:.1f}", r["seconds_std"]), num(r["peak_rss_increase_mb"], "{:.0f}"), r["note"]]
            for r in rows]
    return md_table(["setting", "method", "label acc. (%)", "changed rows", "probe test acc. (%)",
                     "seconds", "peak RSS incr. (MB)", "note"], body)


def diagnostics_table(rows: List[dict]) -> str:
    """The soft-label ECE and the wrong-label ROC-AUC of the DMLP rows."""
    body = [[r["setting"], r["method"], r["seeds"], num(r["soft_label_ece"], "{:.4f}"),
             num(r["label_quality_auc"], "{:.4f}")] for r in rows if r["method"] in DMLP_METHODS]
    return md_table(["setting", "method", "seeds", "soft-label ECE", "wrong-label ROC-AUC"], body)


HISTORY_FIELDS = ["setting", "method", "epoch", "label_accuracy", "meta_loss"]


def history_rows(histories: dict) -> List[dict]:
    """The per-epoch records of every DMLP run, one CSV row each (:data:`HISTORY_FIELDS`)."""
    return [{"setting": s, "method": m, "epoch": e["epoch"], "label_accuracy": e.get("label_accuracy", ""),
             "meta_loss": e.get("meta_loss", "")} for (s, m), h in histories.items() for e in h]


def plot_histories(histories: dict, path: Path, setting: str) -> Optional[str]:
    """Label accuracy per epoch of DMLP default and paper on ``setting``; None if no matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in (DMLP_DEFAULT, DMLP_PAPER):
        h = histories.get((setting, method))
        if h:
            ax.plot([e["epoch"] for e in h], [100 * e["label_accuracy"] for e in h], label=method)
    ax.set_xlabel("epoch")
    ax.set_ylabel("label accuracy of the purified rows (%)")
    ax.set_title(f"{setting}: label accuracy per epoch\n(views' labels, before the final decision)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
