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
import math
from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch

from .numerics import CHUNK_ROWS, normalise_rows, safe_log, stable_exp_rows

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


# --- the feature graph ------------------------------------------------------------------------

def knn_graph(features: torch.Tensor, k: int, power: float = 3.0, seed: int = 0,
              candidates: int = 7000, overwrite_input: bool = False) -> sp.csr_matrix:
    """Symmetric, normalised cosine kNN graph ``D^-1/2 (W + W') D^-1/2``, ``W_ij = max(sim, 0)^power``.

    Neighbours are searched in an inverted file (Jegou et al., TPAMI 2011): rows are bucketed by
    their nearest of ~sqrt(n) spherical k-means centroids, and each bucket is compared with the
    rows of the buckets nearest to it, as many as make about ``candidates`` rows (the recall
    of the search grows with it; its cost is n x candidates instead of n^2).
    Small inputs are searched exhaustively.  Similarities are computed in the dtype of
    ``features`` (float32, or bfloat16 where the features are held so: 2-3x faster; neighbours
    whose similarities differ by less than its rounding, 2^-8, may swap ranks, but their
    weights are then equal to that precision too).  ``overwrite_input=True`` normalises
    ``features`` in place instead of copying it (the caller's copy is not needed afterwards).
    The graph is float32 (scipy CSR).
    """
    dtype = features.dtype if features.dtype in (torch.float32, torch.bfloat16) else torch.float32
    Z = features if overwrite_input and features.dtype == dtype else torch.empty(features.shape, dtype=dtype)
    for s in range(0, len(features), 16384):        # normalise in float32, chunk by chunk
        chunk = features[s:s + 16384].float()
        Z[s:s + 16384] = chunk / chunk.norm(dim=1, keepdim=True).clamp_min(1e-12)
    n = Z.shape[0]
    k = min(k, n - 1)
    n_lists = int(math.sqrt(n))
    probes = max(1, round(candidates * n_lists / n))
    if n <= 20000 or n_lists <= probes:
        groups, candidate_sets = [torch.arange(n)], [torch.arange(n)]
    else:
        groups, candidate_sets = _inverted_file(Z, n_lists, probes, seed)
    # Fixed-size buffers: matrix products of ever-changing shapes each leave memory behind
    # (allocator fragmentation, oneDNN's per-shape cache: measured ~1 MB per shape), so the
    # candidate sets are padded to multiples of 1024 rows and the queries to blocks of 256.
    neighbours = torch.zeros(n, k, dtype=torch.long)
    similarity = torch.zeros(n, k)
    d, block = Z.shape[1], 256
    c_max = -(-max(len(c) for c in candidate_sets) // 1024) * 1024
    Zc_buf = torch.zeros(c_max, d, dtype=Z.dtype)
    Zq_buf = torch.zeros(block, d, dtype=Z.dtype)
    sim_buf = torch.empty(block * c_max, dtype=Z.dtype)
    for members, cand in zip(groups, candidate_sets):
        width = -(-len(cand) // 1024) * 1024
        Zc = Zc_buf[:width]
        torch.index_select(Z, 0, cand, out=Zc[:len(cand)])
        Zc[len(cand):] = 0                                           # padding rows: never chosen
        cand_pad = torch.cat([cand, torch.full((width - len(cand),), n, dtype=torch.long)])
        k_eff = min(k, len(cand) - 1)
        for s in range(0, len(members), block):
            q = members[s:s + block]
            torch.index_select(Z, 0, q, out=Zq_buf[:len(q)])
            sim = sim_buf[:block * width].view(block, width)
            torch.mm(Zq_buf, Zc.T, out=sim)
            v, i = sim.topk(k_eff + 1, dim=1)                       # k + 1: the row itself is among them
            v, i = v[:len(q)].float(), cand_pad[i[:len(q)]]
            pad = i == n
            i[pad] = q.unsqueeze(1).expand_as(i)[pad]                  # (a zero-weight self edge)
            v[(i == q.unsqueeze(1)) | pad] = -3.0                   # never your own neighbour
            v, j = v.topk(k_eff, dim=1)                             # (else the (k+1)-th drops out)
            neighbours[q, :k_eff] = i.gather(1, j)
            similarity[q, :k_eff] = v
    # W row by row (k entries each) straight into CSR form, then symmetrised and scaled in place
    vals = similarity.clamp_min_(0).pow_(power).view(-1).numpy()
    W = sp.csr_matrix((vals, neighbours.view(-1).to(torch.int32).numpy(),
                       np.arange(0, n * k + 1, k, dtype=np.int64)), shape=(n, n))
    del neighbours, similarity, vals
    W = (W + W.T).tocsr()
    W.eliminate_zeros()                  # zero-weight edges (negative similarity, padding)
    deg = np.asarray(W.sum(1)).ravel()
    inv = (1.0 / np.sqrt(np.maximum(deg, 1e-12))).astype(np.float32)
    W.data *= inv[W.indices]                                        # columns
    W.data *= np.repeat(inv, np.diff(W.indptr))                     # rows
    return W


def _inverted_file(Z, n_lists, probes, seed, iters=5):
    g = torch.Generator().manual_seed(seed)
    sample = Z[torch.randperm(Z.shape[0], generator=g)[: 64 * n_lists]].float()
    cent = sample[torch.randperm(sample.shape[0], generator=g)[:n_lists]].clone()
    for _ in range(iters):           # spherical k-means on a sample
        assign = (sample @ cent.T).argmax(1)
        cent.index_add_(0, assign, sample, alpha=1.0)   # keep old centre as a weak prior
        cent = torch.nn.functional.normalize(cent, dim=1)
    cent = cent.to(Z.dtype)
    assign = torch.cat([(Z[s:s + 16384] @ cent.T).argmax(1) for s in range(0, Z.shape[0], 16384)])
    near = (cent.float() @ cent.float().T).topk(probes, dim=1).indices
    order = torch.argsort(assign, stable=True)
    counts = torch.bincount(assign, minlength=n_lists)
    starts = torch.cumsum(counts, 0) - counts
    members = [order[starts[l]:starts[l] + counts[l]] for l in range(n_lists)]
    groups, candidates = [], []
    for l in range(n_lists):
        if len(members[l]):
            groups.append(members[l])
            candidates.append(torch.cat([members[j] for j in near[l].tolist()]))
    return groups, candidates


def propagate(S: sp.csr_matrix, seeds: np.ndarray, alpha: float, steps: int) -> np.ndarray:
    """Label propagation F <- alpha S F + (1 - alpha) Y0, read out from the neighbours (S F).

    Linear in the seeds: several seedings propagate at once as column blocks of ``seeds``.
    """
    F = seeds.copy()
    for _ in range(steps):
        F = alpha * (S @ F) + (1 - alpha) * seeds
    return S @ F


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
        normalise_rows(eac_meta_oof * transition[:, meta_given].T)
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
            w = fit_exponents(terms_meta + [safe_log(transition[:, meta_given].T)], meta_labels)
            q = apply_posterior(w, transition, terms_train, given)
    else:
        # no given labels on the meta rows: fit the feature terms, then estimate T from them
        w = np.append(fit_exponents(terms_meta, meta_labels), 1.0)
        q = stable_exp_rows(sum(wi * t for wi, t in zip(w, terms_train)))
        for _ in range(1 + cfg.transition_em_steps):
            transition = transition_from_posteriors(q, given, cfg.transition_smoothing)
            q = apply_posterior(w, transition, terms_train, given)
        names.append("transition (estimated, exponent 1)")
    info["exponents"] = {n: round(float(x), 4) for n, x in zip(names, w)}
    info["transition"] = np.round(transition, 4).tolist()
    return q, info, (w, transition)
