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


@app.command()
def evaluate(
    model: str = typer.Option(..., help="weights saved by robustfast.models.save_model"),
    data: str = typer.Option("digits", help="digits (the built-in test split) or cifar10 (its test batch at --root)"),
    root: str = typer.Option(None, help="folder of CIFAR-10's python batches (with --data cifar10)"),
    attacks: str = typer.Option("clean,pgd20,cw,autoattack",
                                help="comma-separated: clean, pgd20, cw, autoattack, apgd-ce, apgd-t"),
    eps: float = typer.Option(8 / 255, help="L∞ budget (the README uses 0.1 on digits)"),
    n: int = typer.Option(None, help="evaluate the first n test images only"),
    size: int = typer.Option(32, help="digits are upsampled to channels×size×size, as the model was trained"),
    channels: int = typer.Option(3, help="digits channels: 1 or 3"),
    batch_size: int = typer.Option(256, help="images per attack batch"),
    out: str = typer.Option(None, help="write the JSON report here"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
):
    """Clean, PGD-20, CW∞ and AutoAttack accuracy of a saved model: a table, and the report as JSON with --out."""
    from robustfast._util.device import resolve_device
    from robustfast.attacks.robustness import evaluate_robustness, format_report
    from robustfast.data import cifar10, digits
    from robustfast.models import load_model

    if data not in ("digits", "cifar10"):
        raise ValueError(f"--data must be digits or cifar10, got {data!r}")
    if data == "cifar10" and root is None:
        raise ValueError("--root must name the folder of CIFAR-10's python batches with --data cifar10")
    if n is not None and n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    dev = resolve_device(device)
    net = load_model(model, device=dev)
    test_set = digits("test", size=size, channels=channels) if data == "digits" else cifar10(root, "test")
    images, labels = (t[:n] for t in test_set.tensors) if n else test_set.tensors
    report = evaluate_robustness(net, (images, labels), tuple(a.strip() for a in attacks.split(",") if a.strip()),
                                 eps=eps, batch_size=batch_size, out=out)
    typer.echo(f"{data}: {report['n']} test images, L∞ ε = {eps:.4g}")
    typer.echo(format_report(report))
