"""The robust-evaluation suite of the robust_wrn spec (§3): clean accuracy, PGD-20, CW∞, AutoAttack (standard) and
robustfast's batched APGD-CE / APGD-T, with per-sample robustness flags, the local Lipschitz estimate and the
"stable" share, written to a JSON report. Under torchrun each rank attacks a shard and the flags are gathered.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from robustfast._util.atomic import write_json
from robustfast._util.checks import check_images, is_int, is_real, require
from robustfast._util.frozen import frozen_eval, model_device
from robustfast.attacks.apgd import APGD, lipschitz_terms
from robustfast.attacks.pgd import PGD

ATTACKS = ("clean", "pgd20", "cw", "autoattack", "apgd-ce", "apgd-t")


def autoattack_backend() -> str:
    """"autoattack" (the official package) when installed, else "torchattacks"."""
    return "autoattack" if importlib.util.find_spec("autoattack") is not None else "torchattacks"


def _autoattack(model, images, labels, eps, seed, batch_size, classes):
    if autoattack_backend() == "autoattack":
        from autoattack import AutoAttack

        adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=seed, verbose=False)
        return adversary.run_standard_evaluation(images, labels, bs=batch_size)
    import torchattacks

    return torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=classes,
                                   seed=seed)(images, labels)


def _check(model, data, attacks, eps, batch_size, seed):
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(data, TensorDataset):
        data = data.tensors[:2]
    if not (isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data)):
        raise ValueError("data must be a TensorDataset or an (images, labels) pair of tensors")
    images, labels = data
    check_images(images, "data images")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != (images.shape[0],):
        raise ValueError(f"data labels must be {images.shape[0]} integer class indices, got dtype {labels.dtype} "
                         f"and shape {tuple(labels.shape)}")
    if isinstance(attacks, str) or not all(a in ATTACKS for a in attacks):
        raise ValueError(f"attacks must be a sequence of names from {ATTACKS}, got {attacks!r}")
    require("eps", eps, is_real(eps) and 0 <= eps <= 1, "a number in [0, 1]")
    require("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an int >= 1")
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    return images, labels.long()


def evaluate_robustness(model: torch.nn.Module, data, attacks=("clean", "pgd20", "cw", "autoattack"),
                        eps: float = 8 / 255, batch_size: int = 256, *, pgd_alpha: float | None = None,
                        apgd_steps: int = 100, seed: int = 0, out=None, progress: bool = True) -> dict:
    """Accuracy of `model` on `data` (a TensorDataset or (images, labels), images in [0, 1]) under each attack of
    `attacks` (names from ATTACKS), L∞ at `eps`, in eval mode and fp32.

    pgd20: uniform start, 20 sign steps of `pgd_alpha` (ε/10: the spec's 0.8/255 at 8/255) on CE. cw: the same loop
    on −ReLU(z_y − max_{k≠y} z_k) (a sample stops once misclassified: its gradient is zero), one forward per step.
    autoattack: the standard version (APGD-CE, APGD-T, FAB-T, Square as a cascade on still-robust points) through the
    official `autoattack` package when installed, else `torchattacks.AutoAttack`. apgd-ce, apgd-t: robustfast's
    batched APGD (`apgd_steps` steps; APGD-T over 9 targets at once).
    A sample is robust to an attack when the model classifies it and its adversarial version correctly.

    Returns {"eps", "n", "accuracy": {attack: fraction}, "robust": {attack: per-sample bools}, "lipschitz",
    "stable"} (the last two from the PGD-20 points, when pgd20 runs) and writes it as JSON to `out` if given.
    """
    images, labels = _check(model, data, attacks, eps, batch_size, seed)
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() \
        else (0, 1)
    device = model_device(model) or torch.device("cpu")
    alpha = eps / 10 if pgd_alpha is None else pgd_alpha
    makers = {
        "pgd20": lambda: PGD(model, eps=eps, alpha=alpha, steps=20, seed=seed),
        "cw": lambda: PGD(model, eps=eps, alpha=alpha, steps=20, loss="cw", early_stop=True, seed=seed),
        "apgd-ce": lambda: APGD(model, eps=eps, steps=apgd_steps, seed=seed),
        "apgd-t": lambda: APGD(model, eps=eps, steps=apgd_steps, loss="dlr-targeted", seed=seed),
    }
    shard = torch.arange(len(images)).tensor_split(world_size)[rank]
    flags = {a: [] for a in attacks}
    clean_flags, lip, stable = [], [], []
    with frozen_eval(model):
        with torch.no_grad():
            classes = model(images[:1].to(device)).shape[1]
        hi = int(labels.max()) if len(labels) else 0
        if int(labels.min()) < 0 or hi >= classes:
            raise ValueError(f"data labels must lie in [0, {classes}) for a model with {classes} outputs")
        built = {a: makers[a]() for a in attacks if a in makers}
        batches = range(0, len(shard), batch_size)
        for i in tqdm(batches, desc="evaluate_robustness", disable=not progress or rank != 0):
            idx = shard[i:i + batch_size]
            x, y = images[idx].to(device), labels[idx].to(device)
            with torch.no_grad():
                clean_logits = model(x)
            ok = clean_logits.argmax(1) == y
            clean_flags.append(ok)
            for name in attacks:
                if name == "clean":
                    flags[name].append(ok)
                    continue
                if name == "autoattack":
                    with torch.enable_grad():
                        adv = _autoattack(model, x, y, eps, seed, batch_size, classes)
                else:
                    adv = built[name](x, y)
                with torch.no_grad():
                    adv_logits = model(adv)
                flags[name].append(ok & (adv_logits.argmax(1) == y))
                if name == "pgd20":
                    lip.append(lipschitz_terms(clean_logits, adv_logits, x, adv).mean()[None])
                    stable.append(adv_logits.argmax(1) == clean_logits.argmax(1))
    local = {name: torch.cat(v).cpu() if v else torch.zeros(0, dtype=torch.bool) for name, v in flags.items()}
    local["_lip"] = torch.cat(lip).cpu() if lip else torch.zeros(0)
    local["_stable"] = torch.cat(stable).cpu() if stable else torch.zeros(0, dtype=torch.bool)
    if world_size > 1:
        parts = [None] * world_size
        dist.all_gather_object(parts, local)
        local = {k: torch.cat([p[k] for p in parts]) for k in local}
    n = len(images)
    report = {"eps": float(eps), "n": n, "autoattack": autoattack_backend() if "autoattack" in attacks else None,
              "accuracy": {a: local[a].float().mean().item() if n else 0.0 for a in attacks},
              "robust": {a: local[a].tolist() for a in attacks}}
    if "pgd20" in attacks:
        report["lipschitz"] = local["_lip"].mean().item()  # the mean of the batch means ("LIP Avg")
        report["stable"] = local["_stable"].float().mean().item()
    if out is not None and rank == 0:
        write_json(Path(out), report)
    return report


def format_report(report: dict) -> str:
    """The report as a table: attack, accuracy, n."""
    lines = [f"{'attack':<12} {'accuracy':>9} {'n':>7}"]
    for name, acc in report["accuracy"].items():
        lines.append(f"{name:<12} {100 * acc:>8.2f}% {report['n']:>7}")
    if "lipschitz" in report:
        lines.append(f"local Lipschitz (PGD-20 points) {report['lipschitz']:.4g}; stable {100 * report['stable']:.2f}%")
    return "\n".join(lines)
