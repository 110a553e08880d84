"""Label-quality metrics reported in summary.json and by the benchmark (numpy only)."""
from __future__ import annotations

import numpy as np


def accuracy(labels, truth) -> float:
    """Fraction of ``labels`` equal to ``truth`` (both (N,) integer); NaN when N is 0."""
    labels, truth = np.asarray(labels), np.asarray(truth)
    return float((labels == truth).mean()) if len(truth) else float("nan")


def per_class_accuracy(labels, truth, n_classes: int) -> list:
    """Accuracy of the labels on the rows of each true class."""
    out = []
    for c in range(n_classes):
        rows = np.asarray(truth) == c
        out.append(float((np.asarray(labels)[rows] == c).mean()) if rows.any() else None)
    return out


def expected_calibration_error(probs, truth, n_bins: int = 15) -> float:
    """ECE of the top-class confidence against the true labels (equal-width bins)."""
    probs = np.asarray(probs, dtype=np.float64)
    conf, pred = probs.max(1), probs.argmax(1)
    correct = pred == np.asarray(truth)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        rows = bins == b
        if rows.any():
            ece += rows.mean() * abs(correct[rows].mean() - conf[rows].mean())
    return float(ece)


def roc_auc(scores, positives) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positives`` (rank statistic, ties averaged)."""
    scores, positives = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    n_pos, n_neg = positives.sum(), (~positives).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # average ranks (scipy.stats.rankdata's default, without its 0.4 s import): a run of c tied
    # values ending at 1-based position u holds ranks u - c + 1 ... u, mean u - (c - 1) / 2
    _, tie_group, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[tie_group.ravel()]
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
