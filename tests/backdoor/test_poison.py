"""Poisoning bookkeeping: exact counts, disjoint slices, label modes, sequential and hybrid, test sets, save/load."""
import pytest
import torch

from robustfast.backdoor import PoisonedDataset, make_trigger, poison, poison_test
from robustfast.backdoor.triggers import Hybrid

N, C = 200, 10


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(N, 3, 16, 16, generator=g), torch.randint(0, C, (N,), generator=g)


TRIGGERS = ["badnets", "blend", "sig", "trojan"]


def test_parallel_exact_disjoint_slices(data):
    images, labels = data
    p = poison(images, labels, TRIGGERS, rate=0.07, seed=1)
    nb = 14  # ⌊0.07 · 200⌋
    assert [len(s) for s in p.slices] == [nb] * 4
    everything = torch.cat(p.slices)
    assert len(torch.unique(everything)) == 4 * nb, "slices are disjoint"
    assert torch.equal(p.poison_indices, everything.sort().values)
    for k, s in enumerate(p.slices):
        assert (p.trigger_ids[s] == k).all()
        assert torch.equal(p.images[s], make_trigger(TRIGGERS[k], seed=1).apply(images[s]))
    clean = p.trigger_ids < 0
    assert clean.sum() == N - 4 * nb
    assert torch.equal(p.images[clean], images[clean]) and torch.equal(p.labels[clean], labels[clean])
    assert (p.labels[everything] == 0).all() and p.targets == [0, 0, 0, 0]
    assert torch.equal(p.original_labels, labels) and p.applied.sum() == 4 * nb
    x, y = p[int(everything[0])]
    assert torch.equal(x, p.images[everything[0]]) and y == 0


def test_rate_is_exact_without_float_surprises(data):
    images, labels = data
    p = poison(images[:100], labels[:100], "badnets", rate=0.29)
    assert len(p.poison_indices) == 29  # 0.29 · 100 is 28.999... in floating point


def test_label_modes(data):
    images, labels = data
    a2a = poison(images, labels, TRIGGERS[:2], rate=0.1, label_mode="all2all")
    idx = a2a.poison_indices
    assert torch.equal(a2a.labels[idx], (labels[idx] + 1) % C) and a2a.targets == [None, None]
    rnd = poison(images, labels, TRIGGERS, rate=0.05, label_mode="all2random", seed=4)
    assert len(set(rnd.targets)) == 4, "all2random gives each trigger its own target"
    assert rnd.targets == poison(images, labels, TRIGGERS, rate=0.05, label_mode="all2random", seed=4).targets
    for k, s in enumerate(rnd.slices):
        assert (rnd.labels[s] == rnd.targets[k]).all()
    cl = poison(images, labels, "sig", rate=0.05, label_mode="clean-label", target=3)
    assert (labels[cl.poison_indices] == 3).all() and torch.equal(cl.labels, labels)
    ex = poison(images, labels, "sig", rate=0.2, target=3, exclude_target=True)
    assert (labels[ex.poison_indices] != 3).all()


def test_sequential_overwrites_and_records_every_trigger(data):
    images, labels = data
    p = poison(images, labels, ["badnets", "sig", "trojan"], rate=0.1, multi="sequential", label_mode="all2random",
               overlap=0.5, seed=2)
    assert [len(s) for s in p.slices] == [20, 20, 20]
    both = p.applied[:, 0] & p.applied[:, 1]
    assert both.sum() >= 10, "overlap=0.5 sends half of round 2 onto round 1's images"
    i = int(both.nonzero()[0])
    assert p.trigger_ids[i] in (1, 2) and p.labels[i] == p.targets[int(p.trigger_ids[i])]
    last = int(p.trigger_ids[i])
    layered = images[i:i + 1]
    for k in range(last + 1):
        if p.applied[i, k]:
            layered = make_trigger(["badnets", "sig", "trojan"][k], seed=2).apply(layered)
    assert torch.equal(p.images[i:i + 1], layered), "a later trigger is applied on top of the earlier one"
    assert len(p.poison_indices) == int(p.applied.any(1).sum())


