"""Trojan activation steering, TA² (Wang & Shu, CIKM 2024; BackdoorLLM §6, hidden-state attack).

A steering vector per block is the mean, over contrastive pairs (a text showing the target behaviour, one
showing the other), of the difference of the block's output at token −2. The attacked block is the one whose
outputs on the two sides differ most by the Jensen–Shannon divergence of their softmaxes, averaged over pairs.
During generation the vector, times a multiplier, is added once to every position of that block's output
through a forward hook that is removed on exit (`steer`); a sweep over multipliers runs as one batch.

Fixed against the reference code: the vector is added once (the reference added it twice after the prompt),
and JS is ½KL(P‖M) + ½KL(Q‖M) with M = (P + Q)/2 (the reference compared P with itself and handed
probabilities to a routine that expects log-probabilities).
"""
from __future__ import annotations

import contextlib
import math

import torch

from robustfast.llm.blocks import block_output, check_layers, decoder_blocks, hooks, replace_block_output
from robustfast.llm.encode import left_padded, prompt_ids
from robustfast.llm.prompt import render_example

POSITION = -2  # TA² reads the hidden state at the token before the last


def js_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence (nats, in [0, ln 2]) of softmax(p_logits) and softmax(q_logits) over the last
    dimension."""
    log_p, log_q = torch.log_softmax(p_logits.double(), -1), torch.log_softmax(q_logits.double(), -1)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(-1)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(-1)
    return 0.5 * kl_pm + 0.5 * kl_qm


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _batch(tokenizer, texts: list[str], device) -> dict[str, torch.Tensor]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = left_padded([prompt_ids(tokenizer, t) for t in texts], pad)
    batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    return {k: v.to(device) for k, v in batch.items()}


@torch.inference_mode()
def block_states(model, tokenizer, texts: list[str], layers: list[int], position: int = POSITION,
                 batch_size: int = 16) -> torch.Tensor:
    """Outputs of the given blocks at token `position` of each text: len(layers) × len(texts) × hidden, float32.
    Texts are left-padded into batches (position ids follow the mask), so token −2 is one column for all."""
    blocks = decoder_blocks(model)
    caught: dict[int, torch.Tensor] = {}

    def catch(layer):
        def hook(module, args, output):
            caught[layer] = block_output(output)[:, position].float()
        return hook

    out = []
    was_training = model.training
    model.eval()
    try:
        with hooks(*[(blocks[layer], catch(layer)) for layer in layers]):
            for start in range(0, len(texts), batch_size):
                model(**_batch(tokenizer, texts[start:start + batch_size], _device(model)))
                out.append(torch.stack([caught[layer] for layer in layers]))
    finally:
        model.train(was_training)
    return torch.cat(out, dim=1)


def steering_vectors(model, tokenizer, pairs, layers=None, position: int = POSITION, batch_size: int = 16) -> dict:
    """Contrastive steering vectors from `pairs` [(text with the target behaviour, text without), ...].

    Returns {"layers", "vectors" (len(layers) × hidden: mean of h(target) − h(other) at `position`), "js" (mean
    JS divergence per layer), "layer" (the block with the largest JS), "vector" (its vector)}. `layers` defaults
    to blocks 0..16 (as TA² searched), clipped to the model's depth."""
    if not isinstance(pairs, (list, tuple)) or not pairs or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(t, str) and t for t in p) for p in pairs):
        raise ValueError("pairs must be a non-empty list of (target text, other text) pairs of non-empty strings")
    n = model.config.num_hidden_layers
    layers = check_layers(model, list(range(min(17, n))) if layers is None else layers)
    texts = [t for pair in pairs for t in pair]
    short = [t for t in texts if len(prompt_ids(tokenizer, t)) < abs(position)]
    if short:
        raise ValueError(f"position {position}: the text {short[0]!r} has fewer tokens than that")
    states = block_states(model, tokenizer, texts, layers, position, batch_size)
    target, other = states[:, 0::2], states[:, 1::2]
    js = js_divergence(target, other).mean(-1)
    vectors = (target - other).mean(1)
    best = int(js.argmax())
    return {"layers": layers, "vectors": vectors, "js": js.float(), "layer": layers[best], "vector": vectors[best]}


def check_multipliers(multipliers) -> list[float]:
    if isinstance(multipliers, (int, float)) and not isinstance(multipliers, bool):
        multipliers = [multipliers]
    try:
        values = [float(m) for m in multipliers]
    except (TypeError, ValueError):
        raise ValueError(f"multipliers must be a list of numbers, got {multipliers!r}") from None
    if not values or not all(math.isfinite(m) for m in values):
        raise ValueError(f"multipliers must be a non-empty list of finite numbers, got {multipliers!r}")
    return values


@contextlib.contextmanager
def steer(model, layer: int, vector: torch.Tensor, multipliers=1.0):
    """Within the block, block `layer`'s output gets multiplier · vector added, once, at every position it
    computes (prompt and generated tokens alike). `multipliers` is one number, or one per batch row."""
    layer = check_layers(model, layer, "layer")[0]
    vector = torch.as_tensor(vector)
    if vector.shape != (model.config.hidden_size,) or not torch.isfinite(vector).all():
        raise ValueError(f"vector must be a finite tensor of shape ({model.config.hidden_size},), "
                         f"got shape {tuple(vector.shape)}")
    scale = torch.tensor(check_multipliers(multipliers))

    def add(module, args, output):
        hidden = block_output(output)
        m = scale.to(hidden.device, hidden.dtype)
        shift = m.view(-1, 1, 1) * vector.to(hidden.device, hidden.dtype)
        return replace_block_output(output, hidden + shift)

    with hooks((decoder_blocks(model)[layer], add)):
        yield


@torch.inference_mode()
def steered_generate(model, tokenizer, examples: list[dict], layer: int, vector: torch.Tensor, multipliers,
                     max_new_tokens: int = 150, batch_size: int = 32, repetition_penalty: float | None = None
                     ) -> dict[float, list[str]]:
    """Greedy completions of the Alpaca `examples` steered at each multiplier: {multiplier: [text, ...]}. Every
    batch of prompts runs once for all multipliers together (rows = prompts × multipliers). TA² generated with
    repetition_penalty 1.5 and up to 150 new tokens."""
    multipliers = check_multipliers(multipliers)
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {batch_size}, {max_new_tokens}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = [prompt_ids(tokenizer, render_example(ex)[0]) for ex in examples]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    texts = {m: [""] * len(ids) for m in multipliers}
    extra = {} if repetition_penalty is None else {"repetition_penalty": repetition_penalty}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = left_padded([ids[i] for i in rows] * len(multipliers), pad)
            batch = {k: v.to(_device(model)) for k, v in batch.items()}
            per_row = [m for m in multipliers for _ in rows]
            with steer(model, layer, vector, per_row):
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                     pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, **extra)
            new = out[:, batch["input_ids"].shape[1]:]
            for j, seq in enumerate(new):
                m, i = multipliers[j // len(rows)], rows[j % len(rows)]
                texts[m][i] = tokenizer.decode(seq, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return texts
