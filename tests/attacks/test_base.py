"""The Attack base class: the subclass of its docstring works, and the shared parts behave for any subclass."""
import pytest
import torch
from typer.testing import CliRunner

from robustfast.attacks import PGD, Attack, attack_loss
from robustfast.attacks.base import check_number
from robustfast.cli import app
from robustfast.models import SmallCNN, save_model


class FGSM(Attack):
    """The docstring's example, verbatim in behaviour."""

    def __init__(self, model, eps=8 / 255, **common):
        super().__init__(model, **common)
        self.eps = check_number(eps, "eps", 0.0)
        self.step = self.compiled(self.eager_step)

    def eager_step(self, x, labels):
        x = x.detach().requires_grad_(True)
        loss = attack_loss(self.forward(x), labels, "ce", targeted=False).sum()
        (grad,) = torch.autograd.grad(loss, x)
        return (x + self.eps * grad.sign()).clamp(0, 1).detach()

    def perturb(self, images, labels):
        x0, y = self.tile_restarts(images, labels)
        x = self.step(x0, y)
        if self.restarts == 1:
            return x
        with torch.no_grad():
            score = attack_loss(self.forward(x), y, "ce", targeted=False)
        return self.pick_restart(x, score, images.shape[0])


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return SmallCNN(in_channels=1, width=8).train()


def test_a_subclass_gets_checks_freezing_and_restarts(model):
    images, labels = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    with torch.no_grad():
        adv = FGSM(model, eps=0.1, restarts=2)(images, labels)
    assert adv.shape == images.shape and (adv - images).abs().max() <= 0.1 + 1e-6
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        FGSM(model)(images * 3, labels)
    with pytest.raises(ValueError, match="restarts"):
        FGSM(model, restarts=0)


def test_pgd_is_an_attack_and_the_base_alone_perturbs_nothing(model):
    assert isinstance(PGD(model), Attack)
    with pytest.raises(NotImplementedError, match="perturb"):
        Attack(model)(torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))


def test_attack_command_reports_clean_and_robust_accuracy(model, tmp_path):
    save_model(model, tmp_path / "m.safetensors")
    result = CliRunner().invoke(app, ["attack", "--model", str(tmp_path / "m.safetensors"), "--size", "8",
                                      "--channels", "1", "--steps", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "robust accuracy" in result.output and "359 digits test images" in result.output
