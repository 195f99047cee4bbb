"""What every patch scorer takes: the batch (:class:`PatchBatch`) and the options (:class:`ScoreOptions`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..core.errors import LotusError
from .grid import PatchGrid

FUSES = ("mean", "max", "min")  # how attention heads are fused into one map


@dataclass(frozen=True)
class PatchScoring:
    """How the scorers read a model: the option group experiment configs nest (``scoring``).
    Blocks are indexed like Python lists (-1 = the last block)."""

    block: int = -1  # cls: the block whose attention is read (-1 = last)
    fuse: str = "mean"  # cls, rollout: heads fused by mean, max or min
    discard_ratio: float = 0.0  # rollout: fraction of each attention row zeroed (lowest first), in [0, 1)
    ig_steps: int = 32  # captum-ig: Riemann steps of the path integral

    def check(self) -> None:
        if self.fuse not in FUSES:
            raise LotusError(f"unknown head fusion {self.fuse!r}; choose one of {', '.join(FUSES)}")
        if not 0.0 <= self.discard_ratio < 1.0:
            raise LotusError(f"discard ratio {self.discard_ratio} is outside [0, 1); give a fraction such as 0.9")
        if self.ig_steps < 1:
            raise LotusError(f"integrated-gradients steps must be at least 1, got {self.ig_steps}")

    def with_seed(self, seed: int) -> "ScoreOptions":
        """These options with the random scorer's ``seed``: what a scorer is called with."""
        return ScoreOptions(**dataclasses.asdict(self), seed=seed)


@dataclass(frozen=True)
class ScoreOptions(PatchScoring):
    """Everything a scorer reads: :class:`PatchScoring` and the random control's seed."""

    seed: int = 0  # random: generator seed

    def check(self) -> None:
        super().check()
        if self.seed < 0:
            raise LotusError(f"seed must be a non-negative whole number, got {self.seed}")


@dataclass
class PatchBatch:
    """What a scorer scores: a batch of model inputs and how its patches are laid out."""

    x: torch.Tensor  # (B, C, H, W) normalised model input
    grid: PatchGrid  # the patch layout of x
    fill: torch.Tensor  # (C,) model-input value of the dataset mean pixel (the "removed patch" baseline)
    ids: torch.Tensor  # (B,) int64 image ids (dataset indices): the random control's per-image seeds
