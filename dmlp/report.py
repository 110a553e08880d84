"""``dmlp purify --plot``: one picture of a run, ``report.png``, readable without ground truth.

Left: the per-epoch curve (the label accuracy on the purified rows when their true labels are
known, else the meta loss).  Right: the estimated noise-transition matrix T as a heat map (row
= true class, column = given label).  Needs matplotlib (``pip install 'dmlp[plot]'``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_report(path, summary: dict) -> Path:
    """Draw ``summary`` (the dict written to ``summary.json``) into the PNG ``path``, atomically.

    Parameters
    ----------
    path : path
        The PNG to write; written under a temporary name and renamed.
    summary : dict
        A run's summary: ``history``, ``transition_matrix``, ``estimated_noise_rate``,
        ``config_name``, ``data`` and, when known, ``label_accuracy_before/after``.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import save_with

    path = Path(path)
    history = summary.get("history") or []
    T = summary.get("transition_matrix")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    epochs = [h["epoch"] for h in history]
    if history and all("label_accuracy" in h for h in history):
        left.plot(epochs, [100 * h["label_accuracy"] for h in history], marker=".")
        left.set_ylabel("label accuracy of the loop's labels (%)")
        if "label_accuracy_after" in summary:
            left.axhline(100 * summary["label_accuracy_after"], color="C2", ls="--",
                         label=f"final labels {100 * summary['label_accuracy_after']:.2f} %")
            left.axhline(100 * summary["label_accuracy_before"], color="C3", ls=":",
                         label=f"given labels {100 * summary['label_accuracy_before']:.2f} %")
            left.legend(loc="lower right")
    elif history:
        left.plot(epochs, [h["meta_loss"] for h in history], marker=".")
        left.set_ylabel("meta loss (no ground truth for these rows)")
    left.set_xlabel("epoch")
    left.set_title(f"{summary.get('config_name', '')} on {Path(str(summary.get('data', ''))).name}")
    if T is not None:
        T = np.asarray(T, dtype=np.float64)
        image = right.imshow(T, cmap="viridis", vmin=0.0, vmax=1.0)
        fig.colorbar(image, ax=right, shrink=0.85, label="P(given label | true class)")
        if len(T) <= 20:
            for (c, k), v in np.ndenumerate(T):
                right.text(k, c, f"{v:.2f}", ha="center", va="center", fontsize=7,
                           color="black" if v > 0.5 else "white")
        right.set_xlabel("given label")
        right.set_ylabel("true class")
        right.set_title(f"estimated T (noise rate {100 * summary.get('estimated_noise_rate', float('nan')):.1f} %)")
    else:
        right.axis("off")
        right.text(0.5, 0.5, "no estimated transition matrix in this run's result", ha="center", va="center")
    try:
        return save_with(path, lambda fh: fig.savefig(fh, dpi=110, format="png"))
    finally:
        plt.close(fig)
