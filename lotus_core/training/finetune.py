"""Fine-tuning: a pre-trained model adapted to the dataset (transfer), and masked fine-tuning.

Two uses, one training loop (:func:`lotus_core.training.train.train`):

- :func:`run_finetune` is the ``finetune`` experiment: a pre-trained ViT (a timm hub model,
  timm name + ``--weights``, or a checkpoint) trained on the dataset's training split, either
  fully or head only (a linear probe, the cheap option), with a recipe from :data:`PRESETS`:
  ``fit`` (the default: the learning rate scaled to the model's size, :func:`fit_lr`) or
  ``essential-sparsity`` (the Essential Sparsity protocol's recipe: AdamW, lr 2e-5, 8 epochs,
  batch 64; "The Emergence of Essential Sparsity in Large Pre-trained Models", Jaiswal et al.,
  NeurIPS 2023, tuned there for ViT-B). A dataset whose class count differs from the model's head
  gets a seeded new head of the right size (:func:`start_model`). Every epoch's test accuracy is
  stored as it is produced, the weights and AdamW state after each epoch too, so an interrupted
  run resumes at its last finished epoch. The result is a safetensors checkpoint whose header
  carries the architecture (with the new head's size) and the provenance (source model and weights
  hash, dataset and its variant hash, recipe, seed, accuracy; nothing of wall-clock time, so a
  resumed run writes the same bytes and id): ``evaluate --model PATH`` reproduces the accuracy.
- :func:`finetune` fine-tunes with a mask held fixed (pruned weights stay exactly zero): the
  Essential Sparsity protocol's "prune the pre-trained weights, then fine-tune", and LTH rounds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..context import Context
from ..core.errors import LotusError
from ..core.mask import Mask
from ..data import split_sizes
from ..data.images import ImageSet, subset_indices
from ..models.arch import head_outputs
from ..models.heads import new_head
from ..models.loading import count_parameters
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run, stored_summary
from .evaluate import DEFAULT_LIMIT
from .fine_tuned import export_checkpoint
from .train import TrainConfig, TrainProgress, TrainResult, train

STATE_BLOB = "state.safetensors"  # weights + AdamW state after the last finished epoch


@dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tuning recipe. Defaults: the Essential Sparsity protocol's full fine-tune (the masked
    fine-tunes of sweeps and LTH use it as it is; the ``finetune`` command and the Overview page start
    from :func:`preset_config`, whose default ``fit`` preset scales the learning rate to the model)."""

    epochs: int = 8  # passes over the training images (the paper's CIFAR budget)
    lr: float = 2e-5  # peak AdamW learning rate (linear warm-up, cosine decay to zero)
    batch_size: int = 64  # images per step
    weight_decay: float = 0.01  # decoupled AdamW weight decay (torch's default)
    head_only: bool = False  # train the classifier head only (a linear probe); False = full fine-tune
    warmup_fraction: float = 0.05  # fraction of the steps spent warming the learning rate up
    augment: bool = True  # random shifts (1/14 of the width) and horizontal flips
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    seed: int = 0  # batch order and augmentation draws
    train_limit: int | None = None  # fine-tune on a fixed seeded subset of this many training images (None: all)
    limit: int = DEFAULT_LIMIT  # test images evaluated after every epoch (the `evaluate` default subset)
    bf16: bool = True  # bf16 autocast (training on GPUs; evaluation where fast)

    @property
    def needs_trained_head(self) -> bool:
        """Fine-tuning is what trains a new head, so it runs on one."""
        return False

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise LotusError(f"fine-tuning needs at least 1 epoch and batch size 1 (got {self.epochs}, {self.batch_size})")
        if not 0 < self.lr < 1:
            raise LotusError(f"learning rate {self.lr} is outside (0, 1); the full fine-tune default is 2e-5")
        if not 0 <= self.warmup_fraction < 1:
            raise LotusError(f"warm-up fraction {self.warmup_fraction} is outside [0, 1)")


# --------------------------------------------------------------------------- presets
# The learning rate of the `fit` preset: the Essential Sparsity rate at ViT-B's size, scaled as a power of the
# size ratio. The exponent puts the default ViT (567,562 parameters) at 1e-3, the best rate of the issue-23
# measurement on a digits folder; docs/finetune.md has the benchmark on two datasets against a grid.
FIT_REFERENCE_PARAMS = 86_567_656  # vit_base_patch16_224, the model the Essential Sparsity recipe was tuned for
FIT_REFERENCE_LR = 2e-5  # the Essential Sparsity paper's AdamW learning rate at that size
FIT_EXPONENT = 0.78  # lr ~ (reference size / size) ** FIT_EXPONENT
FIT_LR_RANGE = (2e-5, 3e-3)  # the fitted rate is clipped to this range


