"""`robustfast bench pgd`: the pgd_step op per backend, and PGD on PreActResNet18 beside the reference loop,
torchattacks and ART, on the same model and inputs, in one run."""
from __future__ import annotations

import copy
import functools
import importlib.util

import numpy as np
import torch

import robustfast
from robustfast import _backend
from robustfast.attacks import PGD
from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds, save, table
from robustfast.models import PreActResNet18
from robustfast.ops import pgd_step
from robustfast.attacks.published import pgd_attack

EPS, ALPHA = 8 / 255, 2 / 255


def op_rows(device: torch.device, batch_size: int, repeats: int) -> list[dict]:
    g = torch.Generator(device=device).manual_seed(0)
    shape = (batch_size, 3, 32, 32)
    x0 = torch.rand(shape, generator=g, device=device)
    x = (x0 + 0.01 * torch.randn(shape, generator=g, device=device)).clamp(0, 1)
    grad = torch.randn(shape, generator=g, device=device)
    backends = [b for b in _backend.available(device) if not (b == "triton" and device.type == "cpu")]
    rows = []
    for norm in ("Linf", "L2"):
        base = None
        for backend in ["reference"] + [b for b in backends if b != "reference"]:
            with robustfast.use_backend(backend):
                step = functools.partial(pgd_step, x, grad, x0, alpha=ALPHA, eps=EPS, norm=norm)
                seconds, _ = median_seconds(step, device, repeats=max(20, repeats))
            base = base or seconds
            rows.append({"what": f"pgd_step {norm}", "impl": backend, "dtype": "float32",
                         "shape": "x".join(map(str, shape)), "ms": 1e3 * seconds,
                         "GB/s": 4 * x.numel() * x.element_size() / seconds / 1e9, "speedup": base / seconds})
    return rows


def _art_attack(model, device, batch_size, steps):
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=(3, 32, 32), nb_classes=10,
                            clip_values=(0.0, 1.0), device_type="gpu" if device.type == "cuda" else "cpu")
    atk = ProjectedGradientDescentPyTorch(clf, norm=np.inf, eps=EPS, eps_step=ALPHA, max_iter=steps,
                                          batch_size=batch_size, num_random_init=1, verbose=False)
    return lambda x, y: torch.from_numpy(atk.generate(x=x.cpu().numpy(), y=y.cpu().numpy())).to(device)


def bf16_pays_off(device: torch.device) -> bool:
    """bf16 autocast pays off on GPUs with bf16 tensor cores; on CPUs without bf16 units it is far slower."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def attack_rows(device: torch.device, batch_size: int, steps: int, repeats: int, peers: bool,
                fast: bool) -> list[dict]:
    torch.manual_seed(0)
    model = PreActResNet18(num_classes=10).to(device).eval()
    images = torch.rand(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        labels = model(images).argmax(1)  # the model's own predictions: every image starts correct
    attacks = {
        "robustfast": PGD(model, eps=EPS, alpha=ALPHA, steps=steps),
        "reference loop": lambda x, y: pgd_attack(model, x, y, EPS, ALPHA, steps),
    }
    if fast:
        # channels_last converts the model in place: the rows after it run on a channels_last copy.
        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        attacks["robustfast compile"] = PGD(model, eps=EPS, alpha=ALPHA, steps=steps, compile=True)
        attacks["robustfast channels_last"] = PGD(model_cl, eps=EPS, alpha=ALPHA, steps=steps, channels_last=True)
        if bf16_pays_off(device):
            attacks["robustfast bf16+compile"] = PGD(model_cl, eps=EPS, alpha=ALPHA, steps=steps, amp=True,
                                                     compile=True, channels_last=True)
    if peers and importlib.util.find_spec("torchattacks"):
        import torchattacks

        attacks["torchattacks"] = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=steps, random_start=True)
    if peers and importlib.util.find_spec("art"):
        attacks["ART"] = _art_attack(model, device, batch_size, steps)
    rows = []
    for name, attack in attacks.items():
        seconds, adv = median_seconds(functools.partial(attack, images, labels), device, repeats)
        with torch.no_grad():
            kept = (model(adv).argmax(1) == labels).float().mean().item()
        dtype = "bf16 autocast" if "bf16" in name else "float32"
        rows.append({"what": f"PGD-{steps} Linf PreActResNet18", "impl": name, "dtype": dtype,
                     "shape": f"{batch_size}x3x32x32", "ms": 1e3 * seconds, "images/s": batch_size / seconds,
                     "robust acc": kept})
    by_name = {r["impl"]: r["images/s"] for r in rows}
    for r in rows:
        r["vs reference"] = r["images/s"] / by_name["reference loop"]
        if "torchattacks" in by_name:
            r["vs torchattacks"] = r["images/s"] / by_name["torchattacks"]
    return rows


def run(batch_size: int, steps: int, repeats: int, device: str, peers: bool, fast: bool, results: str) -> None:
    dev = resolve_device(device)
    ops = op_rows(dev, batch_size, repeats)
    print(table(ops, ["what", "impl", "dtype", "shape", "ms", "GB/s", "speedup"]), "\n")
    attacks = attack_rows(dev, batch_size, steps, repeats, peers, fast)
    print(table(attacks, ["what", "impl", "dtype", "shape", "ms", "images/s", "robust acc", "vs reference",
                          "vs torchattacks"]))
    print(f"\nwrote {save(ops + attacks, dev, 'pgd', results)}")
