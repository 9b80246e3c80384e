"""`robustfast poison` and `robustfast detect ...`."""
from __future__ import annotations

import typer

from robustfast.backdoor.cd_cli import detect_app

app = typer.Typer(no_args_is_help=True, help="Backdoor attacks.")
app.add_typer(detect_app, name="detect")


@app.command()
def poison(
    triggers: str = typer.Option("badnets,blend,sig,trojan",
                                 help="comma-separated trigger names (robustfast.backdoor.trigger_names())"),
    rate: float = typer.Option(0.1, help="poisoning rate per trigger (per round in sequential mode)"),
    label_mode: str = typer.Option("all2random", help="all2one, all2all, all2random or clean-label"),
    multi: str = typer.Option("parallel", help="parallel, sequential or hybrid"),
    target: int = typer.Option(0, help="target class (all2one, clean-label)"),
    epochs: int = typer.Option(10, help="training epochs"),
    size: int = typer.Option(16, help="digits are upsampled to 3×size×size"),
    overlap: float = typer.Option(None, help="sequential mode: share of each later round drawn from images "
                                             "already poisoned"),
    seed: int = typer.Option(0, help="seed of the poisoning and of training"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
):
    """Poison digits with a (multi-)trigger attack, train a small CNN, print the ASR table and the
    cross-activation matrix (sequential mode: also the ASR after each stage)."""
    from robustfast.backdoor.demo import run

    run(triggers=tuple(triggers.split(",")), rate=rate, label_mode=label_mode, multi=multi, target=target,
        epochs=epochs, size=size, seed=seed, device=device, overlap=overlap)
