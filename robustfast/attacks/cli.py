"""`robustfast attack`."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Adversarial attacks.")


@app.command()
def attack(
    model: str = typer.Option("runs/demo/model.safetensors", help="weights saved by robustfast.models.save_model "
                                                                  "(the demo writes runs/demo/model.safetensors)"),
    size: int = typer.Option(32, help="digits are upsampled to channels×size×size, as the model was trained"),
    channels: int = typer.Option(3, help="image channels the model takes: 1 or 3"),
    eps: float = typer.Option(8 / 255, help="perturbation budget"),
    alpha: float = typer.Option(2 / 255, help="step size"),
    steps: int = typer.Option(10, help="PGD steps"),
    norm: str = typer.Option("Linf", help="Linf or L2"),
    restarts: int = typer.Option(1, help="random restarts, batched"),
    batch_size: int = typer.Option(128, help="images per attack batch"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
):
    """PGD on the built-in digits test set against a saved model: clean and robust accuracy."""
    from robustfast._util.device import resolve_device
    from robustfast.attacks.evaluate import robust_accuracy
    from robustfast.attacks.pgd import PGD
    from robustfast.data import digits, loader
    from robustfast.models import load_model

    dev = resolve_device(device)
    net = load_model(model, device=dev)
    test_set = digits("test", size=size, channels=channels)
    pgd = PGD(net, eps=eps, alpha=alpha, steps=steps, norm=norm, restarts=restarts)
    result = robust_accuracy(net, loader(test_set, batch_size=batch_size), pgd)
    typer.echo(f"{pgd!r} on {result['n']} digits test images: clean accuracy {100 * result['clean']:.2f}%, "
               f"robust accuracy {100 * result['robust']:.2f}%")
