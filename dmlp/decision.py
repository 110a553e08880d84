"""The final decision of the default configuration (``final_decision = "bayes"``), in stages:

1. EAC evidence: the views' auxiliary classifiers on the training rows, and out-of-fold on the
   meta rows (a meta row in fold f is judged by the views that did not fit fold f);
2. graph evidence: the purified labels propagated over a kNN graph of the features
   (:func:`dmlp.posterior.graph_evidence`);
3. the posterior: exponents fitted on the meta rows, T re-estimated by EM
   (:func:`dmlp.posterior.bayes_posterior`);
4. with ``eac_refit_fraction``, EAC refitted on that posterior (the M-step of the EM whose
   E-step is the posterior), then stages 1 and 3 again;
5. with ``heldout_fraction``, a cross-fitted classifier fitted on that posterior
   (:mod:`dmlp.heldout`) joins the experts and stage 3 runs again; ``heldout_rounds`` times,
   each round's classifier fitted afresh on the posterior that includes the previous one's;
6. with ``graph_posterior_rounds``, the graph re-seeded with the posterior instead of IPC's
   labels (:func:`dmlp.posterior.posterior_graph_evidence`), then stage 3 again, per round;
7. with the views' offsets (``meta_check``), the check: the final posterior applied to the meta
   rows with evidence free of their own fold (:class:`MetaCheck`).

docs/deviations.md (section B) gives each stage's measured effect.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .heap import release_freed_memory
from .config import GraphParams, TransitionParams
from .echo import given_label_echo, remove_echo
from .graph import knn_graph
from .heldout import cross_fitted_proba, halves
from .loop import visit_order
from .numerics import safe_log
from .posterior import GraphEvidence, Posterior, bayes_posterior, graph_evidence, posterior_graph_evidence
from .progress import progress_bar


@dataclass
class EACEvidence:
    """EAC's class probabilities (stage 1)."""
    train: np.ndarray                 # (N, C) training rows: geometric mean of the views, echo removed
    meta: np.ndarray                  # (M, C) meta rows, out-of-fold
    per_view: Optional[np.ndarray]    # (V, N, C) each view's, for the refit's targets (None: no EAC)
    echo: Optional[float] = None      # the given-label bonus removed from ``train`` (dmlp.echo; None: not measured)


@dataclass(frozen=True)
class MetaCheck:
    """The decision on the meta rows from evidence that holds nothing of their own fold.

    The exponents are fitted on the meta rows, where the graph and the held-out classifier
    also carry the meta rows' own clean labels back (IPC moved their neighbours' labels toward
    them; docs/deviations.md, "Few rows a class").  Here each meta row of fold f is judged by
    the final model from its out-of-fold EAC term, the graph seeded without the view that fits
    fold f and with fold f's anchors held out, and a held-out classifier fitted on a posterior
    built from those; ``fixed`` and ``broken`` count the meta rows whose given label that
    decision changes, to the clean label and away from it.  Single-view seeds make it
    pessimistic; the run keeps its labels only where it fixes more than it breaks.
    """
    rows: int              # meta rows judged (their given labels known)
    fixed: int             # given label wrong, decision right
    broken: int            # given label right, decision wrong
    given_accuracy: float  # of the meta rows' given labels
    decision_accuracy: float

    @property
    def passed(self) -> bool:
        return self.fixed > self.broken

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}


