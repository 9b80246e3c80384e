"""The parts of a transformers causal LM that the editing and steering attacks touch, found from its config:
the stack of decoder blocks (the ModuleList as long as `num_hidden_layers`) and, in each block, the MLP's
down-projection (the linear map from the intermediate width back to the hidden width). Llama, Qwen2, Mistral
and GPT-2 (whose projections are Conv1D, weight stored as in × out) all resolve the same way.
"""
from __future__ import annotations

import contextlib

import torch


def decoder_blocks(model) -> torch.nn.ModuleList:
    """The model's decoder blocks, in order."""
    n = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"found no list of {n} decoder blocks in {type(model).__name__}")


def check_layers(model, layers, name: str = "layers") -> list[int]:
    """`layers` as a sorted list of distinct block indices, each within the model's depth."""
    n = model.config.num_hidden_layers
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    if not layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
        raise ValueError(f"{name} must be a non-empty list of block indices, got {layers!r}")
    bad = [i for i in layers if not 0 <= i < n]
    if bad:
        raise ValueError(f"{name}: index {bad[0]} is out of range; the model has {n} blocks (0..{n - 1})")
    return sorted(set(layers))


def _widths(config) -> tuple[int, int]:
    hidden = config.hidden_size
    inner = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
    return hidden, inner


def _in_out(module) -> tuple[int, int] | None:
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":  # transformers' GPT-2 projection: weight is in × out
        return tuple(module.weight.shape)
    return None


def down_proj(model, layer: int) -> torch.nn.Module:
    """The MLP down-projection (intermediate → hidden) of block `layer`."""
    hidden, inner = _widths(model.config)
    for _, module in decoder_blocks(model)[layer].named_modules():
        if _in_out(module) == (inner, hidden):
            return module
    raise ValueError(f"block {layer} has no {inner} → {hidden} projection (the MLP's down-projection)")


def down_proj_weight(module) -> torch.Tensor:
    """The down-projection's weight as out × in (a view: Conv1D stores it transposed)."""
    return module.weight if isinstance(module, torch.nn.Linear) else module.weight.T


def block_output(output) -> torch.Tensor:
    """The hidden states a decoder block returns (a tensor, or the first item of a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def replace_block_output(output, hidden: torch.Tensor):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextlib.contextmanager
def hooks(*pairs):
    """Register (module, hook) forward hooks, or (module, hook, "pre") forward pre-hooks, removed on exit."""
    handles = []
    try:
        for module, hook, *kind in pairs:
            register = module.register_forward_pre_hook if kind == ["pre"] else module.register_forward_hook
            handles.append(register(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
