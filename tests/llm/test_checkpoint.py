"""LLM run checkpoints: a kill between committing latest.json and removing the older step directories (or in the
middle of a save) leaves nothing behind for good; rank 0 cleans up when the run starts again."""
import shutil

import pytest
import torch

from robustfast.llm import checkpoint


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def save(root, step: int, ranks: int = 2) -> None:
    for rank in range(ranks):
        weights = {"lora.A": torch.arange(6.0).view(2, 3) + step} if rank == 0 else None
        optimizer = ({"optimizer.0.exp_avg": torch.full((2, 3), 0.5 * step + rank)}, {"state": {}, "groups": []})
        checkpoint.save_rank(root, step, rank, weights, optimizer, {"step": step})


def steps(root) -> list[str]:
    return sorted(p.name for p in root.glob("step-*"))


def test_a_kill_after_the_commit_is_cleaned_up_on_the_next_start(tmp_path, monkeypatch):
    save(tmp_path, 10)
    checkpoint.commit(tmp_path, 10, 2)
    save(tmp_path, 20)

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(shutil, "rmtree", killed)
    with pytest.raises(Killed):
        checkpoint.commit(tmp_path, 20, 2)
    monkeypatch.undo()
    assert steps(tmp_path) == ["step-000010", "step-000020"]  # the old step directory survived the kill
    save(tmp_path, 30, ranks=1)                                # and a save of step 30 was cut short
    (tmp_path / "latest.json.tmp").write_text("{")
    step, weights, opt, state = checkpoint.load_rank(tmp_path, 0, 2)  # the run starts again
    assert step == 20 and state["step"] == 20 and torch.equal(weights["lora.A"], torch.arange(6.0).view(2, 3) + 20)
    assert opt["optimizer.0.exp_avg"][0, 0].item() == 10.0
    assert steps(tmp_path) == ["step-000020"] and not (tmp_path / "latest.json.tmp").exists()
    assert checkpoint.load_rank(tmp_path, 1, 2)[2]["optimizer.0.exp_avg"][0, 0].item() == 11.0


def test_step_directories_without_a_commit_are_removed(tmp_path):
    save(tmp_path, 5, ranks=1)  # killed before the first commit
    assert checkpoint.load_rank(tmp_path, 0, 2) is None
    assert steps(tmp_path) == []
