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
from typing import Optional

import torch
import torch.nn.functional as F

from .ipc import class_balance_kl


class AuxiliaryClassifier:
    """Stacked linear classifiers (one per view) with their Adam optimiser."""

    def __init__(self, n_features: int, n_classes: int, n_views: int, cfg,
                 generator: torch.Generator, device="cpu", dtype=torch.float32):
        self.C, self.V, self.cfg = n_classes, n_views, cfg
        bound = 1.0 / math.sqrt(n_features)  # nn.Linear's default initialisation
        w = (torch.rand(n_features, n_views * n_classes, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        b = (torch.rand(n_views * n_classes, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        self.weight = w.to(device=device, dtype=dtype).requires_grad_(True)
        self.bias = b.to(device=device, dtype=dtype).requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.weight, self.bias], lr=cfg.eac_lr)

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        """V x rows x C logits."""
        return torch.addmm(self.bias, X, self.weight).view(X.shape[0], self.V, self.C).transpose(0, 1)

    def set_epoch(self, epoch: int) -> None:
        lr = self.cfg.eac_lr * (self.cfg.eac_lr_decay if epoch >= self.cfg.eac_lr_decay_epoch else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def loss(self, X: torch.Tensor, targets: torch.Tensor,
             transition: Optional[torch.Tensor] = None,
             meta: Optional[tuple] = None) -> torch.Tensor:
        """Loss on a batch; ``targets`` is V x rows (class indices per view)."""
        cfg = self.cfg
        z = self.logits(X)                                       # V x b x C
        if cfg.eac_double_softmax:                               # the script: Linear -> Softmax -> CE
            z = F.softmax(z, dim=-1)
        log_p = F.log_softmax(z, dim=-1)
        if transition is not None:
            # forward correction: p(given | x) = sum_c p(c | x) T[c, given]
            log_p_fit = torch.log((log_p.exp() @ transition).clamp_min(1e-12))
        else:
            log_p_fit = log_p
        loss = F.nll_loss(log_p_fit.reshape(-1, self.C), targets.reshape(-1), reduction="sum") / X.shape[0]
        if cfg.eac_confidence_penalty:
            entropy = -(log_p.exp() * log_p).sum(-1).mean(-1).sum()
            loss = loss - cfg.eac_confidence_penalty * entropy
        if cfg.eac_balance_weight:
            loss = loss + cfg.eac_balance_weight * class_balance_kl(z)
        if meta is not None and cfg.eac_meta_weight:
            meta_X, meta_y, meta_weights = meta                  # weights V x M, see ipc.meta_view_weights
            log_pm = F.log_softmax(self.logits(meta_X), dim=-1)  # V x M x C
            ce = -log_pm.gather(-1, meta_y.view(1, -1, 1).expand(self.V, -1, 1)).squeeze(-1)
            loss = loss + cfg.eac_meta_weight * (meta_weights * ce).sum()
        return loss

    def step(self, X, targets, transition=None, meta=None) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(X, targets, transition, meta)
        loss.backward()
        self.optimizer.step()
        return loss.detach().item()

    @torch.no_grad()
    def predict_proba(self, X: torch.Tensor) -> torch.Tensor:
        """V x rows x C class probabilities."""
        z = self.logits(X)
        if self.cfg.eac_double_softmax:
            z = F.softmax(z, dim=-1)
        return F.softmax(z, dim=-1)

    def state_dict(self):
        return {"weight": self.weight.detach().clone(), "bias": self.bias.detach().clone(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.weight.copy_(state["weight"]); self.bias.copy_(state["bias"])
        self.optimizer.load_state_dict(state["optimizer"])


def exchange(labels_B: torch.Tensor, predictions_B: torch.Tensor, momentum: float) -> None:
    """EMA exchange between views, in place: view v moves toward view (v+1)'s prediction.

    ``labels_B`` is rows x V x C, ``predictions_B`` V x rows x C.
    """
    other = torch.roll(predictions_B, shifts=-1, dims=0).transpose(0, 1)   # rows x V x C
    labels_B.mul_(momentum).add_(other, alpha=1.0 - momentum)
