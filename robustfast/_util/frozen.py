import contextlib

import torch


@contextlib.contextmanager
def frozen_eval(model: torch.nn.Module):
    """Eval mode and no parameter gradients inside the block; the model's own state is restored after."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def model_device(model: torch.nn.Module) -> torch.device | None:
    p = next(model.parameters(), None)
    return None if p is None else p.device
