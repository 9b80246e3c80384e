"""The EBYD studies behind the README's figures, one command each:

- `robustfast expose-models` (`models_study`): model detection and MMBD over backdoored and clean models of
  several seeds (the issue's ≥ 5 + 5), with the detection recipe as written (SGD lr 0.005) and with its lr
  calibrated on held-out clean reference models (other seeds, never the models under test).
- `robustfast expose-table` (`exposure_table`): every exposure method × every downstream task (label detection,
  the model-detection statistic, Neural Cleanse, MMBD, Cognitive Distillation) on one backdoored model per trigger,
  plus RNP's removal, with the original model as the baseline row.

Models are trained by `digits_setting`; `cache` (a folder) keeps them between runs.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from robustfast._util.device import resolve_device
from robustfast._util.tables import table
from robustfast.backdoor.detect import backdoor_test_set, detect
from robustfast.backdoor.ebyd_demo import CUL_LR
from robustfast.backdoor.ebyd_setup import Setting, digits_setting
from robustfast.backdoor.expose import METHODS, SWEEP_KEY, expose
from robustfast.backdoor.expose_data import crop_flip, histogram, predictions, snapshot
from robustfast.backdoor.expose_detect import (
    CALIBRATION_LRS,
    DETECT_CUL,
    THRESHOLD,
    calibrate_detection,
    detect_models,
    variance_score,
)
from robustfast.backdoor.mmbd import mmbd
from robustfast.backdoor.neural_cleanse import neural_cleanse
from robustfast.backdoor.rnp import rnp



def setting(trigger: str | None, seed: int, *, cache=None, **kw) -> Setting:
    """digits_setting(trigger, seed=seed, **kw), loaded from / saved to `cache` when given."""
    path = None
    if cache is not None:
        tag = "-".join(f"{k}={v}" for k, v in sorted(kw.items()) if k != "device")
        path = Path(cache) / f"{trigger or 'clean'}-seed{seed}-{tag}.pt"
        if path.is_file():
            return torch.load(path, weights_only=False, map_location=kw.get("device", "cpu"))
    s = digits_setting(trigger, seed=seed, **kw)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(s, path)
    return s


def _accuracy(model, data) -> float:
    x, y = data.tensors
    return (predictions(model, x).cpu() == y).double().mean().item()


def _rates(flags: list[bool], n_bd: int) -> tuple[float, float]:
    return sum(flags[:n_bd]) / n_bd, sum(flags[n_bd:]) / max(len(flags) - n_bd, 1)


def models_study(seeds=(0, 1, 2, 3, 4), ref_seeds=(5, 6, 7), *, trigger: str = "badnets", size: int = 16,
                 arch: str = "smallcnn", width: int = 8, epochs: int = 10, lrs=CALIBRATION_LRS,
                 mmbd_steps: int = 300, mmbd_images: int = 30, run_mmbd: bool = True, run_detection: bool = True,
                 device: str = "auto", cache=None) -> dict:
    """Backdoored (trigger) and clean models of `seeds`, clean reference models of `ref_seeds`; model detection
    (spec recipe, then calibrated on the references) and MMBD on the models of `seeds`. Returns the figures."""
    dev = resolve_device(device)
    kw = {"size": size, "arch": arch, "width": width, "epochs": epochs, "device": dev}
    start = time.perf_counter()
    bds = [setting(trigger, s, cache=cache, **kw) for s in seeds]
    cls = [setting(None, s, cache=cache, **kw) for s in seeds]
    refs = [setting(None, s, cache=cache, **kw) for s in ref_seeds] if run_detection else []
    defense, test = bds[0].defense, bds[0].test
    n = len(seeds)
    names = [f"backdoored {s}" for s in seeds] + [f"clean {s}" for s in seeds]
    models = [s.model for s in bds + cls]
    print(f"{arch} on digits 3x{size}x{size}, {trigger} 10 % all-to-one (target {bds[0].target}): "
          f"{len(models) + len(refs)} models in {time.perf_counter() - start:.0f} s; clean accuracy "
          f"{[round(_accuracy(m, test), 3) for m in models]}; ASR "
          f"{[round(_accuracy(s.model, s.asr), 3) for s in bds]}")
    out = {"names": names, "setting": {**{k: v for k, v in kw.items() if k != "device"}, "trigger": trigger,
                                       "seeds": list(seeds), "ref_seeds": list(ref_seeds)}}
    rows = {name: {"model": name} for name in names}

    def detection(label: str, lr: float) -> dict:
        t = time.perf_counter()
        res = detect_models(models, defense, test, augment=crop_flip, lr=lr)
        tpr, fpr = _rates([r.backdoored for r in res], n)
        for name, r in zip(names, res, strict=True):
            rows[name][f"s ({label})"] = r.score
            rows[name][f"argmax h ({label})"] = r.label
        print(f"model detection, {label} (SGD lr {lr:g}, {DETECT_CUL['epochs']} epochs; s > {THRESHOLD}): "
              f"TPR {tpr:.2f}, FPR {fpr:.2f} ({time.perf_counter() - t:.0f} s)")
        return {"lr": lr, "scores": [r.score for r in res], "labels": [r.label for r in res], "tpr": tpr,
                "fpr": fpr}

    if run_detection:
        out["spec"] = detection("spec lr", DETECT_CUL["lr"])
        t = time.perf_counter()
        cal = calibrate_detection([s.model for s in refs], defense, test, lrs=lrs, augment=crop_flip)
        print(f"\ncalibration on the clean reference models (seeds {list(ref_seeds)}; "
              f"{time.perf_counter() - t:.0f} s):")
        print(cal.table())
        out["calibration"] = {"lr": cal.lr, "scores": {str(k): v for k, v in cal.scores.items()}}
        if cal.lr is not None:
            out["calibrated"] = detection("calibrated", cal.lr)
    if run_mmbd:
        t = time.perf_counter()
        found = [mmbd(m, tuple(test.tensors[0].shape[1:]), steps=mmbd_steps, images=mmbd_images) for m in models]
        tpr, fpr = _rates([r.backdoored for r in found], n)
        for name, r in zip(names, found, strict=True):
            rows[name]["MMBD p"] = r.p_value
            rows[name]["MMBD class"] = r.label
        print(f"MMBD ({mmbd_steps} steps, {mmbd_images} images per class; p <= 0.05): TPR {tpr:.2f}, FPR {fpr:.2f} "
              f"({time.perf_counter() - t:.0f} s)")
        out["mmbd"] = {"p": [r.p_value for r in found], "labels": [r.label for r in found], "tpr": tpr, "fpr": fpr,
                       "steps": mmbd_steps, "images": mmbd_images}
    print()
    print(table(list(rows.values()), list(next(iter(rows.values())))))
    return out


def _pick(exposure) -> int:
    """The trajectory row a defender keeps without knowing the trigger: the last epoch for cul / random-label;
    for a sweep, the grid point whose predictions on the defense set collapse most (largest max h, first on ties)."""
    if exposure.method not in SWEEP_KEY:
        return len(exposure.trajectory) - 1
    peaks = [r["hist"].max().item() for r in exposure.trajectory]
    return peaks.index(max(peaks))


def exposure_table(triggers=("badnets", "blend", "wanet"), *, seed: int = 0, size: int = 16,
                   arch: str = "smallcnn", width: int = 8, epochs: int = 10, cul_lr: float = CUL_LR,
                   stop_acc: float | None = None, nc_epochs: int = 10, nc_per_class: int = 20, mmbd_steps: int = 300,
                   mmbd_images: int = 30, cd_steps: int = 100, cd_rate: float = 0.1,
                   methods=METHODS, device: str = "auto", cache=None) -> list[dict]:
    """Per trigger: one backdoored model; for the original and each exposure method (spec defaults, CUL at
    `cul_lr`, stopped at `stop_acc` when given; a sweep's point chosen by _pick): accuracy on D, ASR, argmax h
    and h(t) on D (label detection), s on the test set (the model-detection statistic), NC's anomaly index of t
    and whether t is flagged with the smallest norm, MMBD's p and class (None when `mmbd_steps` is 0), CD-L's
    AUROC (β 10, as the CD release) on the test set with a share `cd_rate` triggered. Then RNP. Returns one row
    per (trigger, method), then one per trigger for RNP."""
    dev = resolve_device(device)
    kw = {"size": size, "arch": arch, "width": width, "epochs": epochs, "device": dev}
    rows, removal = [], []
    for trigger in triggers:
        start = time.perf_counter()
        s = setting(trigger, seed, cache=cache, **kw)
        t = s.target
        x, y = s.test.tensors
        keep = [i for c in range(10) for i in (y == c).nonzero().flatten()[:nc_per_class].tolist()]
        nc_data = TensorDataset(x[keep], y[keep])
        cd_x, cd_mask = backdoor_test_set(x, y, trigger, rate=cd_rate, target=t, seed=seed)
        print(f"{trigger}: clean accuracy {_accuracy(s.model, s.test):.3f}, ASR {_accuracy(s.model, s.asr):.3f}",
              flush=True)
        for method in ("none", *methods):
            if method == "none":
                model, point = s.model, ""
                row = {"epoch": 0, **snapshot(s.model, *s.defense.tensors, 10, s.asr.tensors)}
            else:
                opts = {"lr": cul_lr, "stop_acc": stop_acc} if method == "cul" else {}
                exp = expose(s.model, s.defense, method, seed=seed, asr_set=s.asr, augment=crop_flip, **opts)
                i = _pick(exp)
                model, row = exp.models[min(i, len(exp.models) - 1)], exp.trajectory[i]
                point = f"{SWEEP_KEY[method]}={row[SWEEP_KEY[method]]}" if method in SWEEP_KEY else f"ep {row['epoch']}"
            score = variance_score(histogram(predictions(model, x).cpu(), 10))
            nc = neural_cleanse(model, nc_data, epochs=nc_epochs, seed=seed)
            found = (mmbd(model, tuple(x.shape[1:]), steps=mmbd_steps, images=mmbd_images, seed=seed)
                     if mmbd_steps else None)
            cd = detect(model, TensorDataset(cd_x, y), poison_mask=cd_mask, steps=cd_steps, beta=10.0,
                        progress=False)
            rows.append({"trigger": trigger, "exposure": method, "point": point, "acc D": row["acc"],
                         "ASR": row["asr"], "argmax h": int(row["hist"].argmax()), "h(t)": row["hist"][t].item(),
                         "s test": score, "NC index t": nc.anomaly[t].item(),
                         "NC flags t": t in nc.flagged and int(nc.norms.argmin()) == t,
                         "MMBD p": None if found is None else found.p_value,
                         "MMBD class": None if found is None else found.label, "CD AUROC": cd.auroc})
            print(f"  {method} done ({time.perf_counter() - start:.0f} s)", flush=True)
        res = rnp(s.model, s.defense, test_set=s.test, asr_set=s.asr, augment=crop_flip, seed=seed)
        ok = [i for i, tau in enumerate(res.taus) if tau <= 0.3 and res.asr[i] < 0.10]
        best = max(ok, key=lambda i: res.clean_acc[i]) if ok else None
        removal.append({"trigger": trigger, "CA": res.base_clean_acc, "ASR": res.base_asr,
                        "tau": None if best is None else res.taus[best],
                        "CA after": None if best is None else res.clean_acc[best],
                        "ASR after": None if best is None else res.asr[best],
                        "unlearn epochs": len(res.unlearn_acc)})
    cols = list(rows[0])
    print("\n" + table(rows, cols))
    print("\nRNP (best tau <= 0.3 with ASR < 0.10, by CA):")
    print(table(removal, list(removal[0])))
    return rows + [{"rnp": r} for r in removal]

