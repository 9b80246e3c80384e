"""`robustfast dta pretrain|finetune|attack|table --data digits`: the DTA reproduction of spec dta.md §8 step by
step (each step saves to --out and the next one loads it; pre-training and fine-tuning resume from their
checkpoints), or the whole table over methods and seeds."""
from __future__ import annotations

from pathlib import Path

import typer
from torch import nn

app = typer.Typer(no_args_is_help=True, help="Downstream Transfer Attack on ViTs from their pre-trained encoder.")

DATA = typer.Option("digits", help="the data set: digits (built in; classes 0-4 upstream, 5-9 downstream)")
METHOD = typer.Option("supervised", help="pre-training: supervised, simclr or mae")
SEED = typer.Option(0, help="seed of the data split, training and attacks")
OUT = typer.Option("runs/dta", help="folder for checkpoints, models, the table and the PNG")
SCALE = typer.Option("full", help="epochs: full (spec §8) or ci (the tests' short schedule)")
EPOCHS = typer.Option(None, help="override the scale's number of epochs")


def _check_data(data: str) -> None:
    if data != "digits":
        raise ValueError(f"data must be 'digits' (the only built-in data set for dta), got {data!r}")


def _run_dir(out: str, method: str, seed: int) -> Path:
    from robustfast.training.vit import PRETRAIN

    if method not in PRETRAIN:
        raise ValueError(f"method must be one of {PRETRAIN}, got {method!r}")
    return Path(out) / f"{method}-seed{seed}"


def _save(path: Path, module: nn.Module, meta: dict) -> None:
    from robustfast._util.atomic import write_json, write_safetensors

    write_safetensors(path.with_suffix(".safetensors"), module.state_dict())
    write_json(path.with_suffix(".json"), meta)


def _load_f0(run: Path):
    """The saved Pretrained (encoder, head) of a run folder."""
    from robustfast._util.checks import get_key, read_json, read_safetensors
    from robustfast.models.vit import build_mae, build_vit, wrap
    from robustfast.training.vit import Pretrained

    meta = read_json(run / "f0.json", "dta f0 description")
    method = get_key(meta, "method", run / "f0.json", str)
    encoder = wrap(build_mae().vit if method == "mae" else build_vit())
    tensors = read_safetensors(run / "f0.safetensors")
    head = nn.Linear(encoder.hidden_size, 5) if "head.weight" in tensors else None
    model = nn.ModuleDict({"encoder": encoder, **({"head": head} if head is not None else {})})
    model.load_state_dict(tensors)
    return Pretrained(encoder.eval(), head, [])


def _load_victim(run: Path, scheme: str, pre):
    import copy

    from robustfast._util.checks import read_safetensors
    from robustfast.models.vit import Classifier
    from robustfast.training.vit import FINETUNE_LORA_RANK, add_lora

    f = copy.deepcopy(pre.encoder)
    if scheme == "lora":
        add_lora(f, FINETUNE_LORA_RANK)
    model = Classifier(f, 5)
    model.load_state_dict(read_safetensors(run / f"victim-{scheme}.safetensors"))
    return model.requires_grad_(False).eval()


@app.command("pretrain")
def pretrain_cmd(data: str = DATA, method: str = METHOD, seed: int = SEED, scale: str = SCALE, out: str = OUT,
                 epochs: int = EPOCHS, progress: bool = typer.Option(True, help="tqdm bars")):
    """Pre-train f₀ on digits classes 0-4 (resumable); saves <out>/<method>-seed<seed>/f0.safetensors."""
    from robustfast.attacks.dta_digits import PRETRAIN_LR, SCALES, digits_tasks
    from robustfast.training.vit import pretrain

    _check_data(data)
    run = _run_dir(out, method, seed)
    tasks = digits_tasks(seed)
    pre = pretrain(tasks["upstream_train"], method, epochs=epochs or SCALES[scale]["pretrain"][method],
                   lr=PRETRAIN_LR[method], seed=seed, checkpoint_dir=run / "pretrain-checkpoint", progress=progress)
    parts = nn.ModuleDict({"encoder": pre.encoder, **({"head": pre.head} if pre.head is not None else {})})
    _save(run / "f0", parts, {"method": method, "seed": seed, "scale": scale})
    typer.echo(f"{method} f0 saved to {run / 'f0.safetensors'} (final loss {pre.history[-1]['loss']:.4f})")


