"""Cognitive Distillation: the fused loop equals the published-way loop, masks do not depend on the batch, the
model is frozen and restored, CD-F finds its layer; and (slow) the must-show efficacy on real data at the issue's
size (digits 3×32×32, 5 % poison, SmallCNN-16 trained 20 epochs here): every poisoned training image and the
first 200 clean ones are scored.

With the spec's CD-L settings the detection targets are not met on digits: poisoned and clean masks come out the
same size (BadNets AUROC 0.31 / 0.45 on seeds 0 / 1, see the README's table), so those tests are xfail with the
measurement, not tuned until they pass. The masks do find the trigger: at γ = 0.03 (chosen on seed 0, where the
share was 6.6×) the trigger corner holds 7.2× its area share of the mask on seed 1, which the test checks."""
import pytest
import torch
from torch.utils.data import TensorDataset

from robustfast.backdoor import CognitiveDistillation, detect, poison, train_backdoored
from robustfast.backdoor.cd import B_REF, colours, default_feature_layer
from robustfast.backdoor.published import published_cd_masks
from robustfast.data import digits
from robustfast.models import SmallCNN

SIZE, WIDTH, EPOCHS, RATE, CLEAN = 32, 16, 20, 0.05, 200


@pytest.fixture(scope="module")
def train_set():
    return digits("train", size=SIZE, channels=3)


def backdoored(train_set, trigger, seed=0):
    poisoned = poison(*train_set.tensors, trigger, rate=RATE, label_mode="all2one", seed=seed)
    torch.manual_seed(seed)
    model = SmallCNN(num_classes=10, in_channels=3, width=WIDTH)
    train_backdoored(model, poisoned, epochs=EPOCHS, batch_size=64, lr=0.05, seed=seed, progress=False)
    return model.eval(), poisoned


def scored_subset(poisoned):
    """All poisoned images and the first CLEAN clean ones, in index order."""
    is_poison = poisoned.trigger_ids >= 0
    keep = is_poison | (torch.cumsum(~is_poison, 0) <= CLEAN) & ~is_poison
    idx = keep.nonzero().flatten()
    return TensorDataset(poisoned.images[idx], poisoned.labels[idx]), is_poison[idx]


MISSED = pytest.mark.xfail(reason="detection target missed on digits with the spec's CD-L settings (BadNets AUROC "
                                   "0.31 / 0.45 on seeds 0 / 1); see the module docstring", strict=False)


@pytest.mark.slow
@MISSED
@pytest.mark.parametrize("trigger", ["badnets", "blend"])
def test_cd_l_detects_poisoned_training_images(trigger, train_set):
    model, poisoned = backdoored(train_set, trigger)
    data, mask = scored_subset(poisoned)
    report = detect(model, data, poison_mask=mask, progress=False)
    print(f"\nCD-L {trigger}: AUROC {report.auroc:.3f} AP {report.ap:.3f} TPR {report.tpr:.3f} FPR {report.fpr:.3f}")
    assert report.auroc >= 0.90
    if trigger == "badnets":
        assert report.l1[mask].median() < torch.quantile(report.l1[~mask], 0.1)


@pytest.mark.slow
def test_badnets_masks_concentrate_on_the_trigger(train_set):
    model, poisoned = backdoored(train_set, "badnets", seed=1)
    images = poisoned.images[poisoned.trigger_ids >= 0][:60]
    masks = CognitiveDistillation(model, mode="logits", gamma=0.03)(images)
    share = (masks[..., -3:, -3:].sum() / masks.sum()).item()
    area = 9 / SIZE**2
    print(f"\nBadNets mask mass in the 3×3 corner (γ = 0.03): {share:.3f} = {share / area:.1f}× its area share")
    assert share >= 5 * area


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=10, in_channels=3, width=4).double().eval()
    images = digits("train", size=8, channels=3).tensors[0][:100].double()
    return model, images


def test_fused_loop_equals_the_published_way_loop(tiny):
    """Same colours, float64, batch 100 (where the published 1/B equals the fixed 1/B_REF): the same masks."""
    model, images = tiny
    idx = torch.arange(len(images))
    fused = CognitiveDistillation(model, steps=5)(images)
    published = published_cd_masks(model, images, steps=5,
                                    colour_fn=lambda step, b, c: colours(0, step, idx, c).view(b, c, 1, 1))
    assert len(images) == B_REF
    assert torch.allclose(fused, published, atol=1e-8)


def test_any_batch_size_gives_the_masks_of_batch_100(tiny):
    model, images = tiny
    cd = CognitiveDistillation(model, steps=10)
    whole = cd(images)
    parts = torch.cat([cd(images[i:i + 30], index=i) for i in range(0, 100, 30)])
    assert torch.allclose(whole, parts, atol=1e-5)


def test_colours_are_keyed_by_seed_step_image_and_channel():
    a = colours(0, 1, torch.arange(1000), 3)
    assert a.shape == (1000, 3) and a.min() >= 0 and a.max() < 1 and abs(a.mean().item() - 0.5) < 0.03
    assert torch.equal(colours(0, 1, torch.arange(10, 20), 3), a[10:20])
    assert not torch.equal(colours(0, 2, torch.arange(1000), 3), a)
    assert not torch.equal(colours(1, 1, torch.arange(1000), 3), a)


def test_model_is_frozen_during_the_run_and_restored_also_on_error():
    model = SmallCNN(num_classes=10, in_channels=3, width=4).train()
    model.fc.weight.requires_grad_(False)
    seen = []
    model.register_forward_hook(lambda mod, inp, out: seen.append(
        (mod.training, any(p.requires_grad for p in mod.parameters()))))
    CognitiveDistillation(model, steps=2)(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    assert seen and all(s == (False, False) for s in seen)
    assert model.training and not model.fc.weight.requires_grad and model.fc.bias.requires_grad
    for p in model.parameters():
        assert p.grad is None

    def fail(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        CognitiveDistillation(model, steps=2, preprocess=fail)(torch.rand(2, 3, 8, 8))
    assert model.training and model.fc.bias.requires_grad


def test_cd_f_hooks_the_last_module_before_pooling():
    model = SmallCNN(num_classes=10, in_channels=3, width=4)
    assert default_feature_layer(model, torch.rand(1, 3, 8, 8)) == "features.2"
    masks = CognitiveDistillation(model, mode="features", steps=3, mask_channels=3)(torch.rand(2, 3, 8, 8))
    assert masks.shape == (2, 3, 8, 8) and ((masks > 0) & (masks < 1)).all()
