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
    batch_size: int = typer.Option(32, help="prompts per batch in the batched row (64 and all are timed too)"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-llm.json"),
    training: bool = typer.Option(True, help="also time LoRA training steps"),
):
    """ASR evaluation throughput: batched left-padded greedy generation against one prompt at a time; LoRA
    training tokens/s."""
    from robustfast.bench.llm import run

    run(quick=quick, device=device, prompts=prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
        results=results, training=training)


@app.command("text")
def bench_text(
    sentences: int = typer.Option(None, help="SST-2 sentences per split (default: all)"),
    batch_size: int = typer.Option(64, help="sentences per inference batch"),
    max_length: int = typer.Option(64, help="tokens per sentence"),
    train: bool = typer.Option(True, help="also time one training epoch"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-text.json"),
):
    """MiniLM on SST-2 (CPU): length-sorted batched inference and length-grouped training against fixed-length
    padded batches and one sentence at a time."""
    from robustfast.bench.text import run

    run(sentences=sentences, batch_size=batch_size, max_length=max_length, train=train, results=results)


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


@app.command("cd")
def bench_cd(
    model: str = typer.Option("smallcnn", help="smallcnn (width 16) or resnet18"),
    batch_size: int = typer.Option(100, help="images per batch (the reference batch is 100)"),
    steps: int = typer.Option(100, help="mask optimisation steps"),
    repeats: int = typer.Option(3, help="timed repeats per row (after one warm-up)"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    note: str = typer.Option("", help="a note stored with the rows (e.g. that the machine was shared)"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-cd.json"),
):
    """Cognitive Distillation images/s: the fused ops against the loop written the way the published code runs it."""
    from robustfast.bench.cd import run

    run(model=model, batch_size=batch_size, steps=steps, repeats=repeats, device=device, results=results, note=note)


@app.command("at")
def bench_at(
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    widths: str = typer.Option("2,2,2", help="WideResNet width factors per stage (depths 1,1,1; 10,10,10 is WRN-34-10 "
                                             "with --depths 5,5,5)"),
    depths: str = typer.Option("1,1,1", help="WideResNet blocks per stage"),
    batch_size: int = typer.Option(128, help="images per training batch and per APGD batch"),
    batches: int = typer.Option(4, help="training batches timed per implementation"),
    steps: int = typer.Option(10, help="attack steps of the training step"),
    apgd_steps: int = typer.Option(20, help="APGD steps"),
    apgd_model: str = typer.Option("", help="a model saved by save_model (3x32x32 digits, e.g. the demo's PGD-AT "
                                            "WRN-10-1, runs/demo/robust/model.safetensors): APGD then runs on it and "
                                            "the first --batch-size digits test images; default an untrained WRN on "
                                            "random images, where nearly every sample is fooled at once"),
    apgd_eps: float = typer.Option(0.1, help="APGD's eps with --apgd-model (8/255 on the untrained WRN)"),
    repeats: int = typer.Option(1, help="timed repeats of every row (median, interleaved; APGD on a CPU: process "
                                        "CPU time)"),
    apgd_only: bool = typer.Option(False, help="only the APGD rows"),
    note: str = typer.Option("", help="a note stored in every row (e.g. that the machine was shared)"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-at.json"),
):
    """Adversarial-training step throughput (train_adversarial vs the reference-style loop, PGD-AT and TRADES) and
    batched APGD-CE / APGD-T (with and without compaction) vs torchattacks, same model and inputs."""
    from robustfast.bench.at import run

    run(device=device, depths=[int(v) for v in depths.split(",")], widths=[float(v) for v in widths.split(",")],
        batch_size=batch_size, batches=batches, steps=steps, apgd_steps=apgd_steps, repeats=repeats, note=note,
        results=results, apgd_model=apgd_model or None, apgd_eps=apgd_eps, apgd_only=apgd_only)


@app.command("nas")
def bench_nas(
    device: str = typer.Option("cpu", help="cpu, cuda or auto (the tree search always runs on the CPU)"),
    quick: bool = typer.Option(False, help="smaller segmented_batch_norm and supernet rows (named in each row)"),
    repeats: int = typer.Option(3, help="timed repeats of the tensor rows (after one warm-up)"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-nas.json"),
):
    """CMAB-NAS: C++ NMCS playouts/s against the Python oracle, segmented_batch_norm against its reference,
    forward_children against one child at a time."""
    from robustfast.bench.nas import run

    run(device=device, quick=quick, repeats=repeats, results=results)


@app.command("dta")
def bench_dta(
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    repeats: int = typer.Option(5, help="timed repeats per row (after one warm-up)"),
    quick: bool = typer.Option(False, help="the small shapes only, not saved: a check that every row runs"),
    results: str = typer.Option("benchmarks/results", help="folder for <device>-dta.json"),
):
    """token_cosine against F.cosine_similarity + autograd, the truncated DTA step against a full-depth forward
    with a hook, and the batched layer search against separate attacks."""
    from robustfast.bench.dta import run

    run(device=device, repeats=repeats, quick=quick, results=results)


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
