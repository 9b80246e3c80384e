"""`robustfast expose` and the EBYD section of `robustfast demo`: train a backdoored SmallCNN on digits, expose it,
and run every downstream task on the exposed model: the detected label, the model-detection score, Neural
Cleanse's anomaly indices (exposed beside original), Cognitive Distillation's AUROC (exposed beside original),
MMBD's p-value and RNP's τ table; draw h(t) over the exposure and NC's recovered masks."""
from __future__ import annotations

import time
from pathlib import Path

from torch.utils.data import TensorDataset

from robustfast._util.device import resolve_device
from robustfast._util.plot import pyplot
from robustfast._util.tables import table
from robustfast.backdoor.detect import backdoor_test_set, detect
from robustfast.backdoor.ebyd_setup import digits_setting
from robustfast.backdoor.expose import SWEEP_KEY, detect_label, expose
from robustfast.backdoor.expose_data import crop_flip
from robustfast.backdoor.expose_detect import detect_model
from robustfast.backdoor.mmbd import mmbd
from robustfast.backdoor.neural_cleanse import neural_cleanse
from robustfast.backdoor.rnp import rnp

CUL_LR = 1e-3  # for the digits models (SmallCNN, WRN-10-1); the spec's 1e-5 is ResNet-18 on CIFAR-10 (see the README)


