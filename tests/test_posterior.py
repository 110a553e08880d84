"""The default's final decision: transition matrix, kNN graph, propagation, calibrated exponents."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dmlp.numerics import normalise_rows, safe_log
from dmlp.graph import knn_graph, propagate, row_topk
from dmlp.state import LabelState, label_distribution
from dmlp.posterior import (Posterior, apply_posterior, bayes_posterior, fit_exponents, graph_evidence,
                             posterior_graph_evidence)
from dmlp.transition import estimate_transition, transition_from_posteriors


def test_transition_counts_meta_rows_with_smoothing():
    true = np.array([0, 0, 0, 1, 1, 2])
    given = np.array([0, 0, 1, 1, 1, 0])
    T = estimate_transition(true, given, 3, smoothing=0.5)
    # counts [[2,1,0],[0,2,0],[1,0,0]]: off-diagonal share rho = (2 + 1/2) / (6 + 1); row 0 gets kappa
    # pseudo-counts (by marginal likelihood), kappa (1 - rho) on its diagonal, kappa rho / 2 elsewhere
    from dmlp.transition import prior_strength
    rho, kappa = 2.5 / 7, prior_strength(np.array([[2.0, 1, 0], [0, 2, 0], [1, 0, 0]]), 0.5)
    row = np.array([2.0, 1.0, 0.0]) + np.array([kappa * (1 - rho), kappa * rho / 2, kappa * rho / 2])
    np.testing.assert_allclose(T[0], row / row.sum())
    np.testing.assert_allclose(T.sum(1), 1.0)
    assert estimate_transition(true, None, 3) is None          # no given labels: estimated later


def test_transition_from_posteriors_soft_counts():
    prob = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    given = np.array([0, 1, 1, 0])
    T = transition_from_posteriors(prob, given, smoothing=0.0)
    # class 0: given 0 with mass 1.5, given 1 with mass 1.0
    np.testing.assert_allclose(T[0], [1.5 / 2.5, 1.0 / 2.5])
    np.testing.assert_allclose(T[1], [0.5 / 1.5, 1.0 / 1.5])


def test_transition_from_posteriors_adds_exact_counts():
    prob = np.array([[1.0, 0.0], [0.0, 1.0]])
    counts = np.array([[2.0, 1.0], [0.0, 3.0]])
    T = transition_from_posteriors(prob, np.array([0, 0]), smoothing=0.0, counts=counts)
    np.testing.assert_allclose(T, [[3 / 4, 1 / 4], [1 / 4, 3 / 4]])


def _noisy_posterior_problem(seed, n=20000, m=300, C=6):
    """Rows whose class posterior p(c | x) is known exactly, given labels drawn through a
    known T, and m meta rows with both labels: the setting of the default's final decision."""
    rng = np.random.default_rng(seed)
    T = np.full((C, C), 0.04)
    T[np.arange(C), (np.arange(C) + 1) % C] = 0.25              # a structured flip
    np.fill_diagonal(T, 0.0)
    np.fill_diagonal(T, 1.0 - T.sum(1))
    logits = 2.0 * rng.standard_normal((n + m, C))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    true = np.array([rng.choice(C, p=row) for row in p])
    given = np.array([rng.choice(C, p=T[c]) for c in true])
    return T, p[:n], true[:n], given[:n], p[n:], true[n:], given[n:]


def test_em_re_estimates_the_transition_from_all_rows():
    """EM (Dawid & Skene) on all rows recovers T closer than the meta rows' counts, and its
    posterior labels are at least as accurate (checked over seeds, on calibrated evidence)."""
    for seed in range(3):
        T, p, true, given, p_meta, meta_true, meta_given = _noisy_posterior_problem(seed)
        T_meta = estimate_transition(meta_true, meta_given, T.shape[0])
        results = {}
        for steps in (0, 5):
            post = bayes_posterior(p, p_meta, given, meta_given, meta_true, T_meta, em_steps=steps,
                                   smoothing=0.5, prior_std=1.0)
            q, info = post.q, post.info
            results[steps] = (np.abs(np.array(info["transition"]) - T).sum(), (q.argmax(1) == true).mean())
        assert results[5][0] < 0.6 * results[0][0], results
        assert results[5][1] >= results[0][1] - 1e-3, results


