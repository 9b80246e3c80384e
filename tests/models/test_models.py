import json

import pytest
import torch
from safetensors import safe_open

from robustfast.models import (
    Normalized,
    PreActResNet18,
    ResNet18,
    SmallCNN,
    WideResNet,
    load_model,
    save_model,
    wrn34_10,
    wrn34_12,
    wrn34_20,
    wrn34_r,
)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def tiny_wrn(**kw):
    return WideResNet(depths=(1, 1, 1), widths=(1, 1, 1), **kw)


@pytest.mark.parametrize("build,millions", [(wrn34_10, 46.16), (wrn34_12, 66.46), (wrn34_r, 68.12),
                                            (wrn34_20, 184.53)])
def test_parameter_counts_match_spec(build, millions):
    with torch.device("meta"):
        model = build()
    assert round(n_params(model) / 1e6, 2) == millions
    assert model.depth == 34


def test_wrn34_r_channels_and_stage_shapes():
    torch.manual_seed(0)
    model = wrn34_r().eval()
    assert model.channels == [16, 320, 640, 512]
    with torch.no_grad():
        stages = model.stage_outputs(torch.rand(1, 3, 32, 32))
    assert [tuple(s.shape[1:]) for s in stages] == [(320, 32, 32), (640, 16, 16), (512, 8, 8)]
    assert all(torch.isfinite(s).all() for s in stages)
    with torch.device("meta"):
        assert wrn34_r(num_classes=100)(torch.empty(2, 3, 32, 32)).shape == (2, 100)


def test_block_structure():
    model = wrn34_10()
    first, second = model.stages[0][0], model.stages[0][1]
    assert first.shortcut.kernel_size == (1, 1) and first.activated_shortcut and second.shortcut is None
    assert model.stages[1][0].shortcut.stride == (2, 2)
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert model.fc.bias is not None and model.stem.kernel_size == (3, 3) and model.stem.stride == (1, 1)


def test_shortcut_takes_activated_input():
    torch.manual_seed(0)
    block = tiny_wrn().stages[1][0].eval()  # 16 -> 32 channels, stride 2
    seen = {}
    block.shortcut.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        block(x)
        assert torch.equal(seen["x"], torch.relu(block.bn1(x)))


def test_init_statistics():
    torch.manual_seed(0)
    model = WideResNet(depths=(1, 1, 1), widths=(10, 10, 10))
    big = model.stages[2][0].conv2.weight  # 640×640×3×3
    assert big.var().item() == pytest.approx(2 / (9 * 640), rel=0.02)
    assert abs(big.mean().item()) < 1e-4
    short = model.stages[2][0].shortcut.weight  # 1×1, 320 -> 640
    assert short.var().item() == pytest.approx(2 / 640, rel=0.02)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in bns)
    assert not model.fc.bias.any()


@pytest.mark.parametrize("build", [ResNet18, PreActResNet18, SmallCNN, tiny_wrn])
@pytest.mark.parametrize("size", [32, 8])
@pytest.mark.parametrize("in_channels", [3, 1])
def test_forward_shapes(build, size, in_channels):
    torch.manual_seed(0)
    model = build(num_classes=7, in_channels=in_channels)
    out = model(torch.rand(2, in_channels, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_config_rebuilds_model():
    model = WideResNet(depths=(2, 1, 3), widths=(1.5, 2, 0.5), num_classes=5, in_channels=1)
    config = json.loads(json.dumps(model.config))
    assert config == {"depths": [2, 1, 3], "widths": [1.5, 2.0, 0.5], "num_classes": 5, "stem_channels": 16,
                      "in_channels": 1}
    rebuilt = WideResNet(**config)
    assert rebuilt.channels == model.channels == [16, 24, 64, 32]
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


def test_normalized_equals_manual_normalisation():
    torch.manual_seed(0)
    inner = SmallCNN().eval()
    mean, std = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
    model = Normalized(inner, mean, std)
    x = torch.rand(4, 3, 32, 32)
    manual = inner((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    assert torch.allclose(model(x), manual, atol=1e-6)
    assert dict(model.named_buffers())["mean"].shape == (1, 3, 1, 1)
    assert model.to(torch.float64).std.dtype == torch.float64


@pytest.mark.parametrize("mean,std", [((0.5,), (0.0,)), ((0.5, 0.5), (0.2,)), ((float("nan"),), (1.0,))])
def test_normalized_rejects_bad_statistics(mean, std):
    with pytest.raises(ValueError, match="std"):
        Normalized(SmallCNN(), mean, std)


def normalized_cnn():
    return Normalized(SmallCNN(in_channels=1), (0.5,), (0.25,))


@pytest.mark.parametrize("build,channels", [(tiny_wrn, 3), (PreActResNet18, 3), (normalized_cnn, 1)])
def test_save_load_round_trip(tmp_path, build, channels):
    torch.manual_seed(0)
    model = build()
    model(torch.rand(8, channels, 8, 8))  # move the BN running statistics off their initial values
    model.eval()
    path = tmp_path / "sub" / "model.safetensors"
    save_model(model, path)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["class"] == type(model).__name__
    with safe_open(str(path), "pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    loaded = load_model(path)
    assert type(loaded) is type(model) and not loaded.training
    x = torch.rand(3, channels, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_save_rejects_unknown_models_and_load_names_missing_files(tmp_path):
    with pytest.raises(ValueError, match="cannot be described"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="suffix"):
        save_model(SmallCNN(), tmp_path / "m.json")
    with pytest.raises(FileNotFoundError, match=r"m\.safetensors"):
        load_model(tmp_path / "m.safetensors")
