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
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import scipy.sparse as sp
import torch

from .errors import check_finite
from .graph import propagate
from .numerics import cache_row_blocks, normalise_rows, safe_log, stable_exp_rows, stable_exp_rows_
from .transition import given_label_posterior, transition_counts, transition_from_posteriors

log = logging.getLogger("dmlp")


# --- calibrated combination ---------------------------------------------------------------------

def fit_exponents(log_terms, truth: np.ndarray, fixed=None, upper: float = 20.0,
                  iters: int = 50, *, prior_std: float) -> np.ndarray:
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
    K, n, C = L.shape
    L_flat = L.reshape(K, n * C)
    idx = np.arange(n)

    def evaluate(w):
        z = fixed + np.tensordot(w, L, axes=1)
        z = z - z.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1))
        soft = np.exp(z - lse[:, None])
        value = -(z[idx, truth] - lse).mean()
        weighted = L_flat * soft.reshape(1, n * C)                # K x nC: soft * l_k
        mean_l = weighted.reshape(K, n, C).sum(-1)                 # K x n: E_soft[l_k]
        grad = -(L[:, idx, truth] - mean_l).mean(1)
        hess = (weighted @ L_flat.T - mean_l @ mean_l.T) / n     # covariance of the l_k under soft
        scale = 1.0 / (prior_std ** 2 * n)                         # the prior, per row like the NLL
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


@dataclass
class GraphEvidence:
    """Log ``p_graph`` of :func:`graph_evidence` or :func:`posterior_graph_evidence`."""
    train: np.ndarray                       # (N, C) training rows
    meta: np.ndarray                        # (M, C) meta rows, out-of-fold
    per_view: Optional[List[np.ndarray]]    # V x (N, C): seeded with meta fold v alone, or None
    held: Dict[int, np.ndarray] = field(default_factory=dict)   # fold f -> (N, C): fold f held out
    # Free of meta fold f altogether (its anchors held out, the seeds without the view that fits
    # it), for the decision's check on the meta rows (None / empty unless asked for):
    fold_free_meta: Optional[np.ndarray] = None                 # (M, C) each meta row by its fold's column
    fold_free_held: Dict[int, np.ndarray] = field(default_factory=dict)   # fold f -> (N, C) training rows


def _graph_term(propagated: np.ndarray) -> np.ndarray:
    """Log of propagated label mass, rows normalised (a floor keeps unreached classes finite);
    float32, the propagation's precision (the posterior sums the terms in float64)."""
    return safe_log(normalise_rows(propagated.astype(np.float32) + np.float32(1e-6)))


def _propagate_held_out(graph: sp.csr_matrix, train_seeds, meta_labels: np.ndarray, meta_fold: np.ndarray,
                        eac_q_meta: np.ndarray, held_sets, *, alpha: float, steps: int,
                        offsets: Optional[np.ndarray] = None) -> dict:
    """Propagated labels for each set of held-out meta folds, in one propagation.

    ``train_seeds(held)`` gives the training rows' seeds (N, C) when the folds ``held`` are held
    out (``frozenset()``: none); the meta rows carry their clean labels, those of a held fold
    their out-of-fold EAC posterior ``eac_q_meta``.  Returns ``{held: (N + M, C)}`` for
    ``frozenset()`` and each of ``held_sets``; with ``offsets`` (V, N, C), also ``{("free", f):
    (N + M, C)}`` for each fold f: fold f held out and the training rows seeded with
    ``train_seeds({f}) + offsets[f]`` (by linearity, the offsets propagate as extra blocks).
    """
    C = eac_q_meta.shape[1]
    onehot = np.eye(C, dtype=np.float32)[meta_labels]
    sets = [frozenset()] + list(held_sets)
    folds = [] if offsets is None else [int(f) for f in np.unique(meta_fold)]
    N = len(train_seeds(frozenset()))
    seeds = np.zeros((N + len(meta_labels), (len(sets) + len(folds)) * C), dtype=np.float32)
    for j, held_folds in enumerate(sets):                              # column block per set
        block = seeds[:, j * C:(j + 1) * C]
        block[:N] = train_seeds(held_folds)
        held = np.isin(meta_fold, list(held_folds))
        block[N:] = np.where(held[:, None], eac_q_meta, onehot)
    for j, f in enumerate(folds, len(sets)):                           # the meta rows' seeds: zero
        seeds[:N, j * C:(j + 1) * C] = offsets[f]
    propagated = propagate(graph, seeds, alpha, steps)
    del seeds
    column = {h: propagated[:, j * C:(j + 1) * C] for j, h in enumerate(sets)}
    for j, f in enumerate(folds, len(sets)):
        column[("free", f)] = np.maximum(column[frozenset([f])] + propagated[:, j * C:(j + 1) * C], 0)
    return column


