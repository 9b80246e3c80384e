"""Search space arm counts and the supernet's real weight sharing (the unofficial code's bugs 1 and 2)."""
import pytest
import torch
import torch.nn.functional as F

from robustfast.nas import DARTS_OPS, SearchSpace, Supernet, load_genotype, save_genotype
from robustfast.nas.draw import draw_genotype

OPS3 = ("sep_conv_3x3", "max_pool_3x3", "skip_connect")


def test_arm_counts_are_unordered_pairs_with_repeats_over_two_inputs():
    assert SearchSpace().arm_counts == [105, 231, 406, 630] * 2
    assert SearchSpace(ops=OPS3).arm_counts == [21, 45, 78, 120] * 2
    assert round(SearchSpace(cells=("normal",)).size / 1e9, 1) == 6.2


def test_encode_decode_round_trip_and_json(tmp_path):
    space = SearchSpace()
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        genotype = space.random(g)
        assert space.decode(space.encode(genotype)) == genotype
    for a in range(630):
        path = [0, 0, 0, a, 0, 0, 0, 0]
        assert space.encode(space.decode(path)) == path
    assert space.decode([0] * 8).cells["normal"][0] == ((0, DARTS_OPS[0]), (0, DARTS_OPS[0]))
    save_genotype(tmp_path / "g.json", genotype, space)
    loaded, loaded_space = load_genotype(tmp_path / "g.json")
    assert loaded == genotype and loaded_space.to_json() == space.to_json()
    png = draw_genotype(genotype, space, tmp_path / "cells.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return Supernet(SearchSpace(ops=OPS3), C=4, layers=3, in_channels=1)


def _children(space, n, seed):
    g = torch.Generator().manual_seed(seed)
    return [space.random(g) for _ in range(n)]


def test_same_child_twice_gives_identical_logits_and_batched_equals_single(net):
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    children = _children(net.space, 4, 2)
    children.append(children[0])
    with torch.no_grad():
        batched = net.forward_children(x, children)
        single = torch.stack([net(x, c) for c in children])
    assert torch.equal(net(x, children[0]), net(x, children[0]))
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched[0], batched[-1], rtol=0, atol=0)


def test_a_step_changes_only_the_chosen_ops(net):
    space = net.space
    child = space.decode([0, 2, 5, 7, 3, 8, 11, 14])
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    y = torch.arange(8) % 10
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(net(x, child), y).backward()
    opt.step()
    used = set()
    for c, cell in enumerate(net.cells):
        kind = "reduce" if cell.reduction else "normal"
        for i, pair in enumerate(child.cells[kind]):
            for j, op in pair:
                used.add(f"cells.{c}.edges.{i}_{j}.{space.ops.index(op)}.")
    changed = {k for k, v in net.named_parameters() if not torch.equal(v, before[k])}
    edge_changed = {k for k in changed if ".edges." in k}
    assert edge_changed and all(any(k.startswith(u) for u in used) for k in edge_changed)
    assert {k for k in before if k.startswith("stem") or k.startswith("classifier")} <= changed
    for k in before:  # every used op with weights moved
        if any(k.startswith(u) for u in used):
            assert k in changed, k
