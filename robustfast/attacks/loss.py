"""The per-sample losses an attack ascends: cross-entropy or the CW margin, untargeted or targeted."""
import torch
import torch.nn.functional as F

LOSSES = ("ce", "cw")


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j per sample."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.max(dim=1).values


def attack_loss(logits, labels, loss: str, targeted: bool) -> torch.Tensor:
    """Per-sample loss the attack ascends."""
    if loss == "ce":
        value = F.cross_entropy(logits, labels, reduction="none")
        return -value if targeted else value
    value = margin(logits, labels)
    return value if targeted else -value
