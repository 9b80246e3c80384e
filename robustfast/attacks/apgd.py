"""APGD-CE and APGD-T (Croce & Hein, 2020), L∞, batched: every sample, and for APGD-T every target class, runs
in one launch, and the step-size schedule is a mask, so a step never reads a value back to the host.

Per sample: a uniform start at distance ε, a first sign step of η = 2ε, then momentum steps
x ← P(x + 0.75·(P(x + η·sign ∇) − x) + 0.25·(x − x_prev)). At the checkpoints (the first after 22% of the
steps, then intervals shrinking by 3% to at least 6%), η halves and the iterate returns to the best point where
the loss rose in fewer than 75% of the steps since the last checkpoint, or where η was not halved at the last
checkpoint and the best loss has not improved since. A sample counts as broken once any iterate is misclassified.
APGD-T ascends the targeted DLR loss −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2) towards each of the `targets`
classes ranked highest by the clean logits (9 in AutoAttack's standard version), all at once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robustfast.attacks.base import Attack, check_number

LOSSES = ("ce", "dlr-targeted")
RHO = 0.75


def checkpoints(steps: int) -> list[int]:
    """The steps (0-based) after which the step size may halve: AutoAttack's schedule."""
    k, k_min, decr = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    out, at = [], k - 1
    while at < steps:
        out.append(at)
        k = max(k - decr, k_min)
        at += k
    return out


def _loss(logits, labels, targets):
    if targets is None:
        return F.cross_entropy(logits, labels, reduction="none")
    ranked = logits.sort(dim=1).values
    z_y, z_t = logits.gather(1, labels[:, None]).squeeze(1), logits.gather(1, targets[:, None]).squeeze(1)
    return -(z_y - z_t) / (ranked[:, -1] - 0.5 * (ranked[:, -3] + ranked[:, -4]) + 1e-12)


class APGD(Attack):
    """`adv = APGD(model, eps=8/255, steps=100, loss="ce")(images, labels)`; `loss="dlr-targeted"` is APGD-T over
    the `targets` most likely wrong classes, batched. Returns, per sample, a misclassified iterate where one was
    found, else the start."""

    def __init__(self, model, eps: float = 8 / 255, steps: int = 100, loss: str = "ce", targets: int = 9,
                 seed: int = 0, amp: bool = False, compile: bool | str = False, channels_last: bool = False):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.eps = check_number(eps, "eps", 0.0, maximum=1.0)
        self.steps = check_number(steps, "steps", 1, integer=True)
        self.targets = check_number(targets, "targets", 1, integer=True)
        super().__init__(model, seed=seed, amp=amp, compile=compile, channels_last=channels_last)
        self.loss = loss
        self._grad = self.compiled(self._eager_grad)

    def __repr__(self) -> str:
        name = "APGD-T" if self.loss == "dlr-targeted" else "APGD-CE"
        return f"{name}(eps={self.eps:.4g}, steps={self.steps}" + (
            f", targets={self.targets})" if self.loss == "dlr-targeted" else ")")

    def _eager_grad(self, x, labels, targets):
        x = x.detach().requires_grad_(True)
        logits = self.forward(x)
        loss = _loss(logits, labels, targets)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad, logits.argmax(1) != labels

    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        labels = labels.long()
        targets = None
        if self.loss == "dlr-targeted":
            with torch.no_grad():
                logits = self.forward(images)
            t = min(self.targets, logits.shape[1] - 1)
            if logits.shape[1] < 4:
                raise ValueError(f"APGD-T's DLR loss needs at least 4 classes, the model has {logits.shape[1]}")
            order = logits.sort(dim=1, descending=True).indices
            # The t highest-ranked classes other than the label (the label is ranked first for a correct sample).
            ranked = order[(order != labels[:, None])].view(n, -1)[:, :t]
            targets = ranked.T.reshape(-1)  # row k·n + i: target k of sample i
            images, labels = images.repeat(t, 1, 1, 1), labels.repeat(t)
        x0 = images.detach().contiguous(memory_format=self.memory_format)
        adv = self._run(x0, labels, targets)
        if targets is None:
            return adv
        fooled = self._fooled(adv, labels)
        return self.pick_restart_any(adv, fooled, n)

    def _fooled(self, x, labels):
        with torch.no_grad():
            return self.forward(x).argmax(1) != labels

    def pick_restart_any(self, x, fooled, n):
        """Per sample, the first of its target runs that fooled the model, else the first."""
        runs = x.shape[0] // n
        best = fooled.view(runs, n).float().argmax(dim=0)
        return x.view(runs, n, *x.shape[1:])[best, torch.arange(n, device=x.device)]

    def _run(self, x0, labels, targets):
        eps, view = self.eps, (-1,) + (1,) * (x0.dim() - 1)
        lower, upper = (x0 - eps).clamp(0, 1), (x0 + eps).clamp(0, 1)
        g = self.generator(x0.device)
        t = 2 * torch.rand(x0.shape, generator=g, device=x0.device, dtype=x0.dtype) - 1
        t = t / t.flatten(1).abs().amax(1).clamp_min(1e-12).view(view)
        x = (x0 + eps * t).clamp(0, 1)
        loss, grad, fooled = self._grad(x, labels, targets)
        best_adv = x.clone()
        x_best, grad_best, loss_best = x.clone(), grad.clone(), loss.clone()
        step = torch.full((x0.shape[0],), 2 * eps, dtype=x0.dtype, device=x0.device)
        x_prev = x.clone()
        rises = torch.zeros_like(loss)
        loss_prev = loss.clone()
        reduced_last = torch.ones_like(loss, dtype=torch.bool)
        best_at_check = loss_best.clone()
        checks, last_check = set(checkpoints(self.steps)), -1
        for i in range(self.steps):
            a = 0.75 if i > 0 else 1.0
            s = step.view(view)
            z = torch.minimum(torch.maximum(x + s * grad.sign(), lower), upper)
            x_new = torch.minimum(torch.maximum(x + a * (z - x) + (1 - a) * (x - x_prev), lower), upper)
            x_prev, x = x, x_new
            loss, grad, now_fooled = self._grad(x, labels, targets)
            best_adv = torch.where((now_fooled & ~fooled).view(view), x, best_adv)
            fooled = fooled | now_fooled
            rises += (loss > loss_prev).to(rises.dtype)
            loss_prev = loss
            improved = loss > loss_best
            x_best = torch.where(improved.view(view), x, x_best)
            grad_best = torch.where(improved.view(view), grad, grad_best)
            loss_best = torch.where(improved, loss, loss_best)
            if i in checks:
                window = i - last_check
                halve = (rises <= RHO * window) | (~reduced_last & (best_at_check >= loss_best))
                reduced_last, best_at_check, last_check = halve, loss_best.clone(), i
                rises = torch.zeros_like(rises)
                step = torch.where(halve, step / 2, step)
                x = torch.where(halve.view(view), x_best, x)
                grad = torch.where(halve.view(view), grad_best, grad)
        return torch.where(fooled.view(view), best_adv, x_best)


def lipschitz_terms(clean_logits, adv_logits, clean, adv) -> torch.Tensor:
    """Per sample ‖f(x) − f(x′)‖₁ / ‖x − x′ + 1e−6‖∞ (the spec's local Lipschitz estimate, on logits)."""
    num = (clean_logits - adv_logits).abs().sum(1)
    return num / (clean - adv + 1e-6).flatten(1).abs().amax(1)

