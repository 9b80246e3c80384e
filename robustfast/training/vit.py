"""Pre-training (supervised, SimCLR, MAE) and downstream fine-tuning (full, linear probe, LoRA) of small ViTs.

Both run through `_fit`: AdamW with a cosine schedule, a seeded shuffle and seeded augmentation, tqdm per epoch,
and, with `checkpoint_dir`, a safetensors checkpoint after every epoch that a later call resumes from.
Adversarial fine-tuning takes the attack as a callable (training sits below robustfast.attacks):
`adversarial(model, images) -> adversarial images`, and the loss becomes ½·CE(clean) + ½·CE(adversarial).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from robustfast._util.checks import check_dataset, is_int, is_real, require
from robustfast.models.vit import Classifier, ViTEncoder, build_mae, build_vit, wrap
from robustfast.training.checkpoint import (load_checkpoint, optimizer_from_checkpoint, optimizer_to_checkpoint,
                                            save_checkpoint)
from robustfast.training.ssl import augment, mlp, nt_xent

PRETRAIN = ("supervised", "simclr", "mae")
SCHEMES = ("full", "linear", "lora")
FINETUNE_LORA_RANK = 4  # spec dta.md §8
LORA_HINT = "LoRA fine-tuning needs peft: pip install 'robustfast[llm]' (or pip install peft), or make llm"


@dataclass
class Pretrained:
    """f₀ and, for supervised pre-training, its own head (None for SimCLR and MAE)."""

    encoder: ViTEncoder
    head: nn.Linear | None
    history: list[dict]


def _check_common(data, epochs, lr, batch_size, seed, weight_decay) -> None:
    check_dataset(data, "data")
    if not isinstance(data, TensorDataset) or len(data.tensors) != 2 or data.tensors[0].dim() != 4:
        raise ValueError("data must be a TensorDataset of (images N×C×H×W in [0, 1], labels)")
    require("epochs", epochs, is_int(epochs) and epochs >= 1, "an int >= 1")
    require("lr", lr, is_real(lr) and lr > 0, "a finite number > 0")
    require("batch_size", batch_size, is_int(batch_size) and batch_size >= 2, "an int >= 2")
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    require("weight_decay", weight_decay, is_real(weight_decay) and weight_decay >= 0, "a finite number >= 0")


def _fit(modules: nn.Module, params, loss_fn: Callable, data: TensorDataset, epochs: int, lr: float,
         weight_decay: float, batch_size: int, seed: int, checkpoint_dir, desc: str, progress: bool,
         settings: dict) -> list[dict]:
    """Train `params` (of `modules`) on loss_fn(images, labels, generator); return the per-epoch history."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    images, labels = data.tensors
    device = next(modules.parameters()).device
    steps = max(1, math.ceil(len(images) / batch_size))
    history, start = [], 0
    ckpt = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None:
        tensors, state = ckpt
        if state.get("settings") != settings:
            raise ValueError(f"checkpoint_dir {checkpoint_dir} holds a run with other settings "
                             f"({state.get('settings')}); use another directory")
        modules.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_from_checkpoint(opt, tensors, state["optimizer"])
        history, start = state["history"], len(state["history"])
    modules.train()
    for epoch in range(start, epochs):
        gen = torch.Generator(device=device).manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        total = torch.zeros((), device=device)
        bar = tqdm(range(steps), desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for i in bar:
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (epoch + i / steps) / epochs))
            idx = order[i * batch_size:(i + 1) * batch_size]
            loss = loss_fn(images[idx].to(device), labels[idx].to(device), gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total = total + loss.detach()
        mean = total.item() / steps
        if not math.isfinite(mean):
            raise ValueError(f"data: the {desc} loss became NaN or inf at epoch {epoch + 1}; lower lr")
        history.append({"epoch": epoch + 1, "loss": mean})
        if checkpoint_dir is not None:
            tensors, rest = optimizer_to_checkpoint(opt)
            tensors.update({f"model.{k}": v.detach().contiguous() for k, v in modules.state_dict().items()})
            save_checkpoint(checkpoint_dir, tensors, {"settings": settings, "optimizer": rest, "history": history})
    modules.eval()
    return history


def pretrain(data: TensorDataset, method: str = "supervised", epochs: int = 60, lr: float = 1e-3,
             batch_size: int = 128, weight_decay: float = 0.05, temperature: float = 0.2, mask_ratio: float = 0.75,
             seed: int = 0, device="cpu", checkpoint_dir=None, progress: bool = True, **sizes) -> Pretrained:
    """Pre-train a ViT (robustfast.models.vit's digits size, `sizes` overriding config fields) on `data`:
    "supervised" (CE with a linear head), "simclr" (NT-Xent, τ = `temperature`, projector on the class token) or
    "mae" (Hugging Face ViTMAEForPreTraining, `mask_ratio`). Augmentation: random resized crops, no noise."""
    require("method", method, method in PRETRAIN, f"one of {PRETRAIN}")
    _check_common(data, epochs, lr, batch_size, seed, weight_decay)
    require("mask_ratio", mask_ratio, is_real(mask_ratio) and 0 < mask_ratio < 1, "a number in (0, 1)")
    images, labels = data.tensors
    sizes = {"image_size": images.shape[-1], "num_channels": images.shape[1], **sizes}
    settings = {"method": method, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
                "n": len(images), **sizes}
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if method == "mae":
            mae = build_mae(seed, mask_ratio=mask_ratio, **sizes).to(device)
            encoder = wrap(mae.vit)

            def loss_fn(x, y, gen):
                noise = torch.rand(x.shape[0], mae.vit.embeddings.patch_embeddings.num_patches, generator=gen,
                                   device=x.device)
                return mae(pixel_values=(x - encoder.mean) / encoder.std, noise=noise).loss

            history = _fit(mae, list(mae.parameters()), loss_fn, data, epochs, lr, weight_decay, batch_size, seed,
                           checkpoint_dir, "mae", progress, settings)
            return Pretrained(encoder.eval(), None, history)
        encoder = wrap(build_vit(seed, **sizes)).to(device)
        if method == "supervised":
            model = Classifier(encoder, int(labels.max()) + 1).to(device)

            def loss_fn(x, y, gen):
                return F.cross_entropy(model(augment(x, gen, noise=0.0)), y)

            history = _fit(model, list(model.parameters()), loss_fn, data, epochs, lr, weight_decay, batch_size,
                           seed, checkpoint_dir, "supervised", progress, settings)
            return Pretrained(encoder.eval(), model.head.eval(), history)
        d = encoder.hidden_size
        model = nn.ModuleDict({"encoder": encoder, "projector": mlp((d, 2 * d, 64))}).to(device)

        def loss_fn(x, y, gen):
            z1 = model["projector"](encoder(augment(x, gen, noise=0.0)))
            z2 = model["projector"](encoder(augment(x, gen, noise=0.0)))
            return nt_xent(z1, z2, temperature).mean()

        history = _fit(model, list(model.parameters()), loss_fn, data, epochs, lr, weight_decay, batch_size, seed,
                       checkpoint_dir, "simclr", progress, settings)
        return Pretrained(encoder.eval(), None, history)


# The attention's query and value projections, by name: transformers ≥ 5 (q_proj, v_proj), older transformers
# (query, value); timm fuses them into qkv.
LORA_TARGETS = ("q_proj", "v_proj", "query", "value", "qkv")


def add_lora(encoder: ViTEncoder, rank: int) -> None:
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ImportError(LORA_HINT) from None
    names = {n.rsplit(".", 1)[-1] for n, _ in encoder.model.named_modules()}
    targets = [t for t in LORA_TARGETS if t in names]
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets), encoder.model)


