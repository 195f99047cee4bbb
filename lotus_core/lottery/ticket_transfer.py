"""Do tickets transfer? A ticket found on one dataset, trained on another.

Morcos et al., "One ticket to win them all: generalizing lottery ticket initializations across
datasets and optimizers" (NeurIPS 2019); the survey's "universal tickets". The run's own model and
dataset are the **target**; ``source`` names another dataset (e.g. ``fashion-mnist-0to4`` for the
transfer demo's ``fashion-mnist-5to9``, or any image folder). On each dataset a copy of the
pre-trained model is fine-tuned densely for ``steps`` (a head sized to the source's classes, seeded,
when the two differ) and its global magnitude mask at ``target`` is taken: one IMP step. Then each
ticket is applied to the **pre-trained** weights, fine-tuned on the target for ``steps`` with the
mask held fixed, and evaluated on the target's test subset:

- ``source``: the ticket found on the other dataset (does it transfer?);
- ``target``: the ticket found on the target itself (the reference a transferred ticket must reach);
- ``random``: the source ticket's kept positions shuffled within every layer (the same per-layer
  budget; does the transferred ticket carry more than its layer-wise sparsities?);
- ``dense``: no mask, the same fine-tune (what pruning costs at all).

The two found masks' overlap is reported against chance (independent masks with their per-layer
densities). Each mask and each point is stored as it is produced; a stopped run resumes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..context import Context
from ..core.errors import LotusError
from ..core.isolation import seeded
from ..data.images import ImageSet
from ..data import load_dataset
from ..models.arch import head_outputs
from ..pruning.controls import shuffled
from ..core.mask import Mask
from ..pruning.ranking import GlobalRanking
from ..pruning.scope import scoped_parameters
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run
from ..training.finetune import finetune
from ..training.train import TrainConfig, train
from .core_ticket import chance_kept, intersection

TICKETS = ("source", "target", "random", "dense")  # the points of a run, in the order they are computed


@dataclass(frozen=True)
class TicketTransferConfig:
    """A ticket found on ``source``, trained on the run's dataset. Sparsities are fractions of the scoped weights."""

    source: str = "fashion-mnist-0to4"  # the dataset the transferred ticket is found on (a LOTUS dataset name or folder)
    target: float = 0.5  # sparsity of both found masks
    steps: int = 100  # fine-tuning steps: finding each mask, and training each ticket on the target
    lr: float = 1e-4  # peak AdamW learning rate (cosine decay, no weight decay)
    batch_size: int = 128  # training images per step
    scope: str = "blocks"  # which weights are pruned
    seed: int = 0  # batch orders, the source head, the random control and the fixed test subset
    limit: int = 1000  # test images per evaluation (the target's test split)

    @property
    def needs_trained_head(self) -> bool:
        """False: every ticket, dense included, is fine-tuned on the dataset, head and all (a transferred model's
        head for other classes is trained with it)."""
        return False

    def __post_init__(self) -> None:  # refused before any run is recorded
        from ..data import DATASETS

        name = self.source.split(":", 1)[1] if self.source.startswith("imagefolder:") else self.source
        if self.source not in DATASETS and not Path(name).expanduser().is_dir():
            raise LotusError(f"unknown source dataset {self.source!r}; choose one of {', '.join(DATASETS)} or an image "
                             "folder path")
        if not 0 < self.target < 1:
            raise LotusError(f"target sparsity {self.target} is outside (0, 1); give a fraction such as 0.5")
        if self.steps < 1 or self.batch_size < 1 or self.limit < 1 or not 0 < self.lr <= 10:
            raise LotusError(f"steps {self.steps}, batch size {self.batch_size} and limit {self.limit} must be at least 1 "
                             f"and the learning rate {self.lr} in (0, 10]")


