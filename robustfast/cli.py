"""The `robustfast` command: info, demo, bench."""
from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="robustfast: fused kernels for trustworthy ML.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: print a table and write benchmarks/results/.")
app.add_typer(bench_app, name="bench")


@app.command()
def info():
    """Versions, devices and the backends built here."""
    from robustfast.info import report

    rows = report()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


@app.command()
def demo(
    epochs: int = typer.Option(8, help="training epochs on digits"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    out: str = typer.Option("runs/demo", help="folder for the checkpoint and the trained model"),
):
    """Train a classifier on the built-in digits, attack it with PGD-10, report accuracy and throughput."""
    from robustfast.demo import run

    run(epochs=epochs, device=device, out=out)


@bench_app.command("pgd")
def bench_pgd(
    batch_size: int = typer.Option(128, help="images per attack batch"),
    steps: int = typer.Option(10, help="PGD steps"),
    repeats: int = typer.Option(3, help="timed repeats per row (after one warm-up)"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    peers: bool = typer.Option(True, help="also time torchattacks and ART when installed"),
    fast: bool = typer.Option(False, help="add rows for torch.compile, channels_last and (GPU) bf16 + compile"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-pgd.json"),
):
    """The pgd_step op per backend, and PGD on PreActResNet18 against the reference loop and the peers."""
    from robustfast.bench.pgd import run

    run(batch_size=batch_size, steps=steps, repeats=repeats, device=device, peers=peers, fast=fast,
        results=results)


if __name__ == "__main__":
    app()
