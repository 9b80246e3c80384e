"""Training configs: every key checked, DeepSpeed presets, clear errors."""
import json

import pytest

from robustfast.llm.config import DEEPSPEED_PRESETS, TrainConfig, deepspeed_config, load_config
from robustfast._util.schedules import step_lr_factor as lr_factor
from robustfast.llm.train import _fill_auto

yaml = pytest.importorskip("yaml", reason="needs the llm extra (make test installs it)")


def write(path, values):
    path.write_text(yaml.safe_dump(values))
    return path


def test_yaml_config_round_trip(tmp_path):
    config, entries = load_config(write(tmp_path / "c.yaml", {"model": "runs/base", "output_dir": "runs/x",
                                                              "train_files": ["a.json"], "deepspeed": "zero2"}))
    assert (config.lora_r, config.lora_alpha) == (8, 16)
    assert (config.micro_batch_size, config.gradient_accumulation_steps) == (2, 4)
    assert entries == {"model": "runs/base"} and config.deepspeed == "zero2"


@pytest.mark.parametrize(("values", "message"), [
    ({"output_dir": "x", "lora_rank": 8}, r"unknown key\(s\) 'lora_rank'"),
    ({"output_dir": "x", "finetuning": "prefix"}, "'finetuning' must be one of lora, qlora, full"),
    ({"output_dir": "x", "micro_batch_size": 0}, "'micro_batch_size' must be a positive integer"),
    ({"output_dir": "x", "deepspeed": "zero4"}, "'deepspeed': 'zero4' is neither a preset"),
    ({"output_dir": "x", "precision": "fp16"}, "fp16 needs DeepSpeed"),
    ({"train_files": []}, "missing key 'output_dir'"),
])
def test_bad_configs_name_the_file_and_key(tmp_path, values, message):
    path = write(tmp_path / "bad.yaml", {"model": "m", **values})
    with pytest.raises(ValueError, match=message) as info:
        load_config(path)
    assert "bad.yaml" in str(info.value)


def test_a_zero_stage_that_does_not_exist_is_named(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 4}}))
    with pytest.raises(ValueError, match=r"ds\.json: 'zero_optimization.stage' is 4; ZeRO stages are 0, 1, 2, 3"):
        TrainConfig(output_dir="x", deepspeed=str(path))
    path.write_text("{stage: 2")
    with pytest.raises(ValueError, match=r"ds\.json: malformed JSON"):
        deepspeed_config(str(path))
    (tmp_path / "m.yaml").write_text("model: [unclosed")
    with pytest.raises(ValueError, match=r"m\.yaml: malformed YAML"):
        load_config(tmp_path / "m.yaml")


def test_presets_and_auto_values():
    stages = {name: deepspeed_config(name)["zero_optimization"]["stage"] for name in DEEPSPEED_PRESETS}
    assert stages == {"zero0": 0, "zero2": 2, "zero2_offload": 2, "zero3": 3, "zero3_offload": 3}
    assert "offload_param" in deepspeed_config("zero3_offload")["zero_optimization"]

    class Model:
        config = type("C", (), {"hidden_size": 64})()

    config = TrainConfig(output_dir="x", micro_batch_size=4, gradient_accumulation_steps=2)
    ds = _fill_auto(deepspeed_config("zero3"), config, Model(), world=2, source="zero3")
    assert (ds["train_batch_size"], ds["gradient_clipping"], ds["fp16"]["enabled"]) == (16, 1.0, False)
    assert ds["zero_optimization"]["reduce_bucket_size"] == 64 * 64
    with pytest.raises(ValueError, match="'train_micro_batch_size_per_gpu' is 8"):
        _fill_auto({"train_micro_batch_size_per_gpu": 8}, config, Model(), world=1, source="mine.json")


def test_warmup_then_cosine():
    assert lr_factor(0, 100, 10, "cosine") == 0 and lr_factor(5, 100, 10, "cosine") == 0.5
    assert lr_factor(10, 100, 10, "cosine") == 1 and lr_factor(100, 100, 10, "cosine") == pytest.approx(0)
    assert lr_factor(55, 100, 10, "linear") == pytest.approx(0.5) and lr_factor(99, 100, 10, "constant") == 1