@app.command("finetune")
def finetune_cmd(data: str = DATA, method: str = METHOD, seed: int = SEED, scale: str = SCALE, out: str = OUT,
                 scheme: str = typer.Option("full", help="full, linear or lora"), epochs: int = EPOCHS,
                 progress: bool = typer.Option(True, help="tqdm bars")):
    """Fine-tune a victim from the saved f₀ on digits classes 5-9 (resumable); saves victim-<scheme>."""
    from robustfast.attacks.dta_digits import FINETUNE, SCALES, digits_tasks
    from robustfast.training.vit import SCHEMES, finetune

    _check_data(data)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    run = _run_dir(out, method, seed)
    pre = _load_f0(run)
    model = finetune(pre.encoder, digits_tasks(seed)["downstream_train"], scheme,
                     epochs=epochs or SCALES[scale][scheme],
                     seed=seed, checkpoint_dir=run / f"finetune-{scheme}-checkpoint", progress=progress,
                     **FINETUNE[scheme])
    _save(run / f"victim-{scheme}", model, {"scheme": scheme, "seed": seed})
    typer.echo(f"{scheme} victim saved to {run / f'victim-{scheme}.safetensors'}")


def _print_rows(result: dict, title: str) -> None:
    from robustfast._util.tables import table

    rows = [{**r, "asr %": 100 * r["asr"]} for r in result["rows"]]
    typer.echo(f"{title}: searched layer {result['layer']}")
    typer.echo(table(rows, ["victim", "attack", "layer", "asr %", "n"]))
    if "sweep" in result:
        typer.echo("full-FT ASR by layer: " + ", ".join(f"{k}: {100 * v:.1f}%" for k, v in result["sweep"].items()))


def _plot(results: list[dict], path: Path) -> None:
    from robustfast._util.atomic import atomic_write
    from robustfast._util.plot import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for r in results:
        if "sweep" in r:
            layers = list(r["sweep"])
            ax.plot(layers, [100 * r["sweep"][k] for k in layers], marker="o",
                    label=f"{r['method']} seed {r['seed']} (searched {r['layer']})")
    ax.set_xlabel("attacked block l")
    ax.set_ylabel("ASR on the full-FT victim (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120))
    plt.close(fig)


@app.command("attack")
def attack_cmd(data: str = DATA, method: str = METHOD, seed: int = SEED, scale: str = SCALE, out: str = OUT,
               steps: int = typer.Option(20, help="PGD steps of every attack"),
               sweep: bool = typer.Option(True, help="also attack at every layer (the oracle of the search)")):
    """DTA and the baselines from the saved f₀ against every saved victim: the ASR table and a PNG."""
    from robustfast._util.atomic import write_json
    from robustfast.attacks.dta_digits import attack_victims, digits_tasks
    from robustfast.training.vit import SCHEMES

    _check_data(data)
    run = _run_dir(out, method, seed)
    pre = _load_f0(run)
    vics = {s: _load_victim(run, s, pre) for s in SCHEMES if (run / f"victim-{s}.safetensors").is_file()}
    if not vics:
        raise FileNotFoundError(f"{run}: no victim-*.safetensors; run `robustfast dta finetune` first")
    result = {"method": method, "seed": seed,
              **attack_victims(pre, vics, digits_tasks(seed), scale, seed, steps, sweep, progress=True)}
    _print_rows(result, f"{method}, seed {seed}")
    write_json(run / "attack.json", result)
    if "sweep" in result:
        _plot([result], run / "asr_by_layer.png")
        typer.echo(f"wrote {run / 'attack.json'} and {run / 'asr_by_layer.png'}")


@app.command("table")
def table_cmd(data: str = DATA, methods: str = typer.Option("supervised,simclr,mae", help="comma-separated"),
              seeds: str = typer.Option("0,1,2", help="comma-separated"), scale: str = SCALE, out: str = OUT,
              steps: int = typer.Option(20, help="PGD steps of every attack")):
    """The whole reproduction (pre-train, fine-tune, attack) for each method and seed; table, JSON and PNG."""
    from robustfast._util.atomic import write_json
    from robustfast.attacks.dta_digits import run

    _check_data(data)
    Path(out).mkdir(parents=True, exist_ok=True)
    results = []
    for method in methods.split(","):
        for seed in (int(s) for s in seeds.split(",")):
            _run_dir(out, method, seed)
            result = run(method, seed, scale, steps=steps, progress=True)
            _print_rows(result, f"{method}, seed {seed} ({result['seconds']:.0f} s)")
            results.append(result)
    write_json(Path(out) / "table.json", results)
    _plot(results, Path(out) / "asr_by_layer.png")
    typer.echo(f"wrote {Path(out) / 'table.json'} and {Path(out) / 'asr_by_layer.png'}")