def _evidence(column: dict, N: int, meta_fold: np.ndarray, per_view_sets=None,
              held_terms: bool = False) -> GraphEvidence:
    """The log terms from :func:`_propagate_held_out`'s columns: each meta row read from the
    column with its own fold held out (``held_terms``: also the training rows', per fold)."""
    folds = np.unique(meta_fold)

    def own_fold(key):            # each meta row read from the column of its own fold
        meta = np.zeros((len(meta_fold), column[frozenset()].shape[1]))
        for f in folds:
            meta[meta_fold == f] = column[key(f)][N:][meta_fold == f]
        return _graph_term(meta)

    held_out = lambda f: frozenset([f])
    per_view = None if per_view_sets is None else [_graph_term(column[h][:N]) for h in per_view_sets]
    held = {int(f): _graph_term(column[held_out(f)][:N]) for f in folds} if held_terms else {}
    evidence = GraphEvidence(_graph_term(column[frozenset()][:N]), own_fold(held_out), per_view, held)
    free = lambda f: ("free", int(f))
    if free(folds[0]) in column:
        evidence.fold_free_meta = own_fold(free)
        evidence.fold_free_held = {int(f): _graph_term(column[free(f)][:N]) for f in folds}
    return evidence


def graph_evidence(graph: sp.csr_matrix, ipc_soft: np.ndarray, eac_meta_oof: np.ndarray,
                   meta_given: Optional[np.ndarray], meta_labels: np.ndarray, meta_fold: np.ndarray,
                   transition, *, alpha: float, steps: int, n_views: int = 0,
                   held_terms: bool = False, view_offsets: Optional[np.ndarray] = None) -> GraphEvidence:
    """Log ``p_graph`` of the N training rows and, out-of-fold, of the M meta rows.

    The purified labels (``ipc_soft``) and the meta rows' clean labels seed label propagation
    over ``graph`` (N training rows, then M meta rows).  For a meta row in fold f the seeds are
    propagated again with fold f held out: its rows then carry the out-of-fold EAC posterior
    ``eac_meta_oof`` (times ``T[:, given]`` when known), like any other row.

    Parameters
    ----------
    graph : scipy.sparse.csr_matrix of shape (N + M, N + M)
        The normalised affinity (:func:`dmlp.graph.knn_graph`), training rows then meta rows.
    ipc_soft : np.ndarray of shape (N, C)
        The purified labels (seeds of the training rows).
    eac_meta_oof : np.ndarray of shape (M, C)
        Out-of-fold EAC probabilities of the meta rows.
    meta_given : np.ndarray of shape (M,) or None
        The meta rows' given labels, when known.
    meta_labels, meta_fold : np.ndarray of shape (M,), integer
        Clean labels and fold of the meta rows.
    transition : np.ndarray of shape (C, C) or None
    alpha, steps : float, int
        Of the propagation (:func:`dmlp.graph.propagate`).
    n_views : int
        With more than one view and several folds, also the per-view terms.
    held_terms : bool
        Also the training rows' terms with each fold held out (for
        :func:`posterior_graph_evidence`; N x C per fold).
    view_offsets : np.ndarray of shape (V, N, C), optional
        :meth:`dmlp.state.LabelState.fold_free_offsets`: also the terms free of each fold f
        (its anchors held out, the seeds without the view that fits fold f), ``fold_free_meta``
        and ``fold_free_held``, for the decision's check (:mod:`dmlp.decision`).

    Returns
    -------
    GraphEvidence
        ``per_view[v]`` is the training rows' term seeded with meta fold v alone, the folds
        view v judges held out (see :func:`dmlp.ipc.meta_view_weights`: view v fits fold v);
        ``held[f]`` the training rows' term with fold f held out (empty without ``held_terms``).
    """
    N = len(ipc_soft)
    eac_q_meta = _meta_posterior(eac_meta_oof, transition, meta_given)
    folds = np.unique(meta_fold)
    held_sets = [frozenset([f]) for f in folds]         # for the meta rows of fold f
    per_view_sets = None
    if n_views > 1 and len(folds) > 1:                  # for view v's refit: all but fold v held out
        per_view_sets = [frozenset(folds) - {v} for v in range(n_views)]
        held_sets += [h for h in per_view_sets if h not in held_sets]
    column = _propagate_held_out(graph, lambda held: ipc_soft, meta_labels, meta_fold, eac_q_meta, held_sets,
                                 alpha=alpha, steps=steps, offsets=view_offsets)
    return _evidence(column, N, meta_fold, per_view_sets, held_terms)


