"""`robustfast bench dta`: in one run, as ratios, (1) the token_cosine op forward + backward against
F.cosine_similarity + autograd, (2) one DTA step through blocks 1..l only against a full-depth forward that
reads layer l with a hook, (3) the batched layer search against separate attacks per candidate."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

import robustfast
from robustfast import _backend
from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds, save, table
from robustfast.attacks.dta import DTA
from robustfast.models.vit import build_vit, wrap
from robustfast.ops import pgd_step, token_cosine

NOTE = "shared 2-core machine, loaded by other jobs: ratios are the figure, not the times"
VIT_B = {"image_size": 224, "patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12,
         "num_attention_heads": 12, "intermediate_size": 3072}


def _fused(a, b):
    a.grad = None
    token_cosine(a, b).sum().backward()
    return a.grad


def _torch(a, b):
    a.grad = None
    F.cosine_similarity(a, b, dim=-1, eps=1e-8).mean(-1).sum().backward()
    return a.grad


def op_rows(device, shapes, repeats: int) -> list[dict]:
    backends = [b for b in _backend.available_for("token_cosine", device) if b != "reference"
                and not (b == "triton" and device.type == "cpu")]
    rows = []
    for shape in shapes:
        g = torch.Generator(device=device).manual_seed(sum(shape))
        a = torch.randn(shape, generator=g, device=device).requires_grad_(True)
        b = torch.randn(shape, generator=g, device=device)
        base, _ = median_seconds(functools.partial(_torch, a, b), device, repeats)
        rows.append({"what": "token_cosine fwd+bwd", "impl": "F.cosine_similarity + autograd",
                     "shape": "x".join(map(str, shape)), "ms": 1e3 * base, "speedup": 1.0})
        for backend in backends:
            with robustfast.use_backend(backend):
                t, _ = median_seconds(functools.partial(_fused, a, b), device, repeats)
            rows.append({"what": "token_cosine fwd+bwd", "impl": f"fused ({backend})",
                         "shape": "x".join(map(str, shape)), "ms": 1e3 * t, "speedup": base / t})
    return rows


def _hooked_step(encoder, layer, x, x0, clean, alpha, eps):
    """The published way: a full-depth forward, layer l read by a forward hook, torch's cosine, autograd."""
    seen = {}
    handle = encoder.blocks[layer - 1].register_forward_hook(lambda m, i, o: seen.update(h=o))
    try:
        x = x.detach().requires_grad_(True)
        encoder(x)
        loss = F.cosine_similarity(seen["h"], clean, dim=-1, eps=1e-8).mean(-1).sum()
        (grad,) = torch.autograd.grad(loss, x)
    finally:
        handle.remove()
    return pgd_step(x.detach(), -grad, x0, alpha=alpha, eps=eps)


def step_rows(device, sizes: dict, batch: int, layer: int, repeats: int, label: str) -> list[dict]:
    encoder = wrap(build_vit(seed=0, **sizes)).to(device).eval().requires_grad_(False)
    side = sizes.get("image_size", 16)
    x0 = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    dta = DTA(encoder, eps=16 / 255, steps=1, layer=layer)
    eps = torch.full((batch,), 16 / 255, device=device)
    alpha = eps / 4
    with torch.no_grad():
        clean = encoder.tokens(x0, layer)[-1]
    full, _ = median_seconds(lambda: _hooked_step(encoder, layer, x0, x0, clean, alpha, eps), device, repeats)
    trunc, _ = median_seconds(lambda: dta._eager_step(x0, x0, clean, layer, alpha, eps), device, repeats)
    shape = f"{label}, batch {batch}, l={layer} of {encoder.num_layers}"
    return [{"what": "DTA step", "impl": "full depth + hook + F.cosine_similarity", "shape": shape,
             "ms": 1e3 * full, "speedup": 1.0},
            {"what": "DTA step", "impl": "truncated + token_cosine", "shape": shape, "ms": 1e3 * trunc,
             "speedup": full / trunc}]


def search_rows(device, probes: int, steps: int, repeats: int) -> list[dict]:
    encoder = wrap(build_vit(seed=0)).to(device).eval()
    probe = torch.rand(probes, 3, 16, 16, generator=torch.Generator().manual_seed(1)).to(device)
    dta = DTA(encoder, eps=16 / 255, steps=steps, probe=probe, candidates=list(range(1, 7)))
    sep, _ = median_seconds(lambda: dta.search_layer(probe, batched=False), device, repeats)
    bat, _ = median_seconds(lambda: dta.search_layer(probe), device, repeats)
    shape = f"digits ViT, 6 candidates, {probes} probes, {dta.probe_steps} steps"
    return [{"what": "layer search", "impl": "separate attacks", "shape": shape, "ms": 1e3 * sep, "speedup": 1.0},
            {"what": "layer search", "impl": "batched, slices dropped", "shape": shape, "ms": 1e3 * bat,
             "speedup": sep / bat}]


def run(device: str = "auto", repeats: int = 5, quick: bool = False, results: str = "benchmarks/results") -> list:
    dev = resolve_device(device)
    shapes = [(64, 17, 64)] + ([] if quick else [(256, 197, 768)])
    rows = op_rows(dev, shapes, repeats)
    rows += step_rows(dev, {}, 64, 2, repeats, "digits ViT 16 px")
    if dev.type == "cuda" and not quick:
        rows += step_rows(dev, VIT_B, 64, 4, repeats, "ViT-B/16 224 px")
    rows += search_rows(dev, 64, 20, max(1, repeats // 2))
    for r in rows:
        r["note"] = NOTE if dev.type == "cpu" else ""
    print(table(rows, ["what", "impl", "shape", "ms", "speedup"]), "\n")
    if not quick:
        print(f"wrote {save(rows, dev, 'dta', results)}")
    return rows
