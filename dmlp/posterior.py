"""The final decision of the default configuration: a noise-transition model, a feature graph,
and a Bayes posterior calibrated on the meta set.

The given label ``g`` of a row is modelled as drawn from ``T[true, :]``, the transition matrix
(Patrini et al., CVPR 2017), so the posterior of the true class is

    q(c | x, g)  proportional to  p_eac(c | x)^a * p_graph(c | x)^b * T[c, g]^t

- ``p_eac``: the forward-corrected auxiliary classifiers (EAC) of the views;
- ``p_graph``: the purified labels (IPC's label distributions) propagated over a cosine kNN graph
  of the features, seeded with the clean meta labels (Zhou et al., NeurIPS 2004), read at each
  row from its neighbours only;
- ``T``: counted on the meta rows, whose given and clean labels are both known (+ smoothing).

The exponents ``(a, b, t)`` are fitted by maximum likelihood of the clean meta labels, using for
each meta row out-of-fold evidence only (the views see disjoint meta folds, and the graph is
re-seeded without the row's fold).  So how much the given label is trusted against the features
is learned from the data at hand, not looked up per noise rate.

With ``transition_em_steps`` the counts of T come from the posteriors of all N rows as well as
from the meta rows (the EM of Dawid & Skene, 1979): 1,000 meta rows give each off-diagonal cell
a handful of rows, all N rows thousands (and CIFAR-100's 10,000 cells need them).
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import scipy.sparse as sp

from .graph import propagate
from .numerics import normalise_rows, safe_log, stable_exp_rows

from .errors import check_finite

log = logging.getLogger("dmlp")


def transition_counts(true: np.ndarray, given: np.ndarray, n_classes: int) -> np.ndarray:
    """C x C counts of the rows whose true class is c and given label is g."""
    counts = np.zeros((n_classes, n_classes))
    np.add.at(counts, (np.asarray(true), np.asarray(given)), 1.0)
    return counts


def estimate_transition(meta_true: np.ndarray, meta_given: Optional[np.ndarray], n_classes: int,
                        smoothing: float = 0.5) -> Optional[np.ndarray]:
    """T[true, given] counted on the meta rows, smoothed and row-normalised.

    Returns None without the meta rows' given labels (a separate clean set, or ``--meta auto``):
    T is then estimated from the model's posteriors (:func:`transition_from_posteriors`).
    """
    if meta_given is None:
        return None
    T = transition_counts(meta_true, meta_given, n_classes) + float(smoothing)
    return T / T.sum(1, keepdims=True)


def given_label_posterior(prob: np.ndarray, transition: np.ndarray, given: np.ndarray) -> np.ndarray:
    """The posterior of the true class given the features and the given label, ``p(c|x) T[c, given]``.

    Parameters
    ----------
    prob : np.ndarray of shape (N, C)
        ``p(c | x)`` of each row.
    transition : np.ndarray of shape (C, C)
        ``T[true, given]``, rows summing to 1.
    given : np.ndarray of shape (N,), integer
        The given (noisy) label of each row.

    Returns
    -------
    np.ndarray of shape (N, C)
        Rows floored at ``PROB_FLOOR`` and normalised to sum to 1.
    """
    return normalise_rows(prob * transition[:, given].T)


def transition_from_posteriors(prob: np.ndarray, given: np.ndarray, smoothing: float = 0.5,
                               counts: Optional[np.ndarray] = None) -> np.ndarray:
    """T[c, g] proportional to sum of p(c | x_i) over rows with given label g (soft counting),
    plus ``counts`` (C x C, e.g. the meta rows' exact counts) and ``smoothing``."""
    C = prob.shape[1]
    T = np.full((C, C), float(smoothing))
    if counts is not None:
        T += counts
    for g in range(C):
        T[:, g] += prob[given == g].sum(0)
    return T / T.sum(1, keepdims=True)


# --- calibrated combination ---------------------------------------------------------------------

def fit_exponents(log_terms, truth: np.ndarray, fixed=None, upper: float = 20.0,
                  iters: int = 50, prior_std: float = 1.0) -> np.ndarray:
    """Non-negative exponents of a product of experts, by maximum a posteriori of ``truth``.

    The negative log-likelihood is that of a multinomial logit in the exponents, so it is
    convex; projected Newton steps on the box ``[0, upper]`` (the few exponents make the
    Hessian tiny) with a backtracking line search find its minimum.  A N(1, prior_std^2)
    prior on each exponent (1: take the expert as it is) keeps the fit finite when the
    evidence separates the classes, as it does on ``--meta auto``'s confident rows, where the
    likelihood alone would push the exponents to the bound.
    """
    fixed = fixed if fixed is not None else np.zeros_like(log_terms[0])
    L = np.stack(log_terms)                                     # K x n x C
    idx = np.arange(len(truth))

    def evaluate(w):
        z = fixed + np.tensordot(w, L, axes=1)
        z = z - z.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1))
        soft = np.exp(z - lse[:, None])
        value = -(z[idx, truth] - lse).mean()
        mean_l = (soft[None] * L).sum(-1)                          # K x n: E_soft[l_k]
        grad = -(L[:, idx, truth] - mean_l).mean(1)
        hess = np.einsum("inc,jnc,nc->ij", L, L, soft) / len(truth) - mean_l @ mean_l.T / len(truth)
        scale = 1.0 / (prior_std ** 2 * len(truth))                # the prior, per row like the NLL
        value = value + 0.5 * scale * ((w - 1.0) ** 2).sum()
        return value, grad + scale * (w - 1.0), hess + scale * np.eye(len(w))

    w = np.ones(len(log_terms))
    value, grad, hess = evaluate(w)
    for _ in range(iters):
        # variables held at a bound by their gradient stay there; Newton on the others
        free = ~(((w <= 0) & (grad > 0)) | ((w >= upper) & (grad < 0)))
        step = np.zeros_like(w)
        if free.any():
            H = hess[np.ix_(free, free)] + 1e-9 * np.eye(int(free.sum()))
            step[free] = -np.linalg.solve(H, grad[free])
        t = 1.0
        while t > 1e-6:
            trial = np.clip(w + t * step, 0.0, upper)
            new = evaluate(trial)
            if new[0] <= value + 1e-4 * grad @ (trial - w):
                break
            t *= 0.5
        else:
            break
        if abs(value - new[0]) < 1e-12:
            w, (value, grad, hess) = trial, new
            break
        w, (value, grad, hess) = trial, new
    return w


