"""Expose Before You Defend (specs/ebyd.md §2): six ways to turn a backdoored model θ into an exposed copy θ_exp
whose clean behaviour is destroyed while its backdoor is kept, so that its predictions collapse onto the target.

    from robustfast.backdoor import expose, detect_label
    exp = expose(model, defense_set, method="cul", asr_set=triggered_test)   # model is not modified
    exp.table(); detect_label(exp)

Every method works on any nn.Module whose forward takes one batch tensor (images, token ids) and a Dataset of
(input, label) pairs; only `augment` (e.g. expose_data.crop_flip for images) and magnitude pruning's "bn"/ANP's
BatchNorm requirement know the architecture. Differences from the reference code (spec §7), by design:
- CUL is unclipped, as the published logs ran (the reference's clip sits before backward, a no-op);
  `clip_norm` is a real clip, off by default.
- The reference's `stop_acc=0.1` is never read there (it runs all epochs); here `stop_acc` is an option, off by
  default: stop after the first epoch whose accuracy on the defense set (eval mode) is <= stop_acc.
- Activation pruning computes every rate from the original model (the reference stacks its wrappers).
- Interpolation and magnitude pruning are stubs in the reference; their grids (0.1 … 0.9) are ours.
"""
from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from robustfast._util.checks import is_int, is_real, require
from robustfast._util.seeds import stream_generator, stream_seed
from robustfast._util.tables import table
from robustfast.backdoor.expose_data import as_tensors, epoch_batches, predictions, snapshot

METHODS = ("cul", "random-label", "activation-prune", "anp", "interpolate", "magnitude-prune")
GRID = tuple(round(0.1 * i, 1) for i in range(1, 10))
SWEEP_KEY = {"activation-prune": "p", "anp": "eps", "interpolate": "alpha", "magnitude-prune": "s"}
DEFAULTS = {
    "cul": {"epochs": 20, "lr": 1e-5, "weight_decay": 5e-4, "batch_size": 128, "optimizer": "adam", "momentum": 0.9,
            "milestones": (), "clip_norm": None, "stop_acc": None},
    "random-label": {"epochs": 20, "lr": 1e-4, "weight_decay": 5e-4, "batch_size": 128, "optimizer": "adam",
                     "momentum": 0.9, "milestones": (), "clip_norm": None, "stop_acc": None},
    "activation-prune": {"p": GRID, "layer": None},
    "anp": {"eps": GRID, "epochs": 5, "step": 0.2, "batch_size": 128},
    "interpolate": {"alpha": GRID},
    "magnitude-prune": {"s": GRID, "variant": "bn"},
}


@dataclasses.dataclass
class Exposure:
    """The exposed copies and what was measured on them. Epoch methods (cul, random-label): one model, and one
    trajectory row per epoch (epoch 0 = the input model). Sweeps: one model and one row per grid value.
    Each row: acc and hist (prediction shares per class) on the evaluation set, asr when an asr_set was given."""
    method: str
    models: list[nn.Module]
    trajectory: list[dict]
    config: dict

    @property
    def model(self) -> nn.Module:
        return self.models[-1]

    @property
    def hist(self) -> torch.Tensor:
        return self.trajectory[-1]["hist"]

    def table(self, target: int | None = None) -> str:
        key = SWEEP_KEY.get(self.method, "epoch")
        rows = []
        for r in self.trajectory:
            row = {key: r[key], "acc": r["acc"], "argmax h": int(r["hist"].argmax()), "max h": r["hist"].max().item()}
            if target is not None:
                row["h(t)"] = r["hist"][target].item()
            if "asr" in r:
                row["asr"] = r["asr"]
            rows.append(row)
        return table(rows, list(rows[0]))


