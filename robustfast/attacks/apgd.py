"""APGD-CE and APGD-T (Croce & Hein, 2020), L∞, batched: every sample, and for APGD-T every target class, runs
in one launch, and the step-size schedule is a mask, so a step never reads a value back to the host.

Per sample: a uniform start at distance ε, a first sign step of η = 2ε, then momentum steps
x ← P(x + 0.75·(P(x + η·sign ∇) − x) + 0.25·(x − x_prev)). At the checkpoints (the first after 22% of the
steps, then intervals shrinking by 3% to at least 6%), η halves and the iterate returns to the best point where
the loss rose in fewer than 75% of the steps since the last checkpoint, or where η was not halved at the last
checkpoint and the best loss has not improved since. A sample counts as broken once any iterate is misclassified;
the rows of broken samples leave the batch (`compact`, see APGD).
APGD-T ascends the targeted DLR loss −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2) towards each of the `targets`
classes ranked highest by the clean logits (9 in AutoAttack's standard version): with `compact`, the first
target alone, then the others all at once on the samples it left robust; without, all at once.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from robustfast.attacks.base import Attack, check_number
from robustfast.models.fold import frozen_eval_copy

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
    found, else the iterate of highest loss (APGD-T: of the first target).

    `compact` (default): the batch keeps only the rows that can still change a robust-accuracy count. Samples the
    model misclassifies before the attack are not attacked (as in AutoAttack; their clean image is returned), and
    at the start, at each step-size checkpoint and every `compact_every` steps (default steps // 20) the rows of
    samples already fooled are dropped (APGD-T: every target row of a sample that any of its targets fooled), so
    a fooled sample stops costing anything. The per-sample state (step size, checkpoints, best loss) does not
    depend on the other rows, so each sample is broken or not exactly as without compaction: `compact=False` runs
    every row for every step and gives the same robust flags (tested); only the iterate returned for a fooled
    sample can differ (APGD-T: the first target that fooled it by the time it was dropped, instead of the first
    of all targets; a clean-misclassified sample: its clean image). Each compaction waits for the device
    (25 times in 100 steps; after every step below 40 steps); under `compile`, a shrinking batch is a new shape.
    APGD-T with `compact` runs as a two-stage cascade: the most likely wrong class first (it fools most of the
    samples that fall), then the other targets batched on the samples still robust; every row keeps the random
    start it has without compaction, so the robust flags stay those of `compact=False`.

    `fold` (default): the attack runs on a copy of the eval-mode model with every BatchNorm that follows a
    convolution folded into it (torch.fx), in channels_last (`models.fold.frozen_eval_copy`): the same function,
    rounded differently, and on a CPU a forward and input-backward pass costs less per row. The copy is made
    again when a parameter or buffer of the model has changed since the last call. The user's model is not touched.

    `chunk`: on a CPU the forward and backward run on at most this many rows at a time (a row's gradient does
    not depend on the chunk): APGD-T's batch is 9 rows per sample, and a single CPU pass over many rows of a
    small WRN costs more per row (1.2–1.5 ms per row at 64 rows of the folded WRN-10-1, 2.0–2.6 ms at 256)."""

    def __init__(self, model, eps: float = 8 / 255, steps: int = 100, loss: str = "ce", targets: int = 9,
                 seed: int = 0, amp: bool = False, compile: bool | str = False, channels_last: bool = False,
                 compact: bool = True, compact_every: int | None = None, chunk: int = 64, fold: bool = True):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.eps = check_number(eps, "eps", 0.0, maximum=1.0)
        self.steps = check_number(steps, "steps", 1, integer=True)
        self.targets = check_number(targets, "targets", 1, integer=True)
        super().__init__(model, seed=seed, amp=amp, compile=compile, channels_last=channels_last)
        self.loss = loss
        self.compact = bool(compact)
        self.compact_every = None if compact_every is None else check_number(compact_every, "compact_every", 1,
                                                                             integer=True)
        self.chunk = check_number(chunk, "chunk", 1, integer=True)
        self.fold = bool(fold)
        if self.fold:
            self.memory_format = torch.channels_last
        self._net, self._net_key = model, None
        self._grad_rows = self.compiled(self._eager_grad)

    def __repr__(self) -> str:
        name = "APGD-T" if self.loss == "dlr-targeted" else "APGD-CE"
        return f"{name}(eps={self.eps:.4g}, steps={self.steps}" + (
            f", targets={self.targets})" if self.loss == "dlr-targeted" else ")")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of the model the attack runs on (`fold`: the folded copy), float32, under bf16 autocast
        with `amp`."""
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self._net(x).float()

    def _refresh_net(self) -> None:
        if not self.fold:
            return
        key = [(id(t), t._version) for t in self.model.state_dict(keep_vars=True).values()]
        if key != self._net_key:
            self._net, self._net_key = frozen_eval_copy(self.model), key

    def _grad(self, x, labels, targets):
        """(loss, input gradient, misclassified) per row; on a CPU in chunks of `chunk` rows."""
        n, c = x.shape[0], self.chunk
        if x.device.type != "cpu" or n <= c:
            return self._grad_rows(x, labels, targets)
        parts = [self._grad_rows(x[i:i + c], labels[i:i + c], None if targets is None else targets[i:i + c])
                 for i in range(0, n, c)]
        return tuple(torch.cat(p) for p in zip(*parts, strict=True))

    def _eager_grad(self, x, labels, targets):
        x = x.detach().requires_grad_(True)
        logits = self.forward(x)
        loss = _loss(logits, labels, targets)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad, logits.argmax(1) != labels

    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self._refresh_net()
        n = images.shape[0]
        labels = labels.long()
        targets, correct = None, None
        if self.loss == "dlr-targeted" or self.compact:
            with torch.no_grad():
                logits = self.forward(images)
            correct = logits.argmax(1) == labels if self.compact else None
        if self.loss == "dlr-targeted":
            t = min(self.targets, logits.shape[1] - 1)
            if logits.shape[1] < 4:
                raise ValueError(f"APGD-T's DLR loss needs at least 4 classes, the model has {logits.shape[1]}")
            order = logits.sort(dim=1, descending=True).indices
            # The t highest-ranked classes other than the label (the label is ranked first for a correct sample).
            ranked = order[(order != labels[:, None])].view(n, -1)[:, :t]
            targets = ranked.T.reshape(-1)  # row k·n + i: target k of sample i
            images, labels = images.repeat(t, 1, 1, 1), labels.repeat(t)
        x0 = images.detach().contiguous(memory_format=self.memory_format)
        start = self._start(x0)
        if correct is None:
            adv = self._run(x0, start, labels, targets, n, None)
            return adv if targets is None else self.pick_restart_any(adv, self._fooled(adv, labels), n)
        if targets is None or t == 1:
            return self._run(x0, start, labels, targets, n, correct)[0]
        # The first target alone, then the other targets on the samples it left robust (each row's own start).
        out, broken = self._run(x0[:n], start[:n], labels[:n], targets[:n], n, correct)
        rest, broken_rest = self._run(x0[n:], start[n:], labels[n:], targets[n:], n, correct & ~broken)
        return torch.where(broken_rest.view((-1,) + (1,) * (out.dim() - 1)), rest, out)

    def _fooled(self, x, labels):
        with torch.no_grad():
            return self.forward(x).argmax(1) != labels

    def pick_restart_any(self, x, fooled, n):
        """Per sample, the first of its target runs that fooled the model, else the first."""
        runs = x.shape[0] // n
        best = fooled.view(runs, n).float().argmax(dim=0)
        return x.view(runs, n, *x.shape[1:])[best, torch.arange(n, device=x.device)]

    def _start(self, x0):
        """Every row's uniform random start at distance ε, from the attack's seed."""
        g = self.generator(x0.device)
        t = 2 * torch.rand(x0.shape, generator=g, device=x0.device, dtype=x0.dtype) - 1
        t = t / t.flatten(1).abs().amax(1).clamp_min(1e-12).view((-1,) + (1,) * (x0.dim() - 1))
        return (x0 + self.eps * t).clamp(0, 1)

    def _run(self, x0, start, labels, targets, n, correct):
        """The APGD loop over the rows of x0 from `start` (row k·n + i: run k of sample i). `correct` (per sample)
        is None without compaction (returns every row's result) or the samples to attack (compacts; returns per
        sample the result and whether it is misclassified: a sample not attacked gets its clean image)."""
        eps, view = self.eps, (-1,) + (1,) * (x0.dim() - 1)
        st = SimpleNamespace(x=start, lower=(x0 - eps).clamp(0, 1),
                             upper=(x0 + eps).clamp(0, 1), labels=labels, targets=targets,
                             rows=torch.arange(x0.shape[0], device=x0.device))
        out = broken = None
        if correct is not None:
            out = x0[:n].clone()  # returned as is for a sample not attacked
            broken = torch.zeros(n, dtype=torch.bool, device=x0.device)
            _keep(st, correct.repeat(x0.shape[0] // n))
            if not len(st.rows):
                return out, broken
        st.loss, st.grad, st.fooled = self._grad(st.x, st.labels, st.targets)
        st.best_adv, st.x_best, st.grad_best, st.loss_best = st.x.clone(), st.x.clone(), st.grad.clone(), st.loss
        st.step = torch.full_like(st.loss, 2 * eps)
        st.x_prev, st.rises, st.loss_prev = st.x.clone(), torch.zeros_like(st.loss), st.loss
        st.reduced_last, st.best_at_check = torch.ones_like(st.fooled), st.loss_best
        if out is not None and not self._settle(st, out, broken, n):
            return out, broken
        checks, last_check = set(checkpoints(self.steps)), -1
        every = self.compact_every or max(self.steps // 20, 1)
        settles = {i for i in range(self.steps - 1) if i in checks or (i + 1) % every == 0}
        for i in range(self.steps):
            a = 0.75 if i > 0 else 1.0
            s = st.step.view(view)
            x = st.x
            z = torch.minimum(torch.maximum(x + s * st.grad.sign(), st.lower), st.upper)
            x_new = torch.minimum(torch.maximum(x + a * (z - x) + (1 - a) * (x - st.x_prev), st.lower), st.upper)
            st.x_prev, st.x = x, x_new
            loss, st.grad, now_fooled = self._grad(st.x, st.labels, st.targets)
            st.best_adv = torch.where((now_fooled & ~st.fooled).view(view), st.x, st.best_adv)
            st.fooled = st.fooled | now_fooled
            st.rises = st.rises + (loss > st.loss_prev).to(st.rises.dtype)
            st.loss_prev = loss
            improved = loss > st.loss_best
            st.x_best = torch.where(improved.view(view), st.x, st.x_best)
            st.grad_best = torch.where(improved.view(view), st.grad, st.grad_best)
            st.loss_best = torch.where(improved, loss, st.loss_best)
            if i in checks:
                window = i - last_check
                halve = (st.rises <= RHO * window) | (~st.reduced_last & (st.best_at_check >= st.loss_best))
                st.reduced_last, st.best_at_check, last_check = halve, st.loss_best.clone(), i
                st.rises = torch.zeros_like(st.rises)
                st.step = torch.where(halve, st.step / 2, st.step)
                st.x = torch.where(halve.view(view), st.x_best, st.x)
                st.grad = torch.where(halve.view(view), st.grad_best, st.grad)
            if out is not None and i in settles and not self._settle(st, out, broken, n):
                return out, broken
        result = torch.where(st.fooled.view(view), st.best_adv, st.x_best)
        if out is None:
            return result
        self._settle(st, out, broken, n, final=True)
        return out, broken

    @staticmethod
    def _settle(st, out, broken, n, final=False) -> bool:
        """Write into `out` the result of every sample that one of its rows has fooled (with `final`, of every
        sample) and drop those samples' rows; False when no row is left. Per sample, the result is the first
        misclassified iterate of its lowest-numbered fooled row, else (final) the best iterate of its first row."""
        sample = st.rows % n
        hit = torch.zeros(n, dtype=torch.bool, device=out.device)
        hit[sample[st.fooled]] = True
        done = torch.ones_like(hit) if final else hit
        cand = st.fooled | (done & ~hit)[sample]  # the rows a finished sample may take its result from
        first = torch.full((n,), torch.iinfo(st.rows.dtype).max, dtype=st.rows.dtype, device=out.device)
        first.scatter_reduce_(0, sample[cand], st.rows[cand], "amin")
        chosen = cand & (st.rows == first[sample])
        view = (-1,) + (1,) * (out.dim() - 1)
        value = torch.where(st.fooled.view(view), st.best_adv, st.x_best)
        out[sample[chosen]] = value[chosen]
        broken[sample[chosen]] = st.fooled[chosen]
        if final:
            return False
        keep = ~hit[sample]
        if not bool(keep.all()):
            _keep(st, keep)
        return bool(len(st.rows))


def _keep(st, keep) -> None:
    """Keep the rows `keep` (a boolean mask) of every per-row tensor of the state."""
    for name, value in vars(st).items():
        if isinstance(value, torch.Tensor):
            setattr(st, name, value[keep])


def lipschitz_terms(clean_logits, adv_logits, clean, adv) -> torch.Tensor:
    """Per sample ‖f(x) − f(x′)‖₁ / ‖x − x′ + 1e−6‖∞ (the spec's local Lipschitz estimate, on logits)."""
    num = (clean_logits - adv_logits).abs().sum(1)
    return num / (clean - adv + 1e-6).flatten(1).abs().amax(1)

