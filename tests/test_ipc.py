"""IPC: the closed-form inner estimator, the meta objective and its label gradient, RowAdam."""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import scipy.linalg
import torch

from dmlp.config import Config
from dmlp.errors import InputError
from dmlp.numerics import RowAdam
from dmlp.ipc import label_gradient, meta_objective, meta_view_weights
from dmlp.ridge import closed_form, factor_gram

B, D, C, M, V = 40, 8, 3, 15, 2


def _problem(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, D, generator=g, dtype=dtype)
    Y = torch.rand(B, V * C, generator=g, dtype=dtype)
    meta_X = torch.randn(M, D, generator=g, dtype=dtype)
    meta_y = torch.arange(M) % C
    meta_onehot = torch.nn.functional.one_hot(meta_y, C).to(dtype)
    return X, Y, meta_X, meta_onehot


# all three loss terms on, with distinct weights so a mixed-up term would show
MW = meta_view_weights(M, V, cross_fit=False, seed=0, dtype=torch.float64)   # every view sees every meta row
CFG = Config().replace(meta_ce_weight=1.0, meta_mse_weight=0.3, meta_balance_weight=0.7, meta_mse_reduction="sum").ipc


# --- closed form ---------------------------------------------------------------------------

def test_closed_form_matches_lstsq_without_ridge():
    X, Y, _, _ = _problem()
    L, lam = factor_gram(X, ridge=0.0)
    assert lam == 0.0
    W = closed_form(X, Y, L).numpy()
    W_ref = np.linalg.lstsq(X.numpy(), Y.numpy(), rcond=None)[0]
    np.testing.assert_allclose(W, W_ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("ridge", [1e-6, 1e-2, 0.5])
def test_closed_form_matches_ridge_normal_equations(ridge):
    X, Y, _, _ = _problem(seed=1)
    Xn, Yn = X.numpy(), Y.numpy()
    gram = Xn.T @ Xn
    lam_expected = ridge * np.trace(gram) / D           # relative ridge: ridge * trace / d
    L, lam = factor_gram(X, ridge)
    assert lam == pytest.approx(lam_expected, rel=1e-12)
    np.testing.assert_allclose(L.numpy() @ L.numpy().T, gram + lam_expected * np.eye(D), rtol=1e-10, atol=1e-10)
    W_ref = np.linalg.solve(gram + lam_expected * np.eye(D), Xn.T @ Yn)
    np.testing.assert_allclose(closed_form(X, Y, L).numpy(), W_ref, rtol=1e-9, atol=1e-12)


def test_relative_ridge_is_scale_free():
    """Scaling the features by s scales lambda by s^2: predictions X W stay the same."""
    X, Y, _, _ = _problem(seed=2)
    L1, lam1 = factor_gram(X, 0.1)
    L2, lam2 = factor_gram(7.0 * X, 0.1)
    assert lam2 == pytest.approx(49.0 * lam1, rel=1e-12)
    P1 = X @ closed_form(X, Y, L1)
    P2 = (7.0 * X) @ closed_form(7.0 * X, Y, L2)
    torch.testing.assert_close(P1, P2, rtol=1e-10, atol=1e-10)


def _exactly_rank_deficient(dtype):
    # +-1 Hadamard columns: the Gram matrix is exact in floating point, so the duplicated
    # columns give an exactly zero Cholesky pivot (no dependence on round-off luck)
    H = torch.as_tensor(scipy.linalg.hadamard(64)[:, 1:7], dtype=dtype)
    return torch.cat([H, H[:, :2]], dim=1)              # 64 x 8, rank 6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_factor_gram_rank_deficient_raises_ridge_and_warns(dtype, caplog):
    X = _exactly_rank_deficient(dtype)
    with caplog.at_level(logging.WARNING, logger="dmlp"):
        L, lam = factor_gram(X, ridge=0.0)
    assert lam > 0
    assert any("singular" in r.getMessage() for r in caplog.records)
    assert torch.isfinite(L).all()
    Y = torch.randn(64, 3, dtype=dtype, generator=torch.Generator().manual_seed(0))
    W = closed_form(X, Y, L)
    assert torch.isfinite(W).all()
    # the predictions are those of the least-squares fit (the duplicated columns change nothing)
    ref = X.double().numpy() @ np.linalg.lstsq(X.double().numpy(), Y.double().numpy(), rcond=None)[0]
    np.testing.assert_allclose((X @ W).double().numpy(), ref, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_factor_gram_detects_generic_duplicated_columns(dtype):
    accepted = []
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        X = torch.randn(50, 6, generator=g, dtype=dtype)
        X = torch.cat([X, X[:, :2]], dim=1)
        _, lam = factor_gram(X, ridge=0.0)
        if lam == 0.0:
            accepted.append(seed)
    assert not accepted, f"singular Gram accepted with lambda=0 for seeds {accepted}"


def test_factor_gram_all_zero_raises():
    with pytest.raises(InputError):
        factor_gram(torch.zeros(20, 5), ridge=1e-6)


# --- label gradient ------------------------------------------------------------------------

@pytest.mark.parametrize("cross_fit", [False, True])
def test_meta_objective_gradcheck_all_terms_two_views(cross_fit):
    X, Y, meta_X, meta_onehot = _problem(seed=3)
    L, _ = factor_gram(X, 1e-3)
    Y = Y.clone().requires_grad_(True)
    weights = meta_view_weights(M, V, cross_fit=cross_fit, seed=1, dtype=torch.float64)
    fn = lambda Yb: meta_objective(Yb, X, L, meta_X, meta_onehot, weights, CFG, slice(0, 25))
    assert torch.autograd.gradcheck(fn, (Y,), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_label_gradient_matches_finite_differences_with_cached_factor(reduction):
    X, Y, meta_X, meta_onehot = _problem(seed=4)
    cfg = dataclasses.replace(CFG, mse_reduction=reduction)
    L, _ = factor_gram(X, 1e-3)                                   # cached, reused for every evaluation
    loss, grad = label_gradient(Y, X, L, meta_X, meta_onehot, MW, cfg)
    assert loss.item() == pytest.approx(meta_objective(Y, X, L, meta_X, meta_onehot, MW, cfg).item())
    h = 1e-6
    fd = torch.zeros_like(Y)
    for i in range(B):
        for j in range(V * C):
            Yp, Ym = Y.clone(), Y.clone()
            Yp[i, j] += h
            Ym[i, j] -= h
            fd[i, j] = (meta_objective(Yp, X, L, meta_X, meta_onehot, MW, cfg)
                        - meta_objective(Ym, X, L, meta_X, meta_onehot, MW, cfg)) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7)


def test_label_gradient_mse_only_matches_closed_form_expression():
    """dLoss/dY_B = X_B (X'X + lambda I)^-1 X_meta' G with G = 2 (meta predictions - onehot)."""
    X, Y, meta_X, meta_onehot = _problem(seed=5)
    cfg = Config().replace(meta_ce_weight=0.0, meta_mse_weight=1.0, meta_balance_weight=0.0).ipc
    L, lam = factor_gram(X, 1e-2)
    _, grad = label_gradient(Y, X, L, meta_X, meta_onehot, MW, cfg)
    A = X.T @ X + lam * torch.eye(D, dtype=X.dtype)
    W = torch.linalg.solve(A, X.T @ Y)
    G = 2 * (meta_X @ W - meta_onehot.repeat(1, V))
    torch.testing.assert_close(grad, X @ torch.linalg.solve(A, meta_X.T @ G), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("n_rows,batch_size", [(120, 40), (119, 40)])   # equal / padded batches
def test_whitened_batches_equal_batch_by_batch_label_gradients(n_rows, batch_size):
    """All batches at once on whitened features = the closed-form gradient of each batch."""
    from dmlp.batches import FeatureStore, make_partition
    from dmlp.ipc import WhitenedBatches
    g = torch.Generator().manual_seed(8)
    X = torch.randn(n_rows, D, generator=g, dtype=torch.float64) + 0.3
    labels = torch.rand(n_rows, V * C, generator=g, dtype=torch.float64)
    meta_X = torch.randn(M, D, generator=g, dtype=torch.float64)
    meta_onehot = torch.nn.functional.one_hot(torch.arange(M) % C, C).double()
    weights = meta_view_weights(M, V, cross_fit=True, seed=1, dtype=torch.float64)
    order, batches = make_partition(n_rows, batch_size, seed=0)
    store = FeatureStore(X, order, batches, "cpu", 4.0, dtype=torch.float64)
    balance = slice(0, 15)
    whitened = WhitenedBatches(store, 1e-3, balance, meta_X, torch.float64)
    loss, grad, rows = whitened.gradient(labels, meta_onehot, weights, CFG)
    assert rows == slice(0, n_rows)
    total = 0.0
    for k, rows in enumerate(batches):
        X_B = store.batch(k)
        L, _ = factor_gram(X_B, 1e-3)
        l_k, g_k = label_gradient(labels[rows], X_B, L, meta_X, meta_onehot, weights, CFG, X_B[balance])
        torch.testing.assert_close(grad[rows], g_k, rtol=1e-8, atol=1e-10)
        total += float(l_k)
    assert float(loss) == pytest.approx(total, rel=1e-10)
    # in groups of two batches (as at many classes): the same loss and gradient, row by row
    grouped, group_loss = torch.zeros_like(grad), 0.0
    for group in [range(0, 2), range(2, 3)]:
        l_g, g_g, rows = whitened.gradient(labels, meta_onehot, weights, CFG, group)
        assert rows == slice(batches[group.start].start, batches[group.stop - 1].stop)
        grouped[rows] = g_g
        group_loss += float(l_g)
    torch.testing.assert_close(grouped, grad, rtol=1e-10, atol=1e-12)
    assert group_loss == pytest.approx(total, rel=1e-10)


# --- RowAdam -------------------------------------------------------------------------------

@pytest.mark.parametrize("weight_decay", [0.0, 3e-4, 0.1])
def test_row_adam_moves_only_batch_rows(weight_decay):
    g = torch.Generator().manual_seed(0)
    P = torch.randn(30, 6, generator=g)
    before = P.clone()
    adam = RowAdam(30, 6, lr=0.01, betas=(0.5, 0.999), weight_decay=weight_decay)
    rows = slice(10, 17)
    for _ in range(5):
        adam.step(P, rows, torch.randn(7, 6, generator=g))
    assert torch.equal(P[:10], before[:10]) and torch.equal(P[17:], before[17:])
    assert (P[rows] != before[rows]).all()
    assert torch.equal(adam.steps[rows], torch.full((7, 1), 5.0))
    assert (adam.steps[:10] == 0).all() and (adam.steps[17:] == 0).all()
    assert (adam.m[:10] == 0).all() and (adam.v[17:] == 0).all()


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_row_adam_matches_torch_adam_for_a_block_visited_every_step(weight_decay):
    g = torch.Generator().manual_seed(1)
    init = torch.randn(12, 5, generator=g, dtype=torch.float64)
    target = torch.randn(12, 5, generator=g, dtype=torch.float64)
    ours = init.clone()
    ref = init.clone().requires_grad_(True)
    adam = RowAdam(12, 5, lr=0.01, betas=(0.5, 0.999), weight_decay=weight_decay, dtype=torch.float64)
    opt = torch.optim.Adam([ref], lr=0.01, betas=(0.5, 0.999), eps=1e-8, weight_decay=weight_decay)
    for _ in range(25):
        adam.step(ours, slice(None), ours - target)               # grad of 0.5 |P - target|^2
        opt.zero_grad()
        ref.grad = (ref.detach() - target).clone()
        opt.step()
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-12, atol=1e-12)


def test_row_adam_interleaved_batches_equal_independent_adams():
    """Each row keeps its own step count: two alternating batches behave as two separate Adams."""
    g = torch.Generator().manual_seed(2)
    init = torch.randn(10, 4, generator=g, dtype=torch.float64)
    target = torch.randn(10, 4, generator=g, dtype=torch.float64)
    ours = init.clone()
    adam = RowAdam(10, 4, lr=0.02, betas=(0.5, 0.999), weight_decay=0.01, dtype=torch.float64)
    refs = [init[:6].clone().requires_grad_(True), init[6:].clone().requires_grad_(True)]
    opts = [torch.optim.Adam([r], lr=0.02, betas=(0.5, 0.999), weight_decay=0.01) for r in refs]
    blocks = [slice(0, 6), slice(6, 10)]
    for step in range(12):
        k = step % 2 if step < 8 else 0                           # uneven visits at the end
        adam.step(ours, blocks[k], ours[blocks[k]] - target[blocks[k]])
        refs[k].grad = (refs[k].detach() - target[blocks[k]]).clone()
        opts[k].step()
    torch.testing.assert_close(ours, torch.cat([r.detach() for r in refs]), rtol=1e-12, atol=1e-12)


def test_meta_view_weights_cross_fit_gives_disjoint_folds():
    w = meta_view_weights(11, 2, cross_fit=True, seed=0, dtype=torch.float64)
    assert torch.allclose(w.sum(1), torch.ones(2, dtype=torch.float64))
    assert not bool(((w[0] > 0) & (w[1] > 0)).any())          # a meta row is seen by one view only
    assert bool(((w[0] > 0) | (w[1] > 0)).all())


def test_row_adam_in_cache_blocks_changes_no_bit(monkeypatch):
    """Stepping row block by row block is the same arithmetic, element by element, with rows
    that stepped alike and with rows whose step counts differ."""
    import dmlp.numerics
    g = torch.Generator().manual_seed(3)
    init = torch.randn(50, 6, generator=g)
    grads = [torch.randn(50, 6, generator=g) for _ in range(4)]
    visits = [slice(None), slice(5, 40), slice(None), slice(0, 50)]     # uneven step counts

    def run():
        params = init.clone()
        adam = RowAdam(50, 6, lr=0.03, betas=(0.9, 0.999), weight_decay=0.01)
        for rows, grad in zip(visits, grads):
            adam.step(params, rows, grad[rows])
        return params, adam.m, adam.v

    whole = run()
    monkeypatch.setattr(dmlp.numerics, "CACHE_BLOCK_ELEMENTS", 7 * 6)      # blocks of 7 rows
    for ours, reference in zip(run(), whole):
        assert torch.equal(ours, reference)
