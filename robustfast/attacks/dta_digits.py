"""The digits reproduction of spec dta.md §8: pre-train on classes 0–4, fine-tune victims on classes 5–9
(relabelled), attack the victims from f₀ with DTA and the baselines, and report ASR per victim and attack."""
from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from robustfast.attacks.dta import DTA, layer_sweep, random_noise
from robustfast.attacks.evaluate import transfer_asr
from robustfast.attacks.pgd import PGD
from robustfast.data import digits
from robustfast.training.vit import FINETUNE_LORA_RANK, Pretrained, finetune, pretrain

# Spec §8's schedule ("full"), a shorter one for the slow CI-size tests ("ci") and the default test suite's
# ("test": supervised only, 150 test images, 10 attack steps, full fine-tuning at 5x the lr for half the epochs).
# "images" takes the first n downstream test images (all when absent); "lr" overrides FINETUNE's.
SCALES = {
    "full": {"pretrain": {"supervised": 60, "simclr": 150, "mae": 100}, "full": 40, "linear": 80, "lora": 40,
             "probes": 64},
    "ci": {"pretrain": {"supervised": 25, "simclr": 40, "mae": 30}, "full": 15, "linear": 30, "lora": 15,
           "probes": 32},
    "test": {"pretrain": {"supervised": 20, "simclr": 40, "mae": 30}, "full": 20, "linear": 30, "lora": 20,
             "probes": 32, "images": 150, "steps": 10, "lr": {"full": 1e-3, "lora": 1e-3}},
}
PRETRAIN_LR = {"supervised": 1e-3, "simclr": 1e-3, "mae": 1e-3}
FINETUNE = {"full": {"lr": 2e-4}, "linear": {"lr": 3e-3}, "lora": {"lr": 1e-3, "lora_rank": FINETUNE_LORA_RANK}}
EPS = 16 / 255


def digits_tasks(seed: int = 0, size: int = 16) -> dict[str, TensorDataset]:
    """Digits at size×size, 3 channels, 70/30 per class: "upstream_*" holds classes 0–4 (pre-training, probes,
    probe heads), "downstream_*" classes 5–9 relabelled 0–4 (the victims' private task)."""
    out = {}
    for split in ("train", "test"):
        x, y = digits(split, size=size, channels=3, seed=seed, test_fraction=0.3).tensors
        up = y < 5
        out[f"upstream_{split}"] = TensorDataset(x[up], y[up])
        out[f"downstream_{split}"] = TensorDataset(x[~up], y[~up] - 5)
    return out


def victims(f0, tasks, scale: dict, seed: int, schemes=("full", "linear", "lora"), progress=False) -> dict:
    lr = scale.get("lr", {})
    return {s: finetune(f0, tasks["downstream_train"], s, epochs=scale[s], seed=seed, progress=progress,
                        **{**FINETUNE[s], **({"lr": lr[s]} if s in lr else {})}) for s in schemes}


def source_model(pre, tasks, scale: dict, seed: int, progress=False) -> nn.Module:
    """f₀ with its own head (supervised) or a linear probe fitted on attacker-side data (SSL)."""
    if pre.head is not None:
        return nn.Sequential(pre.encoder, pre.head).eval()
    return finetune(pre.encoder, tasks["upstream_train"], "linear", epochs=scale["linear"], seed=seed,
                    progress=progress, **FINETUNE["linear"])


def attack_victims(pre: Pretrained, vics: dict, tasks: dict, scale: str = "ci", seed: int = 0, steps: int = 20,
                   sweep: bool = True, progress: bool = False, sweep_layers=None) -> dict:
    """DTA (searched layer) and the baselines against each victim on the downstream test set: {"layer",
    "search", "rows": [{victim, attack, layer, asr, clean_acc, n}], "sweep": {layer: ASR} on the full-FT victim
    at `sweep_layers` (default every block)}."""
    sc = SCALES[scale]
    f0 = pre.encoder
    x, y = (t[:sc.get("images")] for t in tasks["downstream_test"].tensors)
    probe = tasks["upstream_train"].tensors[0][:sc["probes"]]
    kw = {"eps": EPS, "steps": steps, "seed": seed}
    dta = DTA(f0, probe=probe, **kw)
    dta.search = dta.search_layer(probe)
    src = source_model(pre, tasks, sc, seed, progress)
    with torch.no_grad():
        src_pred = src(x).argmax(1)
    attacks = {
        "dta": lambda: dta(x),
        "pgd_f0": lambda: PGD(src, eps=EPS, alpha=EPS / 4, steps=steps, seed=seed)(x, src_pred),
        "final_flat": lambda: DTA(f0, layer=f0.num_layers, reduction="flat", **kw)(x),
        "noise": lambda: random_noise(x, EPS, seed),
    }
    rows = []
    for name, make in tqdm(attacks.items(), desc="attacks", disable=not progress, leave=False):
        adv = make()
        for victim, model in vics.items():
            r = transfer_asr(model, x, adv, y)
            rows.append({"victim": victim, "attack": name, "layer": dta.search.layer if name == "dta" else None,
                         "asr": r["asr"], "clean_acc": r["clean_acc"], "n": r["n"]})
    result = {"layer": dta.search.layer, "search": dta.search.scores, "rows": rows}
    if sweep and "full" in vics:
        result["sweep"] = layer_sweep(f0, vics["full"], x, y, sweep_layers, **kw)
    return result


def run(method: str = "supervised", seed: int = 0, scale: str = "ci", sweep: bool = True,
        schemes=("full", "linear", "lora"), steps: int | None = None, progress: bool = False,
        sweep_layers=None) -> dict:
    """One pre-training method and seed end to end: pre-train, fine-tune the victims, attack_victims (`steps`
    None: the scale's, else 20); {"method", "seed", "seconds", **attack_victims(...)}."""
    t0 = time.perf_counter()
    sc = SCALES[scale]
    tasks = digits_tasks(seed)
    pre = pretrain(tasks["upstream_train"], method, epochs=sc["pretrain"][method], lr=PRETRAIN_LR[method],
                   seed=seed, progress=progress)
    vics = victims(pre.encoder, tasks, sc, seed, schemes, progress)
    steps = sc.get("steps", 20) if steps is None else steps
    result = attack_victims(pre, vics, tasks, scale, seed, steps, sweep, progress, sweep_layers)
    return {"method": method, "seed": seed, **result, "seconds": time.perf_counter() - t0}


def asr(result: dict, victim: str, attack: str) -> float:
    return next(r["asr"] for r in result["rows"] if r["victim"] == victim and r["attack"] == attack)