def test_belief_in_the_trusted_meta_labels():
    """Without the meta rows' given labels (--meta auto) the decision reports how far its model
    finds the meta labels right when they are taken as given labels: the mean posterior of the
    label, with the fitted exponents and T.  Meta labels drawn as the truth are believed; labels
    drawn at random, which the evidence contradicts, are not."""
    T, p, true, given, p_meta, meta_true, _ = _noisy_posterior_problem(0)
    post = bayes_posterior(p, p_meta, given, None, meta_true, None, em_steps=2, smoothing=0.5, prior_std=1.0)
    q = post.apply([np.log(p_meta)], meta_true)
    belief = post.info["meta_label_belief"]
    assert belief == pytest.approx(q[np.arange(len(meta_true)), meta_true].mean())
    assert belief > 0.7
    wrong = (meta_true + np.random.default_rng(1).integers(1, T.shape[0], len(meta_true))) % T.shape[0]
    post = bayes_posterior(p, p_meta, given, None, wrong, None, em_steps=2, smoothing=0.5, prior_std=1.0)
    assert post.info["meta_label_belief"] < 0.5


def test_graph_evidence_holds_out_the_folds_a_view_is_judged_on():
    """Meta rows get the term propagated without their fold; view v's refit term is seeded
    with meta fold v alone (every other fold carries the EAC posterior instead)."""
    rng = np.random.default_rng(0)
    N, M, C = 300, 30, 3
    graph = knn_graph(torch.randn(N + M, 8, generator=torch.Generator().manual_seed(0)), 5)
    ipc = rng.dirichlet(np.ones(C), N)
    eac_meta = rng.dirichlet(np.ones(C), M)
    meta_y = rng.integers(0, C, M)
    for views in (2, 3):
        fold = np.arange(M) % views
        ev = graph_evidence(graph, ipc, eac_meta, None, meta_y, fold, None, alpha=0.9, steps=10,
                            n_views=views)

        def seeded(keep):           # meta rows of the folds in ``keep`` carry their clean label
            s = np.vstack([ipc, np.where(np.isin(fold, keep)[:, None], np.eye(C)[meta_y], eac_meta)])
            return safe_log(normalise_rows(propagate(graph, s.astype(np.float32), 0.9, 10).astype(np.float64) + 1e-6))

        np.testing.assert_allclose(ev.train, seeded(list(range(views)))[:N], rtol=1e-5, atol=1e-6)
        for f in range(views):
            others = [g for g in range(views) if g != f]
            np.testing.assert_allclose(ev.meta[fold == f], seeded(others)[N:][fold == f], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(ev.per_view[f], seeded([f])[:N], rtol=1e-5, atol=1e-6)
    assert graph_evidence(graph, ipc, eac_meta, None, meta_y, np.zeros(M, int), None, alpha=0.9, steps=10,
                          n_views=2).per_view is None


def test_fold_free_graph_terms_are_seeded_without_the_fold_and_its_view():
    """The check's terms: fold f held out and the training rows seeded with the views other
    than view f (by linearity, the offsets propagate apart), against the direct propagation."""
    rng = np.random.default_rng(1)
    N, M, C, V = 300, 30, 3, 2
    graph = knn_graph(torch.randn(N + M, 8, generator=torch.Generator().manual_seed(1)), 5)
    raw = torch.as_tensor(rng.normal(size=(N, V, C)) + 0.5, dtype=torch.float32)
    state = LabelState(raw.clone(), None, None)
    views = label_distribution(raw).numpy()
    eac_meta = rng.dirichlet(np.ones(C), M)
    meta_y = rng.integers(0, C, M)
    fold = np.arange(M) % V
    ev = graph_evidence(graph, views.mean(1), eac_meta, None, meta_y, fold, None, alpha=0.9, steps=10,
                        n_views=V, view_offsets=state.fold_free_offsets().numpy())
    for f in range(V):
        seeds = np.vstack([views[:, 1 - f], np.where((fold == f)[:, None], eac_meta, np.eye(C)[meta_y])])
        direct = safe_log(normalise_rows(propagate(graph, seeds.astype(np.float32), 0.9, 10).astype(np.float64) + 1e-6))
        np.testing.assert_allclose(ev.fold_free_meta[fold == f], direct[N:][fold == f], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ev.fold_free_held[f], direct[:N], rtol=1e-4, atol=1e-5)
    assert graph_evidence(graph, views.mean(1), eac_meta, None, meta_y, fold, None, alpha=0.9,
                          steps=10).fold_free_meta is None


def test_posterior_graph_round_keeps_each_fold_out_of_its_own_term():
    """Seeded with the posterior, a meta row of fold f still never sees a clean label of fold f:
    changing fold 0's clean labels changes nothing in fold 0's term (the training rows carry the
    fold-0-held-out posterior there), and the terms match a direct propagation."""
    rng = np.random.default_rng(1)
    N, M, C = 300, 40, 4
    graph = knn_graph(torch.randn(N + M, 8, generator=torch.Generator().manual_seed(1)), 5)
    eac_meta = rng.dirichlet(np.ones(C), M)
    fold = np.arange(M) % 2
    meta_given = rng.integers(0, C, M)
    T = np.full((C, C), 0.1) + 0.6 * np.eye(C)
    q = rng.dirichlet(np.ones(C), N)
    held = {0: safe_log(rng.dirichlet(np.ones(C), N)), 1: safe_log(rng.dirichlet(np.ones(C), N))}
    post = Posterior(q, np.ones(3), T)

    def evidence(meta_y):
        ev = posterior_graph_evidence(graph, post, {f: np.exp(h) for f, h in held.items()}, eac_meta,
                                      meta_given, meta_y, fold, alpha=0.9, steps=10)
        return ev

    meta_y = rng.integers(0, C, M)
    ev = evidence(meta_y)
    other = meta_y.copy()
    other[fold == 0] = (other[fold == 0] + 1) % C
    np.testing.assert_array_equal(evidence(other).meta[fold == 0], ev.meta[fold == 0])
    assert not np.allclose(evidence(other).meta[fold == 1], ev.meta[fold == 1])
    eac_q = normalise_rows(eac_meta * T[:, meta_given].T)
    s = np.vstack([np.exp(held[0]), np.where((fold == 0)[:, None], eac_q, np.eye(C)[meta_y])])
    direct = safe_log(normalise_rows(propagate(graph, s.astype(np.float32), 0.9, 10).astype(np.float64) + 1e-6))
    np.testing.assert_allclose(ev.meta[fold == 0], direct[N:][fold == 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ev.held[0], direct[:N], rtol=1e-5, atol=1e-6)
    s = np.vstack([q, np.eye(C)[meta_y]])
    direct = safe_log(normalise_rows(propagate(graph, s.astype(np.float32), 0.9, 10).astype(np.float64) + 1e-6))
    np.testing.assert_allclose(ev.train, direct[:N], rtol=1e-5, atol=1e-6)


def _brute_force_knn(X, k):
    Z = torch.nn.functional.normalize(X, dim=1)
    sim = Z @ Z.T
    sim.fill_diagonal_(-2)
    return sim.topk(k, dim=1).indices.numpy()


def test_knn_graph_exhaustive_matches_brute_force_and_is_symmetric_normalised():
    X = torch.randn(600, 12, generator=torch.Generator().manual_seed(0))
    S = knn_graph(X, k=5, power=3.0)
    assert abs(S - S.T).max() < 1e-6                           # symmetric (up to float32 rounding)
    assert S.diagonal().max() == 0                             # no self loops
    nn = _brute_force_knn(X, 5)
    for i in range(0, 600, 37):                                # every kNN edge is in the graph,
        assert set(nn[i][X[i] @ X[nn[i]].T > 0]) <= set(S[i].indices)   # except negative-similarity ones
    # D^-1/2 W D^-1/2 has spectral radius 1
    assert abs(np.max(np.abs(np.linalg.eigvalsh(S.toarray().astype(np.float64)))) - 1.0) < 1e-5


def test_row_topk_is_topk():
    g = torch.Generator().manual_seed(3)
    S = torch.randn(300, 7168, generator=g)
    S[:, 5000:] = 0.0                                          # padding columns, as the search has
    S[7, :64] = 10.0 + torch.arange(64.0)                      # one row's top entries in two chunks
    for k in (1, 5, 21, 56):
        v, i = row_topk(S, k)
        ref_v, ref_i = S.topk(k, dim=1)
        assert torch.equal(v, ref_v) and torch.equal(i, ref_i)
    for T in (S[:, :1000], S.double()):                        # fallbacks: no whole chunks; not float32
        assert torch.equal(row_topk(T, 21)[1], T.topk(21, dim=1)[1])


def test_knn_graph_inverted_file_recall_and_in_place_normalisation():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(20, 16, generator=g) * 3
    X = centres[torch.randint(0, 20, (24000,), generator=g)] + torch.randn(24000, 16, generator=g)
    S = knn_graph(X.clone(), k=10, seed=0)                     # n > 20000: inverted-file search
    S2 = knn_graph(X.clone(), k=10, seed=0, overwrite_input=True)
    assert (S != S2).nnz == 0                                  # in-place path gives the same graph
    rows = np.arange(0, 24000, 997)
    nn = _brute_force_knn(X, 10)
    recall = np.mean([len(set(nn[i]) & set(S[i].indices)) / 10 for i in rows])
    assert recall > 0.8
    # bfloat16 features (as held on CPUs with native bf16): neighbours whose similarities tie
    # within bf16 rounding may swap ranks (this tight mixture has many such ties), the rest stay
    S16 = knn_graph(X.bfloat16(), k=10, seed=0)
    recall16 = np.mean([len(set(nn[i]) & set(S16[i].indices)) / 10 for i in rows])
    assert recall16 > 0.8


def test_faiss_search_matches_the_exact_top_k_and_is_deterministic():
    pytest.importorskip("faiss")
    from dmlp.graph import exact_knn_search, faiss_knn_search
    g = torch.Generator().manual_seed(2)
    centres = torch.randn(20, 16, generator=g) * 3
    X = centres[torch.randint(0, 20, (24000,), generator=g)] + torch.randn(24000, 16, generator=g)
    idx, sim = faiss_knn_search(X, 10, seed=0)                 # n > 20000: faiss's inverted file
    rows = np.arange(0, 24000, 997)
    exact, exact_sim = exact_knn_search(X, 10)
    assert np.mean([len(set(exact[i]) & set(idx[i].tolist())) / 10 for i in rows]) > 0.95
    assert not (idx == torch.arange(24000)[:, None]).any()    # never a row's own neighbour
    assert torch.all(sim[:, :-1] >= sim[:, 1:] - 1e-6)         # in decreasing order
    idx2, _ = faiss_knn_search(X, 10, seed=0)
    assert torch.equal(idx, idx2)
    small, _ = faiss_knn_search(X[:500], 5)                    # small inputs: exhaustive
    np.testing.assert_array_equal(small.numpy(), exact_knn_search(X[:500], 5)[0])


def test_propagate_reads_neighbours_only():
    import scipy.sparse as sp
    # a path 0 - 1 - 2: row 2's value comes from row 1 only
    W = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float))
    seeds = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    out = propagate(W, seeds, alpha=0.0, steps=1)              # alpha 0: F = seeds, read S F
    np.testing.assert_allclose(out, W @ seeds)


