"""`robustfast lid` and `robustfast ldreg`."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Local intrinsic dimensionality and LDReg.")


@app.command()
def lid(
    data: str = typer.Option("digits", help="digits (the 8×8 images as 64-D points), gaussian, or a .npy / .pt file "
                                            "of an N×D array"),
    k: int = typer.Option(20, help="neighbours"),
    estimator: str = typer.Option("mle", help="mle or mom"),
    form: str = typer.Option("literature", help="literature, levina-bickel or ldreg"),
    out: str = typer.Option("", help="also write the per-sample LIDs to this .npy file"),
):
    """Per-sample LID of a point set: geometric mean and var(ln LID) (the Fisher–Rao mean and variance)."""
    from robustfast.lid.points import summarize

    summarize(data=data, k=k, estimator=estimator, form=form, out=out)


@app.command()
def ldreg(
    method: str = typer.Option("simclr", help="simclr or byol"),
    beta: float = typer.Option(0.1, help="LDReg weight"),
    k: int = typer.Option(16, help="LDReg neighbours (capped at batch − 2)"),
    epochs: int = typer.Option(8, help="SSL training epochs"),
    size: int = typer.Option(8, help="digits image side: 8 (native) or 32 (upsampled)"),
    batch_size: int = typer.Option(128, help="images per batch (2× as many views)"),
    width: int = typer.Option(8, help="encoder width (4·width features)"),
    seed: int = typer.Option(0, help="seed of the run"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
):
    """SSL on digits with and without LDReg, same seed: linear-probe accuracy and gmean LID of each."""
    from robustfast._util.tables import table
    from robustfast.lid.ssl import digits_comparison

    rows = digits_comparison(method=method, beta=beta, k=k, epochs=epochs, size=size, batch_size=batch_size,
                             width=width, seed=seed, device=device)
    typer.echo(table(rows, ["method", "beta", "probe_acc", "gmean_lid", "seconds"]))
