"""Label-correction baselines to compare the DMLP purifier against.

Every baseline is a short pure function of numpy arrays:

* ``X`` -- features, ``(N, d)`` float (float16 memory maps are fine; converted to float32 in RAM),
* ``labels`` -- the given (noisy) labels, ``(N,)`` ints in ``0..C-1``,
* ``meta_idx`` -- indices into ``X`` of the small clean meta set,
* ``meta_labels`` -- the true labels of those rows,
* ``n_classes`` -- ``C``; ``seed`` -- makes the run deterministic,

and returns a :class:`BaselineResult` with corrected labels for all ``N`` rows (meta rows always
keep their clean label) and, where natural, ``(N, C)`` class probabilities / scores.

Linear and logistic models are fitted with torch on the CPU in float32 (full-batch L-BFGS), so
they run in seconds on a couple of cores.  Neighbour search is blocked matrix multiplication
(:func:`cosine_knn`); the resulting :class:`KnnGraph` can be computed once per feature matrix
and passed to :func:`knn_vote` and :func:`label_propagation` through ``knn=``.

scikit-learn is not used; ``cleanlab`` is an optional dependency needed only by
:func:`cleanlab_relabel` (a :class:`MissingDependencyError`, an ``ImportError``, says so).

:data:`ALL_BASELINES` maps a short name to a callable with the common signature
``fn(X, labels, meta_idx, meta_labels, n_classes, *, seed=0, knn=None, cache=None,
true_labels=None) -> BaselineResult`` so a benchmark can loop over them.  ``true_labels`` is
read only by the explicitly *oracle* entry ``label_propagation_best_beta`` (best beta chosen with
hindsight, an optimistic anchor); ``cache`` is a dict the caller may share across the baselines
of one setting so that the cross-validated probe is fitted once for ``cv_probe_relabel`` and
``cleanlab_relabel``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch

from .errors import InputError
from .graph import exact_knn_search, knn_weights, normalised_affinity, propagate
from .ridge import ridge_solve
from .validation import check_labels, check_meta_indices
from .transition import estimate_transition, given_label_posterior

__all__ = [
    "BaselineResult", "KnnGraph", "MissingDependencyError", "cosine_knn", "knn_vote",
    "fit_logistic", "cv_probe_relabel", "cleanlab_relabel", "ridge_on_meta",
    "label_propagation", "label_propagation_best_beta", "transition_matrix",
    "forward_corrected_bayes", "ALL_BASELINES", "LP_BETAS",
]

LP_BETAS: Tuple[float, ...] = (0.0, 0.03, 0.1, 0.3, 1.0)


class MissingDependencyError(ImportError):
    """An optional benchmark-only dependency (cleanlab) is not installed."""


@dataclass
class BaselineResult:
    """Output of a baseline: ``labels`` (N,) int64, optional ``probs`` (N, C) float32, ``info``."""
    labels: np.ndarray
    probs: Optional[np.ndarray] = None
    info: Optional[dict] = None


@dataclass
class KnnGraph:
    """``k`` nearest cosine neighbours of every row (the row itself excluded).

    ``indices`` (N, k) int64 and ``sims`` (N, k) float32, each row sorted by decreasing
    similarity.
    """
    indices: np.ndarray
    sims: np.ndarray

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def truncate(self, k: int) -> "KnnGraph":
        if k > self.k:
            raise InputError(f"knn graph has k={self.k} neighbours, {k} requested")
        return KnnGraph(self.indices[:, :k], self.sims[:, :k])


# ----------------------------------------------------------------------------- helpers

def _as_float32(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"features: expected a 2-D matrix, got shape {X.shape}")
    return np.ascontiguousarray(X, dtype=np.float32)


def _check_inputs(X, labels, meta_idx, meta_labels, n_classes):
    """The baselines' inputs, checked by the package's validators (:mod:`dmlp.validation`)."""
    X = _as_float32(X)
    n = X.shape[0]
    if n_classes < 2:
        raise InputError("must be >= 2", argument="n_classes", value=n_classes)
    labels = check_labels(labels, "labels", n_classes, n_rows=n, rows_of="features")
    meta_idx = np.zeros(0, np.int64) if meta_idx is None or len(meta_idx) == 0 else np.asarray(meta_idx)
    if meta_idx.size:
        check_meta_indices(meta_idx, n, "meta_idx")        # in the caller's order, paired with meta_labels
    meta_labels = check_labels(np.zeros(0, np.int64) if meta_labels is None else meta_labels, "meta_labels",
                               n_classes, n_rows=meta_idx.size, rows_of="meta_idx")
    return X, labels, meta_idx.astype(np.int64), meta_labels


def _clamp_meta(pred: np.ndarray, meta_idx: np.ndarray, meta_labels: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.int64).copy()
    pred[meta_idx] = meta_labels
    return pred


def _one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((y.shape[0], n_classes), dtype=np.float32)
    out[np.arange(y.shape[0]), y] = 1.0
    return out


def _standardise(X: np.ndarray) -> np.ndarray:
    """Column-wise zero mean / unit variance (label-free, so it may use all rows)."""
    mu = X.mean(axis=0, keepdims=True)
    sd = X.std(axis=0, keepdims=True)
    return (X - mu) / np.maximum(sd, 1e-6)


# ----------------------------------------------------------------------------- kNN

def cosine_knn(X, k: int = 20, *, block_size: int = 1024) -> KnnGraph:
    """Exact ``k`` nearest neighbours under cosine similarity, the row itself excluded
    (:func:`dmlp.graph.exact_knn_search`)."""
    X = _as_float32(X)
    n = X.shape[0]
    if not 1 <= k < n:
        raise InputError(f"k must be in 1..{n - 1}, got {k}")
    return KnnGraph(*exact_knn_search(torch.from_numpy(X), k, block_size=block_size))


def _get_knn(X, knn: Optional[KnnGraph], k: int) -> KnnGraph:
    if knn is None:
        return cosine_knn(X, k)
    if knn.indices.shape[0] != np.asarray(X).shape[0]:
        raise InputError(f"knn graph has {knn.indices.shape[0]} rows but features have {np.asarray(X).shape[0]}")
    return knn.truncate(k)


def knn_vote(X, labels, meta_idx, meta_labels, n_classes: int, *, k: int = 20,
             knn: Optional[KnnGraph] = None, seed: int = 0) -> BaselineResult:
    """kNN label smoothing: each row takes the majority given label of its ``k`` cosine neighbours.

    The row's own label does not vote (self is excluded from its neighbours); ties go to the
    smallest class index.  ``probs`` are the vote fractions.  Reference: the classic
    nearest-neighbour editing idea (Wilson, 1972, "Asymptotic properties of nearest neighbor
    rules using edited data"), used as a noisy-label baseline e.g. by Bahri et al. 2020 ("Deep
    k-NN for noisy labels").  ``seed`` is unused (deterministic).
    """
    X, labels, meta_idx, meta_labels = _check_inputs(X, labels, meta_idx, meta_labels, n_classes)
    g = _get_knn(X, knn, k)
    n = X.shape[0]
    votes = np.zeros((n, n_classes), dtype=np.float32)
    np.add.at(votes, (np.repeat(np.arange(n), g.k), labels[g.indices].reshape(-1)), 1.0)
    votes /= g.k
    return BaselineResult(_clamp_meta(votes.argmax(1), meta_idx, meta_labels), votes)


# ----------------------------------------------------------------------------- logistic probes

class _Linear(torch.autograd.Function):
    """``X @ W + b`` whose weight gradient is computed as ``(G' X)'``: torch's own backward,
    ``X' G`` on a transposed view of a tall X, is several times slower on CPU, and the probes
    spend most of their time there."""

    @staticmethod
    def forward(ctx, X, W, b):
        ctx.save_for_backward(X)
        return torch.addmm(b, X, W)

    @staticmethod
    def backward(ctx, grad):
        (X,) = ctx.saved_tensors
        return None, (grad.T @ X).T, grad.sum(0)


def fit_logistic(X: np.ndarray, y: np.ndarray, n_classes: int, *, weight_decay: float = 1e-4,
                 max_iter: int = 100, seed: int = 0, T: Optional[np.ndarray] = None,
                 X_clean: Optional[np.ndarray] = None, y_clean: Optional[np.ndarray] = None,
                 clean_weight: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Full-batch L-BFGS multinomial logistic regression (weights ``W`` (d, C), bias ``b`` (C,)).

    Loss = mean NLL of ``y`` + ``weight_decay/2 * ||W||^2``.  With a transition matrix ``T``
    (C x C, ``T[true, given]``) the NLL is *forward corrected*: ``-log (softmax(z) @ T)[y]``.
    With ``X_clean``/``y_clean`` a plain cross-entropy term on those rows is added, times
    ``clean_weight``.  Inputs must already be float32.
    """
    torch.manual_seed(seed)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    d = Xt.shape[1]
    W = torch.zeros(d, n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    Tt = None if T is None else torch.from_numpy(np.asarray(T, dtype=np.float32))
    if X_clean is not None and len(X_clean):
        Xc = torch.from_numpy(np.ascontiguousarray(X_clean, dtype=np.float32))
        yc = torch.from_numpy(np.asarray(y_clean, dtype=np.int64))
    else:
        Xc = yc = None
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-9,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = _Linear.apply(Xt, W, b)
        if Tt is None:
            loss = torch.nn.functional.cross_entropy(z, yt)
        else:
            q = torch.softmax(z, dim=1) @ Tt
            loss = -torch.log(q.gather(1, yt[:, None]).clamp_min(1e-12)).mean()
        if Xc is not None:
            loss = loss + clean_weight * torch.nn.functional.cross_entropy(_Linear.apply(Xc, W, b), yc)
        loss = loss + 0.5 * weight_decay * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def _predict_proba(X: np.ndarray, W: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(torch.from_numpy(X) @ W + b, dim=1).numpy()


def _folds(n: int, n_folds: int, seed: int) -> Sequence[np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return np.array_split(perm, n_folds)


def cv_probe_relabel(X, labels, meta_idx, meta_labels, n_classes: int, *, n_folds: int = 5,
                     weight_decay: float = 1e-4, max_iter: int = 100,
                     seed: int = 0) -> BaselineResult:
    """Cross-validated linear probe: every row relabelled to its out-of-fold prediction.

    A multinomial logistic regression (torch, L-BFGS, small L2 ``weight_decay``) is fitted on
    the given labels of ``n_folds - 1`` folds of standardised features and predicts the
    held-out fold; ``probs`` are these out-of-fold probabilities (the ``pred_probs`` that
    confident learning expects).  Reference: the cross-validation step of Northcutt et al.
    2021, "Confident Learning: Estimating Uncertainty in Dataset Labels" (JAIR).
    """
    X, labels, meta_idx, meta_labels = _check_inputs(X, labels, meta_idx, meta_labels, n_classes)
    Xs = _standardise(X)
    n = X.shape[0]
    probs = np.zeros((n, n_classes), dtype=np.float32)
    for f, test in enumerate(_folds(n, n_folds, seed)):
        train = np.ones(n, dtype=bool)
        train[test] = False
        W, b = fit_logistic(Xs[train], labels[train], n_classes, weight_decay=weight_decay,
                            max_iter=max_iter, seed=seed + f)
        probs[test] = _predict_proba(Xs[test], W, b)
    return BaselineResult(_clamp_meta(probs.argmax(1), meta_idx, meta_labels), probs)


def _import_cleanlab_filter():
    try:
        from cleanlab.filter import find_label_issues  # noqa: WPS433
    except ImportError as exc:
        raise MissingDependencyError(
            "cleanlab_relabel needs the optional package 'cleanlab' (benchmark only): "
            "pip install cleanlab") from exc
    return find_label_issues


def cleanlab_relabel(X, labels, meta_idx, meta_labels, n_classes: int, *,
                     pred_probs: Optional[np.ndarray] = None, n_folds: int = 5,
                     weight_decay: float = 1e-4, max_iter: int = 100,
                     seed: int = 0) -> BaselineResult:
    """Confident learning: rows flagged by ``cleanlab.filter.find_label_issues`` are relabelled.

    ``pred_probs`` are the out-of-fold probabilities of :func:`cv_probe_relabel` (computed here
    unless passed in).  Flagged rows take the probe's argmax, the rest keep their given label.
    Reference: Northcutt et al. 2021, "Confident Learning" (JAIR); the ``cleanlab`` package
    (default ``filter_by='prune_by_noise_rate'``).  Raises :class:`MissingDependencyError`
    (an ``ImportError``) when cleanlab is not installed.
    """
    find_label_issues = _import_cleanlab_filter()
    X, labels, meta_idx, meta_labels = _check_inputs(X, labels, meta_idx, meta_labels, n_classes)
    if pred_probs is None:
        pred_probs = cv_probe_relabel(X, labels, meta_idx, meta_labels, n_classes, n_folds=n_folds,
                                      weight_decay=weight_decay, max_iter=max_iter, seed=seed).probs
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    if pred_probs.shape != (X.shape[0], n_classes):
        raise InputError(f"pred_probs must have shape {(X.shape[0], n_classes)}, got {pred_probs.shape}")
    pred_probs = pred_probs / pred_probs.sum(1, keepdims=True)
    issues = np.asarray(find_label_issues(labels, pred_probs), dtype=bool)
    out = labels.copy()
    out[issues] = pred_probs[issues].argmax(1)
    return BaselineResult(_clamp_meta(out, meta_idx, meta_labels), pred_probs.astype(np.float32),
                          {"n_flagged": int(issues.sum())})


# ----------------------------------------------------------------------------- ridge on meta

def ridge_on_meta(X, labels, meta_idx, meta_labels, n_classes: int, *, lam: float = 300.0,
                  seed: int = 0) -> BaselineResult:
    """Ridge regression to one-hot targets fitted on the clean meta rows alone.

    Closed form ``W = (Xm'Xm + lam I)^-1 Xm'Y`` on centred, standardised features (plus an
    unpenalised intercept), predicting every row; the given labels are ignored entirely.
    ``probs`` are the raw regression scores.  Reference: Hoerl & Kennard 1970 /
    regularised least-squares classification (Rifkin et al. 2003).  ``seed`` unused.
    """
    X, labels, meta_idx, meta_labels = _check_inputs(X, labels, meta_idx, meta_labels, n_classes)
    if meta_idx.size == 0:
        raise InputError("ridge_on_meta needs a non-empty meta set")
    Xs = _standardise(X).astype(np.float64)
    Xm = Xs[meta_idx]
    Y = _one_hot(meta_labels, n_classes).astype(np.float64)
    mu_x = Xm.mean(0)
    mu_y = Y.mean(0)
    Xc = torch.from_numpy(Xm - mu_x)
    relative = lam / (float((Xc * Xc).sum()) / X.shape[1])       # lam as ridge_solve's relative ridge
    W = ridge_solve(Xc, torch.from_numpy(Y - mu_y), relative).numpy()
    scores = ((Xs - mu_x) @ W + mu_y).astype(np.float32)
    return BaselineResult(_clamp_meta(scores.argmax(1), meta_idx, meta_labels), scores)


# ----------------------------------------------------------------------------- label propagation

def knn_affinity(knn: KnnGraph, *, power: float = 3.0) -> sp.csr_matrix:
    """Symmetric normalised affinity ``D^-1/2 (W + W') D^-1/2`` with ``W_ij = max(s_ij, 0)^power``.

    The method's graph (:mod:`dmlp.graph`) in float64, on an exact kNN list.
    """
    return normalised_affinity(knn.indices, knn_weights(knn.sims.astype(np.float64), power).numpy())


def label_propagation(X, labels, meta_idx, meta_labels, n_classes: int, *, beta: float = 0.1,
                      alpha: float = 0.9, n_steps: int = 30, k: int = 20,
                      knn: Optional[KnnGraph] = None, affinity: Optional[sp.spmatrix] = None,
                      seed: int = 0) -> BaselineResult:
    """Graph label propagation seeded by the clean meta labels (and, weakly, the given labels).

    Graph: symmetric cosine kNN graph (``k`` neighbours, weights ``max(sim, 0)^3``, ``W + W'``,
    normalised ``S = D^-1/2 W D^-1/2``).  Seeds ``Y = onehot(meta labels at meta rows) +
    beta * onehot(given labels)``; iterate ``F <- alpha S F + (1 - alpha) Y`` for ``n_steps``
    steps; label = argmax F (rows with no mass keep their given label).  ``probs`` are the
    row-normalised scores.  Pass ``knn`` (or a ready ``affinity``) to skip the neighbour
    search.  Reference: Zhou et al. 2004, "Learning with Local and Global Consistency";
    Iscen et al. 2019, "Label Propagation for Deep Semi-supervised Learning".  ``seed`` unused.
    """
    X, labels, meta_idx, meta_labels = _check_inputs(X, labels, meta_idx, meta_labels, n_classes)
    if affinity is None:
        affinity = knn_affinity(_get_knn(X, knn, k))
    n = X.shape[0]
    Y = beta * _one_hot(labels, n_classes).astype(np.float64) if beta else np.zeros((n, n_classes))
    Y[meta_idx, meta_labels] += 1.0
    F = propagate(affinity, Y, alpha, n_steps, read_out=False)
    mass = F.sum(1)
    pred = np.where(mass > 0, F.argmax(1), labels)
    probs = (F / np.where(mass > 0, mass, 1.0)[:, None]).astype(np.float32)
    return BaselineResult(_clamp_meta(pred, meta_idx, meta_labels), probs, {"beta": beta})


def label_propagation_best_beta(X, labels, meta_idx, meta_labels, n_classes: int, true_labels, *,
                                betas: Sequence[float] = LP_BETAS, k: int = 20,
                                knn: Optional[KnnGraph] = None,
                                **kwargs) -> BaselineResult:
    """ORACLE: :func:`label_propagation` with the beta in ``betas`` that is best on the truth.

    Accuracy is measured on the non-meta rows against ``true_labels``, so the result is an
    optimistic anchor, not a usable method.  ``info`` holds the chosen beta and every beta's
    accuracy.
    """
    X, labels, meta_idx, meta_labels = _check_inputs(X, labels, meta_idx, meta_labels, n_classes)
    true_labels = np.asarray(true_labels, dtype=np.int64).reshape(-1)
    if true_labels.shape != labels.shape:
        raise InputError("true_labels must have one entry per row")
    affinity = kwargs.pop("affinity", None)
    if affinity is None:
        affinity = knn_affinity(_get_knn(X, knn, k))
    mask = np.ones(labels.shape[0], dtype=bool)
    mask[meta_idx] = False
    best, accs = None, {}
    for beta in betas:
        res = label_propagation(X, labels, meta_idx, meta_labels, n_classes, beta=beta,
                                affinity=affinity, **kwargs)
        accs[beta] = float((res.labels[mask] == true_labels[mask]).mean())
        if best is None or accs[beta] > accs[best[0]]:
            best = (beta, res)
    beta, res = best
    res.info = {"beta": beta, "acc_by_beta": accs}
    return res


# ----------------------------------------------------------------------------- forward correction

def transition_matrix(true_labels, given_labels, n_classes: int, *,
                      smoothing: float = 0.5) -> np.ndarray:
    """``T[true, given]``: counts over rows whose true and given labels are both known,
    plus ``smoothing`` in every cell, each row normalised to sum to 1."""
    true_labels = np.asarray(true_labels, dtype=np.int64).reshape(-1)
    given_labels = np.asarray(given_labels, dtype=np.int64).reshape(-1)
    if true_labels.shape != given_labels.shape:
        raise InputError("true_labels and given_labels must have the same length")
    return estimate_transition(true_labels, given_labels, n_classes, smoothing)


def forward_corrected_bayes(X, labels, meta_idx, meta_labels, n_classes: int, *,
                            smoothing: float = 0.5, weight_decay: float = 3e-3,
                            clean_weight: float = 1.0, max_iter: int = 100,
                            seed: int = 0) -> BaselineResult:
    """Forward loss correction with a meta-estimated transition matrix, then a Bayes relabel.

    1. ``T[true, given]`` counted on the meta rows (both labels known), +``smoothing``,
       rows normalised (:func:`transition_matrix`).
    2. A linear softmax classifier on standardised features, trained on all rows with the
       forward-corrected NLL ``-log (softmax(z) T)[given]`` plus ``clean_weight`` x the
       cross-entropy of the meta rows' true labels (small L2, L-BFGS).
    3. Each row's label is ``argmax_c p(c|x) T[c, given]`` -- the posterior of the true class
       given both the features and the observed label.  ``probs`` is that posterior.

    Reference: Patrini et al. 2017, "Making Deep Neural Networks Robust to Label Noise: a Loss
    Correction Approach" (forward correction); Hendrycks et al. 2018, "Using Trusted Data to
    Train Deep Networks on Labels Corrupted by Severe Noise" (T estimated on trusted data).
    """
    X, labels, meta_idx, meta_labels = _check_inputs(X, labels, meta_idx, meta_labels, n_classes)
    if meta_idx.size == 0:
        raise InputError("forward_corrected_bayes needs a non-empty meta set")
    T = transition_matrix(meta_labels, labels[meta_idx], n_classes, smoothing=smoothing)
    Xs = _standardise(X)
    W, b = fit_logistic(Xs, labels, n_classes, weight_decay=weight_decay, max_iter=max_iter,
                        seed=seed, T=T, X_clean=Xs[meta_idx], y_clean=meta_labels,
                        clean_weight=clean_weight)
    p = _predict_proba(Xs, W, b)
    post = given_label_posterior(p, T, labels)
    return BaselineResult(_clamp_meta(post.argmax(1), meta_idx, meta_labels),
                          post.astype(np.float32), {"T": T})


# ----------------------------------------------------------------------------- registry

def _reg_knn_vote(X, labels, meta_idx, meta_labels, n_classes, *, seed=0, knn=None, cache=None,
                  true_labels=None):
    return knn_vote(X, labels, meta_idx, meta_labels, n_classes, knn=knn, seed=seed)


def _reg_cv_probe(X, labels, meta_idx, meta_labels, n_classes, *, seed=0, knn=None, cache=None,
                  true_labels=None):
    res = cv_probe_relabel(X, labels, meta_idx, meta_labels, n_classes, seed=seed)
    if cache is not None:
        cache[("cv_probe_probs", seed)] = res.probs
    return res


def _reg_cleanlab(X, labels, meta_idx, meta_labels, n_classes, *, seed=0, knn=None, cache=None,
                  true_labels=None):
    probs = None if cache is None else cache.get(("cv_probe_probs", seed))
    return cleanlab_relabel(X, labels, meta_idx, meta_labels, n_classes, pred_probs=probs,
                            seed=seed)


def _reg_ridge(X, labels, meta_idx, meta_labels, n_classes, *, seed=0, knn=None, cache=None,
               true_labels=None):
    return ridge_on_meta(X, labels, meta_idx, meta_labels, n_classes, seed=seed)


def _reg_lp_best(X, labels, meta_idx, meta_labels, n_classes, *, seed=0, knn=None, cache=None,
                 true_labels=None):
    if true_labels is None:
        raise InputError("label_propagation_best_beta is an oracle: it needs true_labels")
    affinity = None
    if cache is not None and knn is not None:
        key = ("lp_affinity", id(knn))
        if key not in cache:
            cache[key] = knn_affinity(knn.truncate(20))
        affinity = cache[key]
    return label_propagation_best_beta(X, labels, meta_idx, meta_labels, n_classes, true_labels,
                                       knn=knn, affinity=affinity)


def _reg_forward(X, labels, meta_idx, meta_labels, n_classes, *, seed=0, knn=None, cache=None,
                 true_labels=None):
    return forward_corrected_bayes(X, labels, meta_idx, meta_labels, n_classes, seed=seed)


#: name -> callable(X, labels, meta_idx, meta_labels, n_classes, *, seed=0, knn=None,
#: cache=None, true_labels=None) -> BaselineResult, in benchmark-table order.  Pass the same
#: ``cache`` dict to all of one setting's calls (cv_probe before cleanlab) to fit the probe once.
ALL_BASELINES: Dict[str, Callable[..., BaselineResult]] = {
    "knn_vote": _reg_knn_vote,
    "cv_probe_relabel": _reg_cv_probe,
    "cleanlab_relabel": _reg_cleanlab,
    "ridge_on_meta": _reg_ridge,
    "label_propagation_best_beta": _reg_lp_best,
    "forward_corrected_bayes": _reg_forward,
}