def test_propagate_equals_the_iteration_in_column_groups_too(monkeypatch):
    import dmlp.graph
    S = knn_graph(torch.randn(300, 6, generator=torch.Generator().manual_seed(3)), 5)
    seeds = np.random.default_rng(0).random((300, 7))
    F = seeds.copy()
    for _ in range(4):
        F = 0.8 * (S @ F) + 0.2 * seeds
    np.testing.assert_allclose(propagate(S, seeds, 0.8, 4), S @ F, rtol=1e-10)
    monkeypatch.setattr(dmlp.graph, "CHUNK_ELEMENTS", 300 * 3)   # groups of 3 columns: 3, 3, 1
    np.testing.assert_allclose(propagate(S, seeds, 0.8, 4), S @ F, rtol=1e-10)


def test_fit_exponents_recovers_the_informative_expert():
    rng = np.random.default_rng(0)
    n, C = 2000, 4
    truth = rng.integers(0, C, n)
    good = np.full((n, C), 0.1)
    good[np.arange(n), truth] = 0.7                            # calibrated, informative
    noise = rng.dirichlet(np.ones(C), n)                       # uninformative
    w = fit_exponents([np.log(good), np.log(noise)], truth, prior_std=1.0)
    assert w[0] > 0.8 and w[1] < 0.2


