"""Training and evaluation loops and resumable checkpoints."""
from robustfast.training.adversarial import train_adversarial
from robustfast.training.checkpoint import load_checkpoint, save_checkpoint
from robustfast.training.loop import evaluate, train_classifier

__all__ = ["evaluate", "load_checkpoint", "save_checkpoint", "train_adversarial", "train_classifier"]