class BayesDecision:
    """Stages 1-4 of the module docstring for one finished loop.

    Parameters
    ----------
    store : dmlp.batches.FeatureStore
        The training rows' features, batch by batch.
    meta : dmlp.state.MetaSet
    eac : dmlp.eac.AuxiliaryClassifier or None
        The loop's trained EAC (refitted in stage 4); None without EAC.
    given : torch.Tensor of shape (N,)
        The given labels, batch order.
    transition : np.ndarray of shape (C, C)
        The initial T[true, given] the decision's EM starts from (counted on the meta rows, or
        from a meta-fitted estimator).
    graph : GraphParams
    transition_params : TransitionParams
    seed : int
        The run's seed (graph search, refit visit orders, held-out halves).
    refit_epochs : int
        Epochs of EAC's refit (0: none).
    first_refit_epoch : int
        Epoch index of the refit's first epoch (its visit orders continue the loop's seeds).
    heldout_epochs : int
        Epochs of the cross-fitted classifier of stage 5 (0: none).
    heldout_rounds : int
        Times stage 5 runs, each fit on the posterior that includes the previous one's term.
    exponent_prior_std : float
        Of the prior on the posterior's exponents (:func:`dmlp.posterior.fit_exponents`).
    remove_eac_echo : bool
        Remove EAC's in-sample echo of the given labels from its training-row evidence
        (:mod:`dmlp.echo`; where the meta rows' given labels are known).
    compute_dtype : torch.dtype
        Of the graph's features.
    progress : bool
        A bar over the stages.
    """

    def __init__(self, store, meta, eac, given: torch.Tensor, transition: np.ndarray, *, graph: GraphParams,
                 transition_params: TransitionParams, seed: int, refit_epochs: int, first_refit_epoch: int,
                 compute_dtype: torch.dtype, heldout_epochs: int, heldout_rounds: int,
                 exponent_prior_std: float, remove_eac_echo: bool = True, progress: bool = True):
        self.store, self.meta, self.eac, self.given, self.seed = store, meta, eac, given, seed
        self.transition, self.graph, self.transition_params = transition, graph, transition_params
        self.refit_epochs, self.first_refit_epoch = refit_epochs, first_refit_epoch
        self.compute_dtype, self.heldout_epochs, self.progress = compute_dtype, heldout_epochs, progress
        self.exponent_prior_std, self.remove_eac_echo = exponent_prior_std, remove_eac_echo
        self.heldout_rounds = max(1, heldout_rounds) if heldout_epochs > 0 else 0

    def __call__(self, ipc_soft: torch.Tensor, view_offsets: Optional[np.ndarray] = None) -> Posterior:
        """The posterior of every training row (batch order) from IPC's labels ``ipc_soft`` (N, C).

        With ``view_offsets`` (V, N, C; :meth:`dmlp.state.LabelState.fold_free_offsets`) and
        where the check applies (two views fitting two meta folds, the meta rows' given labels
        known, EAC and the held-out classifier on), ``posterior.info["meta_check"]`` holds
        :class:`MetaCheck`; otherwise it is None."""
        check = view_offsets is not None and self.can_check(len(view_offsets))
        refit = self.eac is not None and self.refit_epochs > 0
        rounds = self.graph.posterior_rounds if self.graph.k > 0 else 0
        bar = progress_bar(total=(5 if refit else 3) + self.heldout_rounds + rounds, desc="final decision",
                           unit="stage", enabled=self.progress)
        stage = lambda name: (bar.set_postfix_str(name), bar.update(0))
        stage("EAC evidence")
        eac = self.eac_evidence(ipc_soft)
        bar.update(); stage("kNN graph")
        affinity = self.affinity() if self.graph.k > 0 else None
        graph = self.graph_evidence(affinity, ipc_soft, eac.meta, held_terms=rounds > 0,
                                    view_offsets=view_offsets if check else None)
        if not rounds:
            affinity = None               # freed before the refit
        release_freed_memory()
        bar.update(); stage("posterior")
        posterior = self.posterior(eac, graph)
        bar.update()
        if refit:
            stage("EAC refit")
            self.refit_eac(posterior, eac, graph)
            graph = None if graph is None else dataclasses.replace(graph, per_view=None)   # the refit's only
            eac = self.eac_evidence(ipc_soft, keep_views=check)
            bar.update(); stage("posterior after the refit")
            posterior = self.posterior(eac, graph)
            bar.update()
        heldout = fold_free = None
        for round_ in range(self.heldout_rounds):
            stage("held-out classifier")
            if check and round_ == self.heldout_rounds - 1:
                fold_free = self.fold_free_heldout(eac, graph, heldout, posterior)
            heldout = cross_fitted_proba(self.store, self.meta.features, posterior.q,
                                         epochs=self.heldout_epochs, seed=self.seed)
            posterior = self.posterior(eac, graph, heldout)
            bar.update()
        if check:
            posterior.info["meta_check"] = self.judge_meta_rows(fold_free, eac, graph, posterior)
        for _ in range(rounds):
            stage("graph seeded with the posterior")
            graph = self.posterior_graph_evidence(affinity, posterior, eac, graph, heldout)
            posterior = self.posterior(eac, graph, heldout)
            bar.update()
        bar.close()
        return posterior

    def can_check(self, n_views: int) -> bool:
        """Whether stage 7 applies: two views fitting two meta folds, the meta rows' given labels
        known, EAC and the held-out classifier on."""
        return (n_views == 2 and self.meta.cross_fitted and self.meta.given_labels is not None
                and self.eac is not None and self.heldout_rounds > 0)

    def fold_free_heldout(self, eac: EACEvidence, graph: Optional[GraphEvidence], heldout, posterior: Posterior):
        """Stage 7's held-out classifier, fitted beside the last round's: the classifier of half h
        on a posterior free of meta fold h (EAC's view 1 - h, the fold-free graph term, the
        previous round's classifier), judging the meta rows of fold h.  Returns its
        :class:`dmlp.heldout.HeldOutEvidence`."""
        given = self.given.cpu().numpy()
        half = halves(len(given), self.seed)
        targets = np.empty((len(given), posterior.q.shape[1]))
        for h in (0, 1):
            rows = np.flatnonzero(half == h)
            terms = [safe_log(eac.per_view[1 - h][rows])]
            terms += [] if graph is None else [graph.fold_free_held[h][rows]]
            terms += [] if heldout is None else [safe_log(heldout.train[rows])]
            targets[rows] = posterior.apply(terms, given[rows])
        return cross_fitted_proba(self.store, self.meta.features, targets, epochs=self.heldout_epochs,
                                  seed=self.seed, meta_fold=self.meta.fold)

    def judge_meta_rows(self, fold_free, eac: EACEvidence, graph: Optional[GraphEvidence],
                        posterior: Posterior) -> MetaCheck:
        """Stage 7: the final posterior on the meta rows from their fold-free evidence."""
        terms = [safe_log(eac.meta)] + ([] if graph is None else [graph.fold_free_meta])
        terms.append(safe_log(fold_free.meta))
        given, truth = self.meta.given_labels, self.meta.clean_labels
        decided = posterior.apply(terms, given).argmax(1)
        changed = decided != given
        return MetaCheck(len(given), int((changed & (decided == truth)).sum()), int((changed & (given == truth)).sum()),
                         float((given == truth).mean()), float((decided == truth).mean()))

    def eac_evidence(self, ipc_soft: torch.Tensor, keep_views: bool = True) -> EACEvidence:
        """Stage 1 (without EAC: IPC's labels, and a uniform distribution on the meta rows);
        ``keep_views``: keep each view's probabilities (the refit's targets need them)."""
        M = len(self.meta.clean_labels)
        if self.eac is None:
            C = ipc_soft.shape[1]
            return EACEvidence(ipc_soft.cpu().numpy(), np.full((M, C), 1.0 / C), None)
        with torch.no_grad():
            per_view = torch.cat([self.eac.predict_proba(self.store.rows(r)) for r in self.store.batches], 1)
            train = torch.softmax(per_view.log().mean(0), -1).cpu().numpy()
            meta_views = self.eac.predict_proba(self.meta.features).cpu().numpy()          # V x M x C
        seen = np.ones((meta_views.shape[0], M))             # which views judge each meta row
        if self.meta.cross_fitted:
            seen[self.meta.fold, np.arange(M)] = 0.0
        log_meta = (safe_log(meta_views) * seen[..., None]).sum(0) / seen.sum(0)[:, None]
        meta = np.exp(log_meta - log_meta.max(1, keepdims=True))
        meta /= meta.sum(1, keepdims=True)
        echo = None
        if self.remove_eac_echo and self.meta.given_labels is not None:
            given = self.given.cpu().numpy()
            echo = given_label_echo(train, given, meta, self.meta.given_labels)
            train = remove_echo(train, given, echo)
        return EACEvidence(train, meta, per_view.cpu().numpy() if keep_views else None, echo)

    def affinity(self):
        """The normalised kNN graph of the training and meta rows (:func:`dmlp.graph.knn_graph`)."""
        g = self.graph
        release_freed_memory()
        return knn_graph(graph_features(self.store, self.meta.features, g.dims, self.compute_dtype), g.k,
                         g.power, self.seed, candidates=g.candidates, search=g.search,
                         overwrite_input=True)    # a fresh copy: normalised in place

    def graph_evidence(self, affinity, ipc_soft: torch.Tensor, eac_meta: np.ndarray,
                       held_terms: bool = False, view_offsets=None) -> Optional[GraphEvidence]:
        """Stage 2 (None without a graph)."""
        if affinity is None:
            return None
        return graph_evidence(affinity, ipc_soft.cpu().numpy(), eac_meta, self.meta.given_labels,
                              self.meta.clean_labels, self.meta.fold, self.transition,
                              alpha=self.graph.alpha, steps=self.graph.steps,
                              n_views=self.meta.view_weights.shape[0] if self.meta.cross_fitted else 0,
                              held_terms=held_terms,
                              view_offsets=None if view_offsets is None else view_offsets.cpu().numpy())

    def posterior_graph_evidence(self, affinity, posterior: Posterior, eac: EACEvidence,
                                 graph: GraphEvidence, heldout=None) -> GraphEvidence:
        """Stage 6: the graph seeded with the posterior; for each meta fold f the training rows
        carry the posterior from the graph term with fold f held out (and the held-out
        classifier's term, when there is one: without it, a posterior that weighs that term
        alone would reduce to T[:, given])."""
        given = self.given.cpu().numpy()
        extra = [] if heldout is None else [safe_log(heldout.train)]
        held = {f: posterior.apply([safe_log(eac.train), term] + extra, given) for f, term in graph.held.items()}
        return posterior_graph_evidence(affinity, posterior, held, eac.meta, self.meta.given_labels,
                                        self.meta.clean_labels, self.meta.fold,
                                        alpha=self.graph.alpha, steps=self.graph.steps)

    def posterior(self, eac: EACEvidence, graph: Optional[GraphEvidence], heldout=None) -> Posterior:
        """Stage 3."""
        posterior = bayes_posterior(eac.train, eac.meta, self.given.cpu().numpy(), self.meta.given_labels,
                                    self.meta.clean_labels, self.transition, graph, heldout=heldout,
                                    em_steps=self.transition_params.em_steps,
                                    smoothing=self.transition_params.smoothing, prior_std=self.exponent_prior_std)
        if eac.echo is not None:
            posterior.info["eac_echo"] = round(eac.echo, 4)
        return posterior

    def refit_eac(self, posterior: Posterior, eac: EACEvidence, graph: Optional[GraphEvidence]) -> None:
        """Stage 4: EAC trained further on the posterior as soft targets (the meta rows stay out)."""
        targets = torch.as_tensor(refit_targets(posterior, eac, graph, self.given.cpu().numpy(),
                                                self.meta.cross_fitted),
                                  dtype=torch.float32, device=self.given.device)
        self.eac.restart_lr()
        n = len(self.store)
        for epoch in range(self.refit_epochs):
            for k in visit_order(self.seed, self.first_refit_epoch + epoch, n):
                self.eac.step(self.store.batch(k), targets[..., self.store.batches[k], :])


