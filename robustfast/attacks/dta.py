"""Downstream Transfer Attack (Zheng et al., arXiv 2408.01705; spec dta.md): attack fine-tuned ViTs from their
public pre-trained encoder f₀ by destroying the token features at an intermediate block.

Per image, PGD (L∞) minimises J_l(x′) = mean_t cos(h_l(x′)_t, h_l(x)_t) (the fused `token_cosine` op), running
only blocks 1..l; h_l(x) is computed once. The layer comes from a search on attacker-side probe images: every
candidate block is attacked in one batched pass (each candidate's slice is dropped after its block), then one
full forward gives the profile c_{l,j} = mean J_j, and l* = argmin of the criterion over it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from robustfast._util.checks import check_images, opmath_dtype, per_sample
from robustfast._util.frozen import frozen_eval
from robustfast.attacks.base import Attack, check_number
from robustfast.attacks.evaluate import transfer_asr
from robustfast.models.vit import ViTEncoder, wrap
from robustfast.ops import pgd_random_init, pgd_step, token_cosine, token_cosine_profile
from robustfast.ops.pgd_step import MAX_RADIUS
from robustfast.ops.token_cosine import check_reduction

LOSSES = ("cosine", "l2", "l4a")
CRITERIA = ("mean", "self", "final", "from")
MODES = ("global", "per_sample")
TOKENS = ("all", "cls", "patch")
FEATURES = ("residual", "normed")


@dataclass
class LayerSearch:
    """The searched layer, each candidate's score under the criterion, and the profile (|C|, L): row i holds
    mean_P J_j for j = 1..L after attacking candidate i."""

    layer: int
    scores: dict[int, float]
    profile: torch.Tensor


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def criterion_scores(profile: torch.Tensor, candidates: list[int], criterion: str) -> torch.Tensor:
    """(|C|,) score of each candidate from its row of the profile (|C|, L); the search takes the lowest."""
    if criterion == "mean":
        return profile.mean(1)
    if criterion == "final":
        return profile[:, -1]
    rows = torch.arange(len(candidates))
    cols = torch.tensor(candidates) - 1
    if criterion == "self":
        return profile[rows, cols]
    keep = torch.arange(profile.shape[1])[None, :] >= cols[:, None]
    return (profile * keep).sum(1) / keep.sum(1)


class DTA(Attack):
    """`adv = DTA(encoder, eps=16/255, layer="search", probe=probe_images)(images)`.

    encoder: f₀, any model `robustfast.models.vit.wrap` takes. layer: a block 1..L, or "search" (needs `probe`,
    attacker-side images; the search runs on the first call and is kept in `.search`). alpha=None means ε/4.
    loss: "cosine" (the token-cosine loss), "l2" (maximise ‖h_l(x′) − h_l(x)‖²) or "l4a" (maximise the mean
    squared activation). reduction "token" | "flat"; tokens "all" | "cls" | "patch"; features "residual" | "normed"
    (the next LayerNorm first). mode "per_sample" attacks at every candidate and keeps, per image, the one of
    lowest criterion score. return_best keeps each image's lowest-J iterate. Labels are not needed.
    """

    def __init__(self, encoder: nn.Module, eps: float = 8 / 255, alpha: float | None = None, steps: int = 20,
                 layer: int | str = "search", loss: str = "cosine", criterion: str = "mean", candidates=None,
                 probe: torch.Tensor | None = None, probe_steps: int | None = None, mode: str = "global",
                 reduction: str = "token", tokens: str = "all", features: str = "residual",
                 random_start: bool = True, return_best: bool = False, seed: int = 0, amp: bool = False,
                 compile: bool | str = False):
        encoder = wrap(encoder)
        super().__init__(encoder, seed=seed, amp=amp, compile=compile)
        self.encoder = encoder
        self.eps = check_number(eps, "eps", 0.0, maximum=MAX_RADIUS)
        self.alpha = self.eps / 4 if alpha is None else check_number(alpha, "alpha", 0.0, maximum=MAX_RADIUS)
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0 (None means eps/4 and needs eps > 0), got {self.alpha!r}")
        self.steps = check_number(steps, "steps", 1, integer=True)
        self.probe_steps = (math.ceil(self.steps / 2) if probe_steps is None
                            else check_number(probe_steps, "probe_steps", 1, integer=True))
        self.loss = _choice("loss", loss, LOSSES)
        self.criterion = _choice("criterion", criterion, CRITERIA)
        self.mode = _choice("mode", mode, MODES)
        self.tokens = _choice("tokens", tokens, TOKENS)
        self.features = _choice("features", features, FEATURES)
        check_reduction(reduction)
        self.reduction = reduction
        self.random_start, self.return_best = bool(random_start), bool(return_best)
        top = math.ceil(encoder.num_layers / 2)
        cands = list(range(1, top + 1)) if candidates is None else candidates
        if not isinstance(cands, (list, tuple)) or not cands:
            raise ValueError(f"candidates must be a non-empty list of blocks in 1..{encoder.num_layers}")
        self.candidates = sorted({encoder.check_layer(c, "candidates") for c in cands})
        if layer == "search":
            if probe is None:
                raise ValueError("probe is required with layer='search': pass attacker-side images (e.g. 64), "
                                 "or a fixed layer=int")
            check_images(probe, "probe")
        elif mode == "global":
            encoder.check_layer(layer, "layer")
        else:
            raise ValueError("layer must be 'search' with mode='per_sample'")
        self.layer, self.probe, self.search = layer, probe, None
        self._step = self.compiled(self._eager_step)

    def __repr__(self) -> str:
        return (f"DTA(layer={self.layer}, eps={self.eps:.4g}, alpha={self.alpha:.4g}, steps={self.steps}, "
                f"loss={self.loss}, reduction={self.reduction})")

    # --- features and loss --------------------------------------------------------------------------------------

    def token_mask(self, t: int, device) -> torch.Tensor:
        mask = torch.ones(t, dtype=torch.bool, device=device)
        if self.tokens == "cls":
            mask[1:] = False
        elif self.tokens == "patch":
            mask[0] = False
        return mask

    def _finish(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        with torch.autocast(h.device.type, enabled=False):
            h = h.float() if h.dtype in (torch.bfloat16, torch.float16) else h
            return self.encoder.next_norm(layer)(h) if self.features == "normed" else h

    def features_at(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """h_l(x) (B, T, D) as the loss sees it: only blocks 1..l run."""
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            h = self.encoder.tokens(x, layer)[-1]
        return self._finish(layer, h)

    def objective(self, h: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """J per image (B,), minimised."""
        mask = self.token_mask(h.shape[1], h.device)
        if self.loss == "cosine":
            return token_cosine(h, clean, reduction=self.reduction, token_mask=mask)
        m = mask.to(h.dtype)[None, :, None]
        if self.loss == "l2":
            return -(((h - clean) * m) ** 2).flatten(1).sum(1)
        return -((h * m) ** 2).flatten(1).sum(1) / (m.sum() * h.shape[2])

    # --- the attack at one layer -----------------------------------------------------------------------------

    def _eager_step(self, x, x0, clean, layer, alpha, eps):
        x = x.detach().requires_grad_(True)
        j = self.objective(self.features_at(x, layer), clean)
        (grad,) = torch.autograd.grad(j.sum(), x)
        return pgd_step(x.detach(), -grad, x0, alpha=alpha, eps=eps), j.detach()

    def attack_at(self, images: torch.Tensor, layer: int, steps: int | None = None, alpha: float | None = None):
        """(adversarial images, their J) from `steps` PGD steps at block `layer`."""
        steps = self.steps if steps is None else steps
        x0 = images.detach()
        n, dtype = x0.shape[0], opmath_dtype(x0.dtype)
        eps = per_sample(self.eps, n, "eps", dtype, x0.device)
        a = per_sample(self.alpha if alpha is None else alpha, n, "alpha", dtype, x0.device)
        with torch.no_grad():
            clean = self.features_at(x0, layer)
        x = pgd_random_init(x0, eps=eps, generator=self.generator(x0.device)) if self.random_start else x0
        best_x, best_j = x, None
        for _ in range(steps):
            x_next, j = self._step(x, x0, clean, layer, a, eps)
            if self.return_best:
                better = j < best_j if best_j is not None else torch.ones_like(j, dtype=torch.bool)
                best_x = torch.where(better.view(-1, 1, 1, 1), x, best_x)
                best_j = torch.where(better, j, best_j) if best_j is not None else j
            x = x_next
        with torch.no_grad():
            j = self.objective(self.features_at(x, layer), clean)
        if self.return_best:
            better = j < best_j
            x, j = torch.where(better.view(-1, 1, 1, 1), x, best_x), torch.where(better, j, best_j)
        return x, j

    # --- layer search ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def profile(self, clean_images: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        """(B, L): J_j(adv) for every block j, in one full forward of each (adv may stack several copies of the
        clean images: B = k·N rows)."""
        reps = adv.shape[0] // clean_images.shape[0]
        layers = self.encoder.num_layers
        clean = [self._finish(j, h) for j, h in enumerate(self.encoder.tokens(clean_images, layers), 1)]
        hs = [self._finish(j, h) for j, h in enumerate(self.encoder.tokens(adv, layers), 1)]
        mask = self.token_mask(clean[0].shape[1], adv.device)
        if self.loss != "cosine":
            return torch.stack([self.objective(h, c.repeat(reps, 1, 1)) for h, c in zip(hs, clean, strict=True)], 1)
        return token_cosine_profile(torch.stack(hs), torch.stack([c.repeat(reps, 1, 1) for c in clean]),
                                    reduction=self.reduction, token_mask=mask)

    def _batched_probe_attack(self, probe: torch.Tensor) -> torch.Tensor:
        """The |C| candidate attacks on the probe set in one batch: candidate i's rows are block i of the stack;
        after block c the rows of candidate c leave the forward."""
        cands, n = self.candidates, probe.shape[0]
        k, dtype = len(cands), opmath_dtype(probe.dtype)
        x0 = probe.detach().repeat(k, 1, 1, 1)
        eps = per_sample(self.eps, k * n, "eps", dtype, probe.device)
        alpha = per_sample(2 * self.alpha, k * n, "alpha", dtype, probe.device)
        with torch.no_grad():
            hs = self.encoder.tokens(probe, cands[-1])
            clean = [self._finish(c, hs[c - 1]) for c in cands]
        starts = [pgd_random_init(probe, eps=eps[:n], generator=self.generator(probe.device)) if self.random_start
                  else probe for _ in cands]
        x = torch.cat(starts)
        for _ in range(self.probe_steps):
            x = x.detach().requires_grad_(True)
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
                z = self.encoder.embed(x)
            total, layer = 0.0, 0
            for i, c in enumerate(cands):
                while layer < c:
                    layer += 1
                    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
                        z = self.encoder.block(layer, z)
                total = total + self.objective(self._finish(c, z[:n]), clean[i]).sum()
                z = z[n:]
            (grad,) = torch.autograd.grad(total, x)
            x = pgd_step(x.detach(), -grad, x0, alpha=alpha, eps=eps)
        return x

    def search_layer(self, probe: torch.Tensor, batched: bool = True) -> LayerSearch:
        """Attack each candidate block on `probe` for probe_steps steps of 2α (batched in one pass, or as separate
        attacks with batched=False), profile every block, and pick the candidate of lowest criterion score."""
        check_images(probe, "probe")
        with frozen_eval(self.encoder), torch.enable_grad():
            if batched:
                adv = self._batched_probe_attack(probe)
            else:
                adv = torch.cat([self.attack_at(probe, c, self.probe_steps, 2 * self.alpha)[0]
                                 for c in self.candidates])
            prof = self.profile(probe, adv)  # (|C|·N, L)
        prof = prof.view(len(self.candidates), probe.shape[0], -1).mean(1).cpu()
        scores = criterion_scores(prof, self.candidates, self.criterion)
        best = self.candidates[int(scores.argmin())]
        return LayerSearch(best, dict(zip(self.candidates, scores.tolist(), strict=True)), prof)

    # --- the call ----------------------------------------------------------------------------------------------

    def perturb(self, images: torch.Tensor, labels=None) -> torch.Tensor:
        if self.mode == "per_sample":
            advs, scores = [], []
            for c in self.candidates:
                adv, _ = self.attack_at(images, c)
                prof = self.profile(images, adv)
                advs.append(adv)
                scores.append(criterion_scores(prof, [c] * len(prof), self.criterion))
            pick = torch.stack(scores).argmin(0)
            return torch.stack(advs)[pick, torch.arange(images.shape[0], device=images.device)]
        layer = self.search.layer if self.layer == "search" else self.layer
        return self.attack_at(images, layer)[0]

    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_images(images)
        if self.layer == "search" and self.mode == "global" and self.search is None:
            self.search = self.search_layer(self.probe.to(images.device))
        with frozen_eval(self.encoder), torch.enable_grad():
            return self.perturb(images)


def random_noise(images: torch.Tensor, eps: float, seed: int = 0) -> torch.Tensor:
    """The noise baseline: x + ε·s, s uniform random signs (seeded), clamped to [0, 1]."""
    check_images(images)
    check_number(eps, "eps", 0.0, maximum=MAX_RADIUS)
    g = torch.Generator(device=images.device).manual_seed(seed)
    signs = torch.randint(0, 2, images.shape, generator=g, device=images.device).to(images.dtype) * 2 - 1
    return (images + eps * signs).clamp(0, 1)


def layer_sweep(encoder: nn.Module, victim: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                layers=None, **kw) -> dict[int, float]:
    """ASR of the victim under DTA at each of `layers` (default every block): the oracle the search is judged by."""
    encoder = wrap(encoder)
    layers = range(1, encoder.num_layers + 1) if layers is None else layers
    return {int(k): transfer_asr(victim, images, DTA(encoder, layer=k, **kw)(images), labels)["asr"]
            for k in layers}


def adversary(source: ViTEncoder | None = None, **kw):
    """A DTA adversary for `robustfast.training.finetune(adversarial=...)`: `source=None` crafts on the current
    encoder of the model being trained ("current"), else on the given f₀ ("pretrained"). `kw` go to DTA (give a
    fixed `layer`)."""
    def craft(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return DTA(model.encoder if source is None else source, **kw)(images)
    return craft
