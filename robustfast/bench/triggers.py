"""`robustfast bench triggers`: poisoning throughput on a mixed-trigger batch.

Rows, same images and trigger assignment in one run:
- the fused op `apply_triggers` per backend on the eight pixel triggers (float32 N×C×H×W and uint8 N×H×W×C);
- the same batch image by image through the plain-PyTorch reference, as the reference code poisons (a Python
  loop calling one trigger on one image);
- every trigger of the zoo (WaNet and IAD as batched torch stages) through robustfast.backdoor.apply_stacked,
  against a loop of Trigger.apply over single images.
"""
from __future__ import annotations

import functools

import torch

import robustfast
from robustfast import _backend
from robustfast.backdoor import apply_stacked, make_trigger
from robustfast.backdoor.stack import pixel_table
from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds, save, table
from robustfast.ops import apply_triggers
from robustfast.reference import apply_triggers as reference

PIXEL_TRIGGERS = ("onepixel", "badnets", "fourcorner", "blend", "sig", "trojan", "smooth", "nashville")
ALL_TRIGGERS = (*PIXEL_TRIGGERS, "wanet", "iad")


def mixed_batch(n: int, size: int, count: int, device: torch.device, uint8: bool):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, size, size, generator=g)
    ids = torch.randint(-1, count, (n,), generator=g)
    if uint8:
        images = (images * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return images.to(device), ids.to(device)


def _per_image_reference(images, ids, table, uint8: bool):
    """One reference call per image: the reference code's loop."""
    x = images.permute(0, 3, 1, 2) if uint8 else images
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        k = ids[i:i + 1]
        out[i:i + 1] = reference.apply_triggers(x[i:i + 1], k, table["flags"], table["lut"], table["colour"],
                                                table["weight"], table["pattern"], k.clamp(min=0), table["additive"])
    return out.permute(0, 2, 3, 1) if uint8 else out


def op_rows(device: torch.device, n: int, size: int, repeats: int) -> list[dict]:
    triggers = [make_trigger(name) for name in PIXEL_TRIGGERS]
    backends = [b for b in _backend.available(device) if b in ("triton", "cpp", "cuda")
                and not (b == "triton" and device.type == "cpu")]
    rows = []
    for uint8 in (False, True):
        images, ids = mixed_batch(n, size, len(triggers), device, uint8)
        dtype = torch.uint8 if uint8 else torch.float32
        tab = pixel_table(triggers, (3, size, size), reference.value_range(dtype), reference.compute_dtype(dtype),
                          device)
        tab.pop("fresh")
        shape = f"{n}x{size}x{size}x3" if uint8 else f"{n}x3x{size}x{size}"
        base, _ = median_seconds(functools.partial(_per_image_reference, images, ids, tab, uint8), device,
                                 max(1, repeats // 2))
        common = {"what": f"apply_triggers, {len(triggers)} pixel triggers", "dtype": str(dtype).split(".")[1],
                  "shape": shape}
        rows.append({**common, "impl": "image by image (reference loop)", "ms": 1e3 * base, "images/s": n / base,
                     "speedup": 1.0})
        for backend in ["reference", *backends]:
            with robustfast.use_backend(backend):
                seconds, _ = median_seconds(functools.partial(apply_triggers, images, ids, **tab), device, repeats)
            rows.append({**common, "impl": f"fused ({backend})", "ms": 1e3 * seconds, "images/s": n / seconds,
                         "speedup": base / seconds})
    return rows


def _per_image_apply(images, ids, triggers, generator):
    out = images.clone()
    for i, k in enumerate(ids.tolist()):
        if k >= 0:
            out[i:i + 1] = triggers[k].apply(images[i:i + 1], generator)
    return out


def zoo_rows(device: torch.device, n: int, size: int, repeats: int) -> list[dict]:
    triggers = [make_trigger(name) for name in ALL_TRIGGERS]
    images, ids = mixed_batch(n, size, len(triggers), device, uint8=False)
    gen = torch.Generator().manual_seed(0)
    base, _ = median_seconds(functools.partial(_per_image_apply, images, ids, triggers, gen), device,
                             max(1, repeats // 2))
    seconds, _ = median_seconds(functools.partial(apply_stacked, images, ids, triggers, gen), device, repeats)
    common = {"what": f"all {len(triggers)} triggers (WaNet, IAD as torch stages)", "dtype": "float32",
              "shape": f"{n}x3x{size}x{size}"}
    return [{**common, "impl": "Trigger.apply image by image", "ms": 1e3 * base, "images/s": n / base,
             "speedup": 1.0},
            {**common, "impl": "apply_stacked (auto backend)", "ms": 1e3 * seconds, "images/s": n / seconds,
             "speedup": base / seconds}]


def run(batch_size: int, size: int, repeats: int, device: str, results: str) -> list[dict]:
    dev = resolve_device(device)
    rows = op_rows(dev, batch_size, size, repeats) + zoo_rows(dev, batch_size, size, repeats)
    print(table(rows, ["what", "impl", "dtype", "shape", "ms", "images/s", "speedup"]))
    print(f"\nwrote {save(rows, dev, 'triggers', results)}")
    return rows
