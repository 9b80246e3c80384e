"""Must-show of the robust_wrn spec on real data (digits, 3 channels) with a small WideResNet (WRN-10-1): after PGD-AT
and after TRADES, PGD-20 robust accuracy at ε = 0.1 is ≥ 30 points above the standard-trained model's, and
clean > PGD-20 ≥ CW ≥ AutoAttack; robustfast's batched APGD-CE / APGD-T land within 1 point of torchattacks'.

The must-show runs at 3×32×32 and is marked slow (its compute is minutes on 2 cores; a first recipe of 4 epochs
on 700 images undertrained: PGD-AT clean 33%, PGD-20 10%, CW 6%, AA 6% against the standard model's 45% / 0%).
At 3×8×8 a standard WRN-10-1 already keeps 55% under PGD-20 at ε = 0.1, so the 30-point gain cannot be asked
there; the default run checks APGD against torchattacks on that model (robust accuracy strictly between 0 and
the clean accuracy, so the comparison means something)."""
import pytest
import torch
import torchattacks

from robustfast.attacks import APGD, evaluate_robustness
from robustfast.data import digits
from robustfast.models import WideResNet
from robustfast.training import train_adversarial, train_classifier

EPS = 0.1
FULL = {"size": 32, "n_eval": 359, "epochs": 10, "steps": 5}


def small_wrn():
    torch.manual_seed(0)
    return WideResNet(depths=(1, 1, 1), widths=(1, 1, 1))


@pytest.fixture(scope="module")
def setup():
    cfg = FULL
    train = digits("train", size=cfg["size"], channels=3)
    images, labels = digits("test", size=cfg["size"], channels=3).tensors
    test = (images[:cfg["n_eval"]], labels[:cfg["n_eval"]])
    standard = small_wrn()
    train_classifier(standard, train, epochs=cfg["epochs"], batch_size=32, lr=0.05, progress=False)
    robust = {}
    for method in ("pgd-at", "trades"):
        model = small_wrn()
        result = train_adversarial(model, train, method, eps=EPS, alpha=0.04, steps=cfg["steps"],
                                   epochs=cfg["epochs"], batch_size=32, lr=0.05, schedule="cosine",
                                   weight_decay=5e-4, val_split=200, augment=False, progress=False)
        robust[method] = (model, result)
    return cfg, test, standard.eval(), robust


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pgd-at", "trades"])
def test_adversarial_training_buys_robustness_and_the_attacks_order(method, setup, tmp_path):
    cfg, test, standard, robust = setup
    model, result = robust[method]
    assert result["selected_by"] == "PGD-20 on 200 held-out training images"
    assert cfg["epochs"] // 2 < result["selected_epoch"] <= cfg["epochs"]
    base = evaluate_robustness(standard, test, ("clean", "pgd20"), eps=EPS, progress=False)["accuracy"]
    report = evaluate_robustness(model, test, ("clean", "pgd20", "cw", "autoattack"), eps=EPS, progress=False,
                                 out=tmp_path / "report.json")
    acc = report["accuracy"]
    print(f"{cfg['size']}x{cfg['size']} {method}: standard {base}, adversarial {acc}")
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
