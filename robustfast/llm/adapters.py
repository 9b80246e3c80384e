"""What gets trained: LoRA adapters (peft) on all linear layers, over full-precision or 4-bit NF4 base weights
(QLoRA, bitsandbytes), or the whole model; and saving / loading the adapter as safetensors."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def is_4bit(model: nn.Module) -> bool:
    """Whether any linear layer of `model` holds bitsandbytes 4-bit weights."""
    return any(type(m).__name__ == "Linear4bit" for m in model.modules())


def quantize_nf4(model: nn.Module, compute_dtype: torch.dtype = torch.float32) -> nn.Module:
    """Replace every nn.Linear of `model` except the output head by a bitsandbytes NF4 Linear4bit holding the
    same weights, quantized (in place; returns the model). For models already in memory; a model directory is
    loaded 4-bit by `models.load_causal_lm(path, quantize_4bit=True)`."""
    import bitsandbytes as bnb

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear or child is head:
                continue
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=compute_dtype, quant_type="nf4", device="meta")
            q.weight = bnb.nn.Params4bit(child.weight.data.to(torch.float32), requires_grad=False,
                                         quant_type="nf4", compress_statistics=True)
            if child.bias is not None:
                q.bias = nn.Parameter(child.bias.data.clone(), requires_grad=False)
            setattr(parent, name, q.to(child.weight.device))
    return model


def add_lora(model: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.0):
    """Wrap `model` with LoRA adapters of rank r on all its linear layers except the output head (q, k, v, o,
    gate, up, down for Llama / Qwen2; c_attn, c_proj, c_fc for GPT-2), as BackdoorLLM's `lora_target: all`.
    Only the adapters are trainable. 4-bit models are first prepared for k-bit training (norms in float32)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if is_4bit(model):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear",
                        task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, config)


def save_adapter(model, directory, weights: dict[str, torch.Tensor] | None = None) -> Path:
    """Save a peft model's adapter as `adapter_model.safetensors` + `adapter_config.json` in `directory`.
    `weights` (full trainable tensors, e.g. gathered from ZeRO-3 partitions) replace the module's own."""
    directory = Path(directory)
    model.save_pretrained(directory, state_dict=weights, safe_serialization=True)
    return directory


def load_adapter(model: nn.Module, directory):
    """`model` with the saved adapter in `directory` applied (a peft model, in eval mode)."""
    from peft import PeftModel

    directory = Path(directory)
    if not (directory / "adapter_config.json").is_file():
        raise ValueError(f"{directory}: not an adapter directory (no adapter_config.json)")
    return PeftModel.from_pretrained(model, directory, is_trainable=False).eval()
