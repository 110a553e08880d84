"""Instance-dependent noise (dmlp.idn) against the reference generator of Xia et al. (NeurIPS 2020)."""
from __future__ import annotations

from math import inf

import numpy as np
import pytest

from dmlp import idn
from dmlp.errors import InputError
from dmlp.idn import instance_noise

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")


def xia_reference(n, dataset, labels, num_classes, feature_size, norm_std, seed):
    """``get_instance_noisy_label`` of the PTD code (Xia et al.), as it is written there, on CPU."""
    label_num = num_classes
    np.random.seed(int(seed))
    torch.manual_seed(int(seed))
    P = []
    flip_distribution = stats.truncnorm((0 - n) / norm_std, (1 - n) / norm_std, loc=n, scale=norm_std)
    flip_rate = flip_distribution.rvs(labels.shape[0])
    W = np.random.randn(label_num, feature_size, label_num)
    W = torch.FloatTensor(W)
    for i, (x, y) in enumerate(dataset):
        A = x.view(1, -1).mm(W[y]).squeeze(0)
        A[y] = -inf
        A = flip_rate[i] * torch.nn.functional.softmax(A, dim=0)
        A[y] += 1 - flip_rate[i]
        P.append(A)
    P = torch.stack(P, 0).numpy()
    classes = [i for i in range(label_num)]
    return np.array([np.random.choice(classes, p=P[i]) for i in range(labels.shape[0])])


def _data(n, d, c, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, c, n), rng.standard_normal((n, d)).astype(np.float32)


@pytest.mark.parametrize("n,d,c,seed,rate", [(400, 8, 5, 3, 0.4), (1000, 32, 10, 1, 0.2), (300, 4, 3, 7, 0.5)])
def test_matches_reference_generator(n, d, c, seed, rate):
    y, X = _data(n, d, c, seed)
    ref = xia_reference(rate, [(torch.from_numpy(X[i]), int(y[i])) for i in range(n)], torch.from_numpy(y),
                        c, d, 0.1, seed)
    ours = instance_noise(y, X, rate, seed)
    # Same draws; only a uniform within float32 rounding of a class boundary could differ.
    assert (ours == ref).mean() >= 0.995
    assert ours.dtype == np.int64


def test_seeded_and_rate():
    y, X = _data(6000, 16, 10)
    a = instance_noise(y, X, 0.3, 5)
    assert np.array_equal(a, instance_noise(y, X, 0.3, 5))
    assert not np.array_equal(a, instance_noise(y, X, 0.3, 6))
    assert abs((a != y).mean() - 0.3) < 0.02            # each row flips with probability q_i, mean 0.3


def test_flips_follow_the_features():
    """With large logits the softmax is nearly one-hot: a flipped row goes to the class its
    features' projection favours, so the noise depends on the instance, not only its class."""
    y, X = _data(2000, 8, 6)
    X = 50 * X
    noisy = instance_noise(y, X, 0.5, 2)
    flipped = np.flatnonzero(noisy != y)
    rng = np.random.RandomState(2)
    idn.flip_rates(rng, len(y), 0.5)
    W = rng.randn(6, 8, 6)
    z = np.einsum("nd,ndc->nc", X[flipped].astype(np.float64), W[y[flipped]])
    z[np.arange(flipped.size), y[flipped]] = -np.inf
    assert (noisy[flipped] == z.argmax(1)).mean() > 0.95


def test_memory_map_and_blocks_give_the_same_labels(tmp_path, monkeypatch):
    from dmlp.data import load_npy
    y, X = _data(500, 6, 4)
    np.save(tmp_path / "f.npy", X.astype(np.float16))
    whole = instance_noise(y, X.astype(np.float16), 0.4, 1)
    monkeypatch.setattr(idn, "BLOCK_ELEMENTS", 60)          # 10 rows a block
    assert np.array_equal(instance_noise(y, load_npy(tmp_path / "f.npy"), 0.4, 1), whole)


def test_bad_inputs():
    y, X = _data(50, 3, 4)
    with pytest.raises(InputError, match="seed=-1"):
        instance_noise(y, X, 0.2, -1)
    with pytest.raises(InputError, match="rate=1.5"):
        instance_noise(y, X, 1.5, 0)
    with pytest.raises(InputError, match="49 rows"):
        instance_noise(y[:49], X, 0.2, 0)
    X[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        instance_noise(y, X, 0.2, 0)
