"""The oracle ceiling's posterior (benchmarks/oracle_ceiling.py) against cases with known answers."""
import numpy as np

import bench_helpers  # noqa: F401  (the checkout on sys.path)
from benchmarks.oracle_ceiling import oracle_accuracy, oracle_proba


def _noisy(n=4000, C=4, rate=0.3, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, C, n)
    flip = rng.random(n) < rate
    noisy = np.where(flip, (truth + rng.integers(1, C, n)) % C, truth)
    meta = np.arange(400)
    return truth, noisy, meta, np.arange(400, n)


def test_uninformative_features_leave_the_given_label():
    """Uniform p(c|x): the posterior is T[:, given], whose argmax is the given label below 50 % noise."""
    truth, noisy, meta, rows = _noisy()
    acc = oracle_accuracy(np.full((len(truth), 4), 0.25), truth, noisy, meta, rows, 4)
    assert acc == np.mean(noisy[rows] == truth[rows])


def test_perfect_features_give_the_truth():
    truth, noisy, meta, rows = _noisy()
    proba = np.full((len(truth), 4), 0.01)
    proba[np.arange(len(truth)), truth] = 0.97
    assert oracle_accuracy(proba, truth, noisy, meta, rows, 4) == 1.0


def test_oracle_proba_is_out_of_sample():
    """Random labels cannot be learnt out of sample: cross-fitted accuracy stays near chance."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 20))
    y = rng.integers(0, 2, 1000)
    P = oracle_proba(X, y, 2, 0, epochs=30)
    assert abs((P.argmax(1) == y).mean() - 0.5) < 0.08
    np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-6)
