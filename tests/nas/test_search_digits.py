"""CMAB-NAS on digits: at CI size a search runs end to end, scores its child on the validation half and resumes
from its checkpoint; the spec's efficacy checks (random children after warm-up, policies, final nets) at its sizes
are marked slow."""
import pytest
import torch

from robustfast import _backend
from robustfast.nas.digits import final_check, policy_check, search_digits

pytestmark = pytest.mark.skipif(_backend.extension() is None or not hasattr(_backend.extension(), "nmcs"),
                                reason="robustfast._C with the NMCS core is not built")

# One warm-up and one search epoch with a handful of playouts: seconds on a quiet machine (the efficacy thresholds
# need the spec's sizes: the slow tests below).
CI = {"size": 8, "C": 4, "layers": 3, "warmup_epochs": 1, "epochs": 1, "B": 2, "L_sim": 1, "L_best": 2,
      "children_per_batch": 8, "progress": False}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("nas") / "ckpt"
    nas, result = search_digits(0, checkpoint=ckpt, **CI)
    return nas, result, ckpt


@pytest.mark.slow
def test_random_children_after_warmup_are_far_above_chance():
    """Spec §9 at its own size: 16×16, 5 cells, C = 8, 2 warm-up epochs."""
    nas, _ = search_digits(0, epochs=1, B=1, L_sim=1, L_best=1, progress=False)
    _check_random_children(nas, 0.5)


def _check_random_children(nas, threshold):
    g = torch.Generator().manual_seed(5)
    children = [nas.space.random(g) for _ in range(20)]
    x, y = nas.val_x[:256], nas.val_y[:256]
    with torch.no_grad():
        accs = (nas.net.forward_children(x, children).argmax(-1) == y).double().mean(1)
    assert accs.mean() >= threshold, accs


def test_search_returns_a_valid_child_scored_on_validation(searched):
    nas, result, _ = searched
    nas.space.check(result.genotype)
    assert result.reward == nas.accuracy(result.genotype)
    assert result.reward > 0.1
    assert [r["phase"] for r in result.history] == ["warmup", "search"]


def test_search_resumes_from_its_checkpoint(searched):
    _, result, ckpt = searched
    _again, resumed = search_digits(0, checkpoint=ckpt, **CI)  # nothing left to run: restored, not retrained
    assert resumed.history == result.history and resumed.genotype == result.genotype


@pytest.mark.slow
def test_policy_check_full_size():
    rows = policy_check(range(5))
    diffs = [r["optimal_test_acc"] - r["random_test_acc"] for r in rows]
    print(rows)
    assert sum(diffs) / 5 >= 0.01 and sum(d > 0 for d in diffs) >= 4


@pytest.mark.slow
def test_final_net_check_full_size():
    rows = final_check(range(5))
    print(rows)
    searched = sum(r["searched_test_acc"] for r in rows) / 5
    random = sum(r["random_test_acc"] for r in rows) / 5
    assert searched > random and sum(r["searched_test_acc"] > r["random_test_acc"] for r in rows) >= 3
