"""Core tickets: the weights that every partition of the training data agrees to keep.

The survey's "disentangled tickets" question (Morcos et al., "One ticket to win them all",
NeurIPS 2019, ask it across data sets): is a ticket a property of the model or of its data?
The training set is split into ``partitions`` disjoint, seeded random parts. On each part a copy
of the pre-trained model is fine-tuned densely for ``steps``, and its global magnitude mask at
``target`` is taken (one IMP step per part). The **core ticket** is the intersection of those
masks. Its kept fraction is compared with chance: independent masks of the same per-layer
densities d_l would share ``sum_l n_l d_l^P`` kept weights. The core ticket, and a random mask
with its per-layer budget, are then each applied to the pre-trained weights, fine-tuned for
``steps`` on the whole training set and evaluated.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..context import Context
from ..core.errors import LotusError
from ..pruning import random_like
from ..core.mask import Mask
from ..pruning.ranking import GlobalRanking
from ..pruning.scope import scoped_parameters
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run
from ..training.finetune import finetune
from ..training.train import TrainConfig, train


@dataclass(frozen=True)
class CoreTicketConfig:
    """Core ticket over disjoint data partitions. Sparsities are fractions of the scoped weights."""

    partitions: int = 3  # disjoint random parts of the training set, one mask each
    target: float = 0.5  # sparsity of each part's magnitude mask
    steps: int = 100  # fine-tuning steps on each part, and of the core and random tickets on all data
    lr: float = 1e-4  # peak AdamW learning rate (cosine decay, no weight decay)
    batch_size: int = 128  # training images per step
    scope: str = "blocks"  # which weights are pruned
    seed: int = 0  # the partition, batch orders, the random control and the fixed test subset
    limit: int = 1000  # test images per evaluation


def partition(n: int, parts: int, seed: int = 0) -> list[torch.Tensor]:
    """``parts`` disjoint index sets covering ``range(n)`` (a seeded permutation cut into equal parts)."""
    if parts < 2 or parts > n:
        raise LotusError(f"a core ticket needs between 2 and {n} partitions, not {parts}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return list(torch.tensor_split(perm, parts))


def intersection(masks: list[Mask]) -> Mask:
    """Entries kept by every mask."""
    out = {n: t.clone() for n, t in masks[0].items()}
    for m in masks[1:]:
        for n in out:
            out[n] &= m[n]
    return Mask(out)


def chance_kept(masks: list[Mask]) -> float:
    """Kept fraction of the intersection of independent masks with these masks' per-layer densities."""
    total = masks[0].numel()
    kept = 0.0
    for n, t in masks[0].items():
        prod = 1.0
        for m in masks:
            prod *= float(m[n].sum()) / t.numel()
        kept += prod * t.numel()
    return kept / total


def run_core_ticket(ctx: Context, cfg: CoreTicketConfig, run: Run) -> dict:
    """Experiment: one mask per partition (stored as each is found), their intersection, and the core and
    random tickets fine-tuned on all data. Points ``part-i``, ``core`` and ``random``."""
    parts = partition(len(ctx.train), cfg.partitions, cfg.seed)
    schedule = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=0.0, seed=cfg.seed)
    masks = []
    for i, idx in enumerate(parts):
        if not run.has(f"part-{i}"):
            model = ctx.copy_model()
            train(model, ctx.train, schedule, ctx.data_config, indices=idx, should_stop=run.stopped)
            run.check()
            params = scoped_parameters(model, cfg.scope)
            mask = GlobalRanking({n: p.detach().abs() for n, p in params.items()}).mask(cfg.target)
            run.blob(f"mask-part-{i}.safetensors", mask.to_bytes())
            run.point(f"part-{i}", {"part": i, "images": len(idx), "sparsity": mask.sparsity})
            run.progress(done=i + 1, planned=cfg.partitions + 2)
        masks.append(Mask.from_bytes(run.blob(f"mask-part-{i}.safetensors")))
    names = list(scoped_parameters(ctx.model, cfg.scope))
    masks = [Mask({n: m[n] for n in names}) for m in masks]
    core = intersection(masks)
    for key, mask in (("core", core), ("random", random_like(core, cfg.seed))):
        if run.has(key):
            continue
        model = mask.apply(ctx.model)
        finetune(model, mask, ctx.train, ctx.data_config, cfg.steps, cfg.lr, cfg.batch_size, cfg.seed,
                 should_stop=run.stopped)
        run.check()
        res = ctx.evaluate(model, limit=cfg.limit, seed=cfg.seed)
        run.point(key, {"accuracy": res.accuracy, "ci_low": res.ci95[0], "ci_high": res.ci95[1], "n": res.n,
                        "sparsity": mask.sparsity})
    return {"core_kept": core.density, "chance_kept": chance_kept(masks), "part_kept": 1 - cfg.target,
            "core_accuracy": run.get("core")["accuracy"], "random_accuracy": run.get("random")["accuracy"],
            "core_sparsity": core.sparsity}


def core_ticket_headline(s: dict) -> Headline:
    """Headline of a core ticket: its size against chance, its accuracy against a random mask's."""
    return Headline(s["core_accuracy"], s["core_sparsity"], f"core ticket keeps {pct(s['core_kept'])} "
                    f"(chance {pct(s['chance_kept'])}): {pct(s['core_accuracy'])}, random {pct(s['random_accuracy'])}")


register_experiment(ExperimentSpec("core-ticket", CoreTicketConfig, run_core_ticket, core_ticket_headline, job=True))
