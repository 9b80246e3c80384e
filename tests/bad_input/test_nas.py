"""Bad input to robustfast.nas: a ValueError naming what was wrong (spec §8's list)."""
import pytest
import torch

from robustfast import _backend
from robustfast.nas import CMABNAS, Genotype, NMCSTree, SearchSpace, Supernet
from robustfast.data import digits
from tests.bad_input.helpers import rejected

BACKENDS = ["reference"] + (["cpp"] if _backend.extension() is not None and hasattr(_backend.extension(), "nmcs")
                            else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("counts", [[], [3, 0], [2, -1], "abc"])
def test_arm_counts(backend, counts):
    with rejected("arm_counts"):
        NMCSTree(counts, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_paths_prefix_alpha_L_policy(backend):
    tree = NMCSTree([3, 4], backend=backend)
    with rejected("prefix[1]"):
        tree.sample([1, 4])
    with rejected("prefix"):
        tree.sample([0, 0, 0])
    with rejected("paths[0]"):
        tree.update(torch.tensor([[3, 0]]), torch.tensor([0.5]))
    with rejected("rewards"):
        tree.update(torch.tensor([[0, 0]]), torch.tensor([float("inf")]))
    with rejected("alpha"):
        NMCSTree([3], alpha=-0.1, backend=backend)
    with rejected("L"):
        tree.simulate(lambda p: torch.zeros(len(p)), (), L=0)
    with rejected("policy"):
        tree.policy([], "greedy")


def test_genotype_and_space():
    space = SearchSpace(ops=("sep_conv_3x3", "skip_connect"))
    with rejected("ops"):
        SearchSpace(ops=("conv_7x7",))
    with rejected("path"):
        space.decode([0, 0, 0])
    with rejected("input"):
        space.check(Genotype({"normal": (((5, "skip_connect"), (0, "skip_connect")),) * 4,
                              "reduce": (((0, "skip_connect"), (0, "skip_connect")),) * 4}))
    with rejected("op"):
        space.encode(Genotype({"normal": (((0, "zero"), (0, "skip_connect")),) * 4,
                               "reduce": (((0, "skip_connect"), (0, "skip_connect")),) * 4}))
    with rejected("genotype"):
        space.check({"normal": []})


def test_val_marked_as_test_is_refused():
    space = SearchSpace(ops=("skip_connect", "max_pool_3x3"))
    net = Supernet(space, C=4, layers=3, in_channels=1)
    train, test = digits("train", size=8), digits("test", size=8)
    with rejected("val", "test"):
        CMABNAS(net, train, test, epochs=1, warmup_epochs=0, B=1)
    with rejected("B"):
        CMABNAS(net, train, train, B=0)
    with rejected("policy"):
        CMABNAS(net, train, train, policy="best")
