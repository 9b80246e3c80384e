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
    nc_epochs: int = typer.Option(10, help="Neural Cleanse epochs"),
    mmbd_steps: int = typer.Option(300, help="MMBD optimisation steps (the spec's cap: 3000)"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    out: str = typer.Option("runs/expose", help="folder for the PNG of h(t) and the NC masks"),
    quick: bool = typer.Option(False, help="one training epoch, short downstream runs: a check that it runs"),
):
    """Backdoor a SmallCNN on digits, expose it, print the trajectory, the detected label, the model score, NC's
    anomaly indices, MMBD's p-value and RNP's tau table; write a PNG of h(t) and of NC's recovered masks."""
    from robustfast.backdoor.ebyd_demo import run

    run(trigger=trigger, method=method, seed=seed, epochs=epochs, size=size, nc_epochs=nc_epochs,
        mmbd_steps=mmbd_steps, device=device, out=out, quick=quick)
