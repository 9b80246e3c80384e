"""Batch orders of the noise search, as functions of (seed, stream, epoch) alone, so that a resumed search and
the reference loop see the same batches as an uninterrupted run.

A batch is a `slice` (fixed order: a view, no copy) or a LongTensor of indices on the data's device; both index
images, labels and the noise store the same way.
"""
from __future__ import annotations

import torch

from robustfast._util.seeds import stream_generator

# Stream tags: the θ-phase stream and the noise-update stream draw independent shuffles from one seed.
THETA, NOISE = 0, 1


def stratified_subset(labels: torch.Tensor, fraction: float, num_classes: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded, stratified subset: per class, the first round(fraction·n_class) of a seeded
    shuffle of that class's indices."""
    labels = labels.cpu()
    picked = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        order = torch.randperm(len(idx), generator=stream_generator(seed, 2, c))
        picked.append(idx[order[:round(fraction * len(idx))]])
    return torch.sort(torch.cat(picked)).values


class BatchCycle:
    """Batches over `indices` (a LongTensor, or an int n for range(n)), epoch after epoch.

    shuffle=False: every epoch is the same fixed-order pass (ranges become slices). shuffle=True: epoch e is a
    permutation drawn from (seed, stream, e). drop_last drops a final short batch. `take(start, count)` returns
    the batches start, ..., start+count−1 of the endless stream, wrapping into the next epoch.
    """

    def __init__(self, indices, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int = 0,
                 stream: int = THETA, device=None):
        self.ranges = isinstance(indices, int)
        self.indices = torch.arange(indices) if self.ranges else indices.cpu()
        self.n = len(self.indices)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.stream, self.device = seed, stream, device
        self.per_epoch = self.n // batch_size if drop_last else -(-self.n // batch_size)
        self._cached: tuple[int, list] | None = None

    def __len__(self) -> int:
        return self.per_epoch

    def epoch(self, e: int) -> list:
        if self._cached is not None and self._cached[0] == (e if self.shuffle else 0):
            return self._cached[1]
        bs, count = self.batch_size, self.per_epoch
        if not self.shuffle and self.ranges:
            batches = [slice(i * bs, min((i + 1) * bs, self.n)) for i in range(count)]
        else:
            order = self.indices
            if self.shuffle:
                order = order[torch.randperm(self.n, generator=stream_generator(self.seed, self.stream, e))]
            order = order.to(self.device)
            batches = [order[i * bs:(i + 1) * bs] for i in range(count)]
        self._cached = (e if self.shuffle else 0, batches)
        return batches

    def take(self, start: int, count: int) -> list:
        out = []
        for t in range(start, start + count):
            e, i = divmod(t, self.per_epoch)
            out.append(self.epoch(e)[i])
        return out
