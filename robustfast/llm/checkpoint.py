"""Resumable checkpoints of a (possibly multi-rank) fine-tuning run.

Layout under `<output_dir>/checkpoint/`:
    step-000040/rank-0/   one `robustfast.training.checkpoint` directory per rank, in safetensors: that rank's
    step-000040/rank-1/   optimizer state (its ZeRO partition); rank 0's also holds the trainable weights (full)
    latest.json           {"step": 40, "world_size": 2}: written by rank 0 after every rank has saved

A step directory only counts once latest.json names it, so an interruption mid-save resumes from the previous
complete checkpoint; older step directories are removed after the commit. What a kill leaves (an older step
directory when it falls between the commit and the removal, an uncommitted newer one, latest.json.tmp) is
removed when the run starts again (`load_rank` on rank 0).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from robustfast._util.atomic import write_json
from robustfast._util.checks import check_finite_tensors, get_key, read_json
from robustfast.training.checkpoint import load_checkpoint, save_checkpoint

LATEST = "latest.json"
WEIGHT = "weight."


def _step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:06d}"


def save_rank(root, step: int, rank: int, weights: dict[str, torch.Tensor] | None,
              optimizer_state: tuple[dict, dict], state: dict) -> None:
    """Save this rank's part of the checkpoint at `step`: call on every rank (`weights` on rank 0 only), then
    `commit` on rank 0 once all have returned. `optimizer_state` is (tensors, JSON-able rest)."""
    opt_tensors, opt_rest = optimizer_state
    tensors = {WEIGHT + name: t for name, t in (weights or {}).items()} | opt_tensors
    save_checkpoint(_step_dir(Path(root), step) / f"rank-{rank}", tensors, {"optimizer": opt_rest, **state})


def commit(root, step: int, world_size: int) -> None:
    """Make the checkpoint at `step` the one to resume from and remove older ones (rank 0, after a barrier)."""
    root = Path(root)
    write_json(root / LATEST, {"step": step, "world_size": world_size}, indent=None)
    _remove_stale(root, step)


def _remove_stale(root: Path, step: int | None) -> None:
    """Remove every step directory under `root` but the committed one (all of them when none is committed), and
    an unfinished latest.json.tmp."""
    keep = _step_dir(root, step) if step is not None else None
    for old in root.glob("step-*"):
        if old.is_dir() and old != keep:
            shutil.rmtree(old, ignore_errors=True)
    (root / (LATEST + ".tmp")).unlink(missing_ok=True)


def latest(root) -> dict | None:
    """{"step", "world_size"} of the last committed checkpoint under `root`, or None."""
    path = Path(root) / LATEST
    if not path.is_file():
        return None
    info = read_json(path, "checkpoint commit record")
    step, world = get_key(info, "step", path, int), get_key(info, "world_size", path, int)
    if step < 0 or world < 1:
        raise ValueError(f"{path}: keys 'step' (>= 0) and 'world_size' (>= 1) are out of range: {step}, {world}")
    return info


def load_rank(root, rank: int, world_size: int) -> tuple[int, dict[str, torch.Tensor], dict, dict] | None:
    """(step, weights, optimizer tensors, state) for this rank from the last committed checkpoint, or None: the
    weights from rank 0's files, the optimizer state from this rank's. Restore the weights before wrapping the
    model (DeepSpeed partitions them from there) and the optimizer state (tensors, state["optimizer"]) after."""
    info = latest(root)
    if rank == 0 and Path(root).is_dir():  # the other ranks only read the committed step directory
        _remove_stale(Path(root), info["step"] if info else None)
    if info is None:
        return None
    if info["world_size"] != world_size:
        raise ValueError(f"{root}: the checkpoint was written by {info['world_size']} ranks; resume it with the same "
                         f"number (this run has {world_size}) or start a new output_dir")
    step_dir = _step_dir(Path(root), info["step"])
    parts = {}
    for r in {0, rank}:
        parts[r] = load_checkpoint(step_dir / f"rank-{r}")
        if parts[r] is None:
            raise ValueError(f"{step_dir}: no files for rank {r}")
    weights = {k[len(WEIGHT):]: v for k, v in parts[0][0].items() if k.startswith(WEIGHT)}
    check_finite_tensors(weights, step_dir / "rank-0")
    tensors, state = parts[rank]
    opt = {k: v for k, v in tensors.items() if not k.startswith(WEIGHT)}
    return info["step"], weights, opt, state
