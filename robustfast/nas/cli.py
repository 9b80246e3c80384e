"""`robustfast nas search|train`."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Architecture search: CMAB-NAS (nested Monte-Carlo search).")


@app.command()
def search(
    data: str = typer.Option("digits", help="digits (the only built-in dataset for search)"),
    size: int = typer.Option(16, help="digits image side"),
    ops: str = typer.Option("sep_conv_3x3,max_pool_3x3,skip_connect", help="comma-separated ops (DARTS names)"),
    cells: int = typer.Option(5, help="supernet cells"),
    channels: int = typer.Option(8, help="supernet C"),
    warmup_epochs: int = typer.Option(2, help="warm-up epochs (random children)"),
    epochs: int = typer.Option(8, help="search epochs"),
    b: int = typer.Option(64, "--B", help="candidates per epoch"),
    l_sim: int = typer.Option(4, "--L-sim", help="playouts per Simulation"),
    l_best: int = typer.Option(150, "--L-best", help="playouts per SearchBest level"),
    policy: str = typer.Option("local_optimal", help="local_optimal, local_suboptimal or local_random"),
    children_per_batch: int = typer.Option(8, help="children per batched supernet forward"),
    seed: int = typer.Option(0, help="seed"),
    out: str = typer.Option("runs/nas", help="folder for genotype.json, cells.png and the checkpoint"),
):
    """Search a cell on digits (rewards on a held-out half of the train split); writes the genotype JSON and a
    drawing of its cells; resumes from <out>/checkpoint."""
    from pathlib import Path

    from robustfast.nas.digits import search_digits
    from robustfast.nas.draw import draw_genotype
    from robustfast.nas.space import save_genotype

    if data != "digits":
        raise ValueError(f"data must be 'digits', got {data!r}")
    nas, result = search_digits(seed, size=size, ops=tuple(o.strip() for o in ops.split(",")), C=channels,
                                layers=cells, warmup_epochs=warmup_epochs, epochs=epochs, B=b, L_sim=l_sim,
                                L_best=l_best, policy=policy, children_per_batch=children_per_batch,
                                checkpoint=Path(out) / "checkpoint")
    path = save_genotype(Path(out) / "genotype.json", result.genotype, nas.space, val_acc=result.reward,
                         history=result.history)
    typer.echo(f"weight-sharing validation accuracy {result.reward:.4f}; genotype written to {path}")
    try:
        typer.echo(f"cells drawn in {draw_genotype(result.genotype, nas.space, Path(out) / 'cells.png')}")
    except ImportError as err:
        typer.echo(f"no drawing: {err}")


@app.command()
def train(
    genotype: str = typer.Option(..., help="genotype JSON written by `robustfast nas search`"),
    data: str = typer.Option("digits", help="digits"),
    size: int = typer.Option(16, help="digits image side"),
    cells: int = typer.Option(6, help="cells of the final network"),
    channels: int = typer.Option(16, help="C of the final network"),
    epochs: int = typer.Option(15, help="training epochs"),
    cutout: int = typer.Option(0, help="cutout square side (0: off)"),
    drop_path: float = typer.Option(0.0, help="drop-path probability"),
    seed: int = typer.Option(0, help="seed"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
):
    """Train the final network of a genotype on the digits train split; test accuracy on its test split."""
    from robustfast._util.device import resolve_device
    from robustfast.data import digits
    from robustfast.nas.final import train_genotype
    from robustfast.nas.space import load_genotype

    if data != "digits":
        raise ValueError(f"data must be 'digits', got {data!r}")
    g, space = load_genotype(genotype)
    _, result = train_genotype(g, space, digits("train", size=size), digits("test", size=size), C=channels,
                               layers=cells, epochs=epochs, cutout_length=cutout, drop_path_prob=drop_path,
                               seed=seed, device=resolve_device(device))
    typer.echo(f"params {result['params']}, test accuracy {result['test_acc']:.4f}")