def fit_lr(model: nn.Module) -> float:
    """The ``fit`` preset's peak AdamW learning rate for ``model``, two significant digits:
    ``2e-5 * (86.6M / parameters) ** 0.78`` clipped to [2e-5, 3e-3] (ViT-B/16: 2e-5, ViT-S/16: 5.8e-5,
    ViT-Ti/16: 1.6e-4, the default ViT: 1e-3). Smaller models take larger steps (fewer, narrower layers),
    as the usual ViT recipes do; the paper's 2e-5 leaves the default ViT at a third of its accuracy."""
    lr = FIT_REFERENCE_LR * (FIT_REFERENCE_PARAMS / count_parameters(model)) ** FIT_EXPONENT
    return float(f"{min(max(lr, FIT_LR_RANGE[0]), FIT_LR_RANGE[1]):.2g}")


@dataclass(frozen=True)
class Preset:
    """A named fine-tuning recipe: what it is, its epochs and learning rate (None: :func:`fit_lr`)."""

    what: str  # one line, shown by `finetune --help` and the Overview page
    epochs: int
    lr: float | None


PRESETS: dict[str, Preset] = {
    "fit": Preset("AdamW, 8 epochs, learning rate scaled to the model's size (fit_lr: 2e-5 at ViT-B, 1e-3 for "
                  "the default ViT)", 8, None),
    "essential-sparsity": Preset("the Essential Sparsity paper's recipe (Jaiswal et al. 2023): AdamW 2e-5, 8 "
                                 "epochs, batch 64, tuned for ViT-B", 8, 2e-5),
}
"""Fine-tuning presets; ``fit`` is the default of the ``finetune`` command and the Overview page."""
DEFAULT_PRESET = "fit"


