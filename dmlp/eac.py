"""EAC, extrinsic auxiliary correction: a linear classifier trained on the current labels.

One linear classifier per label view, stacked into one d x (V*C) weight so that a single matrix
product serves all views.  It outputs logits (the authors' script applies Softmax in the model
and again inside the loss; we apply it once).  Its loss per view is

    CE(logits, argmax of the view's labels) - penalty * entropy(softmax)      (confidence penalty)
    + balance * KL(uniform || mean softmax)                                    (class-balance prior)
    [+ meta_weight * CE on the clean meta rows]

and, with forward correction, the CE on the training rows is taken through the noise-transition
matrix T[true, given] (Patrini et al., CVPR 2017): the classifier then models the clean class.
Every ``relabel_every`` epochs each view's labels move toward the other view's prediction by an
exponential moving average (:func:`exchange`).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from .numerics import PROB_FLOOR, RowAdam, balance_kl_grad, class_balance_kl, softmax_, softmax_rows


class LabelledRows(NamedTuple):
    """Clean rows EAC also fits (the meta set, ``eac_meta_weight``)."""
    features: torch.Tensor      # (M, d), in the classifier's compute dtype
    labels: torch.Tensor        # (M,) int64
    weights: torch.Tensor       # (V, M): each view's row weights (dmlp.ipc.meta_view_weights)


class AuxiliaryClassifier:
    """Stacked linear classifiers (one per view) with their Adam optimiser.

    Parameters
    ----------
    n_features, n_classes, n_views : int
        d, C and V: the weight is d x (V*C).
    params : EACParams
        The loss terms and the learning-rate schedule (:class:`dmlp.config.EACParams`).
    generator : torch.Generator or None
        Seeds the initialisation (that of ``nn.Linear``); None: zero weights.
    device, dtype
        Of the weights and the optimiser's moments.
    compute_dtype : torch.dtype
        Of the batch products (bfloat16 on CPUs that multiply it natively).

    :meth:`loss` is the objective written with autograd (the reference the tests check);
    :meth:`step` takes one Adam step with the same gradient written out by hand, and with the
    batch products in ``compute_dtype`` (bfloat16 on CPUs that multiply it natively).
    """

    def __init__(self, n_features: int, n_classes: int, n_views: int, params,
                 generator: Optional[torch.Generator], device="cpu", dtype=torch.float32,
                 compute_dtype=torch.float32):
        self.C, self.V, self.params, self.compute_dtype = n_classes, n_views, params, compute_dtype
        bound = 1.0 / math.sqrt(n_features)  # nn.Linear's default initialisation
        uniform = lambda *shape: (torch.zeros(shape, dtype=torch.float64) if generator is None else
                                  (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound)
        w, b = uniform(n_features, n_views * n_classes), uniform(n_views * n_classes)
        self.weight = w.to(device=device, dtype=dtype)
        self.bias = b.to(device=device, dtype=dtype)
        # Adam as torch.optim.Adam (betas 0.9/0.999, eps 1e-8, no decay), without its import cost
        self.adam_weight = RowAdam(n_features, n_views * n_classes, params.lr, (0.9, 0.999), 0.0, dtype, device)
        self.adam_bias = RowAdam(1, n_views * n_classes, params.lr, (0.9, 0.999), 0.0, dtype, device)

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        """V x rows x C logits."""
        z = torch.addmm(self.bias, X.to(self.weight.dtype), self.weight)
        return z.view(X.shape[0], self.V, self.C).transpose(0, 1)

    def restart_lr(self) -> None:
        """Back to the initial learning rate (the refit of the final decision starts there)."""
        self.adam_weight.lr = self.adam_bias.lr = self.params.lr

    def set_epoch(self, epoch: int) -> None:
        """The learning rate of ``epoch``: decayed from ``lr_decay_epoch`` on."""
        lr = self.params.lr * (self.params.lr_decay if epoch >= self.params.lr_decay_epoch else 1.0)
        self.adam_weight.lr = self.adam_bias.lr = lr

    def loss(self, X: torch.Tensor, targets: torch.Tensor,
             transition: Optional[torch.Tensor] = None,
             meta: Optional[tuple] = None, weight=None, bias=None) -> torch.Tensor:
        """Loss on a batch (autograd reference); ``targets`` is V x rows (class indices per view)."""
        params = self.params
        weight = self.weight if weight is None else weight
        bias = self.bias if bias is None else bias
        z = torch.addmm(bias, X, weight).view(X.shape[0], self.V, self.C).transpose(0, 1)   # V x b x C
        if params.double_softmax:                               # the script: Linear -> Softmax -> CE
            z = F.softmax(z, dim=-1)
        log_p = F.log_softmax(z, dim=-1)
        if transition is not None:
            # forward correction: p(given | x) = sum_c p(c | x) T[c, given]
            log_p_fit = torch.log((log_p.exp() @ transition).clamp_min(PROB_FLOOR))
        else:
            log_p_fit = log_p
        if targets.is_floating_point():                          # soft targets, (V x) rows x C
            loss = -(targets.to(log_p_fit.dtype) * log_p_fit).sum() / X.shape[0]
        else:
            loss = F.nll_loss(log_p_fit.reshape(-1, self.C), targets.reshape(-1), reduction="sum") / X.shape[0]
        if params.confidence_penalty:
            entropy = -(log_p.exp() * log_p).sum(-1).mean(-1).sum()
            loss = loss - params.confidence_penalty * entropy
        if params.balance_weight:
            loss = loss + params.balance_weight * class_balance_kl(z)
        if meta is not None and params.meta_weight:
            meta_X, meta_y, meta_weights = meta                  # weights V x M, see ipc.meta_view_weights
            zm = torch.addmm(bias, meta_X.to(weight.dtype), weight).view(len(meta_X), self.V, self.C).transpose(0, 1)
            log_pm = F.log_softmax(zm, dim=-1)                   # V x M x C
            ce = -log_pm.gather(-1, meta_y.view(1, -1, 1).expand(self.V, -1, 1)).squeeze(-1)
            loss = loss + params.meta_weight * (meta_weights * ce).sum()
        return loss

    def _logit_grad(self, z, targets, transition):
        """``(loss, d loss / d z)`` of the batch terms of :meth:`loss`.

        ``z`` is class-major, V x C x b (the class reductions then run along contiguous rows),
        and is overwritten (by the softmax); ``targets`` V x b class indices, or b x C soft
        targets shared by the views (or V x b x C).  The gradient is formed as
        ``p * (g + c - sum_c p g) - extra`` (g: the balance prior's gradient w.r.t. p, c the
        cross-entropy's weight on p, extra its target part): a few passes over V x C x b, which
        at a thousand classes cost about as much as the batch's matrix products.
        """
        params = self.params
        b = z.shape[-1]
        soft = targets.is_floating_point()
        if soft and transition is not None:
            raise ValueError("soft targets are already clean-class posteriors: no forward correction")
        if soft or transition is None or params.confidence_penalty:
            p, logp = softmax_rows(z, dim=1)
        else:                            # forward correction needs no log-probabilities
            p, logp = softmax_(z, dim=1), None
        coef = 1.0 / b                   # the cross-entropy's p / b (times sum(t) for soft targets)
        if soft:
            # b x C shared by the views, or V x b x C (a view's all-zero rows: not its rows)
            target_cm = (targets.T.unsqueeze(0) if targets.dim() == 2 else targets.transpose(1, 2)).to(p.dtype)
            loss = -(target_cm * logp).sum() / b
            coef = target_cm.sum(1, keepdim=True) / b
        elif transition is not None:
            # -log q, q = sum_c p_c T[c, given]: d/dz = (p - p T[:, given] / q) / b.  Views that
            # fit the same given labels (an expanded index) share one gather of T's columns.
            same = targets.stride(0) == 0
            index = targets[:1] if same else targets
            T_given = transition.index_select(1, index.reshape(-1)).view(self.C, len(index), b).transpose(0, 1)
            pT = p * T_given                                         # V x C x b: p_c T[c, given]
            q = pT.sum(1, keepdim=True).clamp_min(PROB_FLOOR)        # p(given | x), V x 1 x b
            loss = -q.log().sum() / b
        else:
            loss = -logp.gather(1, targets.unsqueeze(1)).sum() / b
        if params.balance_weight:
            kl, g_bal = balance_kl_grad(p, params.balance_weight, class_dim=1, row_dim=2)   # g_bal: V x C x 1
            loss = loss + params.balance_weight * kl
            dz = p * (g_bal + coef)
            dz.addcmul_(p, torch.bmm(g_bal.transpose(1, 2), p), value=-1.0)     # softmax backward: - p sum(p g)
        else:
            dz = p * coef
        if soft:
            dz.sub_(target_cm / b)
        elif transition is not None:
            dz.addcdiv_(pT, q.mul_(b), value=-1.0)                   # - the posterior, over b
        else:
            dz.scatter_add_(1, targets.unsqueeze(1), torch.full((self.V, 1, b), -1.0 / b, dtype=z.dtype, device=z.device))
        if params.confidence_penalty:
            entropy = -(p * logp).sum(1, keepdim=True)              # V x 1 x b
            loss = loss - params.confidence_penalty * entropy.sum() / b
            dz += (params.confidence_penalty / b) * p * (logp + entropy)
        return loss, dz

    def gradients(self, X, targets, transition=None, meta=None):
        """``(loss, d loss / d weight, d loss / d bias)`` of :meth:`loss`, written out by hand."""
        params = self.params
        if params.double_softmax:       # the script's accident: kept on the autograd path
            w = self.weight.clone().requires_grad_(True)
            bias = self.bias.clone().requires_grad_(True)
            loss = self.loss(X.to(w.dtype), targets, transition, meta, w, bias)
            gw, gb = torch.autograd.grad(loss, (w, bias))
            return loss.detach(), gw, gb
        b = X.shape[0]
        Xc = X if X.dtype == self.compute_dtype else X.to(self.compute_dtype)
        # class-major logits V*C x b: W'X'
        z = (self.weight.T.to(Xc.dtype) @ Xc.T).to(self.weight.dtype) + self.bias.unsqueeze(1)
        loss, dz = self._logit_grad(z.view(self.V, self.C, b), targets, transition)
        dz = dz.view(-1, b)
        gw = (dz.to(Xc.dtype) @ Xc).to(self.weight.dtype).T
        gb = dz.sum(1)
        if meta is not None and params.meta_weight:
            meta_X, meta_y, meta_weights = meta                      # weights V x M
            Xm = meta_X if meta_X.dtype == Xc.dtype else meta_X.to(Xc.dtype)
            m = Xm.shape[0]
            zm = ((self.weight.T.to(Xc.dtype) @ Xm.T).to(self.weight.dtype)
                  + self.bias.unsqueeze(1)).view(self.V, self.C, m)  # class-major V x C x M
            pm, logpm = softmax_rows(zm, dim=1)
            y = meta_y.view(1, 1, m).expand(self.V, 1, m)
            w_m = params.meta_weight * meta_weights.unsqueeze(1).to(zm.dtype)   # V x 1 x M
            loss = loss - (w_m * logpm.gather(1, y)).sum()
            dzm = (pm * w_m).scatter_add_(1, y, -w_m).view(-1, m)
            gw = gw + (dzm.to(Xc.dtype) @ Xm).to(self.weight.dtype).T
            gb = gb + dzm.sum(1)
        return loss, gw, gb

    def step(self, X, targets, transition=None, meta=None) -> float:
        """One Adam step on a batch ``X`` (rows x d, any float dtype); returns the loss.

        ``targets``: V x rows class indices, or rows x C soft targets (the same for every view).
        """
        loss, gw, gb = self.gradients(X, targets, transition, meta)
        self.adam_weight.step(self.weight, slice(None), gw)
        self.adam_bias.step(self.bias.view(1, -1), slice(None), gb.view(1, -1))
        return float(loss)

    @torch.no_grad()
    def predict_proba(self, X: torch.Tensor) -> torch.Tensor:
        """V x rows x C class probabilities."""
        z = self.logits(X)
        if self.params.double_softmax:
            z = F.softmax(z, dim=-1)
        return F.softmax(z, dim=-1)

    def state_dict(self):
        """Copies of the weights and both optimisers' moments (for checkpoints)."""
        return {"weight": self.weight.clone(), "bias": self.bias.clone(),
                "adam_weight": {k: v.clone() for k, v in self.adam_weight.state_dict().items()},
                "adam_bias": {k: v.clone() for k, v in self.adam_bias.state_dict().items()}}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict`'s output, in place."""
        self.weight.copy_(state["weight"]); self.bias.copy_(state["bias"])
        self.adam_weight.load_state_dict(state["adam_weight"])
        self.adam_bias.load_state_dict(state["adam_bias"])


def training_targets(state, rows: slice, given_B: torch.Tensor, forward_correction: bool) -> torch.Tensor:
    """What EAC fits on the batch ``rows``: V x rows class indices.

    With forward correction, the given labels (EAC then models the clean class through T);
    otherwise the argmax of each view's current labels (the authors).  ``state`` is the run's
    :class:`dmlp.state.LabelState`, ``given_B`` the batch's given labels (rows,).
    """
    if forward_correction:
        return given_B.unsqueeze(0).expand(state.labels.shape[1], -1)
    return state.view_argmax(rows)


def exchange(labels_B: torch.Tensor, predictions_B: torch.Tensor, momentum: float) -> None:
    """EMA exchange between views, in place: view v moves toward view (v+1)'s prediction.

    ``labels_B`` is rows x V x C, ``predictions_B`` V x rows x C.
    """
    other = torch.roll(predictions_B, shifts=-1, dims=0).transpose(0, 1)   # rows x V x C
    labels_B.mul_(momentum).add_(other, alpha=1.0 - momentum)
