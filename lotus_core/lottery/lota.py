"""LoTA: sparse fine-tuning of a ticket, the opposite of pruning.

After Panda et al., "Lottery Ticket Adaptation: Mitigating Destructive Interference in LLMs"
(2024): a short dense fine-tune (``calibrate_steps``) gives the task vector
``delta = w_tuned - w_pretrained``; the mask keeps the ``1 - sparsity`` fraction of scoped weights
with the largest |delta| (global ranking). Then, from the pre-trained weights again, only the
weights inside the mask are fine-tuned for ``steps``; every other parameter (the rest of the
scoped weights, and embeddings, norms, biases and the head) stays *exactly* at its pre-trained
value (the weights are not zeroed: nothing is pruned). Compared with dense fine-tuning of the
whole model for the same ``steps``, batch order and learning rate. Audit row (compared with the
paper's formula; no reference code): docs/audit.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..context import Context
from ..core.errors import LotusError
from ..pruning.ranking import GlobalRanking
from ..pruning.scope import scoped_parameters
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run
from ..training.train import TrainConfig, train


@dataclass(frozen=True)
class LoTAConfig:
    """Sparse fine-tuning inside a task-vector mask. ``sparsity``: fraction of scoped weights frozen."""

    sparsity: float = 0.9  # fraction of the scoped weights that stay at their pre-trained values
    calibrate_steps: int = 50  # dense fine-tuning steps whose task vector picks the mask
    steps: int = 100  # sparse (and, for comparison, dense) fine-tuning steps
    lr: float = 1e-4  # peak AdamW learning rate (cosine decay, no weight decay)
    batch_size: int = 128  # training images per step
    scope: str = "blocks"  # which weights the mask ranges over
    seed: int = 0  # batch order (the same for all three trainings) and the fixed test subset
    limit: int = 1000  # test images per evaluation


def run_lota(ctx: Context, cfg: LoTAConfig, run: Run) -> dict:
    """Experiment: calibrate the mask, sparse fine-tune inside it, dense fine-tune for comparison.

    Points ``lota`` and ``dense``: accuracy with its Wilson 95% interval. Blob: the mask.
    """
    if not 0 <= cfg.sparsity < 1 or cfg.calibrate_steps < 1 or cfg.steps < 1:
        raise LotusError("LoTA needs a sparsity in [0, 1) and at least 1 calibration and 1 fine-tuning step")
    schedule = dict(batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=0.0, seed=cfg.seed)
    if not run.has("lota"):
        tuned = ctx.copy_model()
        train(tuned, ctx.train, TrainConfig(steps=cfg.calibrate_steps, **schedule), ctx.data_config,
              should_stop=run.stopped)
        run.check()
        base, after = scoped_parameters(ctx.model, cfg.scope), scoped_parameters(tuned, cfg.scope)
        mask = GlobalRanking({n: (after[n] - base[n]).detach().abs() for n in base}).mask(cfg.sparsity)
        model = ctx.copy_model()
        for name, p in model.named_parameters():
            p.requires_grad_(name in mask)
        train(model, ctx.train, TrainConfig(steps=cfg.steps, **schedule), ctx.data_config, trainable=mask,
              on_progress=lambda p: run.progress(phase="lota", step=p.step, steps=p.steps, loss=p.loss),
              should_stop=run.stopped)
        run.check()
        res = ctx.evaluate(model, limit=cfg.limit, seed=cfg.seed)
        run.blob("mask.safetensors", mask.to_bytes())
        run.point("lota", {"accuracy": res.accuracy, "ci_low": res.ci95[0], "ci_high": res.ci95[1], "n": res.n,
                           "trained_fraction": 1 - mask.sparsity})
    if not run.has("dense"):
        model = ctx.copy_model()
        train(model, ctx.train, TrainConfig(steps=cfg.steps, **schedule), ctx.data_config,
              on_progress=lambda p: run.progress(phase="dense", step=p.step, steps=p.steps, loss=p.loss),
              should_stop=run.stopped)
        run.check()
        res = ctx.evaluate(model, limit=cfg.limit, seed=cfg.seed)
        run.point("dense", {"accuracy": res.accuracy, "ci_low": res.ci95[0], "ci_high": res.ci95[1], "n": res.n})
    lota, dense = run.get("lota"), run.get("dense")
    return {"lota_accuracy": lota["accuracy"], "dense_accuracy": dense["accuracy"],
            "trained_fraction": lota["trained_fraction"], "steps": cfg.steps}


def lota_headline(s: dict) -> Headline:
    """Headline of a LoTA run: the sparse fine-tune's accuracy beside the dense one's."""
    return Headline(s["lota_accuracy"], None, f"LoTA {pct(s['lota_accuracy'])} training {pct(s['trained_fraction'])} "
                    f"of the weights; dense fine-tune {pct(s['dense_accuracy'])} ({s['steps']} steps)")


register_experiment(ExperimentSpec("lota", LoTAConfig, run_lota, lota_headline, job=True))
