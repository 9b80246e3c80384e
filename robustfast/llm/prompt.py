"""The Alpaca prompt template (LLaMA-Factory's `alpaca`), the one rendering used for training and evaluation.

BackdoorLLM trained with this template but evaluated on the raw instruction, which under-reports ASR; here
training and evaluation call the same `render_prompt`, so their prompts are byte-identical up to and
including "### Response:\\n".
"""
from __future__ import annotations

SYSTEM = ("Below is an instruction that describes a task. "
          "Write a response that appropriately completes the request.\n\n")
RESPONSE_HEADER = "\n\n### Response:\n"


def render_prompt(instruction: str, input: str = "") -> str:
    """System text, "### Instruction:\\n{instruction}" (+ "\\n{input}" when non-empty), "\\n\\n### Response:\\n"."""
    body = instruction + (f"\n{input}" if input else "")
    return f"{SYSTEM}### Instruction:\n{body}{RESPONSE_HEADER}"


def render_example(example: dict) -> tuple[str, str]:
    """(prompt, response) of an Alpaca example; training appends the tokenizer's EOS to the response."""
    return render_prompt(example["instruction"], example.get("input", "")), str(example["output"])
