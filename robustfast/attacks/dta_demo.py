"""The DTA section of `robustfast demo`: a small ViT pre-trained (supervised) on digits 0–4, a victim fine-tuned
on digits 5–9, and DTA from the pre-trained encoder against it, beside PGD on f₀'s own head and random noise."""
from __future__ import annotations

import torch

from robustfast._util.device import resolve_device
from robustfast.attacks.dta import DTA, random_noise
from robustfast.attacks.dta_digits import EPS, FINETUNE, digits_tasks
from robustfast.attacks.evaluate import transfer_asr
from robustfast.attacks.pgd import PGD
from robustfast.training.vit import finetune, pretrain


def section(device: str = "auto", out=None, *, epochs: int = 8, quick: bool = False) -> dict:
    """{"layer", "dta", "pgd_f0", "noise", "n"}: ASR on the downstream test set (the first 64 images with
    `quick`, which also shortens training and the attack to a check that it runs)."""
    dev = resolve_device(str(device))
    tasks = digits_tasks(seed=0)
    pre_epochs, ft_epochs, steps = (2, 2, 3) if quick else (25, 15, 20)
    print(f"DTA: pre-training a 6-block ViT on digits 0-4 ({pre_epochs} epochs), fine-tuning on 5-9 "
          f"({ft_epochs} epochs)")
    pre = pretrain(tasks["upstream_train"], "supervised", epochs=pre_epochs, seed=0, device=dev)
    victim = finetune(pre.encoder, tasks["downstream_train"], "full", epochs=ft_epochs, **FINETUNE["full"])
    x, y = (t[:64] if quick else t for t in tasks["downstream_test"].tensors)
    x, y = x.to(dev), y.to(dev)
    probe = tasks["upstream_train"].tensors[0][:32 if quick else 64].to(dev)
    dta = DTA(pre.encoder, eps=EPS, steps=steps, probe=probe)
    src = torch.nn.Sequential(pre.encoder, pre.head).eval()
    with torch.no_grad():
        src_pred = src(x).argmax(1)
    result = {"layer": None, "n": 0}
    for name, adv in (("dta", dta(x)), ("pgd_f0", PGD(src, eps=EPS, alpha=EPS / 4, steps=steps)(x, src_pred)),
                      ("noise", random_noise(x, EPS))):
        r = transfer_asr(victim, x, adv, y)
        result[name], result["n"] = r["asr"], r["n"]
    result["layer"] = dta.search.layer
    print(f"DTA (searched block {result['layer']}) ASR {100 * result['dta']:.1f}%, PGD on f0 "
          f"{100 * result['pgd_f0']:.1f}%, noise {100 * result['noise']:.1f}% on {result['n']} images")
    return result
