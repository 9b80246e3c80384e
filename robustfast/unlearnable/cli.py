"""`robustfast unlearnable`."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Unlearnable examples.")


@app.command()
def unlearnable(
    kind: str = typer.Option("samplewise", help="samplewise or classwise"),
    max_rounds: int = typer.Option(30, help="round cap of the search"),
    out: str = typer.Option("runs/unlearnable", help="folder for the set, its JSON sidecar and the checkpoint"),
    quantize: bool = typer.Option(True, help="store uint8 images (spec: quantisation to uint8)"),
    quantization: str = typer.Option("signed", help="signed, or reference (drops negative noise, for parity)"),
    evaluate: bool = typer.Option(True, help="train a small CNN on clean and on unlearnable data; print test accuracy"),
    epochs: int = typer.Option(10, help="victim training epochs"),
    seed: int = typer.Option(0, help="seed of the surrogate, the batches and the victim"),
    exact: bool = typer.Option(False, help="perturb with the surrogate itself, not its BatchNorm-folded copy"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
):
    """Error-minimizing noise on the built-in digits; writes the unlearnable training set (safetensors + JSON)."""
    from robustfast.unlearnable.demo import run

    run(kind=kind, max_rounds=max_rounds, out=out, quantize=quantize, quantization=quantization, evaluate=evaluate,
        epochs=epochs, seed=seed, device=device, exact=exact)
