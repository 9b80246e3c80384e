"""pytest-benchmark: Simulation from the root (a fresh tree, L = 2,048) on the separable DARTS problem, the C++ core
beside its Python oracle, and classic level-1 NMCS on leftmost D8K10. The ratio table is `robustfast bench nas`.

    .venv/bin/python -m pytest benchmarks/bench_nmcs.py
"""
import pytest

from robustfast.nas import NMCSTree, synthetic

COUNTS = [105, 231, 406, 630]


@pytest.mark.parametrize("backend", ["cpp", "reference"])
@pytest.mark.parametrize("cells", [1, 2])
def test_simulate(benchmark, backend, cells):
    problem = synthetic.Separable(COUNTS * cells, seed=0)
    tree = NMCSTree(problem.arm_counts, seed=0, backend=backend)
    benchmark.extra_info.update(device="cpu", shape=f"separable {COUNTS * cells}, fresh tree, L=2048", backend=backend)
    benchmark.pedantic(lambda: tree.simulate(problem, (), L=2048), setup=tree.reset, rounds=5)


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_nested_level1(benchmark, backend):
    problem = synthetic.Leftmost(8, 10, seed=0)
    benchmark.extra_info.update(device="cpu", shape="leftmost D8K10, level 1", backend=backend)
    tree = NMCSTree(problem.arm_counts, seed=0, backend=backend)
    benchmark(lambda: tree.nested(problem, 1))