def graph_evidence(graph: sp.csr_matrix, ipc_soft: np.ndarray, eac_meta_oof: np.ndarray,
                   meta_given: Optional[np.ndarray], meta_labels: np.ndarray, meta_fold: np.ndarray,
                   transition, cfg, n_views: int = 0):
    """Log ``p_graph`` of the N training rows and, out-of-fold, of the M meta rows.

    The purified labels (``ipc_soft``) and the meta rows' clean labels seed label propagation
    over ``graph`` (N training rows, then M meta rows).  For a meta row in fold f the seeds are
    propagated again with fold f held out: its rows then carry the out-of-fold EAC posterior
    ``eac_meta_oof`` (times ``T[:, given]`` when known), like any other row.

    Returns ``(train, meta, per_view)``: ``per_view[v]`` (only with ``n_views`` > 1 and several
    folds) is the training rows' term seeded with meta fold v alone, the folds view v judges
    held out (see :func:`dmlp.ipc.meta_view_weights`: view v fits fold v).
    """
    N, C = ipc_soft.shape
    M = len(meta_labels)
    eac_q_meta = eac_meta_oof if transition is None or meta_given is None else \
        given_label_posterior(eac_meta_oof, transition, meta_given)
    seeds = np.vstack([ipc_soft, np.eye(C)[meta_labels]]).astype(np.float32)
    folds = np.unique(meta_fold)
    held_sets = [frozenset([f]) for f in folds]         # for the meta rows of fold f
    if n_views > 1 and len(folds) > 1:                  # for view v's refit: all but fold v held out
        held_sets += [frozenset(folds) - {v} for v in range(n_views)
                      if frozenset(folds) - {v} not in held_sets]
    blocks = [seeds]
    for held_folds in held_sets:        # the same seeds with those folds held out, as extra columns
        s = seeds.copy()
        held = np.nonzero(np.isin(meta_fold, list(held_folds)))[0]
        s[N + held] = eac_q_meta[held]
        blocks.append(s)
    propagated = propagate(graph, np.hstack(blocks), cfg.graph_alpha, cfg.graph_steps)
    column = {h: propagated[:, (j + 1) * C:(j + 2) * C] for j, h in enumerate(held_sets)}
    graph_meta = np.zeros((M, C))
    for f in folds:
        held = meta_fold == f
        graph_meta[held] = column[frozenset([f])][N:][held]
    term = lambda P: safe_log(normalise_rows(P.astype(np.float64) + 1e-6))
    per_view = None
    if n_views > 1 and len(folds) > 1:
        per_view = [term(column[frozenset(folds) - {v}][:N]) for v in range(n_views)]
    return term(propagated[:N, :C]), term(graph_meta), per_view


