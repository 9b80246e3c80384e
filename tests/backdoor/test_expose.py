"""Expose Before You Defend on digits (3×16×16, SmallCNN width 8, BadNets 10 % all-to-one, target 0): what the
exposure methods and their downstream tasks must achieve (specs/ebyd.md §9, at CI size), and the parity of every
batched path with its one-at-a-time oracle. One backdoored and one clean model per session (tests/backdoor/
ebyd_models.py); the ≥ 5 + 5 model-detection sweep is marked slow."""
import pytest
import torch
from torch.utils.data import TensorDataset

from robustfast.backdoor import (
    calibrate_detection,
    detect_label,
    detect_model,
    detect_models,
    expose,
    mmbd,
    neural_cleanse,
    rnp,
)
from robustfast.backdoor.expose import METHODS
from robustfast.backdoor.expose_data import crop_flip, histogram
from robustfast.backdoor.mmbd import max_margins
from robustfast.backdoor.rnp import pruned_bn, sweep_counts
from tests.backdoor.ebyd_models import CUL_LR, backdoored, clean, nc_data


@pytest.fixture(scope="module")
def cul():
    s = backdoored()
    return expose(s.model, s.defense, "cul", lr=CUL_LR, asr_set=s.asr, augment=crop_flip)


def test_cul_trajectory(cul):
    """Spec §9: accuracy on D holds for the first epochs, then falls to ≤ 0.15; ASR ≥ 0.99 throughout;
    h(t) rises to ≥ 0.95; argmax h = t."""
    rows, t = cul.trajectory, backdoored().target
    table = cul.table(target=t)
    assert len(rows) == 21 and [r["epoch"] for r in rows] == list(range(21))
    assert min(r["acc"] for r in rows[:2]) >= 0.85, table  # the spec: about 10 epochs (ResNet-18); see README
    assert rows[-1]["acc"] <= 0.15, table
    assert rows[0]["asr"] >= 0.95, table  # the backdoored model's own ASR (0.975 at this size)
    assert min(r["asr"] for r in rows[1:]) >= 0.99, table
    assert rows[-1]["hist"][t] >= 0.95, table
    assert detect_label(cul) == t


def test_input_model_is_not_modified(cul):
    s = backdoored()
    assert cul.model is not s.model
    assert any(not torch.equal(a, b) for a, b in zip(cul.model.state_dict().values(),
                                                     s.model.state_dict().values(), strict=True))


@pytest.mark.parametrize("method", [m for m in METHODS if m != "cul"])
def test_every_method_runs_and_keeps_the_input(method):
    s = backdoored()
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    kwargs = {"epochs": 2} if method in ("random-label", "anp") else {}
    exp = expose(s.model, s.defense, method, asr_set=s.asr, **kwargs)
    assert all(torch.equal(before[k], v) for k, v in s.model.state_dict().items())
    assert len(exp.models) == (1 if method == "random-label" else 9) and len(exp.trajectory) >= 3
    for row in exp.trajectory:
        assert abs(row["hist"].sum().item() - 1) < 1e-9 and 0 <= row["asr"] <= 1


def test_histogram_equals_loop_counts():
    pred = torch.randint(0, 7, (1000,), generator=torch.Generator().manual_seed(3))
    loop = torch.tensor([sum(int(p) == c for p in pred) for c in range(7)], dtype=torch.float64) / 1000
    assert torch.equal(histogram(pred, 7), loop)


def test_neural_cleanse_flags_the_target_on_the_exposed_model(cul):
    s = backdoored()
    data = nc_data(s)
    exposed = neural_cleanse(cul.model, data, epochs=10)
    original = neural_cleanse(s.model, data, epochs=10)
    msg = f"exposed:\n{exposed.table()}\noriginal:\n{original.table()}"
    assert s.target in exposed.flagged and int(exposed.norms.argmin()) == s.target, msg
    assert exposed.anomaly[s.target] > 2, msg
    print(f"NC anomaly index of t: exposed {exposed.anomaly[s.target]:.2f}, original {original.anomaly[s.target]:.2f}")


