"""GPU-only checks of the fast paths: bf16 autocast and torch.compile (with and without CUDA graphs) keep
robust accuracy within one point of float32 on a trained model. Skipped on machines without CUDA."""
import pytest
import torch

from robustfast.attacks import PGD
from robustfast.data import digits
from robustfast.models import PreActResNet18
from robustfast.training import train_classifier

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def trained():
    model = PreActResNet18().cuda()
    train_classifier(model, digits("train", size=32, channels=3), epochs=4, batch_size=128, lr=0.05,
                     progress=False)
    images, labels = (t.cuda() for t in digits("test", size=32, channels=3).tensors)
    return model.eval(), images, labels


def robust(model, attack, images, labels):
    with torch.no_grad():
        return (model(attack(images, labels)).argmax(1) == labels).float().mean().item()


@pytest.mark.parametrize("options", [{"amp": True}, {"amp": True, "compile": True},
                                     {"compile": "reduce-overhead"}], ids=str)
def test_fast_paths_keep_robust_accuracy(trained, options):
    model, images, labels = trained
    base = robust(model, PGD(model, eps=4 / 255, alpha=1 / 255, steps=10), images, labels)
    fast = robust(model, PGD(model, eps=4 / 255, alpha=1 / 255, steps=10, **options), images, labels)
    assert abs(base - fast) <= 0.01 + 1e-9, f"float32 {base:.4f} vs {options} {fast:.4f}"


def test_cuda_and_triton_backends_agree_on_an_attack(trained):
    import robustfast

    model, images, labels = trained
    outs = []
    for backend in ("triton", "cuda", "reference"):
        with robustfast.use_backend(backend):
            outs.append(PGD(model, eps=8 / 255, alpha=2 / 255, steps=5, seed=1)(images[:256], labels[:256]))
    assert (outs[0] - outs[2]).abs().max() <= 1e-5
    assert (outs[1] - outs[2]).abs().max() <= 1e-5