def _options(method: str, kwargs: dict) -> dict:
    require("method", method, method in METHODS, f"one of {', '.join(METHODS)}")
    unknown = set(kwargs) - set(DEFAULTS[method])
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]} is not an option of method={method!r}; its options are "
                         f"{', '.join(DEFAULTS[method])}")
    opts = {**DEFAULTS[method], **kwargs}
    for name in ("epochs", "batch_size"):
        if name in opts:
            require(name, opts[name], is_int(opts[name]) and opts[name] >= 1, "an int >= 1")
    for name in ("lr", "step"):
        if name in opts:
            require(name, opts[name], is_real(opts[name]) and opts[name] > 0, "a finite number > 0")
    for name in ("weight_decay", "momentum"):
        if name in opts:
            require(name, opts[name], is_real(opts[name]) and opts[name] >= 0, "a finite number >= 0")
    if opts.get("stop_acc") is not None:
        require("stop_acc", opts["stop_acc"], is_real(opts["stop_acc"]) and 0 <= opts["stop_acc"] <= 1,
                "None or a number in [0, 1]")
    if "optimizer" in opts:
        require("optimizer", opts["optimizer"], opts["optimizer"] in ("adam", "sgd"), "'adam' or 'sgd'")
    if method in SWEEP_KEY:
        key = SWEEP_KEY[method]
        grid = opts[key] if isinstance(opts[key], (list, tuple)) else (opts[key],)
        require(key, opts[key], len(grid) > 0 and all(is_real(v) and 0 <= v <= 1 for v in grid),
                "a number or a non-empty list of numbers in [0, 1]")
        opts[key] = tuple(float(v) for v in grid)
    if method == "magnitude-prune":
        require("variant", opts["variant"], opts["variant"] in ("bn", "l1"), "'bn' (BatchNorm |γ|) or 'l1'")
    return opts


def expose(model: nn.Module, clean_set, method: str = "cul", *, seed: int = 0, eval_set=None, asr_set=None,
           augment=None, progress: bool = False, **method_kwargs) -> Exposure:
    """Expose `model` with `method` on the defense set `clean_set` (a Dataset of (input, label)); the input model is
    never modified. Options per method (spec defaults in DEFAULTS): cul / random-label take epochs, lr,
    weight_decay, batch_size, optimizer ("adam": PyTorch Adam with coupled L2; "sgd"), momentum, milestones (×0.1
    at each), clip_norm, stop_acc (stop after the first epoch whose accuracy on clean_set is <= stop_acc);
    activation-prune p (rates) and layer (a module name; default the last nn.Linear);
    anp eps, epochs, step, batch_size; interpolate alpha; magnitude-prune s and variant ("bn" or "l1").
    A grid option (p, eps, alpha, s) takes a number or a list and returns one point per value.

    eval_set (default clean_set) gives the trajectory's acc and h; asr_set (a Dataset of triggered inputs
    labelled with the target) its ASR. augment(x, generator) maps a training batch (e.g. expose_data.crop_flip).
    """
    opts = _options(method, method_kwargs)
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    require("augment", augment, augment is None or callable(augment), "None or a callable(batch, generator)")
    x, y = as_tensors(clean_set, "clean_set")
    ex, ey = (x, y) if eval_set is None else as_tensors(eval_set, "eval_set")
    asr = None if asr_set is None else as_tensors(asr_set, "asr_set")
    num_classes = num_classes_of(model, x)
    snap = lambda m: snapshot(m, ex, ey, num_classes, asr)  # noqa: E731
    if method in ("cul", "random-label"):
        exposed = copy.deepcopy(model)
        trajectory = _descend(exposed, x, y, method, opts, num_classes, seed, augment, snap, progress,
                              snap_on_defense=eval_set is None)
        models = [exposed]
    else:
        key = SWEEP_KEY[method]
        build = {"activation-prune": _activation_prune, "anp": _anp, "interpolate": _interpolate,
                 "magnitude-prune": _magnitude_prune}[method]
        models, trajectory = [], []
        for value in tqdm(opts[key], desc=method, disable=not progress):
            exposed = build(model, x, y, value, opts, seed, augment)
            models.append(exposed)
            trajectory.append({key: value, **snap(exposed)})
        opts.pop("_mean_input", None)
    return Exposure(method, models, trajectory, {"seed": seed, **opts, "num_classes": num_classes,
                                                 "n_defense": len(y)})


def num_classes_of(model: nn.Module, x: torch.Tensor) -> int:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x[:1].to(device))
    finally:
        model.train(was_training)
    return out.shape[-1]


def make_optimizer(params, opts: dict) -> torch.optim.Optimizer:
    if opts["optimizer"] == "adam":  # coupled L2, as the reference (torch.optim.Adam, not AdamW)
        return torch.optim.Adam(params, lr=opts["lr"], weight_decay=opts["weight_decay"])
    return torch.optim.SGD(params, lr=opts["lr"], momentum=opts["momentum"], weight_decay=opts["weight_decay"])