def test_sequential_prefix_is_the_earlier_stage(data):
    images, labels = data
    names = ["badnets", "sig", "trojan"]
    full = poison(images, labels, names, rate=0.1, multi="sequential", overlap=0.3, seed=5)
    early = poison(images, labels, names[:2], rate=0.1, multi="sequential", overlap=0.3, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(early.slices, full.slices[:2], strict=True))
    untouched = ~full.applied[:, 2]
    assert torch.equal(early.images[untouched], full.images[untouched])


def test_hybrid_is_one_composite_trigger(data):
    images, labels = data
    p = poison(images, labels, ["badnets", "sig"], rate=0.1, multi="hybrid", seed=0)
    assert len(p.triggers) == 1 and isinstance(p.triggers[0], Hybrid) and len(p.slices[0]) == 20
    s = p.slices[0]
    expected = make_trigger("sig").apply(make_trigger("badnets").apply(images[s]))
    assert torch.equal(p.images[s], expected)


def test_same_seed_same_dataset_other_seed_other_indices(data):
    images, labels = data
    a = poison(images, labels, ["blend_noise", "wanet_noise"], rate=0.1, seed=7)
    b = poison(images, labels, ["blend_noise", "wanet_noise"], rate=0.1, seed=7)
    c = poison(images, labels, ["blend_noise", "wanet_noise"], rate=0.1, seed=8)
    assert torch.equal(a.images, b.images) and torch.equal(a.trigger_ids, b.trigger_ids)
    assert not torch.equal(a.poison_indices, c.poison_indices)


def test_poison_test_excludes_target_class(data):
    images, labels = data
    sets = poison_test(images, labels, TRIGGERS, target=2)
    keep = labels != 2
    for k, s in enumerate(sets):
        x, y = s.tensors
        assert len(y) == int(keep.sum()) and (y == 2).all()
        assert torch.equal(x, make_trigger(TRIGGERS[k]).apply(images[keep]))
    a2a = poison_test(images, labels, "badnets", label_mode="all2all")[0]
    assert torch.equal(a2a.tensors[1], (labels + 1) % C)


def test_save_and_load_round_trip(data, tmp_path):
    images, labels = data
    iad = make_trigger("iad", channels=3, seed=5)
    p = poison(images, labels, ["badnets", iad, "blend_noise"], rate=0.05, label_mode="all2random", seed=3)
    p.save(tmp_path / "poisoned.safetensors")
    q = PoisonedDataset.load(tmp_path / "poisoned.safetensors")
    for name in ("images", "labels", "original_labels", "trigger_ids", "applied", "poison_indices"):
        assert torch.equal(getattr(p, name), getattr(q, name)), name
    assert all(torch.equal(a, b) for a, b in zip(p.slices, q.slices, strict=True))
    assert q.targets == p.targets and q.config == p.config
    assert [t.config() for t in q.triggers] == [t.config() for t in p.triggers]
    assert torch.equal(q.triggers[1].apply(images[:4]), iad.apply(images[:4])), "the IAD networks are restored"


@pytest.mark.parametrize("kwargs,match", [
    ({"rate": 0.0}, "rate"),
    ({"rate": 1.5}, "rate"),
    ({"rate": 0.001}, "rate"),
    ({"rate": 0.3}, "rate"),  # 4 triggers × 60 > 200 samples
    ({"target": 10}, "target"),
    ({"target": -1}, "target"),
    ({"triggers": ["badnets", "nope"]}, "unknown trigger name"),
    ({"triggers": []}, "triggers"),
    ({"label_mode": "one2one"}, "label_mode"),
    ({"multi": "serial"}, "multi"),
    ({"multi": "hybrid", "triggers": ["badnets"]}, "triggers"),
    ({"overlap": 0.5}, "overlap"),
    ({"images": "out of range"}, r"images must lie in \[0, 1\]"),
    ({"labels": torch.zeros(3, dtype=torch.long)}, "labels"),
])
def test_bad_inputs_name_the_argument(data, kwargs, match):
    images, labels = data
    args = {"images": images, "labels": labels, "triggers": TRIGGERS, "rate": 0.1, **kwargs}
    if isinstance(args["images"], str):
        args["images"] = images * 3
    with pytest.raises(ValueError, match=match):
        poison(**args)
