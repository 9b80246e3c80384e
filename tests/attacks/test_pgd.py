"""PGD on a real classifier (digits): success rates, restarts, early stop, model state, bad input."""
import pytest
import torch

from robustfast.attacks import PGD, robust_accuracy
from robustfast.data import digits, loader
from robustfast.models import SmallCNN
from robustfast.training import evaluate, train_classifier


@pytest.fixture(scope="module")
def trained():
    model = SmallCNN(num_classes=10, in_channels=1, width=16)
    train_classifier(model, digits("train"), epochs=6, batch_size=64, lr=0.05, progress=False)
    model.eval()
    images, labels = digits("test").tensors
    with torch.no_grad():
        correct = model(images).argmax(1) == labels
    assert correct.float().mean() > 0.9, "the victim must be accurate for success rates to mean anything"
    return model, images[correct], labels[correct]


def success(model, adv, labels, targeted=False):
    with torch.no_grad():
        pred = model(adv).argmax(1)
    return ((pred == labels) if targeted else (pred != labels)).float().mean().item()


@pytest.mark.parametrize("norm,eps,alpha", [("Linf", 0.2, 0.05), ("L2", 1.0, 0.2)])
def test_untargeted_attack_fools_the_model_where_noise_does_not(trained, norm, eps, alpha):
    model, images, labels = trained
    adv = PGD(model, eps=eps, alpha=alpha, steps=10, norm=norm)(images, labels)
    delta = (adv - images).flatten(1)
    size = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all() and adv.min() >= 0 and adv.max() <= 1
    rate = success(model, adv, labels)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(images.shape, generator=g)
    noise = noise.sign() * eps if norm == "Linf" else noise / noise.flatten(1).norm(dim=1)[:, None, None, None] * eps
    noise_rate = success(model, (images + noise).clamp(0, 1), labels)
    assert rate >= 0.9, f"PGD success {rate:.2f}"
    assert noise_rate <= 0.2, f"random noise of the same size already fools {noise_rate:.2f}"


def test_targeted_attack_reaches_the_target(trained):
    model, images, labels = trained
    targets = (labels + 1) % 10
    adv = PGD(model, eps=0.3, alpha=0.03, steps=20, targeted=True, loss="cw")(images, targets)
    assert success(model, adv, targets, targeted=True) >= 0.8


def test_restarts_never_hurt_and_return_a_fooling_restart(trained):
    model, images, labels = trained
    weak = {"eps": 0.1, "alpha": 0.02, "steps": 3}
    one = PGD(model, restarts=1, seed=5, **weak)(images, labels)
    four = PGD(model, restarts=4, seed=5, **weak)(images, labels)
    assert four.shape == images.shape
    assert success(model, four, labels) > success(model, one, labels) + 0.02


def test_early_stop_keeps_fooled_samples_where_they_fooled(trained):
    model, images, labels = trained
    plain = PGD(model, eps=0.2, alpha=0.05, steps=10)(images, labels)
    early = PGD(model, eps=0.2, alpha=0.05, steps=10, early_stop=True)(images, labels)
    assert success(model, early, labels) >= success(model, plain, labels) - 0.01
    assert (early - images).abs().sum() < (plain - images).abs().sum()


def test_works_inside_no_grad(trained):
    model, images, labels = trained
    with torch.no_grad():
        adv = PGD(model, eps=0.2, alpha=0.05, steps=5)(images[:64], labels[:64])
    assert success(model, adv, labels[:64]) >= 0.8


def test_channels_last_gives_the_same_attack(trained):
    model, images, labels = trained
    copy = SmallCNN(num_classes=10, in_channels=1, width=16)
    copy.load_state_dict(model.state_dict())
    copy.eval()
    plain = PGD(model, eps=0.2, alpha=0.05, steps=5)(images[:64], labels[:64])
    fast = PGD(copy, eps=0.2, alpha=0.05, steps=5, channels_last=True)(images[:64], labels[:64])
    assert next(copy.parameters()).is_contiguous(memory_format=torch.channels_last)
    # Other convolution kernels round differently; a sign step can flip only where a gradient is ~0.
    assert ((plain - fast).abs() > 1e-4).float().mean() <= 0.01
    assert abs(success(model, plain, labels[:64]) - success(model, fast, labels[:64])) <= 0.03


def test_seed_reproducible(trained):
    model, images, labels = trained
    a = PGD(model, eps=0.1, alpha=0.02, steps=3, seed=11)(images[:32], labels[:32])
    b = PGD(model, eps=0.1, alpha=0.02, steps=3, seed=11)(images[:32], labels[:32])
    c = PGD(model, eps=0.1, alpha=0.02, steps=3, seed=12)(images[:32], labels[:32])
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_model_state_is_restored_and_no_weight_gradients(trained):
    model, images, labels = trained
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        PGD(model, eps=0.1, alpha=0.02, steps=2)(images[:16], labels[:16])
        assert model.training
        assert all(p.requires_grad and p.grad is None for p in model.parameters())
    finally:
        model.eval()


def test_amp_matches_float32_success(trained):
    model, images, labels = trained
    fp32 = success(model, PGD(model, eps=0.1, alpha=0.02, steps=10)(images, labels), labels)
    bf16 = success(model, PGD(model, eps=0.1, alpha=0.02, steps=10, amp=True)(images, labels), labels)
    assert abs(fp32 - bf16) <= 0.05


def test_robust_accuracy(trained):
    model, _, _ = trained
    test = digits("test")
    result = robust_accuracy(model, loader(test, batch_size=128), PGD(model, eps=0.2, alpha=0.05, steps=10),
                             progress=False)
    assert result["n"] == len(test)
    assert result["clean"] == pytest.approx(evaluate(model, test))
    assert result["robust"] < 0.1
    assert result["clean"] > 0.9


@pytest.mark.parametrize("images,labels,match", [
    (torch.rand(4, 1, 8, 8) * 2, torch.zeros(4, dtype=torch.long), r"in \[0, 1\]"),
    (torch.full((4, 1, 8, 8), float("nan")), torch.zeros(4, dtype=torch.long), "NaN"),
    (torch.rand(4, 8, 8), torch.zeros(4, dtype=torch.long), "rank"),
    (torch.rand(4, 1, 8, 8), torch.zeros(5, dtype=torch.long), "labels"),
    (torch.rand(4, 1, 8, 8), torch.zeros(4, 1, dtype=torch.long), "labels"),
    (torch.rand(4, 1, 8, 8), torch.zeros(4), "labels"),
])
def test_bad_inputs(images, labels, match):
    with pytest.raises(ValueError, match=match):
        PGD(SmallCNN(in_channels=1))(images, labels)


@pytest.mark.parametrize("kwargs,match", [
    ({"eps": -0.1}, "eps"), ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"restarts": 0}, "restarts"),
    ({"norm": "L1"}, "norm"), ({"loss": "mse"}, "loss"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PGD(SmallCNN(in_channels=1), **kwargs)


def test_model_on_another_device():
    model = SmallCNN(in_channels=1).to("meta")
    with pytest.raises(ValueError, match="meta"):
        PGD(model)(torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))


def test_compile_matches_eager():
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, width=8).eval()
    images, labels = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    eager = PGD(model, eps=0.1, alpha=0.02, steps=3)(images, labels)
    compiled = PGD(model, eps=0.1, alpha=0.02, steps=3, compile=True)(images, labels)
    assert (eager - compiled).abs().max() <= 1e-5
