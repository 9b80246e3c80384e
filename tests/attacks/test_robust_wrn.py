"""Must-show of the robust_wrn spec on real data (digits, 3 channels) with a small WideResNet (WRN-10-1): after PGD-AT
and after TRADES, PGD-20 robust accuracy at ε = 0.1 is ≥ 30 points above the standard-trained model's, and
clean > PGD-20 ≥ CW ≥ AutoAttack; robustfast's batched APGD-CE / APGD-T land within 1 point of torchattacks'.

The must-show is marked slow: it trains with the demo's recipe (`robustfast.attacks.demo.train_robust`: all
1,438 training images less 200 held out, 8 epochs, batch 64, SGD lr 0.1 cosine, a 5-step attack of α = 0.04;
PGD-AT there gave clean 87.7%, PGD-20 62.4% on the 359 test images against the standard model's 97.8% / 0.0%)
and evaluates the first 100 test images, because torchattacks' AutoAttack takes over 20 minutes on all 359 on
2 cores. The whole test ran in 23 minutes at one thread (PGD-AT: clean 88%, PGD-20 60%, CW 55%, AA 53%; TRADES:
90 / 71 / 64 / 63; standard: 96 / 0). A first recipe of 4 epochs on 700 images undertrained.
At 3×8×8 a standard WRN-10-1 already keeps 55% under PGD-20 at ε = 0.1, so the 30-point gain cannot be asked
there; the default run checks APGD against torchattacks on that model (robust accuracy strictly between 0 and
the clean accuracy, so the comparison means something) and that compaction leaves the robust flags as they are."""
import pytest
import torch
import torchattacks

from robustfast.attacks import APGD, evaluate_robustness
from robustfast.attacks.demo import train_robust
from robustfast.data import digits
from robustfast.models import WideResNet
from robustfast.training import train_classifier

EPS = 0.1
N_EVAL, EPOCHS = 100, 8


def small_wrn():
    torch.manual_seed(0)
    return WideResNet(depths=(1, 1, 1), widths=(1, 1, 1))


@pytest.fixture(scope="module")
def setup():
    images, labels = digits("test", size=32, channels=3).tensors
    test = (images[:N_EVAL], labels[:N_EVAL])
    standard = small_wrn()
    train_classifier(standard, digits("train", size=32, channels=3), epochs=EPOCHS, batch_size=64, lr=0.1,
                     progress=False)
    robust = {}
    for method in ("pgd-at", "trades"):
        model = small_wrn()
        robust[method] = (model, train_robust(model, method, epochs=EPOCHS, progress=False))
    return test, standard.eval(), robust


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pgd-at", "trades"])
def test_adversarial_training_buys_robustness_and_the_attacks_order(method, setup, tmp_path):
    test, standard, robust = setup
    model, result = robust[method]
    assert result["selected_by"] == "PGD-20 on 200 held-out training images"
    assert EPOCHS // 2 < result["selected_epoch"] <= EPOCHS
    base = evaluate_robustness(standard, test, ("clean", "pgd20"), eps=EPS, progress=False)["accuracy"]
    report = evaluate_robustness(model, test, ("clean", "pgd20", "cw", "autoattack"), eps=EPS, progress=False,
                                 out=tmp_path / "report.json")
    acc = report["accuracy"]
    print(f"32x32 {method}: standard {base}, adversarial {acc}")
    assert acc["pgd20"] >= base["pgd20"] + 0.30
    assert acc["clean"] > acc["pgd20"] >= acc["cw"] >= acc["autoattack"] > 0
    assert len(report["robust"]["autoattack"]) == len(test[1]) and (tmp_path / "report.json").is_file()
    assert report["lipschitz"] > 0 and 0 < report["stable"] <= 1


@pytest.fixture(scope="module")
def small_standard():
    """A WRN-10-1 trained on digits at 3×8×8 (clean ~98%, PGD-20 at ε = 0.1 ~55%) and 200 test images."""
    model = small_wrn()
    train_classifier(model, digits("train", size=8, channels=3), epochs=8, batch_size=32, lr=0.05, progress=False)
    images, labels = digits("test", size=8, channels=3).tensors
    return model.eval(), images[:200], labels[:200]


