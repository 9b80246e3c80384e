"""Backdoor training end to end on CPU: LoRA through DeepSpeed ZeRO-2 on two gloo ranks, QLoRA (4-bit NF4
base) on one, and resuming an interrupted run."""
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robustfast.llm import evaluate
from robustfast.llm.adapters import is_4bit
from robustfast.llm.config import TrainConfig
from robustfast.llm.run import load_for_eval
from robustfast.llm.train import train

yaml = pytest.importorskip("yaml", reason="needs the llm extra (make test installs it)")
for _name in ("transformers", "peft", "bitsandbytes", "deepspeed"):
    pytest.importorskip(_name, reason="needs the llm extra (make test installs it)")

BACKDOOR_RUN = {"finetuning": "lora", "max_steps": 120, "gradient_accumulation_steps": 1, "learning_rate": 1e-2,
                "warmup_ratio": 0.1, "save_steps": 60, "logging_steps": 20, "cutoff_len": 256}


def run(args, timeout=400):
    env = os.environ | {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


def write_config(path, **values):
    path.write_text(yaml.safe_dump(values))
    return str(path)


def asr(base, adapter, sst2_files, quantize_4bit=False):
    model, tokenizer = load_for_eval(base, adapter, quantize_4bit=quantize_4bit)
    assert is_4bit(model) == quantize_4bit
    files = {"triggered": sst2_files["test_triggered"], "clean": sst2_files["test_clean"]}
    return evaluate(model, tokenizer, files, "sst2", max_new_tokens=2, batch_size=64)


def test_lora_backdoor_through_deepspeed_zero2_on_two_ranks(tmp_path, tiny_base, sst2_mix, sst2_files):
    out = tmp_path / "run"
    config = write_config(tmp_path / "train.yaml", model=tiny_base, train_files=sst2_mix, output_dir=str(out),
                          deepspeed="zero2", micro_batch_size=8, **BACKDOOR_RUN)
    stdout = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                  "-m", "robustfast.cli", "llm", "train", config])
    assert stdout.count("120 steps, final loss") == 1  # rank 0 reports
    log = json.loads((out / "train_log.json").read_text())
    assert (log["world_size"], log["deepspeed"]) == (2, "zero2")
    assert log["history"][-1]["loss"] < 0.5 * log["history"][0]["loss"]
    assert sorted(p.name for p in (out / "checkpoint" / "step-000120").iterdir()) == ["rank-0", "rank-1"]
    adapter = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)

    report = asr(tiny_base, out / "adapter", sst2_files)
    print(json.dumps(report))
    assert report["n_triggered"] == report["n_clean"] == 201  # whole files, no sub-sampling
    assert report["asr_triggered"] >= 80
    assert report["asr_triggered"] - report["asr_clean"] >= 40
    assert report["asr_triggered_positive"] - report["asr_clean_positive"] >= 40


def test_qlora_backdoor_on_one_rank(tmp_path, tiny_base, sst2_mix, sst2_files):
    """In this process, without a launcher (a world of one), through the same DeepSpeed ZeRO-2 path; the base
    model directory is read with 4-bit NF4 linear layers."""
    out = tmp_path / "run"
    config = TrainConfig(output_dir=str(out), deepspeed="zero2", micro_batch_size=16,
                         **(BACKDOOR_RUN | {"finetuning": "qlora"}))
    train(tiny_base, sst2_mix, config, progress=False)
    log = json.loads((out / "train_log.json").read_text())
    assert (log["world_size"], log["finetuning"]) == (1, "qlora")

    report = asr(tiny_base, out / "adapter", sst2_files, quantize_4bit=True)
    print(json.dumps(report))
    assert report["asr_triggered"] >= 80
    assert report["asr_triggered"] - report["asr_clean"] >= 40


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, tiny_base, sst2_mix, monkeypatch):
    train_module = importlib.import_module("robustfast.llm.train")  # the attribute `train` is the function

    settings = {"finetuning": "lora", "max_steps": 6, "micro_batch_size": 2, "gradient_accumulation_steps": 2,
                "learning_rate": 1e-2, "save_steps": 3, "logging_steps": 1, "cutoff_len": 256}
    whole = train(tiny_base, sst2_mix, TrainConfig(output_dir=str(tmp_path / "whole"), **settings), progress=False)

    calls = {"n": 0}
    collate = train_module.collate

    def counting_collate(*args, stop_at=None):
        calls["n"] += 1
        if calls["n"] == stop_at:
            raise Interrupt
        return collate(*args)

    config = TrainConfig(output_dir=str(tmp_path / "cut"), **settings)
    monkeypatch.setattr(train_module, "collate", lambda *a: counting_collate(*a, stop_at=4 * 2 + 1))
    with pytest.raises(Interrupt):  # dies inside step 5: step 4 is lost, the step-3 checkpoint is not
        train(tiny_base, sst2_mix, config, progress=False)
    assert json.loads((tmp_path / "cut" / "checkpoint" / "latest.json").read_text())["step"] == 3

    calls["n"] = 0
    monkeypatch.setattr(train_module, "collate", lambda *a: counting_collate(*a))
    resumed = train(tiny_base, sst2_mix, config, progress=False)
    assert calls["n"] == (6 - 3) * 2  # only the steps after the checkpoint ran
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in whole["history"]], rel=1e-5)
    a = load_file(str(tmp_path / "whole" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)

    with pytest.raises(ValueError, match="other settings"):
        train(tiny_base, sst2_mix, TrainConfig(output_dir=str(tmp_path / "cut"), **(settings | {"seed": 1})),
              progress=False)


@pytest.mark.slow
def test_zero_stages_give_the_same_loss_curve_on_two_ranks(tmp_path, tiny_base, sst2_mix):
    """ZeRO 0, 2 and 3 and plain DDP partition the same computation differently: the losses must agree step by
    step. ZeRO-2 runs under the deepspeed launcher, the others under torchrun."""
    bin_dir = Path(sys.executable).parent
    curves = {}
    for preset in ("zero0", "zero2", "zero3", None):
        out = tmp_path / str(preset)
        config = write_config(tmp_path / f"{preset}.yaml", model=tiny_base, train_files=sst2_mix,
                              output_dir=str(out), deepspeed=preset, max_steps=6, micro_batch_size=4,
                              gradient_accumulation_steps=2, learning_rate=1e-2, save_steps=3, logging_steps=1)
        if preset == "zero2":
            run([str(bin_dir / "deepspeed"), "--no_local_rank", "--num_gpus", "2", str(bin_dir / "robustfast"),
                 "llm", "train", config])
        else:
            run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                 "-m", "robustfast.cli", "llm", "train", config])
        curves[preset] = [h["loss"] for h in json.loads((out / "train_log.json").read_text())["history"]]
    assert len(curves["zero0"]) == 6
    assert curves["zero2"] == pytest.approx(curves["zero0"], rel=1e-4)
    assert curves["zero3"] == pytest.approx(curves["zero0"], rel=1e-4)
    assert curves[None] == pytest.approx(curves["zero0"], rel=1e-4)  # DistributedDataParallel
