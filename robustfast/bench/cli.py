"""`robustfast bench <suite>`: print a table and append the run to benchmarks/results/."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Benchmarks: print a table and write benchmarks/results/.")


@app.command("pgd")
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


@app.command("losses")
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


@app.command("llm")
def bench_llm(
    quick: bool = typer.Option(False, help="a tiny model, 32 prompts, 8 new tokens: seconds, for a smoke test"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    prompts: int = typer.Option(None, help="prompts to generate for (default: the whole SST-2 test file)"),
    max_new_tokens: int = typer.Option(None, help="greedy tokens per prompt (default 32; 8 with --quick)"),
    batch_size: int = typer.Option(32, help="prompts per batch in the batched row"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-llm.json"),
):
    """ASR evaluation throughput: batched left-padded greedy generation against one prompt at a time; LoRA
    training tokens/s."""
    from robustfast.bench.llm import run

    run(quick=quick, device=device, prompts=prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
        results=results)


@app.command("lid")
def bench_lid(
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    quick: bool = typer.Option(False, help="small sizes (seconds): a check that every row runs"),
    limit_gb: float = typer.Option(16.0, help="skip cdist + topk where its N×N matrix needs more than this"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-lid.json"),
):
    """knn_lid on N points against themselves (CPU: N = 100,000, D = 64; GPU: N = 20,000 and 1,000,000, D = 50),
    time and peak memory, beside cdist + topk, scikit-dimension and faiss-cpu where they fit."""
    from robustfast.bench.lid import run

    run(device=device, quick=quick, limit_gb=limit_gb, results=results)


@app.command("unlearnable")
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


@app.command("triggers")
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


@app.command("ebyd")
def bench_ebyd(
    models: int = typer.Option(4, help="backdoored SmallCNNs (different seeds) in the model-detection row"),
    repeats: int = typer.Option(1, help="timed repeats per row"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    quick: bool = typer.Option(False, help="two models, one epoch each: a short run (its rows say so)"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-ebyd.json"),
):
    """EBYD: batched Neural Cleanse, the one-pass RNP tau sweep and vmapped model detection against one at a time."""
    from robustfast.bench.ebyd import run

    run(device=device, models=models, repeats=repeats, quick=quick, results=results)
