"""`robustfast expose`."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Expose Before You Defend.")


@app.command()
def expose(
    trigger: str = typer.Option("badnets", help="trigger name (robustfast.backdoor.trigger_names())"),
    method: str = typer.Option("cul", help="cul, random-label, activation-prune, anp, interpolate or "
                                          "magnitude-prune"),
    seed: int = typer.Option(0, help="seed of the poisoning, training and exposure"),
    epochs: int = typer.Option(10, help="training epochs of the backdoored model"),
    size: int = typer.Option(16, help="digits are upsampled to 3×size×size"),
    arch: str = typer.Option("smallcnn", help="smallcnn (SmallCNN-8) or wrn-10-1 (for size 32)"),
    cul_lr: float = typer.Option(1e-3, help="CUL's Adam lr (the spec's 1e-5 is for ResNet-18 on CIFAR-10)"),
    stop_acc: float = typer.Option(None, help="stop CUL after the first epoch with defense-set accuracy <= this"),
    nc_epochs: int = typer.Option(10, help="Neural Cleanse epochs"),
    mmbd_steps: int = typer.Option(300, help="MMBD optimisation steps (the spec's cap: 3000; 0 skips MMBD)"),
    cd_steps: int = typer.Option(100, help="Cognitive Distillation steps"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    out: str = typer.Option("runs/expose", help="folder for the PNG of h(t) and the NC masks"),
    quick: bool = typer.Option(False, help="one training epoch, short downstream runs: a check that it runs"),
):
    """Backdoor a SmallCNN on digits, expose it, print the trajectory, the detected label, the model score, NC's
    anomaly indices, CD's AUROC, MMBD's p-value and RNP's tau table; write a PNG of h(t) and of NC's recovered masks."""
    from robustfast.backdoor.ebyd_demo import run

    run(trigger=trigger, method=method, seed=seed, epochs=epochs, size=size, arch=arch, cul_lr=cul_lr,
        stop_acc=stop_acc, nc_epochs=nc_epochs, mmbd_steps=mmbd_steps, cd_steps=cd_steps, device=device, out=out,
        quick=quick)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


@app.command("expose-models")
def expose_models(
    trigger: str = typer.Option("badnets", help="trigger of the backdoored models"),
    seeds: str = typer.Option("0,1,2,3,4", help="seeds of the backdoored and clean models under test"),
    ref_seeds: str = typer.Option("5,6,7", help="seeds of the clean reference models the lr is calibrated on"),
    size: int = typer.Option(16, help="digits are upsampled to 3×size×size"),
    arch: str = typer.Option("smallcnn", help="smallcnn or wrn-10-1"),
    width: int = typer.Option(8, help="SmallCNN width"),
    epochs: int = typer.Option(10, help="training epochs of every model"),
    mmbd_steps: int = typer.Option(300, help="MMBD steps (the spec's cap: 3000)"),
    mmbd_images: int = typer.Option(30, help="MMBD images per class"),
    no_mmbd: bool = typer.Option(False, help="skip MMBD"),
    no_detection: bool = typer.Option(False, help="skip model detection (and the reference models)"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    cache: str = typer.Option(None, help="folder keeping the trained models between runs"),
):
    """Model detection (spec recipe and lr calibrated on clean reference models) and MMBD over backdoored and
    clean models of several seeds: TPR and FPR."""
    from robustfast.backdoor.ebyd_study import models_study

    models_study(_ints(seeds), _ints(ref_seeds), trigger=trigger, size=size, arch=arch, width=width, epochs=epochs,
                 mmbd_steps=mmbd_steps, mmbd_images=mmbd_images, run_mmbd=not no_mmbd, run_detection=not no_detection,
                 device=device, cache=cache)


@app.command("expose-table")
def expose_table(
    triggers: str = typer.Option("badnets,blend,wanet", help="comma-separated trigger names"),
    seed: int = typer.Option(0, help="seed of the model and of every method"),
    size: int = typer.Option(16, help="digits are upsampled to 3×size×size"),
    arch: str = typer.Option("smallcnn", help="smallcnn or wrn-10-1"),
    width: int = typer.Option(8, help="SmallCNN width"),
    epochs: int = typer.Option(10, help="training epochs of the backdoored models"),
    cul_lr: float = typer.Option(1e-3, help="CUL's Adam lr (the spec's 1e-5 is for ResNet-18 on CIFAR-10)"),
    stop_acc: float = typer.Option(None, help="stop CUL after the first epoch with defense-set accuracy <= this"),
    mmbd_steps: int = typer.Option(300, help="MMBD steps (0 skips MMBD)"),
    mmbd_images: int = typer.Option(30, help="MMBD images per class"),
    cd_steps: int = typer.Option(100, help="Cognitive Distillation steps"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    cache: str = typer.Option(None, help="folder keeping the trained models between runs"),
):
    """Every exposure method × every downstream task (label, model-detection statistic, NC, MMBD, CD) per trigger,
    and RNP."""
    from robustfast.backdoor.ebyd_study import exposure_table

    exposure_table(tuple(t.strip() for t in triggers.split(",")), seed=seed, size=size, arch=arch, width=width,
                   epochs=epochs, cul_lr=cul_lr, stop_acc=stop_acc, mmbd_steps=mmbd_steps, mmbd_images=mmbd_images,
                   cd_steps=cd_steps, device=device, cache=cache)
