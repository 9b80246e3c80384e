"""Checkpoint files: a kill between committing the index and deleting the previous files leaves nothing behind
for good; the next start (the resume) or the next save removes it."""
from pathlib import Path

import pytest
import torch

from robustfast.training import checkpoint as ckpt


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(4, 3, generator=g), "b": torch.arange(1.0, 4.0) * (seed + 1)}


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def kill_on_first_unlink(monkeypatch):
    real = Path.unlink

    def unlink(self, *args, **kwargs):
        monkeypatch.setattr(Path, "unlink", real)
        raise Killed

    monkeypatch.setattr(Path, "unlink", unlink)


def test_a_kill_between_index_and_delete_is_cleaned_up_on_the_next_start(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path, tensors(1), {"epoch": 1})
    kill_on_first_unlink(monkeypatch)
    with pytest.raises(Killed):
        ckpt.save_checkpoint(tmp_path, tensors(2), {"epoch": 2})
    # the index names the new file; the previous one is still there
    assert names(tmp_path) == ["checkpoint-000001.safetensors", "checkpoint-000002.safetensors", "checkpoint.json"]
    loaded, state = ckpt.load_checkpoint(tmp_path)  # the next start
    assert state == {"epoch": 2} and all(torch.equal(loaded[k], v) for k, v in tensors(2).items())
    assert names(tmp_path) == ["checkpoint-000002.safetensors", "checkpoint.json"]


def test_half_written_and_orphaned_files_are_removed_and_others_kept(tmp_path):
    ckpt.save_checkpoint(tmp_path, tensors(1), {"epoch": 1})
    (tmp_path / "checkpoint-000002.safetensors.tmp").write_bytes(b"partial")  # killed while writing tensors
    (tmp_path / "checkpoint-000007.safetensors").write_bytes(b"orphan")       # written, never indexed
    (tmp_path / "checkpoint.json.tmp").write_text("{")                         # killed while writing the index
    (tmp_path / "notes.txt").write_text("mine")                                # not a checkpoint file
    assert ckpt.load_checkpoint(tmp_path)[1] == {"epoch": 1}
    assert names(tmp_path) == ["checkpoint-000001.safetensors", "checkpoint.json", "notes.txt"]
    (tmp_path / "checkpoint-000009.safetensors").write_bytes(b"orphan")
    ckpt.save_checkpoint(tmp_path, tensors(2), {"epoch": 2})  # a save cleans up too
    assert names(tmp_path) == ["checkpoint-000002.safetensors", "checkpoint.json", "notes.txt"]


def test_files_without_an_index_are_removed_and_nothing_is_loaded(tmp_path):
    (tmp_path / "checkpoint-000001.safetensors.tmp").write_bytes(b"partial")  # killed in the very first save
    assert ckpt.load_checkpoint(tmp_path) is None
    assert names(tmp_path) == []
    assert ckpt.load_checkpoint(tmp_path / "missing") is None
