import numpy as np
import pytest
import torch

from robustfast.data import noisy_labels
from robustfast.data.noise import CIFAR10, MNIST


def make_labels(n, k, seed):
    """Every class present at least n // (2k) times, the rest random, in random order."""
    g = torch.Generator().manual_seed(seed)
    base = torch.arange(k).repeat_interleave(n // (2 * k))
    rest = torch.randint(0, k, (n - len(base),), generator=g)
    return torch.cat([base, rest])[torch.randperm(n, generator=g)]


def published_symmetric(y, rate, k, seed):
    """The published code's loop (numpy seeded with `seed`, then per class and per sample draws)."""
    rs, targets = np.random.RandomState(seed), y.copy()
    per_class = int(int(rate * len(y)) / k)
    idx = []
    for c in range(k):
        idx.extend(rs.choice(np.where(y == c)[0], per_class, replace=False))
    for i in idx:
        others = list(range(k))
        others.remove(targets[i])
        targets[i] = rs.choice(others)
    return targets


def published_cifar10_asymmetric(y, rate, seed):
    rs, targets = np.random.RandomState(seed), y.copy()
    for s, t in zip([9, 2, 3, 5, 4], [1, 0, 5, 3, 7], strict=True):
        pool = np.where(targets == s)[0]
        for i in rs.choice(pool, int(rate * len(pool)), replace=False):
            targets[i] = t
    return targets


def published_mnist_asymmetric(y, rate, seed):
    p = np.eye(10)
    for s, t in ((7, 1), (2, 7), (5, 6), (6, 5), (3, 8)):
        p[s, s], p[s, t] = 1.0 - rate, rate
    rs = np.random.RandomState(seed)
    return np.array([np.where(rs.multinomial(1, p[c, :], 1)[0] == 1)[0][0] for c in y])


@pytest.mark.parametrize("rate,k", [(0.2, 10), (0.6, 10), (0.8, 10), (0.45, 7), (0.4, 100)])
def test_symmetric_exact_counts_no_self_flips(rate, k):
    y = make_labels(6001, k, seed=int(rate * 10) + k)
    noisy, flipped = noisy_labels(y, "symmetric", rate, k, seed=1)
    assert noisy.dtype == y.dtype and flipped.dtype == torch.bool and noisy.shape == y.shape
    per_class = int(rate * len(y)) // k
    assert torch.equal(torch.bincount(y[flipped], minlength=k), torch.full((k,), per_class))
    assert torch.equal(flipped, noisy != y), "a flipped sample never keeps its label"
    assert flipped.float().mean().item() == pytest.approx(k * per_class / len(y))
    assert flipped.float().mean().item() == pytest.approx(rate, abs=k / len(y))
    assert noisy.min() >= 0 and noisy.max() < k


def test_symmetric_targets_are_uniform_over_the_other_classes():
    y = make_labels(20000, 5, seed=3)
    noisy, flipped = noisy_labels(y, "symmetric", 0.8, 5, seed=2)
    for c in range(5):
        moved = noisy[flipped & (y == c)]
        counts = torch.bincount(moved, minlength=5).float()
        assert counts[c] == 0
        expected = len(moved) / 4
        assert ((counts[torch.arange(5) != c] - expected).abs() < 5 * expected**0.5).all()


@pytest.mark.parametrize("seed", [0, 4])
def test_same_draws_as_the_published_code(seed):
    y = make_labels(3000, 10, seed=5 + seed)
    arr = y.numpy()
    assert np.array_equal(noisy_labels(y, "symmetric", 0.4, 10, seed)[0].numpy(), published_symmetric(arr, 0.4, 10,
                                                                                                     seed))
    inplace = noisy_labels(y, "asymmetric", 0.4, 10, seed, mapping="cifar10", sequential_inplace=True)[0]
    assert np.array_equal(inplace.numpy(), published_cifar10_asymmetric(arr, 0.4, seed))
    assert np.array_equal(noisy_labels(y, "asymmetric", 0.3, 10, seed, mapping="mnist")[0].numpy(),
                          published_mnist_asymmetric(arr, 0.3, seed))


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.4])
def test_cifar10_asymmetric_exact_counts_from_the_original_labels(rate):
    y = make_labels(8000, 10, seed=7)
    noisy, flipped = noisy_labels(y, "asymmetric", rate, 10, seed=3, mapping="cifar10")
    assert torch.equal(flipped, noisy != y)
    for c in range(10):
        moved = noisy[flipped & (y == c)]
        if c in CIFAR10:
            assert len(moved) == int(rate * (y == c).sum().item())
            assert (moved == CIFAR10[c]).all()
        else:
            assert len(moved) == 0


