"""CMABNAS: architecture search as a combinatorial bandit solved by nested Monte-Carlo search (Huang et al. 2021).

Per search epoch e (after the warm-up epochs, one SGD step per batch on a uniformly random child):
  1. rebuild the tree, α = α₀·decay^e;
  2. B times: Simulation(root, L_sim) (L_sim playouts, each child scored on one validation mini-batch, reward
     backed up), then one more sample from the root: a candidate;
  3. one SGD step per candidate, each on a fresh training batch; 4. score the candidates, back them up;
  5. SearchBest: at each of the 2N levels, Simulation(current node, L_best), then commit a child by the policy;
  6. score that child on the whole validation split; keep the best over epochs.
Rewards are weight-sharing accuracies on `val`, which must not be a test split. Checkpointed after every epoch
(resumable); every random draw of an epoch depends only on (seed, epoch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from robustfast._util.checks import is_int, is_real, require
from robustfast._util.seeds import stream_generator, stream_seed
from robustfast.nas.space import Genotype
from robustfast.nas.supernet import Supernet
from robustfast.nas.tree import NMCSTree, REWARD_SHARES, policy_rank
from robustfast.training.checkpoint import (load_checkpoint, optimizer_from_checkpoint, optimizer_to_checkpoint,
                                            save_checkpoint)

SEARCH_BEST_FROM = ("current", "root")


@dataclass
class SearchResult:
    genotype: Genotype
    reward: float
    history: list[dict] = field(default_factory=list)


def _tensors(data, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    tensors = getattr(data, "tensors", None)
    if not (isinstance(tensors, tuple) and len(tensors) == 2 and all(isinstance(t, torch.Tensor) for t in tensors)):
        raise ValueError(f"{name} must be a TensorDataset of (images, labels)")
    x, y = tensors
    if x.dim() != 4 or not x.is_floating_point() or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{name} must hold float (N, C, H, W) images and N labels, N >= 1")
    return x, y.long()


def is_test_split(data) -> bool:
    return getattr(data, "split", None) == "test"


class CMABNAS:
    def __init__(self, supernet: Supernet, train, val, *, epochs: int = 50, warmup_epochs: int = 5, B: int = 2500,
                 L_sim: int = 8, L_best: int = 800, alpha: float = 1.0, alpha_decay: float = 0.95,
                 policy="local_optimal", search_best_from: str = "current", train_in_simulation: bool = False,
                 reward_share: str = "per_arm", children_per_batch: int = 1, seed: int = 0, checkpoint=None,
                 batch_size: int = 64, lr: float = 0.025, momentum: float = 0.9, weight_decay: float = 3e-4,
                 backend: str = "cpp", progress: bool = True):
        require("supernet", supernet, isinstance(supernet, Supernet), "a robustfast.nas.Supernet")
        if is_test_split(val):
            raise ValueError("val is marked as a test split (val.split == 'test'): rewards must come from a "
                             "held-out validation split, never from the test set")
        for name, v, low in (("epochs", epochs, 1), ("warmup_epochs", warmup_epochs, 0), ("B", B, 1),
                             ("L_sim", L_sim, 1), ("L_best", L_best, 1), ("children_per_batch", children_per_batch, 1),
                             ("batch_size", batch_size, 1), ("seed", seed, 0)):
            require(name, v, is_int(v) and v >= low, f"an int >= {low}")
        require("alpha", alpha, is_real(alpha) and alpha >= 0, "a finite number >= 0")
        require("alpha_decay", alpha_decay, is_real(alpha_decay) and 0 < alpha_decay <= 1, "a number in (0, 1]")
        require("search_best_from", search_best_from, search_best_from in SEARCH_BEST_FROM,
                f"one of {SEARCH_BEST_FROM}")
        require("reward_share", reward_share, reward_share in REWARD_SHARES, f"one of {REWARD_SHARES}")
        for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            require(name, v, is_real(v) and v >= 0, "a finite number >= 0")
        policy_rank(policy)
        self.net, self.space = supernet, supernet.space
        self.device = next(supernet.parameters()).device
        self.train_x, self.train_y = (t.to(self.device) for t in _tensors(train, "train"))
        self.val_x, self.val_y = (t.to(self.device) for t in _tensors(val, "val"))
        self.epochs, self.warmup_epochs, self.B, self.L_sim, self.L_best = epochs, warmup_epochs, B, L_sim, L_best
        self.alpha, self.alpha_decay, self.policy = float(alpha), float(alpha_decay), policy
        self.from_root, self.train_in_simulation = search_best_from == "root", bool(train_in_simulation)
        self.P, self.seed, self.checkpoint, self.batch_size = children_per_batch, seed, checkpoint, batch_size
        self.lr, self.progress = float(lr), progress
        self.opt = torch.optim.SGD(supernet.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.tree = NMCSTree(self.space.arm_counts, alpha=alpha, reward_share=reward_share, seed=seed, backend=backend)
        self.evaluations = 0

    # -- data streams: every draw of an epoch depends on (seed, epoch) alone -----------------------------------

    def _start_epoch(self, epoch: int) -> None:
        self._gen = stream_generator(self.seed, 17, epoch)
        self._train_order, self._train_pos = torch.randperm(len(self.train_x), generator=self._gen), 0
        self._val_order, self._val_pos = torch.randperm(len(self.val_x), generator=self._gen), 0

    def _next(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = (self.train_x, self.train_y) if which == "train" else (self.val_x, self.val_y)
        order, pos = getattr(self, f"_{which}_order"), getattr(self, f"_{which}_pos")
        b = min(self.batch_size, len(x))
        if pos + b > len(x):
            order, pos = torch.randperm(len(x), generator=self._gen), 0
            setattr(self, f"_{which}_order", order)
        setattr(self, f"_{which}_pos", pos + b)
        idx = order[pos:pos + b].to(self.device)
        return x[idx], y[idx]

    # -- the supernet -----------------------------------------------------------------------------------------

    def _step(self, genotype: Genotype) -> float:
        x, y = self._next("train")
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.net(x, genotype), y)
        loss.backward()
        self.opt.step()
        return loss.item()

    @torch.no_grad()
    def _batch_accuracy(self, genotypes: list[Genotype]) -> torch.Tensor:
        x, y = self._next("val")
        logits = self.net.forward_children(x, genotypes)
        self.evaluations += len(genotypes)
        return (logits.argmax(-1) == y).double().mean(1).cpu()

    def reward(self, paths: torch.Tensor) -> torch.Tensor:
        """Accuracy of each child (path) on one validation mini-batch, P children per batched forward."""
        genotypes = [self.space.decode(p) for p in paths]
        out = torch.cat([self._batch_accuracy(genotypes[i:i + self.P]) for i in range(0, len(genotypes), self.P)])
        if self.train_in_simulation:
            for g in genotypes:
                self._step(g)
        return out

    @torch.no_grad()
    def accuracy(self, genotype: Genotype, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                 batch_size: int = 256) -> float:
        """Weight-sharing accuracy of one child on (x, y), the whole validation split by default."""
        x = self.val_x if x is None else x.to(self.device)
        y = self.val_y if y is None else y.to(self.device)
        correct = sum((self.net(x[i:i + batch_size], genotype).argmax(-1) == y[i:i + batch_size]).sum().item()
                      for i in range(0, len(x), batch_size))
        return correct / len(x)

    # -- the search -------------------------------------------------------------------------------------------

    def _set_lr(self, epoch: int) -> float:
        total = self.warmup_epochs + self.epochs
        lr = self.lr * 0.5 * (1 + math.cos(math.pi * epoch / total))
        for group in self.opt.param_groups:
            group["lr"] = lr
        return lr

    def _warmup_epoch(self, epoch: int) -> dict:
        steps = math.ceil(len(self.train_x) / min(self.batch_size, len(self.train_x)))
        losses = []
        for _ in tqdm(range(steps), desc=f"warm-up {epoch + 1}/{self.warmup_epochs}", disable=not self.progress,
                      leave=False):
            losses.append(self._step(self.space.random(self._gen)))
        return {"epoch": epoch, "phase": "warmup", "loss": sum(losses) / len(losses)}

    def search_epoch(self, e: int) -> tuple[list[int], dict]:
        """One epoch of Algorithm 1 (steps 1 to 5); the SearchBest path and the epoch's record."""
        self.tree.reset()
        self.tree.reseed(stream_seed(self.seed, 18, e))
        self.tree.set_alpha(self.alpha * self.alpha_decay ** e)
        candidates = []
        for _ in tqdm(range(self.B), desc=f"search epoch {e + 1}/{self.epochs}", disable=not self.progress,
                      leave=False):
            self.tree.simulate(self.reward, (), self.L_sim, self.P)
            candidates.append(self.tree.sample((), 1))
        candidates = torch.cat(candidates)
        losses = [self._step(self.space.decode(p)) for p in candidates]
        self.tree.update(candidates, self.reward(candidates))
        path = self.tree.search_best(self.reward, self.L_best, self.policy, self.from_root, self.P)
        return path, {"loss": sum(losses) / len(losses), "alpha": self.alpha * self.alpha_decay ** e}

    def search(self) -> SearchResult:
        start, history, best_path, best_reward = 0, [], None, -1.0
        ckpt = load_checkpoint(self.checkpoint) if self.checkpoint is not None else None
        if ckpt is not None:
            tensors, state = ckpt
            self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
            optimizer_from_checkpoint(self.opt, tensors, state["optimizer"])
            start, history = state["epoch"], state["history"]
            best_path, best_reward = state["best_path"], state["best_reward"]
        total = self.warmup_epochs + self.epochs
        for epoch in tqdm(range(start, total), desc="CMAB-NAS", disable=not self.progress, initial=start, total=total):
            self._start_epoch(epoch)
            lr = self._set_lr(epoch)
            if epoch < self.warmup_epochs:
                record = self._warmup_epoch(epoch)
            else:
                path, record = self.search_epoch(epoch - self.warmup_epochs)
                acc = self.accuracy(self.space.decode(path))
                record.update(epoch=epoch, phase="search", path=path, val_acc=acc)
                if acc > best_reward:
                    best_path, best_reward = path, acc
            record["lr"] = lr
            history.append(record)
            if self.checkpoint is not None:
                opt_tensors, opt_rest = optimizer_to_checkpoint(self.opt)
                tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
                save_checkpoint(self.checkpoint, {**tensors, **opt_tensors},
                                {"epoch": epoch + 1, "history": history, "best_path": best_path,
                                 "best_reward": best_reward, "optimizer": opt_rest})
        if best_path is None:
            raise ValueError("epochs must be >= 1 to search (only warm-up epochs were run)")
        return SearchResult(self.space.decode(best_path), best_reward, history)
