"""Controls for a lottery ticket, each one click in the dashboard:

- ``reinit``: the same mask on randomly re-initialised scoped weights (drawn from timm's ViT
  Linear init, truncated normal with std 0.02; embeddings, norms and head kept), as in
  Frankle & Carbin's random-reinitialisation control;
- ``shuffle``: the mask shuffled within each layer (same per-layer count, topology destroyed).

Each is fine-tuned with the same budget as the ticket's round and evaluated.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..context import Context
from ..errors import LotusError
from ..pruning import random_like
from ..pruning.mask import Mask
from ..pruning.scope import scoped_parameters
from ..runs import Run, run_id_for
from ..training import TrainConfig, apply_mask_, train
from .common import load_state_bytes
from .lth import LTHConfig, rewind_state

CONTROLS = ("reinit", "shuffle")


@dataclass(frozen=True)
class ControlConfig:
    lth: LTHConfig  # the LTH run whose ticket is controlled
    round: int  # which round's mask
    control: str = "shuffle"  # reinit | shuffle


def run_control(ctx: Context, cfg: ControlConfig, run: Run) -> dict:
    if cfg.control not in CONTROLS:
        raise LotusError(f"unknown control {cfg.control!r}; choose one of {', '.join(CONTROLS)}")
    lth = LTHConfig(**cfg.lth) if isinstance(cfg.lth, dict) else cfg.lth
    lth_id = run_id_for(ctx, "lth", lth)
    data = ctx.store.get_blob(lth_id, f"mask-round-{cfg.round}.safetensors")
    if data is None or ctx.store.get_point(lth_id, f"round-{cfg.round}") is None:
        raise LotusError(f"LTH round {cfg.round} is not stored; run the LTH experiment to that round first")
    mask = Mask.from_bytes(data)
    model = load_state_bytes(ctx.copy_model(), rewind_state(ctx, lth, Run(ctx.store, lth_id, "lth")))
    if cfg.control == "shuffle":
        mask = random_like(mask, seed=lth.seed + cfg.round)
    else:
        g = torch.Generator().manual_seed(lth.seed + cfg.round)
        with torch.no_grad():
            for p in scoped_parameters(model, lth.scope).values():
                p.copy_((torch.randn(p.shape, generator=g) * 0.02).clamp(-0.04, 0.04))
    apply_mask_(model, mask)
    train(model, ctx.train, TrainConfig(steps=lth.steps, batch_size=lth.batch_size, lr=lth.lr, weight_decay=0.0,
                                        seed=lth.seed + cfg.round), ctx.data_config, mask=mask)
    res = ctx.evaluate(model, limit=lth.limit, seed=lth.seed)
    ticket = ctx.store.get_point(lth_id, f"round-{cfg.round}")
    return {"control": cfg.control, "round": cfg.round, "sparsity": mask.sparsity, "accuracy": res.accuracy,
            "ticket_accuracy": ticket["accuracy"], "ci95": list(res.ci95)}
