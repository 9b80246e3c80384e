"""The C++ NMCS core against its Python oracle (same seeds: the same trees element for element and the same
paths), and the spec's synthetic thresholds (§9) on the C++ core."""
import pytest
import torch

from robustfast import _backend
from robustfast.nas import NMCSTree, nested_search, synthetic

pytestmark = pytest.mark.skipif(_backend.extension() is None or not hasattr(_backend.extension(), "nmcs"),
                                reason="robustfast._C with the NMCS core is not built")


def run_both(script):
    """script(backend) -> list of results; the C++ and Python runs must agree exactly."""
    return script("cpp"), script("reference")


def assert_same_tree(a: NMCSTree, b: NMCSTree):
    for key, va in a.arrays().items():
        assert torch.equal(va, b.arrays()[key]), key


def test_simulate_search_best_and_policies_match_the_oracle():
    def script(backend):
        problem = synthetic.Separable([5, 7, 4], seed=3, sigma=0.05, hi=0.6)
        tree = NMCSTree(problem.arm_counts, alpha=0.7, seed=11, backend=backend)
        out = [tree.simulate(problem, (), L=60), tree.simulate(problem, [2], L=25, batch=4)]
        out.append(tree.search_best(problem, L=30))
        out.append([tree.policy([], p) for p in ("local_optimal", "local_suboptimal", "local_random")])
        out.append({k: v.tolist() for k, v in tree.child_stats([2]).items()})
        paths = tree.sample([], 5)  # pending visits
        out.append(paths.tolist())
        out.append(tree.arrays())
        tree.update(paths, torch.linspace(0.1, 0.9, 5, dtype=torch.float64))
        out.append(tree.sample([1, 3], 3).tolist())
        out.append(tree.arrays())
        tree.reset()  # the C++ arena keeps its grown blocks: a rebuilt tree must not see them
        out.append(tree.simulate(problem, (), L=40))
        out.append(tree.arrays())
        return out, tree

    (cpp, tc), (ref, tr) = run_both(script)
    for a, b in zip(cpp, ref, strict=True):
        if isinstance(a, dict) and isinstance(next(iter(a.values())), torch.Tensor):
            assert all(torch.equal(a[k], b[k]) for k in a)
        else:
            assert a == b
    assert_same_tree(tc, tr)
    assert len(tc.arrays()["visits"]) > 50


def test_python_callback_matches_the_oracle_batched():
    def reward(paths):
        return (paths.double() * torch.tensor([0.05, 0.02, 0.01])).sum(1).sin()

    def script(backend):
        tree = NMCSTree([6, 9, 11], seed=5, reward_share="full", backend=backend)
        return tree.simulate(reward, (), L=200, batch=16), tree.search_best(reward, L=40, batch=8), tree.arrays()

    cpp, ref = run_both(script)
    assert cpp[:2] == ref[:2]
    assert all(torch.equal(cpp[2][k], ref[2][k]) for k in cpp[2])


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("kind", ["Leftmost", "Trap"])
def test_nested_matches_the_oracle(kind, level):
    cpp, ref = run_both(lambda b: nested_search(getattr(synthetic, kind)(5, 6, seed=9), level, seed=4, backend=b))
    assert cpp == ref


def test_separable_m3_space_finds_the_planted_optimum():
    found = 0
    for seed in range(20):
        problem = synthetic.Separable([21, 45, 78, 120], seed=seed, sigma=0.02, hi=0.7)
        path = NMCSTree(problem.arm_counts, seed=seed).search_best(problem, L=800)
        found += path == problem.planted
    print(f"separable M=3 1-cell: exact optimum in {found}/20")
    assert found >= 18, f"{found}/20"


def _random_search_regret(problem, evaluations, seed):
    g = torch.Generator().manual_seed(seed)
    paths = torch.stack([torch.randint(k, (evaluations,), generator=g) for k in problem.arm_counts], 1)
    best = paths[problem(paths).argmax()]
    return 1.0 - problem.value(best.tolist())


@pytest.mark.parametrize("counts,levels_right,ratio,cap", [
    ([21, 45, 78, 120] * 2, 6.5, 1 / 3, 1.0),
    ([105, 231, 406, 630], None, 1 / 2, 0.15),
])
def test_separable_regret_against_random_search(counts, levels_right, ratio, cap):
    regrets, random_regrets, right = [], [], []
    for seed in range(20):
        problem = synthetic.Separable(counts, seed=seed, sigma=0.02, hi=0.7)
        path = NMCSTree(counts, seed=seed).search_best(problem, L=800)
        regrets.append(1.0 - problem.value(path))
        right.append(sum(a == b for a, b in zip(path, problem.planted, strict=True)))
        random_regrets.append(_random_search_regret(problem, 800 * len(counts), 1000 + seed))
    mean, rand = sum(regrets) / 20, sum(random_regrets) / 20
    print(f"separable {counts}: regret {mean:.3f} vs random {rand:.3f}, {sum(right) / 20:.2f} levels right")
    assert mean <= cap and mean <= ratio * rand, f"regret {mean:.3f} vs random {rand:.3f}"
    if levels_right is not None:
        assert sum(right) / 20 >= levels_right, f"{sum(right) / 20} levels right"


def test_leftmost_level1_finds_the_optimum_random_does_not():
    found, random_best = 0, []
    for seed in range(20):
        problem = synthetic.Leftmost(8, 10, seed=seed)
        score, _ = nested_search(problem, 1, seed=seed)
        found += score == 1.0
        g = torch.Generator().manual_seed(seed)
        random_best.append(problem(torch.randint(10, (80, 8), generator=g)).max().item())
    print(f"leftmost D8K10: level 1 optimum in {found}/20, random (80 evaluations) mean best "
          f"{sum(random_best) / 20:.3f}")
    assert found >= 19
    assert sum(random_best) / 20 <= 0.4


def test_trap_level2_escapes_where_level1_is_stuck():
    level1 = level2 = 0
    for seed in range(20):
        problem = synthetic.Trap(8, 10, seed=seed)
        level1 += nested_search(problem, 1, seed=seed)[0] == 1.0
        level2 += nested_search(problem, 2, seed=seed)[0] == 1.0
    print(f"trap D8K10: optimum found by level 1 in {level1}/20, by level 2 in {level2}/20")
    assert level2 >= 19 and level1 <= 1, (level1, level2)


def test_callback_exception_propagates_intact():
    class Boom(RuntimeError):
        pass

    def reward(paths):
        raise Boom("from inside the callback")

    tree = NMCSTree([3, 4], seed=0)
    with pytest.raises(Boom, match="from inside the callback"):
        tree.simulate(reward, (), L=5)


@pytest.mark.parametrize("backend", ["cpp", "reference"])
@pytest.mark.parametrize("reward,match", [
    (lambda p: torch.zeros(p.shape[0] + 1), "shape"),
    (lambda p: torch.full((p.shape[0],), float("nan")), "non-finite"),
    (lambda p: [0.0] * p.shape[0], "tensor"),
])
def test_bad_callback_results(backend, reward, match):
    with pytest.raises(ValueError, match=match):
        NMCSTree([3, 4], seed=0, backend=backend).simulate(reward, (), L=4, batch=2)