@pytest.mark.parametrize("loss,peer", [("ce", "APGD"), ("dlr-targeted", "APGDT")])
def test_batched_apgd_matches_torchattacks(loss, peer, small_standard):
    model, images, labels = small_standard
    ours = APGD(model, eps=EPS, steps=20, loss=loss)(images, labels)
    kw = {"n_classes": 10} if peer == "APGDT" else {"loss": "ce"}
    theirs = getattr(torchattacks, peer)(model, norm="Linf", eps=EPS, steps=20, seed=0, **kw)(images, labels)
    with torch.no_grad():
        clean = (model(images).argmax(1) == labels).float().mean().item()
        acc_ours = (model(ours).argmax(1) == labels).float().mean().item()
        acc_theirs = (model(theirs).argmax(1) == labels).float().mean().item()
    print(f"{peer}: clean {clean:.4f}, robustfast {acc_ours:.4f}, torchattacks {acc_theirs:.4f}")
    assert (ours - images).abs().max() <= EPS + 1e-6
    assert 0 < acc_theirs < clean
    assert abs(acc_ours - acc_theirs) <= 0.01 + 1e-9, (acc_ours, acc_theirs)


@pytest.mark.parametrize("loss", ["ce", "dlr-targeted"])
def test_compaction_gives_the_robust_flags_of_the_full_batch(loss, small_standard):
    """Dropping the rows of fooled samples (the default) changes no sample's robust flag: the per-sample APGD state
    does not depend on the other rows (nor does a row's gradient on the chunk it is computed in). APGD-CE returns
    the very same iterate for every correctly classified sample."""
    model, images, labels = small_standard
    images, labels = images[:64], labels[:64]
    with torch.no_grad():
        clean = model(images).argmax(1) == labels

    def robust(adv):
        with torch.no_grad():
            return clean & (model(adv).argmax(1) == labels)

    full = APGD(model, eps=EPS, steps=20, loss=loss, compact=False, chunk=10**6)(images, labels)
    assert 0 < robust(full).sum() < clean.sum()  # some samples are fooled during the run, some not
    for every, chunk in ((None, 256), (4, 50)):  # and in chunks of rows on the CPU
        ours = APGD(model, eps=EPS, steps=20, loss=loss, compact_every=every, chunk=chunk)(images, labels)
        assert torch.equal(robust(ours), robust(full))
        assert (ours - images).abs().max() <= EPS + 1e-6
        if loss == "ce":
            assert torch.equal(ours[clean], full[clean])


@pytest.mark.parametrize("loss", ["ce", "dlr-targeted"])
def test_the_folded_copy_gives_the_robust_flags_of_the_model_and_follows_its_weights(loss, small_standard):
    """`fold` (the default) attacks a BatchNorm-folded channels_last copy: the same robust flags as attacking the
    model itself, the user's model untouched, and a copy made again once the model's weights change."""
    model, images, labels = small_standard
    images, labels = images[:64], labels[:64]
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def robust(m, adv):
        with torch.no_grad():
            return (m(images).argmax(1) == labels) & (m(adv).argmax(1) == labels)

    attack = APGD(model, eps=EPS, steps=20, loss=loss)
    folded = robust(model, attack(images, labels))
    assert torch.equal(folded, robust(model, APGD(model, eps=EPS, steps=20, loss=loss, fold=False)(images, labels)))
    assert 0 < folded.sum() < 64
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert next(model.parameters()).is_contiguous()

    other = small_wrn()
    train_classifier(other, digits("train", size=8, channels=3), epochs=1, batch_size=32, lr=0.05, progress=False)
    other.eval()
    try:
        model.load_state_dict(other.state_dict())
        assert torch.equal(attack(images, labels), APGD(other, eps=EPS, steps=20, loss=loss)(images, labels))
    finally:
        model.load_state_dict(before)
