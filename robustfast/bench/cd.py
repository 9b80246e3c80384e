"""`robustfast bench cd`: images/s of the 100-step Cognitive Distillation optimisation, the fused ops
(cd_mask_blend + cd_mask_step around a frozen model's input gradient) beside the loop written the way the published
code runs it (robustfast.backdoor.published), same model, batch and steps, in one run."""
from __future__ import annotations

import functools

import torch

from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds, save, table
from robustfast.backdoor import CognitiveDistillation
from robustfast.backdoor.published import published_cd_masks
from robustfast.models import ResNet18, SmallCNN

MODELS = {"smallcnn": lambda: SmallCNN(num_classes=10, in_channels=3, width=16), "resnet18": ResNet18}


def rows_for(model_name: str, dev: torch.device, batch: int, steps: int, repeats: int, note: str) -> list[dict]:
    torch.manual_seed(0)
    model = MODELS[model_name]().to(dev).eval()
    images = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(dev)
    base = {"what": f"CD-L {steps} steps", "model": model_name, "shape": f"{batch}x3x32x32", "dtype": "float32",
            "note": note}
    published, _ = median_seconds(functools.partial(published_cd_masks, model, images, steps=steps), dev, repeats)
    for p in model.parameters():
        p.grad = None
    out = [{**base, "impl": "published-way loop", "images_per_s": batch / published, "speedup": 1.0}]
    variants = [("fused ops", {})]
    if dev.type == "cuda":
        variants.append(("fused ops + bf16 autocast", {"amp": True}))
    for name, kwargs in variants:
        cd = CognitiveDistillation(model, steps=steps, **kwargs)
        seconds, _ = median_seconds(functools.partial(cd, images), dev, repeats)
        out.append({**base, "impl": name, "images_per_s": batch / seconds, "speedup": published / seconds})
    return out


def run(model: str, batch_size: int, steps: int, repeats: int, device: str, results: str, note: str) -> None:
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    dev = resolve_device(device)
    rows = rows_for(model, dev, batch_size, steps, repeats, note)
    print(table(rows, ["what", "model", "impl", "shape", "images_per_s", "speedup"]), "\n")
    print(f"wrote {save(rows, dev, 'cd', results)}")