def test_batched_neural_cleanse_equals_class_by_class():
    s = backdoored()
    data = TensorDataset(*[t[:40] for t in nc_data(s).tensors])
    joint = neural_cleanse(s.model, data, epochs=2, batch_size=16)
    for k in (0, 3, 9):
        alone = neural_cleanse(s.model, data, classes=[k], epochs=2, batch_size=16)
        torch.testing.assert_close(alone.masks[0], joint.masks[k], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(alone.patterns[0], joint.patterns[k], rtol=1e-4, atol=1e-5)


def test_rnp_removes_the_backdoor_in_most_unlearning_seeds():
    """RNP over 5 seeds (unlearning and mask-recovery order): the backdoor is removed (ASR < 0.10 at some
    τ ≤ 0.3) in every seed, and in at least 3 of 5 at a CA loss ≤ 7 points. On SmallCNN-8 the CA loss at the
    best τ is bimodal: 2-6 points in most seeds, ~40 points in the others (measured at 1 and 2 torch threads;
    README: EBYD), so the spec's < 2 points is not asserted."""
    s = backdoored()
    kept = []
    for seed in range(5):
        res = rnp(s.model, s.defense, test_set=s.test, asr_set=s.asr, augment=crop_flip, seed=seed)
        table = res.table()
        assert res.unlearn_acc[-1] <= 0.2 or len(res.unlearn_acc) == 20, res.unlearn_acc
        assert res.base_asr >= 0.95, table
        removed = [res.clean_acc[i] for i, t in enumerate(res.taus) if t <= 0.3 and res.asr[i] < 0.10]
        assert removed, f"seed {seed}\n{table}"
        assert all(b <= a + 0.05 for a, b in zip(res.asr, res.asr[1:], strict=False)), table  # non-increasing
        kept.append(res.base_clean_acc - max(removed))
    assert sum(loss <= 0.07 for loss in kept) >= 3, kept


def test_tau_sweep_in_one_pass_equals_per_tau_evaluation():
    s = backdoored()
    g = torch.Generator().manual_seed(8)
    masks = {n: torch.rand(m.weight.shape, generator=g) for n, m in s.model.named_modules()
             if isinstance(m, torch.nn.BatchNorm2d)}
    stacked = pruned_bn(s.model, masks, [0.0, 0.1, 0.3, 0.5, 0.9])
    x, y = s.test.tensors
    one_pass = sweep_counts(s.model, stacked, x, y, 10)
    per_tau = sweep_counts(s.model, stacked, x, y, 10, per_tau=True)
    assert torch.equal(one_pass, per_tau)


def test_mmbd_flags_the_backdoored_model_and_its_target():
    """At CI size (100 steps, 10 images per class). The clean model of seed 0 is a false positive here
    (p = 0.008; seed 1: p = 0.21), so only the backdoored side is asserted; see the README."""
    bd = mmbd(backdoored().model, (3, 16, 16), steps=100, images=10)
    assert bd.p_value <= 0.05 and bd.label == backdoored().target, bd


def test_batched_mmbd_equals_per_class():
    model = backdoored().model
    joint = max_margins(model, (3, 16, 16), classes=list(range(10)), images=4, steps=20)
    for k in (0, 5):
        alone = max_margins(model, (3, 16, 16), classes=[k], images=4, steps=20)
        torch.testing.assert_close(alone[0], joint[k], rtol=1e-4, atol=1e-4)


def test_model_detection_score_and_vmapped_equals_loop():
    bd, cl = backdoored(), clean()
    kw = {"epochs": 2, "milestones": (10, 20)}
    vm = detect_models([bd.model, cl.model], bd.defense, bd.test, augment=crop_flip, **kw)
    loop = [detect_model(m, bd.defense, bd.test, augment=crop_flip, **kw) for m in (bd.model, cl.model)]
    for a, b in zip(vm, loop, strict=True):
        assert abs(a.score - b.score) < 1e-3 and a.backdoored == b.backdoored


def test_calibration_keeps_the_first_lr_at_which_clean_references_stay_clean():
    """The spec's lr 0.005 collapses a clean SmallCNN-8 too (s = 0.09); at 3e-4 it stays under 0.01, and the
    backdoored model (not a reference) is still flagged there."""
    bd, cl = backdoored(), clean()
    cal = calibrate_detection([cl.model], cl.defense, cl.test, lrs=(3e-4, 5e-3), augment=crop_flip)
    assert list(cal.scores) == [5e-3, 3e-4] and cal.lr == 3e-4, cal.table()
    assert cal.scores[5e-3][0] > 0.01 >= cal.scores[3e-4][0], cal.table()
    assert detect_model(bd.model, bd.defense, bd.test, augment=crop_flip, lr=cal.lr).backdoored


def test_cul_stops_after_the_first_epoch_at_or_under_stop_acc():
    s = backdoored()
    exp = expose(s.model, s.defense, "cul", lr=CUL_LR, stop_acc=0.15, augment=crop_flip)
    accs = [r["acc"] for r in exp.trajectory]
    assert len(accs) < 21 and accs[-1] <= 0.15 and all(a > 0.15 for a in accs[:-1]), accs
    held_out = expose(s.model, s.defense, "cul", lr=CUL_LR, stop_acc=0.15, augment=crop_flip, eval_set=s.test)
    assert len(held_out.trajectory) == len(accs)  # the stop reads the defense set, whatever eval_set is


@pytest.fixture
def one_thread():
    """The README's figures were measured at one torch thread; training differs in the last bits across thread
    counts, and the clean models' scores sit close to the threshold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_exposure_table_rows_and_options(monkeypatch):
    """`robustfast expose-table` on the session's model: the original's row and CUL's (its lr and stop_acc
    reach `expose`: it stops early), MMBD skipped at 0 steps, then RNP's removal row."""
    from robustfast.backdoor import ebyd_study

    monkeypatch.setattr(ebyd_study, "setting", lambda trigger, seed, **kw: backdoored())
    rows = ebyd_study.exposure_table(("badnets",), methods=("cul",), cul_lr=CUL_LR, stop_acc=0.5, nc_epochs=1,
                                     mmbd_steps=0, cd_steps=2)
    none, cul_row, removal = rows
    assert [none["exposure"], cul_row["exposure"]] == ["none", "cul"]
    assert none["acc D"] > 0.9 and none["ASR"] > 0.9
    epochs = int(cul_row["point"].removeprefix("ep "))
    assert 0 < epochs < 20 and cul_row["acc D"] <= 0.5 and cul_row["argmax h"] == 0, cul_row
    assert none["MMBD p"] is None and cul_row["MMBD class"] is None
    assert 0.0 <= cul_row["CD AUROC"] <= 1.0 and cul_row["NC index t"] >= 0
    assert removal["rnp"]["trigger"] == "badnets" and removal["rnp"]["CA"] > 0.9 and removal["rnp"]["ASR"] > 0.9