def posterior_graph_evidence(graph: sp.csr_matrix, posterior: "Posterior", held_posteriors: Dict[int, np.ndarray],
                             eac_meta_oof: np.ndarray, meta_given: Optional[np.ndarray], meta_labels: np.ndarray,
                             meta_fold: np.ndarray, *, alpha: float, steps: int) -> GraphEvidence:
    """Log ``p_graph`` seeded with the posterior instead of IPC's labels: an EM round of the graph.

    The posterior is more often right than IPC's labels, so its propagation is better evidence.
    A meta row of fold f must still not see its own clean label come back through its
    neighbours: for it the training rows carry ``held_posteriors[f]``, the posterior computed
    with fold f held out of the graph, and fold f's meta rows their out-of-fold EAC posterior.

    Parameters
    ----------
    graph : scipy.sparse.csr_matrix of shape (N + M, N + M)
        As in :func:`graph_evidence`.
    posterior : Posterior
        The decision's posterior (its ``q``, (N, C), seeds the training rows; its T weighs
        the meta rows' given labels).
    held_posteriors : dict of int to np.ndarray of shape (N, C)
        For each meta fold f, the posterior from the graph term with fold f held out.
    eac_meta_oof, meta_given, meta_labels, meta_fold
        As in :func:`graph_evidence`.
    alpha, steps : float, int
        Of the propagation.

    Returns
    -------
    GraphEvidence
        ``per_view`` is None (the refit is not repeated); ``held`` as in :func:`graph_evidence`,
        for a further round.
    """
    eac_q_meta = _meta_posterior(eac_meta_oof, posterior.transition, meta_given)
    held_sets = [frozenset([f]) for f in np.unique(meta_fold)]
    seeds = lambda held: posterior.q if not held else held_posteriors[next(iter(held))]
    column = _propagate_held_out(graph, seeds, meta_labels, meta_fold, eac_q_meta, held_sets,
                                 alpha=alpha, steps=steps)
    return _evidence(column, len(posterior.q), meta_fold, held_terms=True)


def _meta_posterior(eac_meta_oof: np.ndarray, transition, meta_given) -> np.ndarray:
    """The meta rows' out-of-fold EAC posterior, through T when their given labels are known."""
    if transition is None or meta_given is None:
        return eac_meta_oof
    return given_label_posterior(eac_meta_oof, transition, meta_given)


def apply_posterior(weights: np.ndarray, transition: np.ndarray, terms, given: np.ndarray,
                    out: Optional[np.ndarray] = None) -> np.ndarray:
    """``q`` proportional to ``prod_k term_k ^ w_k * T[c, given] ^ w_last`` (log terms, rows x C).

    ``out``: a float64 (rows, C) C-contiguous array to write ``q`` into (e.g. the previous EM
    step's posterior, no longer needed); each row block is formed in it, without temporaries.
    """
    log_t = torch.from_numpy(np.ascontiguousarray(safe_log(transition).T))    # row g: log T[:, g]
    given = torch.as_tensor(np.asarray(given), dtype=torch.int64)
    # allocated by torch (64-byte aligned): the row blocks' vectorised sums then round alike in
    # every run, whatever address NumPy would have picked
    q_t = torch.empty(len(given), log_t.shape[1], dtype=torch.float64) if out is None else torch.from_numpy(out)
    for rows in cache_row_blocks(len(given), log_t.shape[1]):      # every pass stays in cache
        z = torch.index_select(log_t, 0, given[rows], out=q_t[rows]).mul_(float(weights[-1]))
        for w, t in zip(weights, terms):                  # float32 terms read as they are
            z.add_(torch.as_tensor(t[rows]), alpha=float(w))
        stable_exp_rows_(z)
    return q_t.numpy()


@dataclass
class Posterior:
    """What :func:`bayes_posterior` returns."""
    q: np.ndarray                 # (N, C) float64, posterior of the true class of each row
    weights: np.ndarray           # (K + 1,) exponents of the experts, T's last
    transition: np.ndarray        # (C, C) float64, the final T[true, given]
    info: dict = field(default_factory=dict)   # rounded exponents and T, for summary.json

    def apply(self, log_terms, given: np.ndarray) -> np.ndarray:
        """The same model on other evidence of the same kind (:func:`apply_posterior`)."""
        return apply_posterior(self.weights, self.transition, log_terms, given)