def test_fit_exponents_reaches_the_constrained_optimum():
    """Matches a general bounded optimiser (L-BFGS-B) on the same MAP objective, bounds included."""
    from scipy.optimize import minimize
    rng = np.random.default_rng(1)
    n, C = 800, 5
    truth = rng.integers(0, C, n)
    terms = []
    for strength in (1.5, 0.0, -0.5):           # informative, useless, misleading (exponent 0)
        P = rng.dirichlet(np.ones(C), n)
        P[np.arange(n), truth] += max(strength, 0) * rng.random(n)
        if strength < 0:
            P[np.arange(n), (truth + 1) % C] += 1.0
        terms.append(np.log(P / P.sum(1, keepdims=True)))

    def objective(w):                           # mean NLL + the N(1, 1) prior, per row
        z = sum(wi * t for wi, t in zip(w, terms))
        z = z - z.max(1, keepdims=True)
        return -(z[np.arange(n), truth] - np.log(np.exp(z).sum(1))).mean() + 0.5 * ((w - 1) ** 2).sum() / n

    w = fit_exponents(terms, truth, prior_std=1.0)
    ref = minimize(objective, np.ones(3), method="L-BFGS-B", bounds=[(0.0, 20.0)] * 3)
    assert objective(w) <= ref.fun + 1e-7
    assert w[2] == 0.0


