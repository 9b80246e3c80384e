"""`robustfast noisy`."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Robust losses for noisy labels.")


@app.command()
def noisy(
    losses: str = typer.Option("ce,nce+rce", help="comma-separated loss kinds (robustfast.losses.LOSSES)"),
    noise: str = typer.Option("symmetric", help="symmetric or asymmetric (the MNIST mapping)"),
    rate: float = typer.Option(0.6, help="noise rate"),
    epochs: int = typer.Option(40, help="training epochs"),
    seed: int = typer.Option(0, help="seed of the noise and of training"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
):
    """Train a small CNN on digits with noisy labels once per loss; print the clean test accuracy of each."""
    from robustfast._util.tables import table
    from robustfast.losses.noisy import run

    rows = run(losses=tuple(losses.split(",")), noise=noise, rate=rate, epochs=epochs, seed=seed, device=device)
    typer.echo(table(rows, ["loss", "noise", "rate", "realised_rate", "test_acc"]))
