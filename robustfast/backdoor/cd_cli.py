"""`robustfast detect cd`."""
from __future__ import annotations

import typer

detect_app = typer.Typer(no_args_is_help=True, help="Backdoor-sample detection.")


@detect_app.command("cd")
def detect_cd(
    triggers: str = typer.Option("badnets,blend,wanet", help="comma-separated trigger names"),
    rate: float = typer.Option(0.05, help="poisoning rate of the training set (and of the backdoor test set)"),
    mode: str = typer.Option("logits", help="logits (CD-L) or features (CD-F)"),
    model: str = typer.Option(None, help="a backdoored model saved with robustfast.models.save_model (default: "
                                         "train a SmallCNN per trigger)"),
    epochs: int = typer.Option(10, help="training epochs"),
    size: int = typer.Option(32, help="digits are upsampled to 3×size×size"),
    limit: int = typer.Option(None, help="score at most this many images per set (every poisoned one first)"),
    steps: int = typer.Option(100, help="mask optimisation steps"),
    gamma: float = typer.Option(None, help="weight of the mask size ‖m‖₁ (default: 0.01 CD-L, 0.001 CD-F)"),
    beta: float = typer.Option(None, help="weight of the mask's squared TV (default: 1 CD-L, 10 CD-F)"),
    seed: int = typer.Option(0, help="seed of the poisoning, training and colours"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    out: str = typer.Option("runs/cd", help="folder for patterns.png"),
):
    """Poison digits, train a backdoored model, run Cognitive Distillation on the poisoned training set and a
    backdoor test set; print AUROC / AP / TPR / FPR per trigger and write <out>/patterns.png."""
    from robustfast.backdoor.cd_demo import run

    run(triggers=tuple(t for t in triggers.split(",") if t), rate=rate, mode=mode, model_path=model,
        epochs=epochs, size=size, limit=limit, steps=steps, seed=seed, device=device, out=out,
        gamma=gamma, beta=beta)
