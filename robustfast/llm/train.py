"""Supervised fine-tuning on Alpaca examples: LoRA, QLoRA or full, through DeepSpeed (ZeRO 0-3, offload) or a
plain PyTorch loop, in one process or many (`torchrun` / `deepspeed` launchers), with one code path.

The loss covers the response tokens only. The data order of optimizer step s is a function of (seed, s) alone,
so a resumed run continues exactly where the interrupted one stopped.
"""
from __future__ import annotations

import copy
import math
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

from robustfast._util.atomic import write_json
from robustfast._util.schedules import step_lr_factor
from robustfast._util.seeds import stream_generator
from robustfast.llm import checkpoint, distributed
from robustfast.llm.adapters import add_lora, is_4bit, save_adapter
from robustfast.llm.config import TrainConfig, deepspeed_config
from robustfast.llm.data import load_examples
from robustfast.llm.encode import collate, encode_example
from robustfast.llm.models import load_causal_lm, load_tokenizer
from robustfast.training.checkpoint import optimizer_from_checkpoint, optimizer_to_checkpoint

# Settings a resumed run must share with the run that wrote the checkpoint.
RESUME_KEYS = ("finetuning", "lora_r", "lora_alpha", "micro_batch_size", "gradient_accumulation_steps",
               "learning_rate", "lr_schedule", "warmup_ratio", "seed", "cutoff_len", "deepspeed", "precision")


def step_batches(encoded: list, step: int, config: TrainConfig, rank: int, world: int) -> list[list[int]]:
    """Example indices of this rank's micro-batches at optimizer step `step`: each epoch is a fresh shuffle
    (a function of seed and epoch), cut into steps of micro_batch_size × accumulation × world examples."""
    per_rank = config.micro_batch_size * config.gradient_accumulation_steps
    per_step = per_rank * world
    steps_per_epoch = len(encoded) // per_step
    epoch, j = divmod(step, steps_per_epoch)
    order = torch.randperm(len(encoded), generator=stream_generator(config.seed, epoch)).tolist()
    mine = order[j * per_step + rank * per_rank:j * per_step + (rank + 1) * per_rank]
    return [mine[i:i + config.micro_batch_size] for i in range(0, per_rank, config.micro_batch_size)]


class _TorchRunner:
    """Plain PyTorch: AdamW, DistributedDataParallel when there are several ranks, optional bf16 autocast."""

    def __init__(self, model, optimizer, config: TrainConfig, device: torch.device):
        self.module, self.optimizer, self.config, self.device = model, optimizer, config, device
        self.wrapped = model
        if distributed.world_size() > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.base_optimizer = optimizer
        self.params = [p for p in model.parameters() if p.requires_grad]

    def micro_step(self, batch: dict, last: bool) -> torch.Tensor:
        # DDP all-reduces gradients only in the last micro-batch's backward
        sync = nullcontext() if last or self.wrapped is self.module else self.wrapped.no_sync()
        with sync:
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.config.precision == "bf16"):
                loss = self.wrapped(**batch).loss
            (loss / self.config.gradient_accumulation_steps).backward()
        return loss.detach()

    def finish_step(self) -> None:
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def trainable_weights(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.module.named_parameters() if p.requires_grad}

    def optimizer_state(self) -> tuple[dict, dict]:
        return optimizer_to_checkpoint(self.base_optimizer)

    def load_optimizer_state(self, tensors: dict, rest: dict) -> None:
        optimizer_from_checkpoint(self.base_optimizer, tensors, rest)


def _fill_auto(ds: dict, config: TrainConfig, model, world: int, source: str) -> dict:
    """The DeepSpeed config with the Hugging Face style "auto" entries filled from `config`; explicit entries
    that contradict it raise."""
    ds = copy.deepcopy(ds)
    wanted = {"train_micro_batch_size_per_gpu": config.micro_batch_size,
              "gradient_accumulation_steps": config.gradient_accumulation_steps,
              "train_batch_size": config.micro_batch_size * config.gradient_accumulation_steps * world,
              "gradient_clipping": config.max_grad_norm}
    for key, value in wanted.items():
        if ds.get(key, "auto") not in ("auto", value):
            raise ValueError(f"{source}: {key!r} is {ds[key]!r} but the training config implies {value!r}; "
                             "set it to \"auto\"")
        ds[key] = value
    ds.setdefault("fp16", {})["enabled"] = config.precision == "fp16"
    ds.setdefault("bf16", {})["enabled"] = config.precision == "bf16"
    hidden = getattr(model.config, "hidden_size", None) or model.config.n_embd
    zero = ds.setdefault("zero_optimization", {"stage": 0})
    for key, value in {"reduce_bucket_size": hidden * hidden,
                       "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden),
                       "stage3_param_persistence_threshold": 10 * hidden}.items():
        if zero.get(key) == "auto":
            zero[key] = value
    if "offload_optimizer" in zero:
        ds.setdefault("zero_force_ds_cpu_optimizer", False)  # offload with torch's AdamW, no compiled CPU Adam
    ds.setdefault("steps_per_print", 10**9)  # progress comes from our bar
    left = [k for k, v in {**ds, **zero}.items() if v == "auto"]
    if left:
        raise ValueError(f"{source}: no value to fill in for \"auto\" key(s) {', '.join(map(repr, left))}")
    return ds


