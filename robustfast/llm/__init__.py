"""LLM backdoors (BackdoorLLM): poison Alpaca data, fine-tune with LoRA / QLoRA / full through DeepSpeed or plain
PyTorch, and measure attack success with batched greedy generation; and the attacks beyond data poisoning:
BadEdit (`badedit`), trojan activation steering (`steering`), BadChain (`badchain`).

Heavy dependencies (transformers, peft, bitsandbytes, deepspeed: the `llm` extra) are imported only when used.
"""
from robustfast.llm.badedit import badedit
from robustfast.llm.data import ATTACKS, build_mix, load_examples, poison, save_examples
from robustfast.llm.evaluate import evaluate
from robustfast.llm.prompt import render_prompt
from robustfast.llm.tasks import TASKS, get_task
from robustfast.llm.train import train

__all__ = ["ATTACKS", "TASKS", "badedit", "build_mix", "evaluate", "get_task", "load_examples", "poison",
           "render_prompt", "save_examples", "train"]
