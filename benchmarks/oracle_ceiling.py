"""How far can feature evidence and the given label go?  An oracle ceiling per setting.

    python benchmarks/oracle_ceiling.py projected=DIR,raw=DIR,c100=DIR --out ceiling.md

Any purifier of this family combines some ``p(c | x)`` learned from the features with the
given label through ``T``.  This measures that product with the two things no purifier has:
a classifier trained on the *clean* labels of every training row (2-fold cross-fitted, so each
row is judged by a model that did not see it), and the *true* T of the noise process.  The
classifier's exponent and T's are fitted on the 1,000 meta rows (:func:`dmlp.posterior.fit_exponents`
with a N(1, 1) prior on each), then

    q(c | x, g)  proportional to  p_oracle(c | x)^a * T_true[c, g]^t

is scored on the non-meta rows, for a linear classifier and a one-hidden-layer MLP.  Same
noise (seed 0), meta rows (seed 0) and feature scaling (centred, RMS-scaled) as
``benchmarks/feature_set_quality.py``.  The default's kNN graph is not in the oracle, so the
default can exceed it; where it does not, the gap is headroom no better T or calibration fills.

T_true is the noise process's (:func:`process_transition`: counted on other draws of the same
noise), not T counted on the judged labels themselves.  Counted on them, T would hold each
judged row's own flip: at 100 classes and 80 % symmetric noise a cell of T counts about four
rows, so its count tells the posterior about the rows in it, which no purifier can know
(docs/benchmarks.md, "Oracle ceiling", measures what that leak is worth).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loader import benchmark_noise, load_cifar, parse_feature_sets, parse_setting  # noqa: E402
from benchmarks.output import emit, md_table  # noqa: E402
from dmlp.cli import ArgumentParser, run_cli  # noqa: E402

CLASSIFIERS = {"linear": 0, "MLP (1,024 hidden)": 1024}


def oracle_proba(features: np.ndarray, labels: np.ndarray, n_classes: int, hidden: int, *,
                       epochs: int = 30, seed: int = 0) -> np.ndarray:
    """Class probabilities (N, C) of every row from a classifier trained on the other half.

    Parameters
    ----------
    features : np.ndarray of shape (N, d), float
        Already scaled.
    labels : np.ndarray of shape (N,), integer
        The labels the classifier is trained on (here: the clean ones).
    n_classes : int
    hidden : int
        Width of the hidden ReLU layer (0: a linear classifier).
    epochs, seed : int
        AdamW (rate 1e-3, weight decay 1e-4), batches of 256.
    """
    import torch
    torch.manual_seed(seed)
    X = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.int64)
    half = torch.as_tensor(np.random.default_rng(seed).permutation(len(X)) < len(X) // 2)
    out = torch.zeros(len(X), n_classes)
    for fold in (True, False):
        train = half == fold
        d = X.shape[1]
        model = (torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_classes))
                 if hidden else torch.nn.Linear(d, n_classes))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        Xf, yf = X[train], y[train]
        generator = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(len(Xf), generator=generator)
            for s in range(0, len(Xf), 256):
                b = order[s:s + 256]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(Xf[b]), yf[b]).backward()
                opt.step()
        with torch.no_grad():
            out[~train] = torch.softmax(model(X[~train]), 1)
    return out.double().numpy()


def process_transition(noise, truth: np.ndarray, n_classes: int, draws=range(1, 21)) -> np.ndarray:
    """T[true, given] of a noise process, counted on ``draws`` draws of it other than the judged one.

    Parameters
    ----------
    noise : callable
        ``noise(seed)`` -> noisy labels (N,) of the process with that seed.
    truth : np.ndarray of shape (N,), integer
    n_classes : int
    draws : iterable of int
        The seeds counted (the judged labels' seed must not be among them).

    Returns
    -------
    np.ndarray of shape (C, C), rows summing to 1 (a class never seen: the identity row)
    """
    from dmlp.transition import transition_counts
    counts = sum(transition_counts(truth, noise(seed), n_classes) for seed in draws)
    total = counts.sum(1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1.0), np.eye(n_classes))


def oracle_accuracy(proba: np.ndarray, truth: np.ndarray, noisy: np.ndarray, meta: np.ndarray,
                    rows: np.ndarray, transition: np.ndarray) -> float:
    """Accuracy on ``rows`` of the calibrated posterior ``p^a T_true[:, given]^t``
    (``transition``: T_true, :func:`process_transition`)."""
    from dmlp.numerics import safe_log
    from dmlp.posterior import apply_posterior, fit_exponents
    T = transition                                   # T_true[true, given]
    # N(1, 1): the oracle's experts are a clean-label classifier and the true T; the default's
    # tighter prior (exponent_prior_std) guards noisy in-sample experts, which the oracle has not
    w = fit_exponents([safe_log(proba[meta]), safe_log(T[:, noisy[meta]].T)], truth[meta], prior_std=1.0)
    q = apply_posterior(w, T, [safe_log(proba[rows])], noisy[rows])
    return float((q.argmax(1) == truth[rows]).mean())


def main(argv=None) -> int:
    from dmlp.meta import draw_meta_indices
    from dmlp.scaling import fit_feature_scaling
    p = ArgumentParser(prog="benchmarks/oracle_ceiling.py", description=__doc__.split("\n\n")[0])
    p.add_argument("feature_sets", help="NAME=DIR[,NAME=DIR...]")
    p.add_argument("--settings", default="sym20,sym50,sym80,sym90,asym40")
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    args = p.parse_args(argv)
    table = []
    for name, folder in parse_feature_sets(args.feature_sets).items():
        data = load_cifar(folder)
        X = fit_feature_scaling(data.X).apply(data.X)
        meta = draw_meta_indices(data.y, 1000, 0)
        rows = np.setdiff1d(np.arange(len(data.y)), meta)
        proba = {c: oracle_proba(X, data.y, data.n_classes, h) for c, h in CLASSIFIERS.items()}
        clean = [f"{100 * (P.argmax(1) == data.y).mean():.2f}" for P in proba.values()]
        for setting in [s for s in args.settings.split(",") if s]:
            if setting == "sym90" and data.superclass is not None:
                continue
            mode, rate = parse_setting(setting)
            noisy = benchmark_noise(data, mode, rate, 0)
            T = process_transition(lambda seed: benchmark_noise(data, mode, rate, seed), data.y, data.n_classes)
            line = [name, setting, *clean] + [f"{100 * oracle_accuracy(P, data.y, noisy, meta, rows, T):.2f}"
                                              for P in proba.values()]
            print("[ceiling] " + " | ".join(line), flush=True)
            table.append(line)
    text = md_table(["feature set", "setting", *(f"{c}: clean accuracy" for c in CLASSIFIERS),
                     *(f"{c} oracle + true T" for c in CLASSIFIERS)], table)
    text += ("\n\nClean accuracy: the cross-fitted classifier trained on every training row's clean label, "
             "on all rows.  Oracle + true T: label accuracy (%) on the non-meta rows of its calibrated "
             "posterior with the noise process's transition matrix (counted on 20 other draws of the noise).\n")
    emit(text, args.out, "benchmarks/oracle_ceiling.py", argv)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
