"""Adversarial training and evaluation steps written the way the reference repository (HanxunH/RobustWRN, after
TRADES and MART) runs them: the benchmark's baseline for `train_adversarial` and `evaluate_robustness`.

Per attack step it toggles `requires_grad` on every parameter and the model's mode, runs eager PGD (four tensor
ops per step), and its CW loop calls the model three times per step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _set_grad(model, flag: bool) -> None:
    for p in model.parameters():
        p.requires_grad = flag


def pgd_at_step(model, opt, x, y, eps, alpha, steps, grad_clip=5.0) -> torch.Tensor:
    """One PGD-AT training step (Madry): Gaussian start α·N(0, I), CE ascent, CE loss on the adversarial batch."""
    x_adv = x.detach() + alpha * torch.randn_like(x)
    for _ in range(steps):
        model.eval()
        _set_grad(model, False)
        x_adv.requires_grad_()
        loss = F.cross_entropy(model(x_adv), y)
        grad = torch.autograd.grad(loss, [x_adv])[0]
        x_adv = x_adv.detach() + alpha * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
        _set_grad(model, True)
    model.train()
    opt.zero_grad()
    loss = F.cross_entropy(model(x_adv), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.detach()


def trades_step(model, opt, x, y, eps, alpha, steps, beta=6.0, grad_clip=5.0) -> torch.Tensor:
    """One TRADES training step as the TRADES code writes it (KLDivLoss(sum) on log-softmax / softmax)."""
    kl = torch.nn.KLDivLoss(reduction="sum")
    model.eval()
    x_adv = x.detach() + 0.001 * torch.randn_like(x)
    with torch.no_grad():
        nat = F.softmax(model(x), dim=1)
    for _ in range(steps):
        _set_grad(model, False)
        x_adv.requires_grad_()
        loss_kl = kl(F.log_softmax(model(x_adv), dim=1), nat)
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + alpha * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
        _set_grad(model, True)
    model.train()
    opt.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, y) + beta * (1.0 / len(x)) * kl(F.log_softmax(model(x_adv), dim=1),
                                                                    F.softmax(logits, dim=1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.detach()


def cw_attack(model, x, y, eps, alpha, steps) -> torch.Tensor:
    """CW∞ evaluation (loss −ReLU(z_y − max_{k≠y} z_k)) with the reference's three forwards per step: the loss's,
    and two more of the same point whose outputs only feed bookkeeping."""
    x_adv = (x.detach() + torch.empty_like(x).uniform_(-eps, eps)).clamp(0.0, 1.0)
    for _ in range(steps):
        x_adv.requires_grad_()
        logits = model(x_adv)
        onehot = F.one_hot(y, logits.shape[1]).float()
        real = (onehot * logits).sum(1)
        other = ((1.0 - onehot) * logits - onehot * 10000.0).max(1)[0]
        loss = -F.relu(real - other).sum()
        grad = torch.autograd.grad(loss, [x_adv])[0]
        with torch.no_grad():
            model(x_adv)  # redundant forwards, as in the reference
            model(x_adv)
        x_adv = x_adv.detach() + alpha * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    return x_adv