@pytest.mark.slow
def test_model_detection_and_mmbd_over_five_backdoored_and_five_clean_models(one_thread):
    """`robustfast expose-models` (seeds 0-4, references 5-7): the spec's SGD recipe flags every model (FPR 1.0);
    with its lr calibrated on the clean references, TPR >= 0.8 at FPR <= 0.2; MMBD p <= 0.05 exactly for the
    backdoored models."""
    from robustfast.backdoor.ebyd_study import models_study

    out = models_study()
    assert out["spec"]["tpr"] == 1.0 and out["spec"]["fpr"] == 1.0
    assert out["calibration"]["lr"] is not None and out["calibration"]["lr"] < 0.005
    assert out["calibrated"]["tpr"] >= 0.8 and out["calibrated"]["fpr"] <= 0.2, out["calibrated"]
    assert all(lab == 0 for lab in out["calibrated"]["labels"][:5])
    assert out["mmbd"]["tpr"] == 1.0 and out["mmbd"]["fpr"] == 0.0, out["mmbd"]


@pytest.mark.slow
def test_cul_trajectory_at_32_with_a_small_resnet(one_thread):
    """The issue's setting, digits 3×32×32 and WRN-10-1 (`robustfast expose --size 32 --arch wrn-10-1 --cul-lr 5e-4
    --stop-acc 0.1`): accuracy on D holds for the first epoch, then falls to ≤ 0.10 where CUL stops; ASR ≥ 0.99
    throughout; h(t) ≥ 0.95 at the end; argmax h = t."""
    from robustfast.backdoor.ebyd_setup import digits_setting

    s = digits_setting("badnets", seed=0, size=32, arch="wrn-10-1")
    exp = expose(s.model, s.defense, "cul", lr=5e-4, stop_acc=0.1, asr_set=s.asr, augment=crop_flip)
    rows, table = exp.trajectory, exp.table(target=s.target)
    assert rows[1]["acc"] >= 0.85 and rows[-1]["acc"] <= 0.10 and len(rows) < 21, table
    assert min(r["asr"] for r in rows[1:]) >= 0.99, table
    assert rows[-1]["hist"][s.target] >= 0.95 and detect_label(exp) == s.target, table