def test_cifar10_sequential_inplace_flips_cats_back():
    y = torch.arange(10).repeat_interleave(5000)[torch.randperm(50000, generator=torch.Generator().manual_seed(8))]
    rate = 0.4
    _, flipped = noisy_labels(y, "asymmetric", rate, 10, seed=0, mapping="cifar10", sequential_inplace=True)
    cat = flipped[y == 3].float().mean().item()
    dog = flipped[y == 5].float().mean().item()
    assert cat == pytest.approx(rate * (1 - rate), abs=0.02)
    assert dog == pytest.approx(rate, abs=0.02)
    _, default = noisy_labels(y, "asymmetric", rate, 10, seed=0, mapping="cifar10")
    assert default[y == 3].sum().item() == default[y == 5].sum().item() == int(rate * 5000)


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_mnist_asymmetric_mapping(rate):
    y = make_labels(10000, 10, seed=9)
    noisy, flipped = noisy_labels(y, "asymmetric", rate, 10, seed=5, mapping="mnist")
    assert torch.equal(flipped, noisy != y)
    for c in range(10):
        moved = noisy[flipped & (y == c)]
        n = (y == c).sum().item()
        if c in MNIST:
            assert (moved == MNIST[c]).all()
            assert len(moved) == pytest.approx(rate * n, abs=5 * (rate * (1 - rate) * n) ** 0.5)
        else:
            assert len(moved) == 0
    assert flipped.float().mean().item() == pytest.approx(rate / 2, abs=0.03)


def test_cifar100_blocks_and_dict_mapping():
    y = make_labels(20000, 100, seed=10)
    noisy, flipped = noisy_labels(y, "asymmetric", 0.3, 100, seed=1, mapping="cifar100")
    src = y[flipped]
    assert torch.equal(noisy[flipped], src - src % 5 + (src + 1) % 5)
    assert flipped.float().mean().item() == pytest.approx(0.3, abs=0.02)
    y = make_labels(3000, 6, seed=11)
    noisy, flipped = noisy_labels(y, "asymmetric", 0.5, 6, seed=2, mapping={4: 0, 1: 2})
    assert torch.equal(torch.bincount(y[flipped], minlength=6),
                       torch.tensor([0, int(0.5 * (y == 1).sum()), 0, 0, int(0.5 * (y == 4).sum()), 0]))
    assert ((noisy[flipped] == 0) == (y[flipped] == 4)).all() and ((noisy[flipped] == 2) == (y[flipped] == 1)).all()


def test_deterministic_per_seed_and_input_types():
    y = make_labels(2000, 10, seed=12)
    for kw in ({"kind": "symmetric"}, {"kind": "asymmetric", "mapping": "mnist"}):
        a, fa = noisy_labels(y, rate=0.4, num_classes=10, seed=7, **kw)
        b, fb = noisy_labels(y, rate=0.4, num_classes=10, seed=7, **kw)
        c, _ = noisy_labels(y, rate=0.4, num_classes=10, seed=8, **kw)
        assert torch.equal(a, b) and torch.equal(fa, fb) and not torch.equal(a, c)
        from_numpy, _ = noisy_labels(y.numpy(), rate=0.4, num_classes=10, seed=7, **kw)
        assert torch.equal(from_numpy, a) and from_numpy.dtype == torch.int64
        small, _ = noisy_labels(y.to(torch.int32), rate=0.4, num_classes=10, seed=7, **kw)
        assert small.dtype == torch.int32 and torch.equal(small.long(), a)
    unchanged, none = noisy_labels(y, "symmetric", 0.0, 10)
    assert torch.equal(unchanged, y) and not none.any()


@pytest.mark.parametrize("kwargs,match", [
    ({"kind": "uniform"}, "kind"),
    ({"rate": 1.5}, "rate"),
    ({"rate": -0.1}, "rate"),
    ({"num_classes": 1}, "num_classes"),
    ({"num_classes": 5}, "labels"),
    ({"seed": -1}, "seed"),
    ({"mapping": "cifar10"}, "mapping"),
    ({"kind": "asymmetric"}, "mapping"),
    ({"kind": "asymmetric", "mapping": "svhn"}, "mapping"),
    ({"kind": "asymmetric", "mapping": "cifar100"}, "num_classes"),
    ({"kind": "asymmetric", "mapping": {3: 3}}, "mapping"),
    ({"kind": "asymmetric", "mapping": {3: 12}}, "mapping"),
    ({"kind": "asymmetric", "mapping": "mnist", "sequential_inplace": True}, "sequential_inplace"),
])
def test_bad_arguments(kwargs, match):
    y = make_labels(500, 10, seed=13)
    args = {"kind": "symmetric", "rate": 0.4, "num_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        noisy_labels(y, **args)


def test_bad_labels():
    y = make_labels(500, 10, seed=14)
    for bad in (y.float(), y.view(50, 10), torch.where(y == y[0], -1, y)):
        with pytest.raises(ValueError, match="labels"):
            noisy_labels(bad, "symmetric", 0.4, 10)
    rare = torch.cat([y[y != 3], torch.tensor([3])])
    with pytest.raises(ValueError, match="class 3"):
        noisy_labels(rare, "symmetric", 0.4, 10)