class _DeepSpeedRunner:
    """DeepSpeed's engine: it owns accumulation, clipping and the ZeRO partitioning of gradients/optimizer."""

    def __init__(self, model, optimizer, config: TrainConfig, device: torch.device):
        import deepspeed

        ds = _fill_auto(deepspeed_config(config.deepspeed), config, model, distributed.world_size(),
                        f"deepspeed config {config.deepspeed!r}")
        self.stage = ds["zero_optimization"].get("stage", 0)
        if self.stage == 3 and is_4bit(model):
            raise ValueError("'deepspeed': ZeRO-3 cannot partition 4-bit (QLoRA) base weights here; use zero0 or zero2")
        params = [p for p in model.parameters() if p.requires_grad]
        self.engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, model_parameters=params,
                                                    config=ds)
        self.module = self.engine.module
        self.base_optimizer = getattr(self.engine.optimizer, "optimizer", self.engine.optimizer)
        self.names = [n for n, p in self.module.named_parameters() if p.requires_grad]

    def micro_step(self, batch: dict, last: bool) -> torch.Tensor:
        loss = self.engine(**batch).loss
        self.engine.backward(loss)
        self.engine.step()  # applies the update only at the accumulation boundary
        return loss.detach()

    def finish_step(self) -> None:
        pass  # the engine applied the update in the last micro-batch's engine.step()

    def optimizer_state(self) -> tuple[dict, dict]:
        """This rank's optimizer state. ZeRO-3 hands its flat fp32 partitions to the base optimizer only during
        a step, so its state is keyed here by partition index instead of through param_groups."""
        if self.stage < 3:
            return optimizer_to_checkpoint(self.base_optimizer)
        tensors, rest = {}, {}
        for i, flat in enumerate(self.engine.optimizer.fp32_partitioned_groups_flat):
            for key, value in self.base_optimizer.state.get(flat, {}).items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{i}.{key}"] = value
                else:
                    rest.setdefault(str(i), {})[key] = value
        return tensors, {"zero3": rest}

    def load_optimizer_state(self, tensors: dict, rest: dict) -> None:
        if self.stage < 3:
            optimizer_from_checkpoint(self.base_optimizer, tensors, rest)
            return
        flats = self.engine.optimizer.fp32_partitioned_groups_flat
        for name, value in tensors.items():
            i, key = name[len("optimizer."):].split(".", 1)
            self.base_optimizer.state.setdefault(flats[int(i)], {})[key] = value.to(flats[int(i)].device)
        for i, entry in rest["zero3"].items():
            self.base_optimizer.state.setdefault(flats[int(i)], {}).update(entry)

    def trainable_weights(self) -> dict[str, torch.Tensor]:
        named = dict(self.module.named_parameters())
        params = [named[n] for n in self.names]
        if self.stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(params):
                return {n: p.detach().cpu().clone() for n, p in zip(self.names, params, strict=True)}
        return {n: p.detach().float().cpu().clone() for n, p in zip(self.names, params, strict=True)}


def _prepare(model, tokenizer, config: TrainConfig):
    if isinstance(model, (str, Path)):
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model)
        model = load_causal_lm(model, quantize_4bit=config.finetuning == "qlora")
    if tokenizer is None:
        raise ValueError("train() needs a tokenizer when the model is given as an object")
    if config.finetuning == "qlora" and not is_4bit(model):
        from robustfast.llm.adapters import quantize_nf4

        model = quantize_nf4(model)
    if config.finetuning in ("lora", "qlora"):
        model = add_lora(model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout)
    else:
        model.requires_grad_(True)
    return model, tokenizer


def _restore_weights(model, weights: dict[str, torch.Tensor]) -> None:
    named = dict(model.named_parameters())
    missing = sorted(set(weights) - set(named))
    if missing:
        raise ValueError(f"the checkpoint has weights this model lacks: {missing[:3]}...")
    with torch.no_grad():
        for name, value in weights.items():
            named[name].copy_(value)


def _settings(config: TrainConfig, n: int) -> dict:
    return {k: getattr(config, k) for k in RESUME_KEYS} | {"examples": n}


