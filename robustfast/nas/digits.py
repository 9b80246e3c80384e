"""The spec's digits checks (§9): search on a stratified half of the digits train split, reward on the other half,
test split only at the end. Sizes are arguments so that tests run them small and the README full."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from robustfast._util.seeds import stream_generator
from robustfast.data import digits
from robustfast.nas.final import Network, count_params, train_genotype
from robustfast.nas.search import CMABNAS
from robustfast.nas.space import SearchSpace
from robustfast.nas.supernet import Supernet

DIGITS_OPS = ("sep_conv_3x3", "max_pool_3x3", "skip_connect")


def search_split(size: int = 16, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """(search-train, search-val): the digits train split halved per class by a seeded shuffle."""
    x, y = digits("train", size=size).tensors
    rng = np.random.default_rng(seed)
    first, second = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y.numpy() == c))
        first.append(idx[: len(idx) // 2])
        second.append(idx[len(idx) // 2:])
    a, b = (torch.from_numpy(np.sort(np.concatenate(p))) for p in (first, second))
    return TensorDataset(x[a], y[a]), TensorDataset(x[b], y[b])


def search_digits(seed: int = 0, *, size: int = 16, ops=DIGITS_OPS, C: int = 8, layers: int = 5,
                  warmup_epochs: int = 2, epochs: int = 8, B: int = 64, L_sim: int = 4, L_best: int = 150,
                  policy: str = "local_optimal", children_per_batch: int = 8, checkpoint=None,
                  progress: bool = True, **kwargs):
    """One CMAB-NAS search on digits; (search object, result)."""
    space = SearchSpace(ops=ops)
    train, val = search_split(size, seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = Supernet(space, C=C, layers=layers, in_channels=1)
    nas = CMABNAS(net, train, val, epochs=epochs, warmup_epochs=warmup_epochs, B=B, L_sim=L_sim, L_best=L_best,
                  policy=policy, children_per_batch=children_per_batch, seed=seed, checkpoint=checkpoint,
                  progress=progress, **kwargs)
    return nas, nas.search()


def policy_check(seeds=range(5), size: int = 16, **search_kwargs) -> list[dict]:
    """Per seed: search with local-optimal, then on the same trained supernet one more SearchBest with the
    local-random policy; both children's weight-sharing accuracy on the digits test split."""
    test_x, test_y = digits("test", size=size).tensors
    rows = []
    for seed in seeds:
        nas, result = search_digits(seed, size=size, **search_kwargs)
        nas.tree.reset()
        nas._start_epoch(10_000 + seed)
        random_path = nas.tree.search_best(nas.reward, nas.L_best, "local_random", nas.from_root, nas.P)
        rows.append({"seed": seed, "genotype": result.genotype.to_json(),
                     "optimal_test_acc": nas.accuracy(result.genotype, test_x, test_y),
                     "random_test_acc": nas.accuracy(nas.space.decode(random_path), test_x, test_y)})
    return rows


def final_check(seeds=range(5), size: int = 16, C: int = 16, layers: int = 6, epochs: int = 15,
                search_kwargs: dict | None = None, genotypes: dict | None = None, progress: bool = True,
                **train_kwargs) -> list[dict]:
    """Per seed: the searched cell against a random cell within ±10 % of its parameters, trained with the same
    seed on the digits train split and scored on its test split. `genotypes` ({seed: Genotype}, e.g. from
    policy_check's rows) skips the search of those seeds."""
    train, test = digits("train", size=size), digits("test", size=size)
    rows = []
    for seed in seeds:
        if genotypes and seed in genotypes:
            space, genotype = SearchSpace(ops=(search_kwargs or {}).get("ops", DIGITS_OPS)), genotypes[seed]
        else:
            nas, result = search_digits(seed, size=size, progress=progress, **(search_kwargs or {}))
            space, genotype = nas.space, result.genotype
        _, searched = train_genotype(genotype, space, train, test, C=C, layers=layers, epochs=epochs,
                                     seed=seed, progress=progress, **train_kwargs)
        gen = stream_generator(seed, 99)
        for _ in range(1000):
            candidate = space.random(gen)
            params = count_params(Network(candidate, space, C=C, layers=layers, in_channels=1))
            if abs(params - searched["params"]) <= 0.1 * searched["params"]:
                break
        _, random = train_genotype(candidate, space, train, test, C=C, layers=layers, epochs=epochs, seed=seed,
                                   progress=progress, **train_kwargs)
        rows.append({"seed": seed, "searched_test_acc": searched["test_acc"], "searched_params": searched["params"],
                     "random_test_acc": random["test_acc"], "random_params": random["params"]})
    return rows
