"""Must-show of the robust_wrn spec at CI size, on real data: digits at 3×32×32, a small WideResNet. After PGD-AT
and after TRADES, PGD-20 robust accuracy at ε = 0.1 is ≥ 30 points above the standard-trained model's, and
clean > PGD-20 ≥ CW ≥ AutoAttack; robustfast's batched APGD-CE / APGD-T land within 1 point of torchattacks'.
The models are trained once per module."""
import pytest
import torch
import torchattacks
from torch.utils.data import TensorDataset

from robustfast.attacks import APGD, evaluate_robustness
from robustfast.data import digits
from robustfast.models import WideResNet
from robustfast.training import train_adversarial, train_classifier

EPS = 0.1
N_EVAL = 100
N_TRAIN = 700  # of digits' 1,438 training images; 100 of them are held out for checkpoint selection
RECIPE = {"eps": EPS, "alpha": 0.04, "steps": 3, "epochs": 4, "batch_size": 64, "lr": 0.1, "schedule": "cosine",
          "weight_decay": 5e-4, "val_split": 100, "augment": False, "progress": False}


def small_wrn():
    torch.manual_seed(0)
    return WideResNet(depths=(1, 1, 1), widths=(1, 1, 1))


@pytest.fixture(scope="module")
def data():
    images, labels = digits("train", size=32, channels=3).tensors
    return TensorDataset(images[:N_TRAIN], labels[:N_TRAIN]), digits("test", size=32, channels=3)


@pytest.fixture(scope="module")
def standard(data):
    model = small_wrn()
    train_classifier(model, data[0], epochs=4, batch_size=64, lr=0.1, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def robust(data):
    out = {}
    for method in ("pgd-at", "trades"):
        model = small_wrn()
        out[method] = (model, train_adversarial(model, data[0], method, **RECIPE))
    return out


def evaluation(model, data, attacks):
    images, labels = data[1].tensors
    return evaluate_robustness(model, (images[:N_EVAL], labels[:N_EVAL]), attacks, eps=EPS, progress=False)


@pytest.mark.parametrize("method", ["pgd-at", "trades"])
def test_adversarial_training_buys_robustness_and_the_attacks_order(method, data, standard, robust, tmp_path):
    model, result = robust[method]
    assert result["selected_by"].startswith("PGD-20 on 100 held-out")
    assert RECIPE["epochs"] // 2 < result["selected_epoch"] <= RECIPE["epochs"]
    base = evaluation(standard, data, ("clean", "pgd20"))["accuracy"]
    report = evaluate_robustness(model, tuple(t[:N_EVAL] for t in data[1].tensors),
                                 ("clean", "pgd20", "cw", "autoattack"), eps=EPS, progress=False,
                                 out=tmp_path / "report.json")
    acc = report["accuracy"]
    print(f"{method}: standard {base}, adversarial {acc}")
    assert acc["pgd20"] >= base["pgd20"] + 0.30
    assert acc["clean"] > acc["pgd20"] >= acc["cw"] >= acc["autoattack"] > 0
    assert len(report["robust"]["autoattack"]) == N_EVAL and (tmp_path / "report.json").is_file()
    assert report["lipschitz"] > 0 and 0 < report["stable"] <= 1


@pytest.mark.parametrize("loss,peer", [("ce", "APGD"), ("dlr-targeted", "APGDT")])
def test_batched_apgd_matches_torchattacks(loss, peer, data, robust):
    model = robust["pgd-at"][0].eval()
    images, labels = (t[:N_EVAL] for t in data[1].tensors)
    ours = APGD(model, eps=EPS, steps=20, loss=loss)(images, labels)
    kw = {"n_classes": 10} if peer == "APGDT" else {"loss": "ce"}
    theirs = getattr(torchattacks, peer)(model, norm="Linf", eps=EPS, steps=20, seed=0, **kw)(images, labels)
    with torch.no_grad():
        acc_ours = (model(ours).argmax(1) == labels).float().mean().item()
        acc_theirs = (model(theirs).argmax(1) == labels).float().mean().item()
    assert (ours - images).abs().max() <= EPS + 1e-6
    assert abs(acc_ours - acc_theirs) <= 0.01 + 1e-9, (acc_ours, acc_theirs)