def bayes_posterior(eac_train: np.ndarray, eac_meta_oof: np.ndarray, given: np.ndarray,
                    meta_given: Optional[np.ndarray], meta_labels: np.ndarray, transition,
                    graph: Optional[GraphEvidence] = None, *, heldout=None, em_steps: int = 0,
                    smoothing: float, prior_std: float) -> Posterior:
    """Posterior of the true class of every training row (the module docstring's formula).

    Parameters
    ----------
    eac_train : np.ndarray of shape (N, C)
        EAC probabilities of the training rows.
    eac_meta_oof : np.ndarray of shape (M, C)
        EAC probabilities of the meta rows, out-of-fold.
    given : np.ndarray of shape (N,), integer
        The training rows' given labels.
    meta_given : np.ndarray of shape (M,) or None
        The meta rows' given labels; without them T is estimated from the feature terms alone.
    meta_labels : np.ndarray of shape (M,), integer
        The meta rows' clean labels: the exponents are fitted on them.
    transition : np.ndarray of shape (C, C) or None
        The initial T (counted on the meta rows).
    graph : GraphEvidence, optional
        The graph's log terms (:func:`graph_evidence`).
    heldout : dmlp.heldout.HeldOutEvidence, optional
        The cross-fitted classifier's probabilities, one more expert.
    em_steps : int
        T re-estimated this many times from the posteriors of all N rows, the posterior
        recomputed after each (Dawid & Skene, 1979): 1,000 meta rows count each off-diagonal
        cell of T from a handful of rows, all N rows from thousands.
    smoothing : float
        Of T's counts.
    prior_std : float
        Of the N(1, prior_std^2) prior on each exponent (:func:`fit_exponents`; the config's
        ``exponent_prior_std``, docs/deviations.md section B).

    Returns
    -------
    Posterior

    Raises
    ------
    NonFiniteError
        T, the exponents or the posterior are not finite at some EM step (named).
    """
    C = eac_train.shape[1]
    info = {}
    terms_train, terms_meta = [safe_log(eac_train)], [safe_log(eac_meta_oof)]
    names = ["eac"]
    if graph is not None:
        terms_train.append(graph.train)
        terms_meta.append(graph.meta)
        names.append("graph")
    if heldout is not None:
        terms_train.append(safe_log(heldout.train))
        terms_meta.append(safe_log(heldout.meta))
        names.append("held-out classifier")
    if transition is not None and meta_given is not None:
        names.append("transition")
        meta_counts = transition_counts(meta_labels, meta_given, C)
        q = None
        for step in range(1 + em_steps):
            if step:    # EM: T re-counted from the posteriors of all N rows, plus the meta counts
                transition = transition_from_posteriors(q, given, smoothing, meta_counts)
            check_finite(transition, f"transition EM (final decision) at step {step}")
            w = check_finite(fit_exponents(terms_meta + [safe_log(transition[:, meta_given].T)], meta_labels,
                                             prior_std=prior_std),
                             f"the exponent fit at EM step {step}")
            # the last step's q is spent once T is re-counted from it: its memory is reused
            q = check_finite(apply_posterior(w, transition, terms_train, given, out=q),
                             f"the posterior at EM step {step}")
    else:
        # no given labels on the meta rows: fit the feature terms, then estimate T from them
        w = np.append(fit_exponents(terms_meta, meta_labels, prior_std=prior_std), 1.0)
        q = stable_exp_rows(sum(wi * t for wi, t in zip(w, terms_train)))
        for step in range(1 + em_steps):
            transition = check_finite(transition_from_posteriors(q, given, smoothing),
                                      f"transition EM (final decision) at step {step}")
            # reuse the last step's spent q; step 0's, from the feature terms alone, can be float32
            q = check_finite(apply_posterior(w, transition, terms_train, given, out=q if step else None),
                             f"the posterior at EM step {step}")
        names.append("transition (estimated, exponent 1)")
        # --meta auto's meta labels are given labels it trusts: how far the fitted model agrees
        q_meta = apply_posterior(w, transition, terms_meta, meta_labels)
        info["meta_label_belief"] = float(q_meta[np.arange(len(meta_labels)), meta_labels].mean())
    info["exponents"] = {n: round(float(x), 4) for n, x in zip(names, w)}
    info["transition"] = np.round(transition, 4).tolist()
    return Posterior(q, w, transition, info)
