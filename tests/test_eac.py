"""EAC: the auxiliary classifier's loss (one softmax), forward correction, the view exchange."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dmlp.config import Config
from dmlp.eac import AuxiliaryClassifier, exchange

N, D, C, V = 50, 7, 4, 2
PLAIN = Config().replace(eac_confidence_penalty=0.0, eac_balance_weight=0.0, eac_meta_weight=0.0)


def _clf(cfg=PLAIN, views=V, seed=0):
    clf = AuxiliaryClassifier(D, C, views, cfg.eac, torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 100)
    X = torch.randn(N, D, generator=g)
    targets = torch.randint(0, C, (views, N), generator=g)
    return clf, X, targets


def _logits(clf, X):
    z = X @ clf.weight.detach() + clf.bias.detach()               # N x V*C
    return z.view(len(X), clf.V, C).transpose(0, 1)               # V x N x C


def test_logits_are_stacked_linear_maps():
    clf, X, _ = _clf()
    torch.testing.assert_close(clf.logits(X).detach(), _logits(clf, X))


def test_loss_is_cross_entropy_on_logits_with_one_softmax():
    clf, X, t = _clf()
    z = _logits(clf, X)
    expected = sum(F.cross_entropy(z[v], t[v]) for v in range(V))   # one log_softmax per view
    torch.testing.assert_close(clf.loss(X, t).detach(), expected)
    double = sum(F.cross_entropy(F.softmax(z[v], -1), t[v]) for v in range(V))
    assert not torch.isclose(clf.loss(X, t).detach(), double)


def test_predict_proba_is_softmax_of_logits():
    clf, X, _ = _clf()
    p = clf.predict_proba(X)
    torch.testing.assert_close(p, F.softmax(_logits(clf, X), -1))
    torch.testing.assert_close(p.sum(-1), torch.ones(V, N))


def test_forward_correction_with_identity_is_plain_cross_entropy():
    clf, X, t = _clf()
    torch.testing.assert_close(clf.loss(X, t, transition=torch.eye(C)).detach(), clf.loss(X, t).detach(),
                               rtol=1e-6, atol=1e-6)


def test_forward_correction_uses_transition_rows_as_true_to_given():
    clf, X, t = _clf()
    T = torch.softmax(torch.randn(C, C, generator=torch.Generator().manual_seed(5)), -1)
    p = F.softmax(_logits(clf, X), -1)
    noisy_p = p @ T                                                   # p(given) = sum_c p(c) T[c, given]
    expected = sum(F.nll_loss(torch.log(noisy_p[v]), t[v]) for v in range(V))
    torch.testing.assert_close(clf.loss(X, t, transition=T).detach(), expected, rtol=1e-5, atol=1e-6)


def test_confidence_penalty_balance_and_meta_terms():
    cfg = Config().replace(eac_confidence_penalty=0.4, eac_balance_weight=0.8, eac_meta_weight=1.5)
    clf, X, t = _clf(cfg)
    meta_X = torch.randn(9, D, generator=torch.Generator().manual_seed(7))
    meta_y = torch.arange(9) % C
    z = _logits(clf, X)
    logp = F.log_softmax(z, -1)
    ce = sum(F.cross_entropy(z[v], t[v]) for v in range(V))
    entropy = sum(-(logp[v].exp() * logp[v]).sum(-1).mean() for v in range(V))
    mean_p = logp.exp().mean(1)                                        # V x C
    kl = sum((torch.full((C,), 1.0 / C) * (math.log(1.0 / C) - torch.log(mean_p[v]))).sum() for v in range(V))
    zm = _logits(clf, meta_X)
    meta_ce = sum(F.cross_entropy(zm[v], meta_y) for v in range(V))
    expected = ce - 0.4 * entropy + 0.8 * kl + 1.5 * meta_ce
    every_view_all_rows = torch.full((V, 9), 1.0 / 9)       # the authors: each view sees every meta row
    torch.testing.assert_close(clf.loss(X, t, meta=(meta_X, meta_y, every_view_all_rows)).detach(),
                               expected, rtol=1e-5, atol=1e-6)
    # cross-fitted folds: view v is scored on its own fold only
    folds = torch.zeros(V, 9)
    folds[0, :5], folds[1, 5:] = 1 / 5, 1 / 4
    ce_fold = (F.cross_entropy(zm[0, :5], meta_y[:5]) + F.cross_entropy(zm[1, 5:], meta_y[5:]))
    torch.testing.assert_close(clf.loss(X, t, meta=(meta_X, meta_y, folds)).detach(),
                               ce - 0.4 * entropy + 0.8 * kl + 1.5 * ce_fold, rtol=1e-5, atol=1e-6)


def test_step_decreases_the_loss():
    clf, X, t = _clf(Config().replace(eac_lr=0.05, eac_confidence_penalty=0.0, eac_balance_weight=0.0))
    first = clf.step(X, t)
    for _ in range(30):
        last = clf.step(X, t)
    assert last < first


def test_lr_decay_epoch():
    cfg = Config().replace(eac_lr=0.006, eac_lr_decay_epoch=3, eac_lr_decay=0.1)
    clf, _, _ = _clf(cfg)
    clf.set_epoch(2)
    assert clf.adam_weight.lr == pytest.approx(0.006) and clf.adam_bias.lr == pytest.approx(0.006)
    clf.set_epoch(3)
    assert clf.adam_weight.lr == pytest.approx(0.0006) and clf.adam_bias.lr == pytest.approx(0.0006)


_TERMS = [dict(),                                                          # plain cross-entropy
          dict(eac_confidence_penalty=0.4, eac_balance_weight=2.0),        # the paper's terms
          dict(eac_balance_weight=1.0, eac_meta_weight=1.0),               # the default's (+ T)
          dict(eac_confidence_penalty=0.3, eac_balance_weight=0.5, eac_meta_weight=0.7),
          dict(eac_double_softmax=True, eac_confidence_penalty=0.4)]       # the script's accident


def _assert_gradients_match_autograd(clf, X, targets, T=None, meta=None):
    """``clf.gradients`` equals autograd of ``clf.loss`` (float64); returns the leaf (w, b)."""
    loss, gw, gb = clf.gradients(X, targets, T, meta)
    w = clf.weight.clone().requires_grad_(True)
    b = clf.bias.clone().requires_grad_(True)
    ref = clf.loss(X, targets, T, meta, w, b)
    ref_gw, ref_gb = torch.autograd.grad(ref, (w, b))
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gw, ref_gw, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gb, ref_gb, rtol=1e-9, atol=1e-12)
    return w, b


@pytest.mark.parametrize("forward", [False, True])
@pytest.mark.parametrize("terms", _TERMS)
def test_hand_written_gradients_match_autograd_in_float64(terms, forward):
    cfg = PLAIN.replace(**terms)
    clf = AuxiliaryClassifier(D, C, V, cfg.eac, torch.Generator().manual_seed(3), dtype=torch.float64,
                              compute_dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    X = torch.randn(N, D, generator=g, dtype=torch.float64)
    t = torch.randint(0, C, (V, N), generator=g)
    T = torch.softmax(torch.randn(C, C, generator=g, dtype=torch.float64), -1) if forward else None
    meta = (torch.randn(9, D, generator=g, dtype=torch.float64), torch.arange(9) % C,
            torch.rand(V, 9, generator=g, dtype=torch.float64))
    w, b = _assert_gradients_match_autograd(clf, X, t, T, meta)
    # and the reference itself is right: gradcheck of the autograd objective
    fn = lambda w_, b_: clf.loss(X, t, T, meta, w_, b_)
    assert torch.autograd.gradcheck(fn, (w, b), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_views_fitting_the_same_given_labels_share_one_gather_of_T():
    """The loop's forward-corrected targets are one index expanded over the views: the shared
    gather gives the same gradients as per-view targets, and they match autograd."""
    cfg = PLAIN.replace(eac_balance_weight=1.0, eac_meta_weight=1.0)
    clf = AuxiliaryClassifier(D, C, V, cfg.eac, torch.Generator().manual_seed(7), dtype=torch.float64,
                              compute_dtype=torch.float64)
    g = torch.Generator().manual_seed(8)
    X = torch.randn(N, D, generator=g, dtype=torch.float64)
    T = torch.softmax(torch.randn(C, C, generator=g, dtype=torch.float64), -1)
    given = torch.randint(0, C, (N,), generator=g)
    _assert_gradients_match_autograd(clf, X, given.unsqueeze(0).expand(V, -1), T)
    separate = clf.gradients(X, given.unsqueeze(0).expand(V, -1).clone(), T)
    torch.testing.assert_close(clf.gradients(X, given.unsqueeze(0).expand(V, -1), T), separate)


@pytest.mark.parametrize("terms", _TERMS[:4])
def test_soft_target_gradients_match_autograd_in_float64(terms):
    """The final M-step trains EAC on the posterior: soft targets shared by the views."""
    cfg = PLAIN.replace(**terms)
    clf = AuxiliaryClassifier(D, C, V, cfg.eac, torch.Generator().manual_seed(5), dtype=torch.float64,
                              compute_dtype=torch.float64)
    g = torch.Generator().manual_seed(6)
    X = torch.randn(N, D, generator=g, dtype=torch.float64)
    soft = torch.softmax(3 * torch.randn(N, C, generator=g, dtype=torch.float64), -1)
    _assert_gradients_match_autograd(clf, X, soft)
    # per-view targets, a view's all-zero rows left out of its cross-entropy (the refit's form)
    per_view = torch.stack([soft * (torch.arange(N) % V == v).unsqueeze(1) for v in range(V)])
    _assert_gradients_match_autograd(clf, X, per_view)
    # one-hot soft targets are the hard-target loss, for every view
    hard = soft.argmax(1)
    torch.testing.assert_close(clf.loss(X, F.one_hot(hard, C).double()), clf.loss(X, hard.expand(V, -1)))
    with pytest.raises(ValueError):
        clf.gradients(X, soft, torch.eye(C, dtype=torch.float64))


def test_step_is_adam_on_the_loss():
    """Steps equal torch.optim.Adam (default betas) driven by autograd on the same loss."""
    cfg = PLAIN.replace(eac_balance_weight=1.0, eac_confidence_penalty=0.2)
    clf = AuxiliaryClassifier(D, C, V, cfg.eac, torch.Generator().manual_seed(5), dtype=torch.float64,
                              compute_dtype=torch.float64)
    g = torch.Generator().manual_seed(6)
    X = torch.randn(N, D, generator=g, dtype=torch.float64)
    t = torch.randint(0, C, (V, N), generator=g)
    w = clf.weight.clone().requires_grad_(True)
    b = clf.bias.clone().requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=cfg.eac.lr)
    for _ in range(6):
        clf.step(X, t)
        opt.zero_grad()
        clf.loss(X, t, weight=w, bias=b).backward()
        opt.step()
    torch.testing.assert_close(clf.weight, w.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(clf.bias, b.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("views", [2, 3])
@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_exchange_moves_view_v_toward_view_v_plus_1(views, momentum):
    g = torch.Generator().manual_seed(views)
    labels = torch.rand(N, views, C, generator=g)
    pred = torch.softmax(torch.randn(views, N, C, generator=g), -1)
    old = labels.clone()
    exchange(labels, pred, momentum)
    for v in range(views):
        other = pred[(v + 1) % views]
        torch.testing.assert_close(labels[:, v], momentum * old[:, v] + (1 - momentum) * other)


def test_exchange_works_in_place_on_a_batch_slice():
    labels = torch.zeros(10, 2, C)
    pred = torch.softmax(torch.randn(2, 4, C, generator=torch.Generator().manual_seed(0)), -1)
    exchange(labels[3:7], pred, 0.5)
    assert (labels[:3] == 0).all() and (labels[7:] == 0).all()
    torch.testing.assert_close(labels[3:7, 0], 0.5 * pred[1])
    torch.testing.assert_close(labels[3:7, 1], 0.5 * pred[0])