def found_mask(ctx: Context, data: ImageSet, cfg: TicketTransferConfig, should_stop=None) -> Mask:
    """The global magnitude mask at ``cfg.target`` of the pre-trained model fine-tuned densely on ``data``
    (with a new, seeded head when ``data`` has another number of classes than the model's head)."""
    model = ctx.copy_model()
    if len(data.classes) != head_outputs(model):
        with seeded(cfg.seed):
            model.reset_classifier(len(data.classes))
        model.to(next(ctx.model.parameters()).device)
    schedule = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=0.0, seed=cfg.seed)
    train(model, data, schedule, ctx.data_config, should_stop=should_stop)
    params = scoped_parameters(model, cfg.scope)
    return GlobalRanking({n: p.detach().abs() for n, p in params.items()}).mask(cfg.target)


def run_ticket_transfer(ctx: Context, cfg: TicketTransferConfig, run: Run) -> dict:
    """Experiment: the source and target masks (blobs ``mask-source``/``mask-target``), then the four tickets
    trained on the target (points ``source``, ``target``, ``random``, ``dense``); see the module docstring."""
    if cfg.source == ctx.dataset:
        raise LotusError(f"the source dataset is the run's own ({cfg.source}); pass another one with --source, "
                         "e.g. fashion-mnist-0to4 for --dataset fashion-mnist-5to9")
    names = list(scoped_parameters(ctx.model, cfg.scope))
    masks: dict[str, Mask] = {}
    for where, data in (("source", None), ("target", ctx.train)):
        blob = f"mask-{where}.safetensors"
        if run.blob(blob) is None:
            source = data if data is not None else load_dataset(cfg.source, "train", root=ctx.data_root)
            mask = found_mask(ctx, source, cfg, should_stop=run.stopped)
            run.check()
            run.blob(blob, mask.to_bytes())
        loaded = Mask.from_bytes(run.blob(blob))
        masks[where] = Mask({n: loaded[n] for n in names})
    masks["random"] = shuffled(masks["source"], cfg.seed)
    for i, key in enumerate(TICKETS):
        if run.has(key):
            continue
        mask = masks.get(key) or Mask.ones(scoped_parameters(ctx.model, cfg.scope))
        model = mask.apply(ctx.model)
        finetune(model, mask, ctx.train, ctx.data_config, cfg.steps, cfg.lr, cfg.batch_size, cfg.seed,
                 on_progress=lambda p: run.progress(ticket=key, of=len(TICKETS), step=p.step, steps=p.steps),
                 should_stop=run.stopped)
        run.check()
        res = ctx.evaluate(model, limit=cfg.limit, seed=cfg.seed)
        run.point(key, {"ticket": key, "accuracy": res.accuracy, "ci_low": res.ci95[0], "ci_high": res.ci95[1],
                        "n": res.n, "sparsity": mask.sparsity})
        run.progress(done=i + 1, planned=len(TICKETS), ticket=key, accuracy=res.accuracy)
    pair = [masks["source"], masks["target"]]
    acc = {key: run.get(key)["accuracy"] for key in TICKETS}
    return {"source": cfg.source, "overlap_kept": intersection(pair).density, "chance_kept": chance_kept(pair),
            "kept": 1 - cfg.target, **{f"{key}_accuracy": a for key, a in acc.items()},
            "sparsity": masks["source"].sparsity}


def ticket_transfer_headline(s: dict) -> Headline:
    """Headline: the transferred ticket's accuracy against the target's own and a random one's."""
    return Headline(s["source_accuracy"], s["sparsity"], f"ticket from {s['source']}: {pct(s['source_accuracy'])} "
                    f"(own ticket {pct(s['target_accuracy'])}, random {pct(s['random_accuracy'])}); masks share "
                    f"{pct(s['overlap_kept'])} of weights (chance {pct(s['chance_kept'])})")


def ticket_transfer_curve(points: dict[str, dict], summary: dict | None) -> list[dict]:
    """One point per ticket at its sparsity."""
    return [{"series": p["ticket"], "axis": "sparsity", "x": p["sparsity"], "accuracy": p["accuracy"]}
            for p in points.values() if "ticket" in p]


register_experiment(ExperimentSpec("ticket-transfer", TicketTransferConfig, run_ticket_transfer,
                                   ticket_transfer_headline, ticket_transfer_curve, job=True))