def lr_at(opts: dict, epoch: int) -> float:
    return opts["lr"] * 0.1 ** sum(epoch >= m for m in opts["milestones"])


def _descend(model, x, y, method, opts, num_classes, seed, augment, snap, progress,
             snap_on_defense: bool) -> list[dict]:
    """CUL (ascent on CE) or random-label fine-tuning (descent on CE with uniform labels), in train mode (BN running
    statistics update, as in the reference), with a snapshot before training and after every epoch (and an early
    stop on the defense-set accuracy when opts["stop_acc"] is set)."""

    def defense_acc(row: dict) -> float:
        if snap_on_defense:
            return row["acc"]
        return (predictions(model, x).cpu() == y.cpu()).double().mean().item()

    device = next(model.parameters()).device
    opt = make_optimizer(model.parameters(), opts)
    sign = -1.0 if method == "cul" else 1.0
    trajectory = [{"epoch": 0, **snap(model)}]
    model.train()
    for epoch in tqdm(range(opts["epochs"]), desc=method, disable=not progress):
        for g in opt.param_groups:
            g["lr"] = lr_at(opts, epoch)
        aug = stream_generator(seed, 12, epoch)
        labels_gen = stream_generator(seed, 13, epoch)
        for idx in epoch_batches(len(y), opts["batch_size"], seed, epoch):
            xb, yb = x[idx].to(device), y[idx].to(device)
            if augment is not None:
                xb = augment(xb, aug)
            if method == "random-label":
                yb = torch.randint(0, num_classes, yb.shape, generator=labels_gen).to(device)
            loss = sign * F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if opts["clip_norm"] is not None:
                nn.utils.clip_grad_norm_(model.parameters(), opts["clip_norm"])
            opt.step()
        trajectory.append({"epoch": epoch + 1, **snap(model)})
        if opts["stop_acc"] is not None and defense_acc(trajectory[-1]) <= opts["stop_acc"]:
            break
    return trajectory


