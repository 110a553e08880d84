"""The reporting metrics (dmlp/metrics.py) against their definitions."""
import numpy as np
import pytest
from scipy.stats import rankdata

from dmlp.metrics import roc_auc


@pytest.mark.parametrize("levels", [None, 5])
def test_roc_auc_is_the_probability_a_positive_outscores_a_negative(levels):
    """AUC = P(score+ > score-) + P(tie) / 2, counted over every pair; ties averaged as rankdata."""
    r = np.random.default_rng(levels or 0)
    scores = r.normal(size=300) if levels is None else r.integers(0, levels, size=300).astype(float)
    positives = r.random(300) < 0.3
    pos, neg = scores[positives][:, None], scores[~positives][None, :]
    pairs = (pos > neg).mean() + 0.5 * (pos == neg).mean()
    assert roc_auc(scores, positives) == pytest.approx(pairs, abs=1e-12)
    ranks = rankdata(scores)
    n_pos, n_neg = positives.sum(), (~positives).sum()
    assert roc_auc(scores, positives) == pytest.approx((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    assert np.isnan(roc_auc(scores, np.zeros(300, bool)))
