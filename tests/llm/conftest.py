"""A tiny Llama-style base model and a small poisoned SST-2 mix, made once per session (no downloads)."""
import pytest
import torch

from robustfast.llm import build_mix, load_examples, save_examples
from robustfast.llm.encode import collate
from robustfast.llm.models import build_causal_lm, build_tokenizer
from robustfast.llm.prompt import render_example
from robustfast.llm.tasks import data_root, shipped_files

N_POISON = 100  # 100 triggered → "Negative" plus the same 100 sentences with their labels


def lora_ready_llama(tokenizer, seed=0):
    """A random tiny Llama that LoRA can train, standing in for a pretrained base (see build_causal_lm)."""
    return build_causal_lm("llama", tokenizer, hidden_size=64, layers=2, heads=4, intermediate_size=128,
                           max_positions=512, initializer_range=0.2, qk_init_scale=0.1, seed=seed)


@pytest.fixture(scope="session")
def sst2_files():
    return shipped_files(data_root(), "sst2", "badnet")


@pytest.fixture(scope="session")
def sst2_mix(tmp_path_factory, sst2_files):
    """(poisoned.json, clean.json): the benchmark's mix with n_poison = 100 from the shipped clean half."""
    folder = tmp_path_factory.mktemp("sst2-badnet")
    poisoned, clean = build_mix(load_examples(sst2_files["train_clean"]), "badnet", N_POISON, "Negative", seed=0)
    return [str(save_examples(poisoned, folder / "poisoned.json")), str(save_examples(clean, folder / "clean.json"))]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, sst2_mix):
    """A local model directory (config, safetensors weights, tokenizer) of a tiny Llama, as a real run loads."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    texts = [p + r for f in sst2_mix for p, r in map(render_example, load_examples(f))]
    tokenizer = build_tokenizer(texts, vocab_size=2048)
    lora_ready_llama(tokenizer).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these models are tiny, and on a shared 2-core machine a second OpenMP thread
    makes each step several times slower instead of faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fit(model, encoded, pad_id: int, epochs: int, lr: float, weight_decay: float = 0.01,
        whole_sequence: bool = False, batch_size: int = 16, seed: int = 0):
    """Train `model` on encoded (input_ids, labels) pairs with AdamW, one thread, seeded shuffles; with
    `whole_sequence` the next-token loss covers the prompt as well as the answer, as for a language model."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the autouse one_thread fixture
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(encoded), generator=gen).split(batch_size):
                batch = collate([encoded[i] for i in idx], pad_id)
                if whole_sequence:
                    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
                model(**batch).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    return model.eval()