def last_linear(model: nn.Module, layer: str | None) -> tuple[str, nn.Linear]:
    named = dict(model.named_modules())
    if layer is not None:
        require("layer", layer, isinstance(named.get(layer), nn.Linear), f"the name of an nn.Linear of the model "
                f"({', '.join(n for n, m in named.items() if isinstance(m, nn.Linear)) or 'it has none'})")
        return layer, named[layer]
    linears = [(n, m) for n, m in named.items() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear layer: activation-prune prunes the input of one (pass layer=...)")
    return linears[-1]


def _activation_prune(model, x, y, p, opts, seed, augment):
    """Zero the fraction p of the chosen linear layer's input channels with the lowest mean activation over D
    (computed on the original model), by zeroing those columns of its weight."""
    name, linear = last_linear(model, opts["layer"])
    if "_mean_input" not in opts:  # once per sweep: every rate is computed from the original model
        feats = []
        hook = linear.register_forward_pre_hook(lambda m, inp: feats.append(inp[0].detach().flatten(0, -2)))
        try:
            predictions(model, x)
        finally:
            hook.remove()
        opts["_mean_input"] = torch.cat(feats).mean(0)
    mean = opts["_mean_input"]
    k = round(p * mean.numel())
    exposed = copy.deepcopy(model)
    if k:
        drop = mean.argsort()[:k]
        with torch.no_grad():
            dict(exposed.named_modules())[name].weight[:, drop] = 0
    return exposed


def batchnorms(model: nn.Module, what: str) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    bns = [(n, m) for n, m in model.named_modules()
           if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]
    if not bns:
        raise ValueError(f"model has no affine BatchNorm layer; {what} works on BatchNorm scales")
    return bns


def _anp(model, x, y, eps, opts, seed, augment):
    """ANP-style perturbation: every BN channel's scale and shift times (1 + δ_c), (1 + ξ_c), δ, ξ ∈ [−ε, ε] from
    U(−ε, ε); per batch one signed-gradient ascent step of `step` on CE, projected to [−ε, ε]; no mask is learned.
    The model runs in train mode (batch statistics), as in the ANP code; the exposed copy keeps the last δ, ξ."""
    exposed = copy.deepcopy(model)
    bns = batchnorms(exposed, "anp")
    device = next(exposed.parameters()).device
    gen = stream_generator(seed, 14, round(eps * 1000))
    base = [(m.weight.detach().clone(), m.bias.detach().clone()) for _, m in bns]
    noise = [((torch.rand(w.shape, generator=gen) * 2 - 1) * eps, (torch.rand(w.shape, generator=gen) * 2 - 1) * eps)
             for w, _ in base]
    noise = [(d.to(device).requires_grad_(True), s.to(device).requires_grad_(True)) for d, s in noise]
    params = {f"{n}.weight": None for n, _ in bns}
    exposed.train()
    for epoch in range(opts["epochs"]):
        aug = stream_generator(seed, 12, epoch)
        for idx in epoch_batches(len(y), opts["batch_size"], seed, epoch):
            xb, yb = x[idx].to(device), y[idx].to(device)
            if augment is not None:
                xb = augment(xb, aug)
            for (n, _), (w, b), (d, s) in zip(bns, base, noise, strict=True):
                params[f"{n}.weight"], params[f"{n}.bias"] = w * (1 + d), b * (1 + s)
            loss = F.cross_entropy(torch.func.functional_call(exposed, params, (xb,)), yb)
            grads = torch.autograd.grad(loss, [t for pair in noise for t in pair])
            with torch.no_grad():
                for t, g in zip([t for pair in noise for t in pair], grads, strict=True):
                    t.add_(opts["step"] * g.sign()).clamp_(-eps, eps)
    with torch.no_grad():
        for (_, m), (w, b), (d, s) in zip(bns, base, noise, strict=True):
            m.weight.copy_(w * (1 + d))
            m.bias.copy_(b * (1 + s))
    return exposed


def _interpolate(model, x, y, alpha, opts, seed, augment):
    """θ_exp = α·θ + (1 − α)·θ₀ over every floating parameter and buffer, θ₀ a fresh initialisation (each module's
    reset_parameters, PyTorch's Kaiming-uniform default; BN statistics reset) drawn with `seed`."""
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, 15))
        for m in fresh.modules():
            for reset in ("reset_parameters", "reset_running_stats"):
                if hasattr(m, reset):
                    getattr(m, reset)()
    exposed = copy.deepcopy(model)
    state, init = exposed.state_dict(), fresh.state_dict()
    with torch.no_grad():
        for k, v in state.items():
            if v.is_floating_point():
                v.copy_(alpha * v + (1 - alpha) * init[k])
    return exposed


def _magnitude_prune(model, x, y, s, opts, seed, augment):
    """Variant "bn": zero γ and β of the fraction s of BN channels with the smallest |γ| (ranked globally);
    variant "l1": global unstructured pruning of all conv weights, zeroing the fraction s of smallest |w|."""
    exposed = copy.deepcopy(model)
    with torch.no_grad():
        if opts["variant"] == "bn":
            bns = [m for _, m in batchnorms(exposed, "magnitude-prune variant 'bn'")]
            gammas = torch.cat([m.weight.abs().flatten() for m in bns])
            k = round(s * gammas.numel())
            if k:
                cut = torch.zeros(gammas.numel(), dtype=torch.bool, device=gammas.device)
                cut[gammas.argsort()[:k]] = True
                for m, part in zip(bns, cut.split([m.weight.numel() for m in bns]), strict=True):
                    m.weight[part] = 0
                    m.bias[part] = 0
        else:
            convs = [m.weight for m in exposed.modules() if isinstance(m, nn.modules.conv._ConvNd)]
            if not convs:
                raise ValueError("model has no convolution; magnitude-prune variant 'l1' prunes conv weights")
            flat = torch.cat([w.abs().flatten() for w in convs])
            k = round(s * flat.numel())
            if k:
                cut = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
                cut[flat.argsort()[:k]] = True
                for w, part in zip(convs, cut.split([w.numel() for w in convs]), strict=True):
                    w[part.view_as(w)] = 0
    return exposed


def detect_label(exposure: Exposure, point: int = -1) -> int:
    """The backdoor label t̂ = argmax_c h(c) of the exposed model (the trajectory's last row, or row `point`)."""
    return int(exposure.trajectory[point]["hist"].argmax())