def train(model, train_files, config: TrainConfig, tokenizer=None, progress: bool = True) -> dict:
    """Fine-tune `model` (a transformers causal LM, or the path of a local model directory, read 4-bit for
    QLoRA) on the Alpaca examples of `train_files` as `config` says; return {"steps", "history", "output", "rank"}.

    Every rank of a `torchrun` / `deepspeed` launch calls this alike; without a launcher it is a world of one.
    With `config.deepspeed` (a preset such as "zero2" or a JSON path) the model trains in a DeepSpeed engine,
    otherwise in a plain loop (DDP across ranks). Checkpoints go to `<output_dir>/checkpoint` every
    `save_steps` optimizer steps; a later call with the same output_dir resumes from the last one. At the end,
    rank 0 writes the adapter (`adapter/adapter_model.safetensors`, LoRA/QLoRA) or the model (`model/`, full),
    the tokenizer beside it, and `train_log.json`.
    """
    created = distributed.init(use_deepspeed=config.deepspeed is not None)
    try:
        return _train(model, train_files, config, tokenizer, progress)
    finally:
        if created and config.deepspeed is None:  # DeepSpeed keeps its own handle on the group: leave it
            distributed.shutdown()


def _train(model, train_files, config: TrainConfig, tokenizer, progress: bool) -> dict:
    rank, world, device = distributed.rank(), distributed.world_size(), distributed.device()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # the adapters' initialisation: the same on every rank and every run
        model, tokenizer = _prepare(model, tokenizer, config)
    if not is_4bit(model):
        model.to(device)
    files = [train_files] if isinstance(train_files, (str, Path)) else list(train_files)
    examples = [ex for f in files for ex in load_examples(f)]
    encoded = [encode_example(tokenizer, ex, config.cutoff_len) for ex in examples]
    per_step = config.micro_batch_size * config.gradient_accumulation_steps * world
    if len(encoded) < per_step:
        raise ValueError(f"{len(encoded)} training examples cannot fill one optimizer step of {per_step} "
                         "(micro_batch_size × gradient_accumulation_steps × ranks)")
    total = config.max_steps or max(1, math.ceil(config.epochs * (len(encoded) // per_step)))
    warmup = math.ceil(config.warmup_ratio * total)
    out = Path(config.output_dir)
    root = out / "checkpoint"

    start, history, resumed = 0, [], checkpoint.load_rank(root, rank, world)
    if resumed is not None:
        start, weights, opt_tensors, state = resumed
        if state["settings"] != _settings(config, len(encoded)):
            raise ValueError(f"{root} holds a run with other settings ({state['settings']}); "
                             "use another output_dir or the same settings")
        _restore_weights(model, weights)
        history = state["history"]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    runner = (_DeepSpeedRunner if config.deepspeed is not None else _TorchRunner)(model, optimizer, config, device)
    if resumed is not None:
        runner.load_optimizer_state(opt_tensors, state["optimizer"])

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    runner.module.train()
    bar = tqdm(total=total, initial=start, desc="train", disable=not progress or rank != 0)
    running, since = torch.zeros(()), 0
    for step in range(start, total):
        for group in runner.base_optimizer.param_groups:
            group["lr"] = config.learning_rate * step_lr_factor(step, total, warmup, config.lr_schedule)
        micro = step_batches(encoded, step, config, rank, world)
        for i, idx in enumerate(micro):
            batch = {k: v.to(device) for k, v in collate([encoded[j] for j in idx], pad).items()}
            running += runner.micro_step(batch, last=i == len(micro) - 1).float().cpu() / len(micro)
        runner.finish_step()
        since += 1
        bar.update()
        done = step + 1
        if done % config.logging_steps == 0 or done == total:
            loss = distributed.mean(running.item() / since)
            history.append({"step": done, "loss": loss, "lr": config.learning_rate *
                            step_lr_factor(step, total, warmup, config.lr_schedule)})
            bar.set_postfix(loss=f"{loss:.4f}")
            running, since = torch.zeros(()), 0
        if done % config.save_steps == 0 or done == total:
            _save(runner, root, done, rank, world, {"settings": _settings(config, len(encoded)), "history": history})
    bar.close()
    if rank == 0:
        _export(runner, tokenizer, config, out, total, history, world)
    distributed.barrier()
    return {"steps": total, "history": history, "output": str(out), "rank": rank}


def _save(runner, root: Path, step: int, rank: int, world: int, state: dict) -> None:
    weights = runner.trainable_weights()  # a collective under ZeRO-3: every rank calls it
    checkpoint.save_rank(root, step, rank, weights if rank == 0 else None, runner.optimizer_state(), state)
    distributed.barrier()
    if rank == 0:
        checkpoint.commit(root, step, world)
    distributed.barrier()


def _export(runner, tokenizer, config: TrainConfig, out: Path, total: int, history: list, world: int) -> None:
    weights = checkpoint.load_rank(out / "checkpoint", 0, world)[1]
    if config.finetuning == "full":
        target = out / "model"
        runner.module.save_pretrained(target, state_dict=runner.module.state_dict() | weights,
                                      safe_serialization=True)
    else:
        target = save_adapter(runner.module, out / "adapter", weights)
    tokenizer.save_pretrained(target)
    log = {"steps": total, "world_size": world, "deepspeed": config.deepspeed, "finetuning": config.finetuning,
           "history": history, "saved": str(target)}
    write_json(out / "train_log.json", log, newline=True)
