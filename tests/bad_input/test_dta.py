"""Bad input to DTA, the ViT wrapper, pre-training and fine-tuning (spec dta.md §7): a ValueError naming the
argument; LoRA without peft an ImportError with the install hint."""
import math
import sys

import pytest
import torch
from torch.utils.data import TensorDataset

from robustfast.attacks import DTA
from robustfast.models.vit import build_vit, wrap
from robustfast.training.vit import finetune, pretrain
from tests.bad_input.helpers import rejected


@pytest.fixture(scope="module")
def encoder():
    return wrap(build_vit(seed=0, num_hidden_layers=2)).eval()


def images(n=4, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kw,name", [
    ({"eps": -0.1}, "eps"), ({"eps": math.nan}, "eps"), ({"alpha": 0.0}, "alpha"), ({"alpha": -1.0}, "alpha"),
    ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"layer": 0}, "layer"), ({"layer": 3}, "layer"),
    ({"layer": "deep"}, "layer"), ({"layer": "search"}, "probe"), ({"criterion": "best"}, "criterion"),
    ({"reduction": "sum"}, "reduction"), ({"tokens": "some"}, "tokens"), ({"features": "x"}, "features"),
    ({"loss": "ce"}, "loss"), ({"mode": "batch"}, "mode"), ({"candidates": [0, 1]}, "candidates"),
    ({"candidates": []}, "candidates"), ({"layer": "search", "probe": images() * 2}, "probe"),
])
def test_bad_settings_name_the_argument(encoder, kw, name):
    kw = {"layer": 1, **kw}
    with rejected(name, kind=ValueError):
        DTA(encoder, **kw)


@pytest.mark.parametrize("bad", [images()[0], images() * 3 - 1, images().masked_fill(images() > 0.9, math.nan),
                                 images().long()])
def test_bad_images_name_images(encoder, bad):
    with rejected("images"):
        DTA(encoder, layer=1, steps=1)(bad)


def test_wrap_and_tokens_name_the_argument(encoder):
    with rejected("model", kind=ValueError):
        wrap(torch.nn.Conv2d(3, 3, 3))
    with rejected("upto", kind=ValueError):
        encoder.tokens(images(), 0)
    with rejected("images", kind=ValueError):
        encoder.tokens(torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(1)), 1)


def test_training_arguments(encoder):
    data = TensorDataset(images(8), torch.arange(8) % 2)
    with rejected("method", kind=ValueError):
        pretrain(data, "byol", epochs=1)
    with rejected("epochs", kind=ValueError):
        pretrain(data, "supervised", epochs=0)
    with rejected("scheme", kind=ValueError):
        finetune(encoder, data, "prompt", epochs=1)
    with rejected("encoder", kind=ValueError):
        finetune(build_vit(), data, epochs=1)
    with rejected("data", kind=ValueError):
        finetune(encoder, TensorDataset(torch.rand(8, 3)), epochs=1)
    with rejected("adversarial", kind=ValueError):
        finetune(encoder, data, adversarial="dta", epochs=1)


def test_lora_without_peft_is_an_import_error_with_the_hint(encoder, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    data = TensorDataset(images(8), torch.arange(8) % 2)
    with pytest.raises(ImportError, match="pip install"):
        finetune(encoder, data, "lora", epochs=1, progress=False)