def apply_posterior(weights: np.ndarray, transition: np.ndarray, terms, given: np.ndarray) -> np.ndarray:
    """``q`` proportional to ``prod_k term_k ^ w_k * T[c, given] ^ w_last`` (log terms, rows x C)."""
    z = sum(w * t for w, t in zip(weights, terms)) + weights[-1] * safe_log(transition[:, given].T)
    return stable_exp_rows(z)


def bayes_posterior(eac_train: np.ndarray, eac_meta_oof: np.ndarray, given: np.ndarray,
                    meta_given: Optional[np.ndarray], meta_labels: np.ndarray, transition, cfg,
                    graph_terms: Optional[tuple] = None):
    """Posterior of the true class of every training row.  Returns ``(q, info, model)``.

    ``eac_train`` N x C and ``eac_meta_oof`` M x C (EAC probabilities; out-of-fold for the meta
    rows), ``graph_terms`` the (train, meta) log terms of :func:`graph_evidence` (or None),
    ``transition`` C x C or None.  With ``cfg.transition_em_steps`` > 0, T is then re-estimated
    from the posteriors of all N rows and the posterior recomputed, as in the EM of Dawid &
    Skene (1979): 1,000 meta rows count each off-diagonal cell of T from a handful of rows, all
    N rows from thousands.  ``model = (weights, T)`` applies to other evidence of the same kind
    with :func:`apply_posterior`.
    """
    C = eac_train.shape[1]
    info = {}
    terms_train, terms_meta = [safe_log(eac_train)], [safe_log(eac_meta_oof)]
    names = ["eac"]
    if graph_terms is not None:
        terms_train.append(graph_terms[0])
        terms_meta.append(graph_terms[1])
        names.append("graph")
    if transition is not None and meta_given is not None:
        names.append("transition")
        meta_counts = transition_counts(meta_labels, meta_given, C)
        for step in range(1 + cfg.transition_em_steps):
            if step:    # EM: T re-counted from the posteriors of all N rows, plus the meta counts
                transition = transition_from_posteriors(q, given, cfg.transition_smoothing, meta_counts)
            check_finite(transition, f"transition EM (final decision) at step {step}")
            w = check_finite(fit_exponents(terms_meta + [safe_log(transition[:, meta_given].T)], meta_labels),
                             f"the exponent fit at EM step {step}")
            q = check_finite(apply_posterior(w, transition, terms_train, given),
                             f"the posterior at EM step {step}")
    else:
        # no given labels on the meta rows: fit the feature terms, then estimate T from them
        w = np.append(fit_exponents(terms_meta, meta_labels), 1.0)
        q = stable_exp_rows(sum(wi * t for wi, t in zip(w, terms_train)))
        for step in range(1 + cfg.transition_em_steps):
            transition = check_finite(transition_from_posteriors(q, given, cfg.transition_smoothing),
                                      f"transition EM (final decision) at step {step}")
            q = check_finite(apply_posterior(w, transition, terms_train, given),
                             f"the posterior at EM step {step}")
        names.append("transition (estimated, exponent 1)")
    info["exponents"] = {n: round(float(x), 4) for n, x in zip(names, w)}
    info["transition"] = np.round(transition, 4).tolist()
    info["transition_matrix"] = transition          # full precision; popped by purify()
    return q, info, (w, transition)
