"""`robustfast bench ebyd`: the three batched paths of Expose Before You Defend against running the same work one
item at a time, as the reference code does, on the same models and data in one run (digits 3×16×16, SmallCNN):
- Neural Cleanse: all classes in one batch of K·B stamped images (nc_stamp) against class by class;
- RNP's τ sweep: one vmapped pass over the stacked BN scales against one evaluation per τ;
- model detection: CUL on M stacked models (stack_module_state + vmap) against one model after another."""
from __future__ import annotations

import functools

import torch
from torch.utils.data import TensorDataset

from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds, save, table
from robustfast.backdoor.ebyd_setup import digits_setting
from robustfast.backdoor.expose_data import crop_flip
from robustfast.backdoor.expose_detect import detect_model, detect_models
from robustfast.backdoor.neural_cleanse import neural_cleanse
from robustfast.backdoor.rnp import TAUS, pruned_bn, sweep_counts

NOTE = "shared, loaded machine (other jobs running): ratios are indicative"


def _nc_per_class(model, data, epochs):
    return [neural_cleanse(model, data, classes=[k], epochs=epochs) for k in range(10)]


def run(device: str = "auto", models: int = 4, nc_epochs: int = 2, cul_epochs: int = 2, repeats: int = 1,
        quick: bool = False, results: str = "benchmarks/results", note: str = NOTE) -> list[dict]:
    dev = resolve_device(device)
    if quick:
        models, nc_epochs, cul_epochs = 2, 1, 1
        note = f"{note}; --quick: models trained 2 epochs, 1 epoch of NC and CUL"
    settings = [digits_setting("badnets", seed=s, epochs=2 if quick else 10, device=dev) for s in range(models)]
    s = settings[0]
    x, y = s.test.tensors
    keep = [i for c in range(10) for i in (y == c).nonzero().flatten()[:20].tolist()]
    nc_data = TensorDataset(x[keep], y[keep])
    g = torch.Generator().manual_seed(0)
    masks = {n: torch.rand(m.weight.shape, generator=g).to(dev) for n, m in s.model.named_modules()
             if isinstance(m, torch.nn.BatchNorm2d)}
    stacked = pruned_bn(s.model, masks, TAUS)
    nets = [t.model for t in settings]
    cul = {"epochs": cul_epochs}
    cases = [
        ("neural cleanse, 10 classes", f"{len(nc_data)} images, {nc_epochs} epochs",
         functools.partial(neural_cleanse, s.model, nc_data, epochs=nc_epochs),
         functools.partial(_nc_per_class, s.model, nc_data, nc_epochs), "class by class"),
        ("rnp tau sweep", f"{len(TAUS)} taus x {len(y)} test images",
         functools.partial(sweep_counts, s.model, stacked, x, y, 10),
         functools.partial(sweep_counts, s.model, stacked, x, y, 10, per_tau=True), "one pass per tau"),
        ("model detection (CUL)", f"{models} models, {cul_epochs} epochs",
         functools.partial(detect_models, nets, s.defense, s.test, augment=crop_flip, **cul),
         lambda: [detect_model(m, s.defense, s.test, augment=crop_flip, **cul) for m in nets], "model by model"),
    ]
    rows = []
    for what, shape, batched, baseline, base_name in cases:
        base, _ = median_seconds(baseline, dev, repeats, warmup=0)
        fast, _ = median_seconds(batched, dev, repeats, warmup=0)
        rows.append({"what": what, "shape": shape, "impl": base_name, "s": base, "speedup": 1.0, "note": note})
        rows.append({"what": what, "shape": shape, "impl": "batched", "s": fast, "speedup": base / fast,
                     "note": note})
    print(table(rows, ["what", "shape", "impl", "s", "speedup"]))
    print(f"wrote {save(rows, dev, 'ebyd', results)}")
    return rows
