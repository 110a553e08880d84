"""The check of a run's labels without ground truth (dmlp.audit), and T's shrinkage at many classes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dmlp.audit import audit_changes, cross_fitted_ridge_scores
from dmlp.batches import FeatureStore, make_partition
from dmlp.transition import diagonally_dominant, normalise_counts


def _store(X):
    order, batches = make_partition(len(X), 500, 0)
    return FeatureStore(torch.as_tensor(X), order, batches, torch.device("cpu"), 4.0), order


def _mixture(C=10, n=2000, d=16, noise=0.4, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, C, n)
    X = (rng.normal(size=(C, d))[truth] + rng.normal(size=(n, d))).astype(np.float32)
    given = np.where(rng.random(n) < noise, rng.integers(0, C, n), truth)
    return X, truth, given, rng


def test_held_out_scores_never_see_the_rows_own_label():
    X, truth, given, _ = _mixture()
    store, order = _store(X)
    a = cross_fitted_ridge_scores(store, given[order], 10, ridge=1e-3, seed=0)
    flipped = given[order].copy()
    flipped[0] = (flipped[0] + 1) % 10                     # row 0's own label changes ...
    b = cross_fitted_ridge_scores(store, flipped, 10, ridge=1e-3, seed=0)
    np.testing.assert_array_equal(a[0], b[0])              # ... its held-out scores do not


def test_audit_tells_truth_from_corruption():
    X, truth, given, rng = _mixture()
    store, order = _store(X)
    good = audit_changes(store, given[order], truth[order], 10, ridge=1e-3, seed=0)
    assert good.purified_better and good.n_changed == int((truth != given).sum())
    worse = given.copy()
    hit = rng.random(len(given)) < 0.3
    worse[hit] = rng.integers(0, 10, hit.sum())
    bad = audit_changes(store, given[order], worse[order], 10, ridge=1e-3, seed=0)
    assert not bad.purified_better


def test_audit_keeps_the_given_labels_when_the_model_disbelieves_its_trusted_rows():
    """Labels that pass the comparison are still not kept when the run's own model finds the
    trusted meta labels more likely wrong than right (meta_label_belief below 0.5)."""
    X, truth, given, _ = _mixture()
    store, order = _store(X)
    kept = audit_changes(store, given[order], truth[order], 10, ridge=1e-3, seed=0, meta_label_belief=0.8)
    assert kept.purified_better and kept.meta_label_belief == 0.8
    refused = audit_changes(store, given[order], truth[order], 10, ridge=1e-3, seed=0, meta_label_belief=0.3)
    assert not refused.purified_better
    assert refused.support_purified == kept.support_purified          # the same comparison, refused


def test_shrinkage_keeps_the_given_label_weight_at_many_classes():
    """Two meta rows of class 0 at 1,000 classes, both given labels right: T[0, 0] stays far above
    any off-diagonal cell (a flat 0.5 per cell would make the row nearly uniform)."""
    C = 1000
    counts = np.zeros((C, C))
    counts[np.arange(C), np.arange(C)] = 1.6                # 2 rows a class, 20 % noise
    counts[np.arange(C), (np.arange(C) + 1) % C] = 0.4
    T = normalise_counts(counts, 0.5)
    np.testing.assert_allclose(T.sum(1), 1.0)
    assert T[0, 0] > 0.5 and T[0, 0] / T[0, 500] > 1000
    Tt = normalise_counts(torch.as_tensor(counts), 0.5)
    np.testing.assert_allclose(Tt.numpy(), T, rtol=1e-12)


def test_an_empty_row_takes_the_pooled_noise_rate():
    counts = np.diag([80.0, 80.0, 0.0]) + np.array([[0, 20, 0], [20, 0, 0], [0, 0, 0]])
    T = normalise_counts(counts, 0.5)
    rho = (40 + 0.5) / (200 + 1)
    np.testing.assert_allclose(T[2], [rho / 2, rho / 2, 1 - rho])


def test_a_transition_row_never_makes_a_wrong_label_likelier_than_the_true_class():
    """Two meta rows of a 2-class set, both given the wrong label: counted as they are, T would
    say every label is flipped (and the run would flip them all).  The estimate stops at a tie:
    the given label is then no evidence either way."""
    flipped = np.array([[0.0, 1.0], [1.0, 0.0]])
    for smoothing in (0.5, 0.0):
        np.testing.assert_allclose(normalise_counts(flipped, smoothing), 0.5)
        np.testing.assert_allclose(normalise_counts(torch.as_tensor(flipped), smoothing).numpy(), 0.5)


def test_diagonal_dominance_moves_only_the_rows_that_break_it_and_only_to_a_tie():
    T = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    out = diagonally_dominant(T)
    np.testing.assert_array_equal(out[[0, 2]], T[[0, 2]])
    a = (0.5 - 0.3) / (1 - 0.3 + 0.5)                  # the smallest step toward e_1 that ties
    np.testing.assert_allclose(out[1], (1 - a) * T[1] + a * np.eye(3)[1])
    assert out[1, 1] == pytest.approx(out[1, 0]) and out[1, 1] > out[1, 2]
    np.testing.assert_allclose(out.sum(1), 1.0)
    torch_out = diagonally_dominant(torch.as_tensor(T))
    np.testing.assert_allclose(torch_out.numpy(), out, rtol=1e-15)


def test_prior_strength_follows_how_well_rows_fit_the_pooled_model():
    """Symmetric counts earn the strongest shrinkage of the grid; counts that flip to one
    particular class (asymmetric noise) the weakest."""
    from dmlp.transition import STRENGTH_GRID, prior_strength
    C, rng = 20, np.random.default_rng(0)
    symmetric = np.zeros((C, C))
    asymmetric = np.zeros((C, C))
    for c in range(C):
        symmetric[c] = np.bincount(np.where(rng.random(500) < 0.6, c, rng.integers(0, C, 500)), minlength=C)
        asymmetric[c] = np.bincount(np.where(rng.random(500) < 0.6, c, (c + 1) % C), minlength=C)
    assert prior_strength(symmetric, 0.5) >= 0.5 * C * STRENGTH_GRID[-3]
    assert prior_strength(asymmetric, 0.5) <= 0.5 * C * STRENGTH_GRID[2]


#: The fields of summary.json that the summary line reads besides the check's.
_SUMMARY = {"config_name": "default", "data": "d", "n_purified": 10, "n_meta": 2, "meta_source": "auto",
            "n_classes": 3, "device": "cpu", "n_changed": 0, "seconds": 1.0, "estimated_noise_rate": 0.1}


def test_summary_line_of_the_check(capsys):
    """The summary line states the verdict and every reason to keep the given labels, or that no
    label changed (no 0 % against 0 % verdict)."""
    from dmlp.audit import LabelAudit
    from dmlp.run import _print_summary

    def line(audit):
        _print_summary({**_SUMMARY, "n_changed": audit.n_changed, "notes": {"label_audit": audit.to_dict()}}, "out")
        return [x for x in capsys.readouterr().out.splitlines() if "check without ground truth" in x][0]

    assert line(LabelAudit(0, None, None, True)).endswith(
        "check without ground truth: no label changed, nothing to check (the run found no evidence against the "
        "given labels, which is not evidence that they are clean)")
    assert line(LabelAudit(4, 0.4, 0.3, True, 0.005, 0.9)).endswith(
        "on 40.00 % of rows, one fitted on the given labels on 30.00 %: the purified labels are kept")
    assert line(LabelAudit(4, 0.3, 0.4, False, 0.005, 0.9)).endswith(
        "on 30.00 % of rows, one fitted on the given labels on 40.00 %: the purified labels are no better; "
        "the given labels are kept (held-out agreement of a classifier fitted on the purified labels 30.00 %, "
        "on the given labels 40.00 %)")
    assert line(LabelAudit(4, 0.4, 0.3, False, 0.31)).endswith(
        "predicts held-out given labels no better than chance (permutation p = 0.310, 0.01 needed): "
        "the features show no evidence, in these rows, to change labels by; the given labels are kept "
        "(held-out agreement of a classifier fitted on the purified labels 40.00 %, on the given labels 30.00 %)")
    both = line(LabelAudit(4, 0.4, 0.3, False, 0.31, 0.2))
    assert ("finds the given labels of the rows it picked as the most plausible right with probability 0.20 on "
            "average (below 0.5): its noise estimate contradicts its premise; and a classifier fitted on the given "
            "labels predicts held-out given labels no better than chance") in both


def test_the_noise_estimate_is_disowned_only_with_the_model(capsys):
    """The summary's noise estimate is marked not credible when a check discredits the model,
    not when the purified labels merely lose the comparison."""
    from dmlp.audit import LabelAudit
    from dmlp.run import _print_summary
    mark = "the check below finds the purifier's model not credible here"
    for audit, marked in ((LabelAudit(4, 0.3, 0.4, False, 0.005, 0.9), False),
                          (LabelAudit(4, 0.4, 0.3, False, 0.005, 0.2), True),
                          (LabelAudit(4, 0.4, 0.3, False, 0.31, 0.9), True)):
        _print_summary({**_SUMMARY, "n_changed": 4, "notes": {"label_audit": audit.to_dict()}}, "out")
        assert (mark in capsys.readouterr().out) == marked, audit


def test_the_check_records_what_it_did_not_test():
    """No label changed: nothing was tested, so no p-value is recorded (and no reason given)."""
    X, truth, given, _ = _mixture()
    store, order = _store(X)
    audit = audit_changes(store, given[order], given[order], 10, ridge=1e-3, seed=0, meta_label_belief=0.9)
    assert audit.n_changed == 0 and audit.information_p is None and audit.meta_label_belief == 0.9
    assert audit.purified_better and audit.reasons_to_keep_given() == []


def test_the_library_warns_when_the_given_labels_are_kept(caplog):
    """purify_dataset with --meta auto on features that say nothing: the labels stay as given and
    the library says so on the "dmlp" logger (the command prints its summary line instead)."""
    import logging

    import dmlp
    rng = np.random.default_rng(3)
    given = np.repeat(np.arange(6), [300, 120, 60, 40, 20, 10])
    X = rng.normal(size=(len(given), 12)).astype(np.float32)
    cfg = dmlp.load_config("default", epochs=3)
    with caplog.at_level(logging.WARNING, logger="dmlp"):
        out = dmlp.purify_dataset(dmlp.Dataset.from_arrays(X, given), cfg, auto_meta=True, device="cpu",
                                  progress=False)
    audit = out.result.notes["label_audit"]
    assert not audit["purified_better"] and np.array_equal(out.labels, given)
    # a model the check does not credit ranks no row above another
    purified_rows = np.setdiff1d(np.arange(len(given)), out.meta_indices)
    assert np.ptp(out.label_quality[purified_rows]) == 0.0
    assert any("label check without ground truth" in r.getMessage() and "the given labels are kept" in r.getMessage()
               for r in caplog.records)


def test_balanced_agreement_is_chance_for_any_prediction_blind_to_the_rows():
    """A constant prediction, or classes drawn in any proportions, sits at chance whatever the
    class sizes (p-values spread over (0, 1]); predictions that follow the labels do not."""
    from dmlp.audit import INFORMATION_LEVEL, balanced_agreement, information_p_value
    rng = np.random.default_rng(0)
    given = np.repeat(np.arange(6), [500, 200, 100, 60, 30, 10])      # long tail
    assert balanced_agreement(np.zeros_like(given), given, 6) == 1 / 6     # the largest class: chance
    assert information_p_value(np.zeros_like(given), given, 6, seed=0) == 1.0
    blind = [information_p_value(rng.choice(6, len(given), p=p), given, 6, seed=s, permutations=99)
             for p in ([0.8, 0.1, 0.04, 0.03, 0.02, 0.01], np.full(6, 1 / 6)) for s in range(10)]
    assert min(blind) > INFORMATION_LEVEL and np.median(blind) > 0.2
    noisy_copy = np.where(rng.random(len(given)) < 0.8, rng.integers(0, 6, len(given)), given)
    assert information_p_value(noisy_copy, given, 6, seed=0) == 1 / 200


def test_audit_keeps_the_given_labels_when_the_features_say_nothing():
    """Features independent of the labels: labels moved to the largest class train a classifier
    that agrees more often with the held-out given labels (it predicts the largest class), but
    the given-label classifier is at chance, so the check keeps the given labels."""
    rng = np.random.default_rng(1)
    given = np.repeat(np.arange(8), [600, 150, 100, 60, 40, 25, 15, 10])
    X = rng.normal(size=(len(given), 16)).astype(np.float32)
    store, order = _store(X)
    moved = given.copy()
    moved[rng.random(len(given)) < 0.5] = 0
    audit = audit_changes(store, given[order], moved[order], 8, ridge=1e-3, seed=0)
    assert audit.support_purified > audit.support_given           # the raw comparison alone would keep them
    assert audit.information_p > 0.01 and not audit.purified_better


def test_prior_strength_equals_the_dirichlet_multinomial_likelihood_written_out():
    """The grid point maximising the marginal likelihood written cell by cell, with T0 as a
    matrix (the reference the closed-form shortcuts are checked against), at several class counts."""
    from scipy.special import gammaln
    from dmlp.transition import STRENGTH_GRID, pooled_transition, prior_strength
    rng = np.random.default_rng(6)
    for C in (3, 12, 120):
        for flip in (0.05, 0.3):
            counts = np.eye(C) * rng.integers(5, 60, C) * (1 - flip)
            counts[np.arange(C), (np.arange(C) + 1) % C] += 40 * flip * rng.random(C)
            counts += rng.random((C, C)) * rng.random()
            same, other = pooled_transition(counts)
            T0 = np.full((C, C), other)
            np.fill_diagonal(T0, same)
            n = counts.sum(1)
            grid = 0.5 * C * STRENGTH_GRID
            ll = [(gammaln(k) - gammaln(n + k)).sum() + (gammaln(counts + k * T0) - gammaln(k * T0)).sum()
                  for k in grid]
            assert prior_strength(counts, 0.5) == grid[int(np.argmax(ll))]
