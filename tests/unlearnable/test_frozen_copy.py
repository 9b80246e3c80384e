"""The surrogate the δ phase sees: BatchNorm folded into the convolutions, the same function, the model untouched."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustfast.models import ResNet18
from robustfast.models.fold import frozen_eval_copy

from .helpers import tiny_model


def _trained_bn(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Running statistics and affine parameters away from their (0, 1) start, so folding has work to do."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.train()
    with torch.no_grad():
        model(images)
    return model.eval()


@pytest.mark.parametrize("make", [lambda: tiny_model(width=8), lambda: ResNet18(num_classes=10)])
def test_folded_copy_computes_the_same_logits_and_input_gradients(tiny_digits, make):
    images, labels = tiny_digits
    model = _trained_bn(make(), images)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = frozen_eval_copy(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert all(not p.requires_grad for p in folded.parameters())
    grads = []
    for net in (model, folded):
        x = images[:32].clone().requires_grad_(True)
        logits = net(x)
        grads.append((logits.detach(), torch.autograd.grad(F.cross_entropy(logits, labels[:32]), x)[0]))
    (want, want_grad), (got, got_grad) = grads
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_grad, want_grad, atol=1e-6, rtol=1e-3)
    assert (got_grad.sign() == want_grad.sign()).float().mean() > 0.999
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"the model's {k} changed"
    assert next(model.parameters()).is_contiguous() and next(model.parameters()).requires_grad


class _Untraceable(nn.Module):
    """Control flow on a tensor's value: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.net = tiny_model()

    def forward(self, x):
        return self.net(x) if x.sum() > 0 else -self.net(x)


def test_untraceable_model_is_copied_unfolded_with_a_warning(tiny_digits):
    images, _ = tiny_digits
    model = _trained_bn(_Untraceable(), images)
    with pytest.warns(UserWarning, match="cannot trace"):
        copy = frozen_eval_copy(model)
    assert any(isinstance(m, nn.BatchNorm2d) for m in copy.modules())
    with torch.no_grad():
        torch.testing.assert_close(copy(images), model(images))
