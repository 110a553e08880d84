"""The oracle ceiling's posterior (benchmarks/oracle_ceiling.py) against cases with known answers."""
import numpy as np

import bench_helpers  # noqa: F401  (the checkout on sys.path)
from benchmarks.oracle_ceiling import oracle_accuracy, oracle_proba, process_transition


def _flip(truth, C=4, rate=0.3, seed=0):
    """Each label flipped with probability ``rate`` to one of the other classes, uniformly."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(truth)) < rate
    return np.where(flip, (truth + rng.integers(1, C, len(truth))) % C, truth)


def _noisy(n=4000, C=4, rate=0.3):
    truth = np.random.default_rng(99).integers(0, C, n)
    noisy = _flip(truth, C, rate, seed=0)
    T = process_transition(lambda seed: _flip(truth, C, rate, seed), truth, C)
    return truth, noisy, np.arange(400), np.arange(400, n), T


def test_process_transition_is_the_noise_model_not_the_judged_draw():
    """Counted on 20 other draws: close to (1 - r) I + r / (C - 1) off the diagonal, and not the
    judged draw's own counts (which it never reads)."""
    truth = np.random.default_rng(99).integers(0, 4, 4000)
    T = process_transition(lambda seed: _flip(truth, seed=seed), truth, 4)
    expected = np.full((4, 4), 0.1) + np.eye(4) * 0.6
    np.testing.assert_allclose(T, expected, atol=0.01)
    np.testing.assert_allclose(T.sum(1), 1.0)
    judged = process_transition(lambda seed: _flip(truth, seed=seed), truth, 4, draws=[0])
    assert np.abs(judged - expected).max() > np.abs(T - expected).max()
    assert np.array_equal(process_transition(lambda seed: np.zeros(3, int), np.array([0, 0, 0]), 2)[1], [0.0, 1.0])


def test_uninformative_features_leave_the_given_label():
    """Uniform p(c|x): the posterior is T[:, given], whose argmax is the given label below 50 % noise."""
    truth, noisy, meta, rows, T = _noisy()
    acc = oracle_accuracy(np.full((len(truth), 4), 0.25), truth, noisy, meta, rows, T)
    assert acc == np.mean(noisy[rows] == truth[rows])


def test_perfect_features_give_the_truth():
    truth, noisy, meta, rows, T = _noisy()
    proba = np.full((len(truth), 4), 0.01)
    proba[np.arange(len(truth)), truth] = 0.97
    assert oracle_accuracy(proba, truth, noisy, meta, rows, T) == 1.0


def test_oracle_proba_is_out_of_sample():
    """Random labels cannot be learnt out of sample: cross-fitted accuracy stays near chance."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 20))
    y = rng.integers(0, 2, 1000)
    P = oracle_proba(X, y, 2, 0, epochs=30)
    assert abs((P.argmax(1) == y).mean() - 0.5) < 0.08
    np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-6)