def preset_config(model: nn.Module, preset: str = DEFAULT_PRESET, **overrides) -> FinetuneConfig:
    """The :class:`FinetuneConfig` of ``preset`` for ``model``, with ``overrides`` (None values ignored).
    The learning rate it resolves to is a field of the config, so it is in the run's key."""
    if preset not in PRESETS:
        raise LotusError(f"unknown fine-tuning preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    base = {"epochs": p.epochs, "lr": p.lr if p.lr is not None else fit_lr(model)}
    return FinetuneConfig(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


def steps_per_epoch(cfg: FinetuneConfig, n_images: int) -> int:
    """Optimizer steps per pass over ``n_images`` (at least one)."""
    return max(1, n_images // cfg.batch_size)


def train_config(cfg: FinetuneConfig, n_images: int) -> TrainConfig:
    """The :class:`TrainConfig` of the whole recipe (its schedule spans every epoch)."""
    steps = cfg.epochs * steps_per_epoch(cfg, n_images)
    return TrainConfig(steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                       warmup_steps=int(cfg.warmup_fraction * steps), label_smoothing=cfg.label_smoothing,
                       augment=cfg.augment, seed=cfg.seed, bf16=cfg.bf16)


def trainable(model: nn.Module, head_only: bool) -> nn.Module:
    """``model`` (a copy) with only its classifier trainable when ``head_only``; returned."""
    if head_only:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.get_classifier().parameters():
            p.requires_grad_(True)
    return model


def require_finetunable(ctx: Context) -> None:
    """Refuse, in one line, a dataset that cannot be fine-tuned on: no training images (a folder with test/
    alone: training on test images would test on what was trained on) or fewer than two classes. The
    ``finetune`` command and the Overview page call it before a run is recorded."""
    if len(ctx.train) == 0:
        raise LotusError(f"{ctx.dataset} has no training images ({ctx.train.split_rule}); fine-tuning on test "
                         "images would test on what it trained on: add a train/ folder, or use a flat <class>/<image> "
                         "folder, of which 20% of each class is held out for testing")
    if len(ctx.test.classes) < 2:
        raise LotusError(f"{ctx.dataset} has {len(ctx.test.classes)} class; a classifier is fine-tuned on at least "
                         "two (add a <class> folder per class)")


def train_pool(ctx: Context, cfg: FinetuneConfig) -> torch.Tensor:
    """Indices of the training images the recipe uses."""
    require_finetunable(ctx)
    return subset_indices(len(ctx.train), cfg.train_limit, cfg.seed)


def start_model(ctx: Context, cfg: FinetuneConfig) -> nn.Module:
    """A copy of ``ctx.model`` to fine-tune: a head with as many outputs as the dataset has classes (a seeded new
    one, from ``cfg.seed``, when the model's head has another count: the default model's 10 outputs on a
    5-class folder), only the classifier trainable when ``cfg.head_only``."""
    require_finetunable(ctx)
    classes = len(ctx.test.classes)
    model = ctx.copy_model()
    if head_outputs(model) != classes:
        new_head(model, classes, cfg.seed)
        model.to(ctx.device)
    return trainable(model, cfg.head_only)


# --------------------------------------------------------------------------- resumable state
def _state_bytes(model: nn.Module, opt_state: dict | None, epoch: int) -> bytes:
    """Weights and AdamW moments as one safetensors blob (``epoch`` in its header)."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    for idx, s in (opt_state or {}).get("state", {}).items():
        for name, t in s.items():
            tensors[f"opt.{idx}.{name}"] = torch.as_tensor(t).detach().contiguous().cpu()
    groups = json.dumps((opt_state or {}).get("param_groups", []))
    return save(tensors, metadata={"epoch": str(epoch), "param_groups": groups})


def _load_state(data: bytes, model: nn.Module) -> tuple[int, dict | None]:
    """Load the blob's weights into ``model``; return (epoch, AdamW state; the optimizer moves it to the parameters)."""
    from safetensors.torch import load

    tensors = load(data)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    header_len = int.from_bytes(data[:8], "little")  # safetensors: u64 length, then the JSON header
    meta = json.loads(data[8: 8 + header_len]).get("__metadata__", {})
    groups = json.loads(meta.get("param_groups", "[]"))
    return int(meta.get("epoch", 0)), ({"state": state, "param_groups": groups} if groups else None)


# --------------------------------------------------------------------------- the experiment
def fine_tuned_model(ctx: Context, cfg: FinetuneConfig, run: Run | None = None, mask: Mask | None = None,
                     on_epoch: Callable[[int, nn.Module, TrainResult], None] | None = None) -> nn.Module:
    """A copy of ``ctx.model`` trained by the recipe ``cfg`` (with ``mask`` held fixed, if given).

    With a ``run``, the weights and AdamW state after every epoch are stored (blob
    ``state.safetensors``) and a resumed run continues after its last stored epoch;
    ``on_epoch(epoch, model, result)`` is called after each epoch (1-based).
    """
    cfg.check()
    model = start_model(ctx, cfg)
    if mask is not None:
        mask.validate(model)
    pool = train_pool(ctx, cfg)
    per_epoch, tc = steps_per_epoch(cfg, len(pool)), train_config(cfg, len(pool))
    first, opt_state = 0, None
    if run is not None and run.blob(STATE_BLOB) is not None:
        first, opt_state = _load_state(run.blob(STATE_BLOB), model)
    for epoch in range(first, cfg.epochs):
        progress = None if run is None else (lambda p, e=epoch: run.progress(
            epoch=e + 1, of=cfg.epochs, step=p.step, steps=p.steps, loss=p.loss))
        result = train(model, ctx.train, tc, ctx.data_config, mask=mask, indices=pool, on_progress=progress,
                       should_stop=None if run is None else run.stopped, start_step=epoch * per_epoch,
                       stop_step=(epoch + 1) * per_epoch, optimizer_state=opt_state)
        opt_state = result.optimizer_state
        if run is not None:
            run.check()
        if on_epoch is not None:  # before the state: a kill in between redoes the epoch, never loses its point
            on_epoch(epoch + 1, model, result)
        if run is not None:
            run.blob(STATE_BLOB, _state_bytes(model, opt_state, epoch + 1))
    for p in model.parameters():
        p.requires_grad_(True)
    return model.eval()


def diverged(start: float, last: dict, classes: int) -> str | None:
    """Why a fine-tune that ended at ``last`` (its last epoch's point) diverged, or None.

    A non-finite training loss, or a model that began clearly above chance (at least 10 points over
    1/classes) and ended having lost more than half of its margin over chance (lr 0.9: 1.0 -> 0.0)."""
    chance = 1 / classes
    if last.get("loss") is not None and not math.isfinite(last["loss"]):
        return f"training loss {last['loss']}"
    if start >= chance + 0.1 and last["accuracy"] < chance + (start - chance) / 2:
        return f"test accuracy fell from {start:.3f} to {last['accuracy']:.3f}, chance is {chance:.3f}"
    return None


def run_finetune(ctx: Context, cfg: FinetuneConfig, run: Run) -> dict:
    """Experiment: fine-tune, store every epoch's test accuracy (points ``epoch-E``), write the checkpoint.

    Summary: model_id and checkpoint of the fine-tuned model, its accuracy and Wilson 95% CI on
    the fixed ``cfg.limit`` test subset (what ``evaluate --model CHECKPOINT`` reports), epochs,
    seconds of training, the accuracy before fine-tuning, the per-epoch curve, the learning rate
    and how many images each side of the dataset has (:func:`split_sizes`).
    """
    cfg.check()
    before = ctx.evaluate(limit=cfg.limit, bf16=cfg.bf16)

    def on_epoch(epoch: int, model: nn.Module, result: TrainResult) -> None:
        if run.has(f"epoch-{epoch}"):
            return
        res = ctx.evaluate(model, limit=cfg.limit, bf16=cfg.bf16)
        run.point(f"epoch-{epoch}", {"epoch": epoch, "accuracy": res.accuracy, "ci_low": res.ci95[0],
                                     "ci_high": res.ci95[1], "n": res.n, "loss": result.final_loss,
                                     "seconds": result.elapsed_s})
        run.progress(epoch=epoch, of=cfg.epochs, accuracy=res.accuracy)

    model = fine_tuned_model(ctx, cfg, run, on_epoch=on_epoch)
    points = [run.get(f"epoch-{e}") for e in range(1, cfg.epochs + 1)]
    last = points[-1]
    seconds = sum(p["seconds"] for p in points)
    why = diverged(before.accuracy, last, len(ctx.test.classes))
    if why:  # the run is marked failed with this line; no checkpoint of a broken model is written
        raise LotusError(f"the fine-tune diverged ({why}); no checkpoint written: lower --lr (now {cfg.lr:g}) "
                         "and rerun")
    path = export_checkpoint(ctx, cfg, run.id, model, last)
    from ..models.checkpoint import load_checkpoint

    saved = load_checkpoint(path)
    return {"model_id": saved.lotus_id, "checkpoint": str(path), "accuracy": last["accuracy"],
            "ci95": [last["ci_low"], last["ci_high"]], "epochs": cfg.epochs, "seconds": round(seconds, 1),
            "source": ctx.model_id, "dataset": ctx.dataset, "head_only": cfg.head_only,
            "accuracy_before": before.accuracy, "per_epoch": [p["accuracy"] for p in points], "lr": cfg.lr,
            **split_sizes(ctx.test, ctx.train)}


def finetune_summary(ctx: Context, cfg: FinetuneConfig) -> dict | None:
    """The stored summary of this recipe on ``ctx`` (None if not finished); re-exports a deleted checkpoint."""
    summary = stored_summary(ctx, "finetune", cfg)
    if summary is not None and not Path(summary["checkpoint"]).is_file():
        state = ctx.store.get_blob(summary["run_id"], STATE_BLOB)
        if state is None:
            return None
        model = start_model(ctx, cfg)
        _load_state(state, model)
        for p in model.parameters():
            p.requires_grad_(True)
        points = ctx.store.points(summary["run_id"])
        export_checkpoint(ctx, cfg, summary["run_id"], model.eval(), points[f"epoch-{cfg.epochs}"])
    return summary


def finetune(model: nn.Module, mask: Mask, train_set: ImageSet, data_config: dict, steps: int, lr: float = 1e-4,
             batch_size: int = 128, seed: int = 0, on_progress: Callable[[TrainProgress], None] | None = None,
             should_stop: Callable[[], bool] | None = None,
             on_step: Callable[[int, nn.Module], None] | None = None) -> TrainResult:
    """Fine-tune ``model`` in place for ``steps`` AdamW steps with ``mask`` held fixed.

    Args:
        lr: peak learning rate (cosine decay, no warm-up); fine-tuning uses a small one.
        seed: batch order.
        on_step: called after every optimizer step with the step count (1-based) and the model.
    """
    mask.validate(model)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, weight_decay=0.0, seed=seed)
    return train(model, train_set, cfg, data_config, mask=mask, on_progress=on_progress, should_stop=should_stop,
                 on_step=on_step)


def finetune_headline(summary: dict) -> Headline:
    """A fine-tune's headline: its test accuracy, and where it started."""
    return Headline(summary.get("accuracy"), None, f"fine-tuned {pct(summary.get('accuracy'))} "
                                                   f"(before {pct(summary.get('accuracy_before'))})")


def finetune_curve(points: dict, summary: dict | None) -> list:
    """Test accuracy after every epoch."""
    return [{"series": "fine-tune", "axis": "epoch", "x": p["epoch"], "accuracy": p["accuracy"]}
            for p in sorted(points.values(), key=lambda p: p["epoch"])]


register_experiment(ExperimentSpec("finetune", FinetuneConfig, run_finetune, finetune_headline, finetune_curve,
                                   job=True))