def finetune(encoder: ViTEncoder, data: TensorDataset, scheme: str = "full", lora_rank: int = 8,
             adversarial: Callable | None = None, epochs: int = 40, lr: float = 2e-4, batch_size: int = 64,
             weight_decay: float = 0.05, seed: int = 0, checkpoint_dir=None, progress: bool = True) -> Classifier:
    """A downstream classifier g = head ∘ f on `data`, f a copy of `encoder` (f₀ is not modified): "full"
    trains everything, "linear" the head only, "lora" the head and rank-`lora_rank` LoRA adapters on the
    attention's query and value (peft). `adversarial(model, images)` adds the adversarial half of the loss."""
    require("scheme", scheme, scheme in SCHEMES, f"one of {SCHEMES}")
    if not isinstance(encoder, ViTEncoder):
        raise ValueError(f"encoder must be a ViTEncoder (robustfast.models.vit.wrap), got {type(encoder).__name__}")
    _check_common(data, epochs, lr, batch_size, seed, weight_decay)
    require("lora_rank", lora_rank, is_int(lora_rank) and lora_rank >= 1, "an int >= 1")
    require("adversarial", adversarial, adversarial is None or callable(adversarial),
            "None or a callable(model, images) -> images")
    images, labels = data.tensors
    device = next(encoder.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        f = copy.deepcopy(encoder)
        if scheme == "lora":
            add_lora(f, lora_rank)
        model = Classifier(f, int(labels.max()) + 1).to(device)
    for name, p in model.named_parameters():
        p.requires_grad_(scheme == "full" or name.startswith("head.") or "lora_" in name)
    settings = {"scheme": scheme, "lora_rank": lora_rank, "epochs": epochs, "lr": lr, "batch_size": batch_size,
                "seed": seed, "n": len(images), "adversarial": repr(adversarial)}

    def loss_fn(x, y, gen):
        x = augment(x, gen, min_scale=0.8, noise=0.0)
        if adversarial is None:
            return F.cross_entropy(model(x), y)
        model.eval()
        adv = adversarial(model, x).detach()
        model.train()
        return 0.5 * F.cross_entropy(model(x), y) + 0.5 * F.cross_entropy(model(adv), y)

    params = [p for p in model.parameters() if p.requires_grad]
    _fit(model, params, loss_fn, data, epochs, lr, weight_decay, batch_size, seed, checkpoint_dir,
         f"finetune {scheme}", progress, settings)
    return model.requires_grad_(False).eval()
