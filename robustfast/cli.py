"""The `robustfast` command: info, demo, bench, noisy, unlearnable, poison."""
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


@bench_app.command("losses")
def bench_losses(
    batch_size: int = typer.Option(8192, help="rows of logits"),
    repeats: int = typer.Option(10, help="timed repeats per row (after one warm-up)"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    accuracy: bool = typer.Option(True, help="also train CE and NCE+RCE on noisy digits at 40/60/80% noise"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-losses.json"),
):
    """NCE+RCE forward+backward: the fused op per backend against autograd through the reference."""
    from robustfast.bench.losses import run

    run(batch=batch_size, repeats=repeats, device=device, accuracy=accuracy, results=results)


@bench_app.command("unlearnable")
def bench_unlearnable(
    n: int = typer.Option(10000, help="images (digits tiled with random shifts to 3x32x32)"),
    kind: str = typer.Option("samplewise", help="samplewise or classwise"),
    model: str = typer.Option("smallcnn", help="surrogate: smallcnn (width 16) or resnet18"),
    max_rounds: int = typer.Option(10, help="round cap of both searches"),
    batch_size: int = typer.Option(512, help="batch size of both searches"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    quick: bool = typer.Option(False, help="a check that it runs: at most 1,024 images and 2 rounds, not saved"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-unlearnable.json"),
):
    """Error-minimizing noise to the stop test: robustfast against the loop written the published way."""
    from robustfast.bench.unlearnable import run

    run(n=n, kind=kind, model=model, max_rounds=max_rounds, batch_size=batch_size, device=device, quick=quick,
        results=results)


@bench_app.command("triggers")
def bench_triggers(
    batch_size: int = typer.Option(1024, help="images per mixed-trigger batch"),
    size: int = typer.Option(32, help="image height and width"),
    repeats: int = typer.Option(5, help="timed repeats per row (after one warm-up)"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    quick: bool = typer.Option(False, help="a small run (64 images of 16×16, one repeat) to check it works"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-triggers.json"),
):
    """Poisoning throughput: the fused apply_triggers op per backend against image-by-image application."""
    from robustfast.bench.triggers import run

    if quick:
        batch_size, size, repeats = 64, 16, 1
    run(batch_size=batch_size, size=size, repeats=repeats, device=device, results=results)


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


@app.command()
def noisy(
    losses: str = typer.Option("ce,nce+rce", help="comma-separated loss kinds (robustfast.losses.LOSSES)"),
    noise: str = typer.Option("symmetric", help="symmetric or asymmetric (the MNIST mapping)"),
    rate: float = typer.Option(0.6, help="noise rate"),
    epochs: int = typer.Option(40, help="training epochs"),
    seed: int = typer.Option(0, help="seed of the noise and of training"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
):
    """Train a small CNN on digits with noisy labels once per loss; print the clean test accuracy of each."""
    from robustfast.bench.report import table
    from robustfast.noisy import run

    rows = run(losses=tuple(losses.split(",")), noise=noise, rate=rate, epochs=epochs, seed=seed, device=device)
    typer.echo(table(rows, ["loss", "noise", "rate", "realised_rate", "test_acc"]))


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
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
):
    """Error-minimizing noise on the built-in digits; writes the unlearnable training set (safetensors + JSON)."""
    from robustfast.unlearnable.demo import run

    run(kind=kind, max_rounds=max_rounds, out=out, quantize=quantize, quantization=quantization, evaluate=evaluate,
        epochs=epochs, seed=seed, device=device)


if __name__ == "__main__":
    app()
