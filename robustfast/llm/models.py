"""Causal LMs and tokenizers without a hub: loaded from a local directory, or built on the spot.

`build_causal_lm` makes a Llama, Qwen2 or GPT-2 family model of any size from its transformers config (tests
use tiny ones); `build_tokenizer` trains a byte-level BPE tokenizer on local text. `load_causal_lm` reads a
Hugging Face model directory (weights in safetensors), optionally with 4-bit NF4 base weights (QLoRA).
"""
from __future__ import annotations

from pathlib import Path

import torch

FAMILIES = ("llama", "qwen2", "gpt2")
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}


def build_tokenizer(texts, vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on `texts` (an iterable of strings), wrapped as a transformers
    PreTrainedTokenizerFast with <pad>, <s>, </s> and left padding (for batched generation). Byte-level:
    every string encodes and decodes back exactly, newlines included."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, padding_side="left", **SPECIAL_TOKENS)


def _config(family: str, vocab_size: int, hidden_size: int, layers: int, heads: int, intermediate_size: int,
            max_positions: int, initializer_range: float, tokenizer):
    import transformers

    special = {"initializer_range": initializer_range}
    if tokenizer is not None:
        special |= {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
                    "eos_token_id": tokenizer.eos_token_id}
    if family == "gpt2":
        return transformers.GPT2Config(vocab_size=vocab_size, n_embd=hidden_size, n_layer=layers, n_head=heads,
                                       n_inner=intermediate_size, n_positions=max_positions, **special)
    cls = transformers.LlamaConfig if family == "llama" else transformers.Qwen2Config
    return cls(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=layers,
               num_attention_heads=heads, num_key_value_heads=heads, intermediate_size=intermediate_size,
               max_position_embeddings=max_positions, tie_word_embeddings=False, **special)


def build_causal_lm(family: str = "llama", tokenizer=None, vocab_size: int | None = None, hidden_size: int = 64,
                    layers: int = 2, heads: int = 4, intermediate_size: int = 128, max_positions: int = 1024,
                    initializer_range: float = 0.02, qk_init_scale: float = 1.0, seed: int = 0):
    """A randomly initialised causal LM of the given family (llama, qwen2, gpt2) and size, float32. The vocabulary
    and special ids come from `tokenizer` when given; the same seed gives the same weights.

    A random base meant for LoRA (which cannot rescale the frozen output head or re-aim frozen attention) wants
    initializer_range ≈ 0.2, so that the head's logits are not confined to about ±1, with qk_init_scale ≈ 0.1,
    which shrinks the query and key projections after initialisation so that attention starts near uniform
    and can pick up a trigger anywhere in the prompt."""
    from transformers import AutoModelForCausalLM

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {', '.join(FAMILIES)}")
    if vocab_size is None:
        if tokenizer is None:
            raise ValueError("build_causal_lm needs a tokenizer or a vocab_size")
        vocab_size = len(tokenizer)
    config = _config(family, vocab_size, hidden_size, layers, heads, intermediate_size, max_positions,
                     initializer_range, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if qk_init_scale != 1.0:
        _scale_query_key(model, family, hidden_size, qk_init_scale)
    return model


@torch.no_grad()
def _scale_query_key(model, family: str, hidden_size: int, scale: float) -> None:
    for name, p in model.named_parameters():
        if family == "gpt2" and name.endswith("attn.c_attn.weight"):  # Conv1D (in, 3·hidden): q | k | v
            p[:, :2 * hidden_size].mul_(scale)
        elif name.endswith(("q_proj.weight", "k_proj.weight")):
            p.mul_(scale)


def nf4_config(compute_dtype: torch.dtype = torch.float32):
    """bitsandbytes 4-bit NF4 quantisation of the base weights (QLoRA), with double quantisation."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def load_causal_lm(path, quantize_4bit: bool = False, dtype: torch.dtype = torch.float32):
    """A causal LM from a local Hugging Face directory (config.json + safetensors weights); never a hub.
    `quantize_4bit` loads the linear layers as bitsandbytes NF4 (QLoRA base weights)."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path}: not a model directory (no config.json)")
    kwargs = {"quantization_config": nf4_config(dtype)} if quantize_4bit else {}
    return AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype, use_safetensors=True,
                                                **kwargs)


def load_tokenizer(path):
    """The tokenizer saved in a local directory, set for left padding; pad = eos when it has no pad token."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: not a tokenizer directory")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