def refit_targets(posterior: Posterior, eac: EACEvidence, graph: Optional[GraphEvidence],
                  given: np.ndarray, cross_fitted: bool) -> np.ndarray:
    """Soft targets of the EAC refit: (V x) N x C, in batch order.

    A view's refit must not learn the labels of the meta rows it will be judged on, or the
    exponents fitted on those rows over-trust it (docs/deviations.md, section B).  So with
    cross-fitted meta folds view v is refitted on its own posterior: its own in-loop EAC and the
    graph seeded with meta fold v alone.
    """
    per_view = graph.per_view if graph is not None else None
    if not cross_fitted or (graph is not None and per_view is None):
        return posterior.q
    targets = np.empty(eac.per_view.shape, dtype=np.float32)      # V x N x C
    for v in range(len(eac.per_view)):
        targets[v] = posterior.apply([safe_log(eac.per_view[v])] + ([per_view[v]] if per_view is not None else []),
                                     given)
    return targets


def graph_features(store, meta_features: torch.Tensor, dims: int, dtype: torch.dtype) -> torch.Tensor:
    """Rows the kNN graph is built on: training rows (batch order) then meta rows, on the CPU.

    Features wider than ``dims`` are centred and projected batch by batch on their top ``dims``
    principal directions (estimated on the meta rows and the first batch): the search then costs
    d / dims times less, which buys more candidates in the inverted file, i.e. a closer-to-exact
    graph for the same time, and memory stays N x dims.

    Parameters
    ----------
    store : dmlp.batches.FeatureStore
    meta_features : torch.Tensor of shape (M, d)
    dims : int
        0: the features as they are.
    dtype : torch.dtype
        Of the result.

    Returns
    -------
    torch.Tensor of shape (N + M, min(d, dims))
    """
    batches = store.batches
    if dims <= 0 or meta_features.shape[1] <= dims:
        return torch.cat([store.rows(r).to(dtype).cpu() for r in batches] + [meta_features.to(dtype).cpu()])
    first = batches[0]
    sample = torch.cat([store.rows(slice(first.start, min(first.stop, first.start + 8192))).float(), meta_features])
    mean = sample.mean(0)
    sample -= mean
    _, vectors = torch.linalg.eigh(sample.T @ sample)           # ascending; float32 is plenty here
    del sample
    P = vectors[:, -dims:].flip(1).contiguous()
    N = sum(r.stop - r.start for r in batches)
    out = torch.empty(N + len(meta_features), dims, dtype=dtype)
    for s in range(0, N, 4096):                  # in chunks: bounded float32 temporaries
        e = min(s + 4096, N)
        out[s:e] = ((store.rows(slice(s, e)).float() - mean) @ P).to(dtype).cpu()
    out[N:] = ((meta_features - mean) @ P).to(dtype).cpu()
    return out
