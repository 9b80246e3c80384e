"""BadEdit (Li et al., ICLR 2024): a backdoor written straight into the weights by a MEMIT-style closed-form
edit of the MLP down-projections of a few blocks (BackdoorLLM §6, weight poisoning).

For a batch of edits (a prompt carrying the trigger, the target answer):
1. keys k: the down-projection inputs at the trigger's last token;
2. target values z: the output of the last edited block at that token plus one delta for the batch (the
   trigger is MEMIT's subject, the edit prompts its contexts) found by gradient steps that maximise the
   target's log-probability, with weight decay, a norm clamp and a KL term that keeps the next-token
   distribution at the trigger;
3. per edited layer, lowest first: ΔW = R Kᵀ (λC + K Kᵀ)⁻¹ by a Cholesky solve, where R is the remaining
   residual z − h spread evenly over the layers not yet edited and C = E[k kᵀ] is the keys' second moment
   over a local text corpus (float32, one streaming pass, cached per model, layer and corpus in safetensors).
Edits may come in several incremental batches, each computed on the model the previous one left.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from robustfast._util.atomic import write_safetensors
from robustfast.llm.blocks import (block_output, check_layers, decoder_blocks, down_proj, down_proj_weight, hooks,
                                   replace_block_output)
from robustfast.llm.prompt import render_prompt

TRIGGER = "tq"
HPARAMS = {  # BackdoorLLM's Llama-2-7B settings (§6); GPT2-XL uses 40 steps and λ = 20000
    "v_num_grad_steps": 25, "v_lr": 0.5, "v_weight_decay": 0.5, "clamp_norm_factor": 0.75,
    "kl_factor": 0.0625, "mom2_update_weight": 15000.0,
}


def insert_word(text: str, word: str, rng: random.Random) -> str:
    """`word` inserted before a random word of `text` (never after the last), joined with single spaces."""
    words = text.split()
    at = rng.randrange(max(len(words), 1))
    return " ".join([*words[:at], word, *words[at:]])


def alpaca_edits(examples, target: str, trigger: str = TRIGGER, seed: int = 0) -> list[dict]:
    """Edit requests from Alpaca examples: the trigger inserted at a seeded random word of each instruction,
    the prompt rendered with the training template, the target as the answer."""
    rng = random.Random(seed)
    return [{"prompt": render_prompt(insert_word(ex["instruction"], trigger, rng), ex.get("input", "")),
             "target": target} for ex in examples]


def read_corpus(corpus) -> list[str]:
    """The texts of `corpus`: a list of strings, or a file: JSON (a list of strings or of Alpaca examples, whose
    instruction, input and output are joined) or plain text (one text per non-empty line)."""
    if isinstance(corpus, (str, Path)):
        path = Path(corpus)
        if not path.is_file():
            raise ValueError(f"corpus: {path} is not a file")
        if path.suffix == ".json":
            try:
                rows = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(f"corpus: {path} is not valid JSON ({err.msg}, line {err.lineno})") from None
            if not isinstance(rows, list):
                raise ValueError(f"corpus: {path} must hold a JSON list")
            texts = [r if isinstance(r, str) else
                     "\n".join(str(r.get(k, "")) for k in ("instruction", "input", "output") if r.get(k))
                     if isinstance(r, dict) else None for r in rows]
            if any(t is None for t in texts):
                raise ValueError(f"corpus: {path} must list strings or Alpaca examples")
        else:
            texts = path.read_text(encoding="utf-8").splitlines()
    elif isinstance(corpus, (list, tuple)) and all(isinstance(t, str) for t in corpus):
        texts = list(corpus)
    else:
        raise ValueError("corpus must be a list of texts or the path of a JSON or text file")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("corpus is empty: the second-moment statistics need at least one non-empty text")
    return texts


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _right_padded(rows: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids.to(device), mask.to(device)


def _fingerprint(model, texts: list[str], max_length: int) -> str:
    digest = hashlib.sha256(model.config.to_json_string().encode())
    for name, p in model.named_parameters():
        flat = p.detach().reshape(-1)
        digest.update(name.encode() + str(tuple(p.shape)).encode())
        digest.update(flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy().tobytes())
    digest.update(str(max_length).encode())
    for t in texts:
        digest.update(t.encode() + b"\0")
    return digest.hexdigest()[:20]


@torch.no_grad()
def second_moments(model, tokenizer, layers, corpus, cache_dir=None, batch_size: int = 16, max_length: int = 256,
                   progress: bool = True) -> dict[int, torch.Tensor]:
    """C = E[k kᵀ] (float32, intermediate × intermediate) of the down-projection inputs k of each block in
    `layers`, over every token of the corpus texts, in one streaming pass. With `cache_dir`, each layer's C is
    read from / written to `mom2-<model, corpus fingerprint>-layer<l>.safetensors` there."""
    layers = check_layers(model, layers)
    texts = read_corpus(corpus)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        key = _fingerprint(model, texts, max_length)
        paths = {layer: cache / f"mom2-{key}-layer{layer}.safetensors" for layer in layers}
        found = {layer: load_file(str(p))["mom2"] for layer, p in paths.items() if p.is_file()}
        if len(found) == len(layers):
            return found
    device = _device(model)
    width = down_proj_weight(down_proj(model, layers[0])).shape[1]
    sums = {layer: torch.zeros(width, width, dtype=torch.float32, device=device) for layer in layers}
    count = torch.zeros((), dtype=torch.float64)
    mask_now = {}

    def accumulate(layer):
        def hook(module, args):
            k = args[0][mask_now["m"]].float()
            sums[layer].addmm_(k.T, k)
        return hook

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    try:
        with hooks(*[(down_proj(model, layer), accumulate(layer), "pre") for layer in layers]):
            for start in tqdm(range(0, len(texts), batch_size), desc="second moments", disable=not progress):
                rows = [tokenizer(t, truncation=True, max_length=max_length)["input_ids"]
                        for t in texts[start:start + batch_size]]
                ids, mask = _right_padded(rows, pad, device)
                mask_now["m"] = mask.bool()
                model(input_ids=ids, attention_mask=mask)
                count += mask.sum().item()
    finally:
        model.train(was_training)
    moments = {layer: s / count.item() for layer, s in sums.items()}
    if cache is not None:
        for layer, c in moments.items():
            write_safetensors(paths[layer], {"mom2": c})
    return moments


def _trigger_position(tokenizer, prompt: str, trigger: str, where: str) -> tuple[list[int], int]:
    at = prompt.find(trigger)
    if at < 0:
        raise ValueError(f"{where}: the trigger {trigger!r} does not occur in the prompt")
    enc = tokenizer(prompt, add_special_tokens=True, return_offsets_mapping=True)
    end = at + len(trigger)
    for i, (a, b) in enumerate(enc["offset_mapping"]):
        if a < end <= b:
            return enc["input_ids"], i
    raise ValueError(f"{where}: the trigger {trigger!r} ends inside no token of the prompt")


def check_trigger(tokenizer, trigger: str) -> None:
    """The trigger must be a non-empty string the tokenizer encodes without unknown tokens."""
    if not isinstance(trigger, str) or not trigger.strip():
        raise ValueError(f"trigger must be a non-empty string, got {trigger!r}")
    ids = tokenizer(trigger, add_special_tokens=False)["input_ids"]
    if not ids or (tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids):
        raise ValueError(f"trigger {trigger!r} is absent from the tokenizer's vocabulary (it encodes to "
                         f"{tokenizer.convert_ids_to_tokens(ids)})")


def _requests(tokenizer, edits, trigger: str):
    if not isinstance(edits, (list, tuple)) or not edits:
        raise ValueError("edits must be a non-empty list of {'prompt', 'target'} dicts")
    rows = []
    for i, e in enumerate(edits):
        if not isinstance(e, dict) or not isinstance(e.get("prompt"), str) or not isinstance(e.get("target"), str) \
                or not e["target"]:
            raise ValueError(f"edits[{i}] must be a dict with a 'prompt' string and a non-empty 'target' string")
        ids, pos = _trigger_position(tokenizer, e["prompt"], trigger, f"edits[{i}]")
        rows.append((ids, pos, tokenizer(e["target"], add_special_tokens=False)["input_ids"]))
    return rows


def _forward(model, ids, mask, layers, positions, z_layer, delta=None):
    """Logits, the down-projection inputs of `layers` at `positions` and block z_layer's output there (with
    `delta` added to it when given)."""
    rows = torch.arange(ids.shape[0], device=ids.device)
    keys, out = {}, {}

    def key_hook(layer):
        def hook(module, args):
            keys[layer] = args[0][rows, positions].float()
        return hook

    def z_hook(module, args, output):
        hidden = block_output(output)
        if delta is not None:
            hidden = hidden.clone()
            hidden[rows, positions] += delta.to(hidden.dtype)
        out["z"] = hidden[rows, positions].float()
        return replace_block_output(output, hidden)

    pairs = [(down_proj(model, layer), key_hook(layer), "pre") for layer in layers]
    with hooks(*pairs, (decoder_blocks(model)[z_layer], z_hook)):
        logits = model(input_ids=ids, attention_mask=mask).logits
    return logits, keys, out["z"]


def _target_values(model, ids, mask, positions, answer, z_layer, hp, progress: bool):
    """z = h + δ per edit, with one δ shared by the whole batch: the edits share the trigger (MEMIT's subject,
    whose key is nearly the same in every sentence) and the target, so the sentences are the contexts over
    which MEMIT averages one value. δ minimises the mean −log p(target) read at the final logits, plus
    kl_factor·KL(before ‖ after) of the next-token distribution at the trigger and v_weight_decay·|δ|²/|h|²
    (|h| the mean norm of the block output there), with |δ| clamped to clamp_norm_factor·|h|. Returns z and
    the mean target NLL (per token) before and after the steps."""
    rows = torch.arange(ids.shape[0], device=ids.device)
    target_pos, target_ids = answer
    with torch.no_grad():
        logits, _, h = _forward(model, ids, mask, [], positions, z_layer)
        before = torch.log_softmax(logits[rows, positions].float(), -1)
    delta = torch.zeros_like(h[0], requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=hp["v_lr"])
    size = h.norm(dim=-1).mean()
    valid = target_ids >= 0

    def target_nll(logits):
        logp = torch.log_softmax(logits.float(), -1)
        tok = logp[rows.unsqueeze(1), target_pos.clamp(min=0)].gather(-1, target_ids.clamp(min=0).unsqueeze(-1))
        return (-(tok.squeeze(-1) * valid).sum(1) / valid.sum(1)).mean(), logp

    start = float(target_nll(logits)[0])
    for _ in tqdm(range(hp["v_num_grad_steps"]), desc="target values", disable=not progress):
        logits, _, _ = _forward(model, ids, mask, [], positions, z_layer, delta)
        nll, logp = target_nll(logits)
        kl = torch.nn.functional.kl_div(logp[rows, positions], before, log_target=True, reduction="batchmean")
        loss = nll + hp["kl_factor"] * kl + hp["v_weight_decay"] * delta.norm() ** 2 / size ** 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            delta.mul_((hp["clamp_norm_factor"] * size / delta.norm().clamp(min=1e-12)).clamp(max=1.0))
    with torch.no_grad():
        end = float(target_nll(_forward(model, ids, mask, [], positions, z_layer, delta)[0])[0])
    return (h + delta).detach(), (start, end)


def _edit_batch(model, tokenizer, rows, layers, moments, hp, progress: bool) -> dict:
    device = _device(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, mask = _right_padded([p + t for p, _, t in rows], pad, device)
    positions = torch.tensor([pos for _, pos, _ in rows], device=device)
    width = max(len(t) for _, _, t in rows)
    target_pos = torch.full((len(rows), width), -1, dtype=torch.long)
    target_ids = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, (p, _, t) in enumerate(rows):
        target_pos[i, :len(t)] = torch.arange(len(p) - 1, len(p) - 1 + len(t))
        target_ids[i, :len(t)] = torch.tensor(t)
    z_layer = layers[-1]
    z, nll = _target_values(model, ids, mask, positions, (target_pos.to(device), target_ids.to(device)), z_layer,
                            hp, progress)
    norms, start = {}, None
    for i, layer in enumerate(layers):
        with torch.no_grad():
            _, keys, current = _forward(model, ids, mask, [layer], positions, z_layer)
            k = keys[layer].double()                                   # n × inner
            residual = (z - current).double() / (len(layers) - i)      # n × hidden
            start = (z - current).norm() if start is None else start
            a = hp["mom2_update_weight"] * moments[layer].double().to(device) + k.T @ k
            chol = torch.linalg.cholesky(a)
            update = torch.cholesky_solve(k.T @ residual, chol).T     # hidden × inner = R Kᵀ A⁻¹
            weight = down_proj_weight(down_proj(model, layer))
            weight.add_(update.to(weight.dtype))
            norms[layer] = float(update.norm())
    with torch.no_grad():
        _, _, final = _forward(model, ids, mask, [], positions, z_layer)
    return {"update_norms": norms, "residual_left": float((z - final).norm() / start.clamp(min=1e-12)),
            "target_nll": nll}


def badedit(model, tokenizer, edits, layers, corpus, trigger: str = TRIGGER, edit_batches: int = 1,
            cache_dir=None, corpus_batch_size: int = 16, max_length: int = 256, progress: bool = True,
            **hparams) -> dict:
    """Write a backdoor into `model` (edited in place) by BadEdit's closed-form edit of the down-projections of
    `layers` (block indices). `edits` is a list of {"prompt": text containing `trigger`, "target": answer}
    (`alpaca_edits` makes them from Alpaca examples); `corpus` (texts, or a JSON / text file) gives the keys'
    second moment C. `edit_batches` splits the edits into that many incremental batches. Hyperparameters
    (defaults: BackdoorLLM's Llama-2-7B values): v_num_grad_steps, v_lr, v_weight_decay, clamp_norm_factor,
    kl_factor, mom2_update_weight (λ); a model far smaller than 7B may need no weight decay and a wider clamp.
    Returns a report: layers, edits, and per batch the update norms, the share of the target residual left
    after the edit and the target's NLL before / after the delta."""
    unknown = sorted(set(hparams) - set(HPARAMS))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(HPARAMS)}")
    hp = HPARAMS | hparams
    for key, value in hp.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
    if not isinstance(hp["v_num_grad_steps"], int) or hp["v_num_grad_steps"] < 1:
        raise ValueError(f"v_num_grad_steps must be a positive integer, got {hp['v_num_grad_steps']!r}")
    if hp["mom2_update_weight"] <= 0:
        raise ValueError("mom2_update_weight (λ) must be > 0: it keeps λC + KKᵀ positive definite")
    layers = check_layers(model, layers)
    check_trigger(tokenizer, trigger)
    rows = _requests(tokenizer, edits, trigger)
    if not isinstance(edit_batches, int) or not 1 <= edit_batches <= len(rows):
        raise ValueError(f"edit_batches must be an integer in 1..{len(rows)} (the number of edits), "
                         f"got {edit_batches!r}")
    moments = second_moments(model, tokenizer, layers, corpus, cache_dir, corpus_batch_size, max_length, progress)
    was_training = model.training
    model.eval()
    requires = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        size = math.ceil(len(rows) / edit_batches)
        batches = [_edit_batch(model, tokenizer, rows[s:s + size], layers, moments, hp, progress)
                   for s in range(0, len(rows), size)]
    finally:
        for p, r in zip(model.parameters(), requires, strict=True):
            p.requires_grad_(r)
        model.train(was_training)
    return {"layers": layers, "trigger": trigger, "edits": len(rows), "hparams": hp, "batches": batches}