@pytest.mark.slow
def test_rnp_on_a_wider_cnn_removes_the_backdoor_at_a_small_ca_loss(one_thread):
    """RNP on SmallCNN-64 (448 BN channels instead of 56): the backdoor goes (ASR < 0.10 at some τ ≤ 0.3), with
    ASR non-increasing in τ and 0 by τ = 0.8. On model seed 0 over unlearning seeds 0-4 the CA loss is < 2 points
    (the issue's target; measured 1.4-1.9); on model seeds 1-4 (unlearning seed 0) it is 2.2-3.1, asserted
    ≤ 3.5 (README: EBYD). SmallCNN-8 misses both."""
    from robustfast.backdoor.ebyd_setup import digits_setting

    runs = [(0, seed, 0.02) for seed in range(5)] + [(model, 0, 0.035) for model in range(1, 5)]
    settings = {model: digits_setting("badnets", seed=model, width=64) for model in range(5)}
    for model, seed, max_loss in runs:
        s = settings[model]
        res = rnp(s.model, s.defense, test_set=s.test, asr_set=s.asr, augment=crop_flip, seed=seed)
        table = f"model {model}, unlearning seed {seed}\n{res.table()}"
        removed = [res.clean_acc[i] for i, t in enumerate(res.taus) if t <= 0.3 and res.asr[i] < 0.10]
        assert removed and res.base_clean_acc - max(removed) < max_loss, table
        assert all(b <= a + 0.05 for a, b in zip(res.asr, res.asr[1:], strict=False)), table
        assert res.asr[res.taus.index(0.8)] == 0.0, table


class TokenClassifier(torch.nn.Module):
    """A text-like model: a LongTensor of token ids in, logits out (its padding mask computed inside)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, ids):
        keep = (ids != 0).unsqueeze(-1).float()
        return self.head((self.embed(ids) * keep).sum(1) / keep.sum(1).clamp(min=1))


@pytest.mark.parametrize("method", ["cul", "random-label", "activation-prune", "interpolate"])
def test_expose_takes_token_ids(method):
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(1, 50, (40, 12), generator=g)
    ids[:, 9:] = 0
    data = TensorDataset(ids, torch.randint(0, 3, (40,), generator=g))
    torch.manual_seed(0)
    model = TokenClassifier()
    kwargs = {"epochs": 2, "lr": 1e-2, "batch_size": 16} if method in ("cul", "random-label") else {}
    exp = expose(model, data, method, asr_set=data, **kwargs)
    assert exp.config["num_classes"] == 3 and len(exp.trajectory[-1]["hist"]) == 3
    assert exp.model is not model