def test_fit_exponents_stay_finite_on_separable_evidence():
    """When one expert is always right (confident --meta auto rows), the likelihood alone would
    drive its exponent to the bound; the prior keeps it moderate."""
    rng = np.random.default_rng(2)
    n, C = 1000, 4
    truth = rng.integers(0, C, n)
    P = np.full((n, C), 0.1)
    P[np.arange(n), truth] = 0.7
    w = fit_exponents([np.log(P)], truth, prior_std=1.0)
    assert 1.0 < w[0] < 10.0


def test_propagate_in_locality_order_is_bit_identical_to_the_stored_order():
    """A scipy graph is propagated with its rows renumbered (reverse Cuthill-McKee) and each
    row's entries kept in their stored order: the same sums in the same order as the torch
    CSR graph taken as it is, so the same bits."""
    import scipy.sparse as sp
    from dmlp.graph import permuted_graph, sparse_tensor
    S = knn_graph(torch.randn(2000, 8, generator=torch.Generator().manual_seed(4)), 7)
    seeds = np.random.default_rng(1).random((2000, 5)).astype(np.float32)
    renumbered = propagate(S, seeds, 0.9, 6)
    as_stored = propagate(sparse_tensor(S), torch.from_numpy(seeds), 0.9, 6).numpy()
    np.testing.assert_array_equal(renumbered, as_stored)
    order = np.random.default_rng(2).permutation(2000)
    P = permuted_graph(S, order)
    assert (P != S[order][:, order]).nnz == 0
    assert isinstance(P, sp.csr_matrix)


def test_apply_posterior_row_blocks_change_no_bit(monkeypatch):
    import dmlp.numerics
    rng = np.random.default_rng(5)
    n, C = 301, 6
    terms = [np.log(rng.dirichlet(np.ones(C), n)).astype(np.float32), np.log(rng.dirichlet(np.ones(C), n))]
    transition = rng.dirichlet(np.ones(C) * 3, C)
    given = rng.integers(0, C, n)
    weights = np.array([0.7, 1.2, 0.9])
    whole = apply_posterior(weights, transition, terms, given)
    direct = np.exp(weights[0] * terms[0] + weights[1] * terms[1] + weights[2] * np.log(transition.T[given]))
    np.testing.assert_allclose(whole, direct / direct.sum(1, keepdims=True), rtol=1e-6)
    monkeypatch.setattr(dmlp.numerics, "CACHE_BLOCK_ELEMENTS", 5 * C)       # blocks of 5 rows
    np.testing.assert_array_equal(apply_posterior(weights, transition, terms, given), whole)


def test_apply_posterior_into_a_spent_buffer_changes_no_bit():
    rng = np.random.default_rng(6)
    n, C = 257, 7
    terms = [np.log(rng.dirichlet(np.ones(C), n)).astype(np.float32)]
    transition = rng.dirichlet(np.ones(C) * 3, C)
    given = rng.integers(0, C, n)
    fresh = apply_posterior(np.array([0.8, 1.1]), transition, terms, given)
    spent = apply_posterior(np.array([1.5, 0.4]), transition, terms, given)       # another EM step's q
    again = apply_posterior(np.array([0.8, 1.1]), transition, terms, given, out=spent)
    assert again is spent or np.shares_memory(again, spent)
    np.testing.assert_array_equal(again, fresh)