def _plot(exposure, cleansed, target: int, path: Path) -> Path:
    plt = pyplot()
    key = SWEEP_KEY.get(exposure.method, "epoch")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), dpi=110,
                             gridspec_kw={"width_ratios": [1, 1.4]})
    xs = [r[key] for r in exposure.trajectory]
    axes[0].plot(xs, [r["hist"][target].item() for r in exposure.trajectory], label="h(t)")
    axes[0].plot(xs, [r["acc"] for r in exposure.trajectory], label="accuracy on D")
    if "asr" in exposure.trajectory[0]:
        axes[0].plot(xs, [r["asr"] for r in exposure.trajectory], label="ASR", linestyle="--")
    axes[0].set_xlabel(key)
    axes[0].set_title(f"{exposure.method}: target {target}")
    axes[0].legend()
    masks = cleansed.masks
    axes[1].imshow(masks.permute(1, 0, 2).reshape(masks.shape[1], -1).numpy(), cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("NC masks on the exposed model, classes 0-9")
    axes[1].axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run(trigger: str = "badnets", method: str = "cul", seed: int = 0, epochs: int = 10, size: int = 16,
        width: int = 8, arch: str = "smallcnn", cul_lr: float = CUL_LR, nc_epochs: int = 10, mmbd_steps: int = 300,
        cd_steps: int = 100, stop_acc: float | None = None, device: str = "auto",
        out: str | Path = "runs/expose", quick: bool = False) -> dict:
    """The whole pipeline on digits; returns its figures. quick: one training epoch and short downstream runs.
    stop_acc: CUL's early stop on the defense-set accuracy (None: all epochs); mmbd_steps=0 skips MMBD."""
    dev = resolve_device(device)
    start = time.perf_counter()
    s = digits_setting(trigger, seed=seed, size=size, width=width, epochs=1 if quick else epochs, device=dev,
                       arch=arch)
    name = f"SmallCNN-{width}" if arch == "smallcnn" else arch.upper()
    print(f"trained {name} on digits 3x{size}x{size} poisoned by {trigger} (10 %, all-to-one, target "
          f"{s.target}) in {time.perf_counter() - start:.1f} s; defense set: {len(s.defense)} clean images")
    kwargs = {"lr": cul_lr, "stop_acc": stop_acc} if method == "cul" else {}
    if quick and method in ("cul", "random-label", "anp"):
        kwargs["epochs"] = 2
    exposure = expose(s.model, s.defense, method, seed=seed, asr_set=s.asr, augment=crop_flip, **kwargs)
    print(f"\n{method} trajectory (acc and h on the defense set, ASR on the triggered test set):")
    print(exposure.table(target=s.target))
    label = detect_label(exposure)
    print(f"\ndetected backdoor label: {label} (target {s.target})")
    score = detect_model(s.model, s.defense, s.test, augment=crop_flip, seed=seed,
                         **({"epochs": 2} if quick else {}))
    print(f"model detection (the spec's SGD recipe, lr 0.005): score s = {score.score:.4f} -> "
          f"{'backdoored' if score.backdoored else 'clean'} (threshold 0.01; a small model needs the lr calibrated on "
          f"clean reference models, see robustfast expose-models)")
    x, y = s.test.tensors
    keep = [i for c in range(10) for i in (y == c).nonzero().flatten()[:20].tolist()]
    nc_data = TensorDataset(x[keep], y[keep])
    nc_epochs = 1 if quick else nc_epochs
    cleansed = neural_cleanse(exposure.model, nc_data, epochs=nc_epochs, seed=seed)
    original = neural_cleanse(s.model, nc_data, epochs=nc_epochs, seed=seed)
    rows = [{"class": k, "|m|_1 exposed": cleansed.norms[k].item(), "index exposed": cleansed.anomaly[k].item(),
             "|m|_1 original": original.norms[k].item(), "index original": original.anomaly[k].item()}
            for k in range(len(cleansed.classes))]
    print("\nNeural Cleanse (anomaly index > 2 and a small norm flags a class):")
    print(table(rows, list(rows[0])))
    print(f"flagged on the exposed model: {cleansed.flagged}; on the original: {original.flagged}")
    cd_x, cd_mask = backdoor_test_set(x, y, trigger, rate=0.1, target=s.target, seed=seed)
    cd_steps = 5 if quick else cd_steps
    cd = {name: detect(m, TensorDataset(cd_x, y), poison_mask=cd_mask, steps=cd_steps, beta=10.0, progress=False)
          for name, m in (("exposed", exposure.model), ("original", s.model))}
    print(f"\nCognitive Distillation (CD-L, beta 10, {cd_steps} steps) on the test set with 10 % triggered: AUROC "
          f"exposed {cd['exposed'].auroc:.3f}, original {cd['original'].auroc:.3f}")
    detected = None
    if mmbd_steps or quick:
        detected = mmbd(s.model, tuple(x.shape[1:]), steps=20 if quick else mmbd_steps, seed=seed)
        print(f"\nMMBD: p = {detected.p_value:.3g} -> {'backdoored' if detected.backdoored else 'clean'}, "
              f"class {detected.label}")
    else:
        print("\nMMBD: skipped (mmbd_steps=0)")
    removal = rnp(s.model, s.defense, test_set=s.test, asr_set=s.asr, augment=crop_flip, seed=seed,
                  **({"unlearn_epochs": 2, "recover_epochs": 2} if quick else {}))
    print(f"\nRNP: unlearning running accuracy per epoch {[round(a, 3) for a in removal.unlearn_acc]}")
    print(removal.table())
    path = _plot(exposure, cleansed, s.target, Path(out) / f"expose-{trigger}-{method}.png")
    print(f"\nwrote {path}")
    return {"label": label, "target": s.target, "score": score.score, "nc_flagged": cleansed.flagged,
            "nc_index_exposed": cleansed.anomaly[s.target].item(),
            "nc_index_original": original.anomaly[s.target].item(),
            "cd_auroc_exposed": cd["exposed"].auroc, "cd_auroc_original": cd["original"].auroc,
            "mmbd_p": None if detected is None else detected.p_value,
            "rnp": {"tau": removal.taus, "ca": removal.clean_acc, "asr": removal.asr}, "plot": str(path)}


def section(device: str = "auto", out: str | Path = "runs/demo", *, epochs: int = 8, quick: bool = False) -> dict:
    """The EBYD section of `robustfast demo`: BadNets digits, CUL exposure and every downstream task."""
    print("\nexpose before you defend: CUL exposes a BadNets SmallCNN; label and model detection, Neural Cleanse, "
          "MMBD and RNP")
    return run(device=str(device), out=Path(out), quick=quick)
