"""EAC's in-sample echo of the given labels (dmlp.echo): sized on the meta rows, then removed."""
from __future__ import annotations

import numpy as np
import pytest

from gaussian_classes import gaussian_classes

from dmlp import load_config, purify_dataset
from dmlp.echo import CONFIDENCE_Z, given_label_echo, remove_echo


def _proba(rng, rows, C, concentration=0.3):
    return rng.dirichlet(np.full(C, concentration), size=rows)


def _mean_given_nll(P, labels):
    return float(-np.log(P[np.arange(len(labels)), labels]).mean())


def test_the_echo_makes_the_training_rows_likelihood_of_their_given_labels_the_meta_rows_lower_bound():
    rng = np.random.default_rng(0)
    N, M, C = 3000, 400, 12
    given, meta_given = rng.integers(0, C, N), rng.integers(0, C, M)
    train = _proba(rng, N, C)
    train[np.arange(N), given] += 2.0          # in-sample: the given label comes back
    train /= train.sum(1, keepdims=True)
    meta = _proba(rng, M, C)
    delta = given_label_echo(train, given, meta, meta_given)
    assert delta > 0
    corrected = remove_echo(train, given, delta)
    meta_nll = -np.log(meta[np.arange(M), meta_given])
    bound = meta_nll.mean() - CONFIDENCE_Z * meta_nll.std(ddof=1) / np.sqrt(M)    # what the meta rows show
    assert _mean_given_nll(corrected, given) == pytest.approx(bound, rel=1e-9)


def test_removing_the_echo_lowers_the_given_labels_log_odds_by_delta_and_keeps_the_rest_in_proportion():
    rng = np.random.default_rng(1)
    N, C, delta = 50, 7, 1.3
    P, given = _proba(rng, N, C, 1.0), rng.integers(0, C, N)
    Q = remove_echo(P, given, delta)
    rows = np.arange(N)
    assert np.allclose(Q.sum(1), 1.0)
    odds = lambda A: np.log(A[rows, given] / (1 - A[rows, given]))
    assert np.allclose(odds(Q), odds(P) - delta)
    others = np.ones_like(P, dtype=bool)
    others[rows, given] = False
    ratio = Q[others].reshape(N, C - 1) / P[others].reshape(N, C - 1)
    assert np.allclose(ratio, ratio[:, :1])               # one factor a row: their proportions kept
    assert np.allclose(P, remove_echo(P, given, 0.0))


def test_no_echo_where_the_training_rows_find_their_given_labels_no_likelier_than_the_meta_rows():
    rng = np.random.default_rng(2)
    C = 5
    meta_given = rng.integers(0, C, 200)
    meta = np.eye(C)[meta_given] * 0.9 + 0.1 / C         # out-of-fold, yet sure of the given labels
    train = _proba(rng, 500, C)
    assert given_label_echo(train, rng.integers(0, C, 500), meta, meta_given) == 0.0
    assert given_label_echo(train, rng.integers(0, C, 500), _proba(rng, 1, C), meta_given[:1]) == 0.0


def test_with_few_rows_a_class_in_many_dimensions_the_echo_is_large_and_removing_it_gains():
    # EAC's 256 x 40 weights per view fit 720 training rows' given labels in-sample: its exponent
    # fitted on the out-of-fold meta rows would count each row's given label a second time
    data = gaussian_classes(0.4, C=40, n=20, d=256, noise=0.4, seed=0)
    kept = purify_dataset(data, load_config("default", eac_echo_correction=False), device="cpu", progress=False)
    removed = purify_dataset(data, load_config("default"), device="cpu", progress=False)
    assert "eac_echo" not in kept.result.notes
    assert removed.result.notes["eac_echo"] > 1.0
    after = lambda out: out.evaluation()["label_accuracy_after"]
    assert after(removed) > after(kept) + 0.05


def test_on_weakly_separated_classes_with_few_meta_rows_the_removal_does_not_turn_eac_against_the_given_labels():
    # 3 classes of 150 rows in 512-d that barely separate, 45 meta rows: removing the echo their
    # mean shows (no confidence bound) ended 10 points below the given labels (the noise model's
    # EM settled at "labels carry no information"); removing what they demonstrate does not
    data = gaussian_classes(0.08, C=3, n=150, d=512, noise=0.3, seed=0)
    e = purify_dataset(data, load_config("default"), device="cpu", progress=False).evaluation()
    assert e["label_accuracy_after"] >= e["label_accuracy_before"] - 0.01
