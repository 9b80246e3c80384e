"""robust_loss and apply_triggers read tensor values back to the host at most once per call (one batched read)."""
import contextlib

import pytest
import torch

from robustfast.ops import apply_triggers, robust_loss
from robustfast.reference.apply_triggers import ADD, BLEND, COLOUR, LUT, MINMAX

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__")


@contextlib.contextmanager
def counting_host_reads(monkeypatch):
    """Counts calls of every Tensor method that copies a value to the host (a synchronisation on a GPU)."""
    calls = []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    yield calls
    monkeypatch.undo()


@pytest.mark.parametrize("requires_grad", [False, True])
def test_robust_loss_reads_the_host_once(monkeypatch, requires_grad):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 10, generator=g).requires_grad_(requires_grad)
    labels = torch.randint(0, 10, (16,), generator=g)
    robust_loss(logits, labels, "nce+rce")  # warm-up: first calls may import lazily
    with counting_host_reads(monkeypatch) as calls:
        loss = robust_loss(logits, labels, "nce+rce")
    assert len(calls) <= 1, calls
    if requires_grad:
        with counting_host_reads(monkeypatch) as calls:
            loss.sum().backward()
        assert not calls, calls


@pytest.mark.parametrize("given", [False, True])
def test_apply_triggers_reads_the_host_once(monkeypatch, given):
    g = torch.Generator().manual_seed(1)
    modes = [BLEND, ADD | MINMAX, LUT | COLOUR]
    t, c, h, w = len(modes), 3, 9, 7
    images = torch.rand(6, c, h, w, generator=g)
    ids = torch.tensor([0, 1, 2, -1, 0, 2])
    kwargs = {"flags": torch.tensor(modes, dtype=torch.int32), "weight": torch.rand(t, c, h, w, generator=g)}
    if given:
        kwargs.update(pattern=torch.rand(t + 2, c, h, w, generator=g), pattern_index=torch.tensor([0, 1, 2, 3, 4, 0]),
                      additive=0.1 * torch.randn(t, c, h, w, generator=g),
                      lut=torch.rand(t, c, 17, generator=g).sort(-1).values,
                      colour=torch.cat([torch.eye(c).expand(t, c, c), torch.zeros(t, c, 1)], 2))
    apply_triggers(images, ids, **kwargs)
    with counting_host_reads(monkeypatch) as calls:
        apply_triggers(images, ids, **kwargs)
    assert len(calls) <= 1, calls
    uint8 = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    with counting_host_reads(monkeypatch) as calls:
        apply_triggers(uint8, ids, **{k: (v * 255 if k in ("pattern", "additive", "lut") else v)
                                      for k, v in kwargs.items()})
    assert len(calls) <= 1, calls
