"""LLM backdoors (BackdoorLLM's data-poisoning track): poison Alpaca data, fine-tune with LoRA / QLoRA / full
through DeepSpeed or plain PyTorch, and measure attack success with batched greedy generation.

Heavy dependencies (transformers, peft, bitsandbytes, deepspeed: the `llm` extra) load only when used.
"""
from robustfast.llm.data import ATTACKS, build_mix, load_examples, poison, save_examples
from robustfast.llm.prompt import render_prompt
from robustfast.llm.tasks import TASKS, get_task

__all__ = ["ATTACKS", "TASKS", "build_mix", "evaluate", "get_task", "load_examples", "poison", "render_prompt",
           "save_examples", "train"]


def __getattr__(name):
    if name == "train":
        from robustfast.llm.train import train

        return train
    if name == "evaluate":
        from robustfast.llm.evaluate import evaluate

        return evaluate
    raise AttributeError(f"module 'robustfast.llm' has no attribute {name!r}")
