"""Training on data lottery tickets: the images with their least important patches dropped.

LOTUS's first idea: a ViT's attention says which patches matter; dropping the lowest-scored
patches of every training image (10% by default: 5 of the default model's 49) gives a
"data lottery ticket" said to reach near its best accuracy by the fifth epoch. This
experiment trains two arms side by side with the same budget, seed and batches:

- ``lottery``: every training image as its ticket (through :func:`lotus_core.training.train.train`'s
  ``forward``), applied as ``apply`` says: ``pixels`` (dropped patches filled with the dataset
  mean pixel) or ``tokens`` (dropped tokens removed after the patch embedding: the transformer
  computes on fewer tokens). The kept-patch masks are computed once, with the *base* model and
  the chosen scorer, and stored as a blob (``keep.safetensors``), so neither a resume nor the
  next epoch recomputes them;
- ``full``: the same images, whole.

Both arms are evaluated after every epoch twice on the same fixed test subset: on the whole
images (``accuracy``) and on the test images' own tickets, applied the same way
(``ticket_accuracy``; test masks from the base model too, stored as ``test-keep.safetensors``).
The two differ when the ticket itself carries information: filled patches sit where an image
has no object, so their positions trace the object's outline, and a model trained from scratch
on mean-filled tickets learns to read that outline and fails on whole images.

Both start from the same point (``start="pretrained"``: the base model; ``"scratch"``: the
base architecture re-initialised with ``seed``). Epoch ``e`` of either arm trains
``steps_per_epoch`` steps with batch order ``seed + e`` and its own warm-up + cosine cycle
(warm restarts, Loshchilov & Hutter, SGDR, ICLR 2017), then evaluates top-1 accuracy on the
fixed test subset of ``limit`` *whole* test images. Each finished epoch stores its point
(``<arm>-epoch-<e>``) and its weights (``<arm>-epoch-<e>.safetensors``) at once, so a stopped
run resumes at the next unfinished epoch and equals an uninterrupted one.

The summary reports, per arm, the first epoch whose accuracy is within 1 point (0.01) of the
best full-data accuracy, and the total training time. Pixel masking costs the same compute as
full images; with ``apply="tokens"`` the lottery arm's training time shows what computing on
fewer tokens saves (inference throughput: ``benchmarks/bench_token_drop.py``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..context import Context
from ..data.images import subset_indices
from ..core.errors import LotusError
from ..core.isolation import seeded
from ..training.evaluate import predict
from ..lottery.common import load_state_bytes, state_bytes
from ..models.arch import build_from_arch
from . import PatchScoring, ScoreOptions, get_scorer, patch_grid, score_images
from .select import check_drop, drop_count, drop_tokens, fill_value, mask_pixels, select_patches
from ..results.executors import get_executor, track
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run
from ..training.train import TrainConfig, train

ARMS = ("lottery", "full")
APPLIES = {"pixels": "dropped patches filled with the dataset mean pixel",
           "tokens": "dropped tokens removed after the patch embedding (timm ViTs)"}
STARTS = ("scratch", "pretrained")
WITHIN = 0.01  # "within 1 point" of the best full-data accuracy (absolute fraction)


@dataclass(frozen=True)
class LotteryTrainConfig:
    """Side-by-side training on data lottery tickets and on full images. Fractions in [0, 1]."""

    scorer: str = "cls"  # patch scorer (a key of lotus_core.patches.SCORERS), run on the base model
    drop: float = 0.1  # fraction of patches dropped per image (0.1 drops 5 of 49)
    epochs: int = 5  # epochs per arm
    steps_per_epoch: int = 0  # optimizer steps per epoch; 0 = one pass over the training pool
    fraction: float = 0.2  # fraction of the training split used (a fixed seeded subset)
    lr: float = 1e-3  # peak AdamW learning rate of each epoch's cycle
    weight_decay: float = 0.05  # AdamW decoupled weight decay
    exclude_from_decay: bool = True  # no decay for norms, biases, position/CLS embeddings (timm's no_weight_decay)
    warmup_steps: int = 0  # linear warm-up at the start of each epoch's cycle
    batch_size: int = 128  # images per step
    seed: int = 0  # initialisation (scratch), training pool, batch order, random scorer
    start: str = "scratch"  # "scratch" (base architecture re-initialised with seed) or "pretrained"
    limit: int = 1000  # test images per evaluation (fixed seeded subset; whole images and their tickets)
    apply: str = "pixels"  # how a ticket is applied in training and in the ticket evaluation (see APPLIES)
    scoring: PatchScoring = PatchScoring()  # how the scorer reads the base model (block, head fusion, ...)

    def options(self) -> ScoreOptions:
        return self.scoring.with_seed(self.seed)

    def __post_init__(self) -> None:  # refused before any run is recorded (no 'failed' rows for bad input)
        check_config(self)


def check_config(cfg: LotteryTrainConfig) -> None:
    get_scorer(cfg.scorer)
    check_drop(cfg.drop)
    cfg.options().check()
    if cfg.apply not in APPLIES:
        raise LotusError(f"apply {cfg.apply!r} is not one of {', '.join(APPLIES)}")
    if cfg.start not in STARTS:
        raise LotusError(f"start {cfg.start!r} is not one of {', '.join(STARTS)}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.steps_per_epoch < 0 or cfg.limit < 1:
        raise LotusError("epochs, batch size and limit must be at least 1 and steps per epoch at least 0")
    if not 0.0 < cfg.fraction <= 1.0:
        raise LotusError(f"training fraction {cfg.fraction} is outside (0, 1]")


def training_pool(ctx: Context, cfg: LotteryTrainConfig) -> torch.Tensor:
    """The training-split indices both arms draw batches from (sorted)."""
    n = len(ctx.train)
    return subset_indices(n, max(1, math.floor(cfg.fraction * n + 0.5)), cfg.seed)


def keep_masks(ctx: Context, cfg: LotteryTrainConfig, run: Run, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices, keep)``: the training pool (or, for ``split="test"``, the fixed test subset) and its
    ``(len(indices), P)`` keep masks from the base model, computed once and stored."""
    from safetensors.torch import load, save

    name = "keep.safetensors" if split == "train" else "test-keep.safetensors"
    blob = run.blob(name)
    if blob is None:
        data = ctx.train if split == "train" else ctx.test
        idx = training_pool(ctx, cfg) if split == "train" else subset_indices(len(ctx.test), cfg.limit, 0)
        t0 = time.perf_counter()
        scores = score_images(ctx.model, data.images[idx], ctx.data_config, cfg.scorer, cfg.options(),
                              fill_value(ctx.train, ctx.data_config), ids=idx,
                              on_batch=lambda done, total: run.progress(phase=f"scoring {split} patches", done=done,
                                                                        planned=total))
        keep = select_patches(scores, cfg.drop)
        blob = run.blob(name, save({"pool": idx.contiguous(), "keep": keep.contiguous()}))
        if split == "train":
            run.point("keep-masks", {"images": len(idx), "patches": keep.shape[1], "kept": int(keep[0].sum()),
                                     "scoring_s": time.perf_counter() - t0})
    stored = load(blob)
    return stored["pool"], stored["keep"]


def initial_model(ctx: Context, cfg: LotteryTrainConfig) -> nn.Module:
    """The common starting point of both arms."""
    if cfg.start == "pretrained":
        return ctx.copy_model()
    arch = getattr(ctx.model, "lotus_arch", None)
    if not arch:
        raise LotusError("start 'scratch' needs the model's architecture (a LOTUS checkpoint or a timm name); "
                         "use start 'pretrained'")
    with seeded(cfg.seed):
        model = build_from_arch(arch)
    model.lotus_arch = arch
    return model.eval()


def epoch_key(arm: str, epoch: int) -> str:
    return f"{arm}-epoch-{epoch}"


def steps_per_epoch(cfg: LotteryTrainConfig, pool_size: int) -> int:
    return cfg.steps_per_epoch or max(1, pool_size // cfg.batch_size)


@dataclass
class ArmState:
    """Executor state of a lottery-training run: the data, the tickets and how they are applied."""

    ctx: Context
    cfg: LotteryTrainConfig
    pool: torch.Tensor  # (M,) training-set indices trained on
    keep: torch.Tensor  # (M, P) kept patches of each pool image
    test_idx: torch.Tensor  # (T,) the fixed test subset
    test_keep: torch.Tensor  # (T, P) its tickets

    def __post_init__(self) -> None:
        self.grid = patch_grid(self.ctx.model, self.ctx.data_config["input_size"][1:])
        self.fill = fill_value(self.ctx.train, self.ctx.data_config)
        self.row = torch.full((len(self.ctx.train),), -1, dtype=torch.int64)  # training index -> pool row
        self.row[self.pool] = torch.arange(len(self.pool))

    def on_ticket(self, model: nn.Module, x: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """Logits of ``model`` on the tickets of the model inputs ``x``, applied as ``cfg.apply``."""
        if self.cfg.apply == "pixels":
            return model(mask_pixels(x, kept, self.grid, self.fill))
        return drop_tokens(model, x, kept)

    def ticket_accuracy(self, model: nn.Module) -> float:
        """Top-1 accuracy on the fixed test subset, each image as its own ticket."""
        test_keep = self.test_keep
        preds = predict(model, self.ctx.test.images[self.test_idx], self.ctx.data_config,
                        forward=lambda m, x, start: self.on_ticket(m, x, test_keep[start: start + len(x)]))
        return int((preds == self.ctx.test.labels[self.test_idx]).sum()) / len(self.test_idx)


def arm_epoch(state: ArmState, unit: tuple[str, int, bytes]) -> dict:
    """Executor unit: one epoch of one arm from the weights it ended the last epoch with."""
    arm, epoch, start = unit
    ctx, cfg = state.ctx, state.cfg
    model = load_state_bytes(ctx.copy_model(), start)
    t0 = time.perf_counter()
    keep, row = state.keep, state.row
    result = train(model, ctx.train, TrainConfig(steps=steps_per_epoch(cfg, len(state.pool)), batch_size=cfg.batch_size,
                                                 lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                                                 exclude_from_decay=cfg.exclude_from_decay, seed=cfg.seed + epoch),
                   ctx.data_config, indices=state.pool,
                   forward=(lambda m, x, batch: state.on_ticket(m, x, keep[row[batch]])) if arm == "lottery" else None)
    train_s = time.perf_counter() - t0
    res = ctx.evaluate(model, limit=cfg.limit)
    return {"state": state_bytes(model),
            "point": {"arm": arm, "epoch": epoch, "accuracy": res.accuracy, "ci_low": res.ci95[0],
                      "ci_high": res.ci95[1], "ticket_accuracy": state.ticket_accuracy(model),
                      "loss": result.final_loss, "steps": result.steps, "train_s": train_s}}


def run_lottery_train(ctx: Context, cfg: LotteryTrainConfig, run: Run) -> dict:
    """Experiment: both arms for ``cfg.epochs`` epochs, interleaved (see the module docstring).

    Within an epoch the two arms are independent units on ``ctx.executor``; each arm's epoch is
    stored (its point and weights) as it arrives.
    """
    check_config(cfg)
    pool, keep = keep_masks(ctx, cfg, run)
    test_idx, test_keep = keep_masks(ctx, cfg, run, "test")
    if run.blob("init.safetensors") is None:
        run.blob("init.safetensors", state_bytes(initial_model(ctx, cfg)))
    done = sum(run.has(epoch_key(arm, e)) for arm in ARMS for e in range(1, cfg.epochs + 1))
    with get_executor(ctx.executor).pool(ArmState, ctx, cfg, pool, keep, test_idx, test_keep, train=True) as arms:
        for epoch in range(1, cfg.epochs + 1):
            todo = {}
            for arm in ARMS:
                if not run.has(epoch_key(arm, epoch)):
                    start = "init" if epoch == 1 else epoch_key(arm, epoch - 1)
                    todo[epoch_key(arm, epoch)] = (arm, epoch, run.blob(f"{start}.safetensors"))
            batch = arms.map(arm_epoch, todo)
            for outcome in track(run, batch, arms.slots, done, 2 * cfg.epochs,
                                 describe=lambda r: {k: r["point"][k] for k in ("arm", "epoch", "accuracy")}):
                run.blob(f"{outcome.key}.safetensors", outcome.result["state"])
                run.point(outcome.key, outcome.result["point"])
                done += 1
    grid = patch_grid(ctx.model, ctx.data_config["input_size"][1:])
    return summarise(cfg, run.points(), len(pool), grid.num_patches, steps_per_epoch(cfg, len(pool)))


def summarise(cfg: LotteryTrainConfig, points: dict[str, dict], images: int, patches: int, steps: int) -> dict:
    """Headline numbers from the epoch points of both arms."""
    curves = {arm: [points[epoch_key(arm, e)]["accuracy"] for e in range(1, cfg.epochs + 1)] for arm in ARMS}
    best_full = max(curves["full"])

    def epochs_to_within(accs: list[float]) -> int | None:
        return next((e for e, a in enumerate(accs, start=1) if a >= best_full - WITHIN - 1e-12), None)

    out = {"best_full_accuracy": best_full, "images": images, "patches": patches,
           "patches_dropped": drop_count(patches, cfg.drop), "steps_per_epoch": steps, "epochs": cfg.epochs,
           "scoring_s": points.get("keep-masks", {}).get("scoring_s")}
    for arm in ARMS:
        tickets = [points[epoch_key(arm, e)].get("ticket_accuracy") for e in range(1, cfg.epochs + 1)]
        out[arm] = {"accuracy": curves[arm], "final_accuracy": curves[arm][-1], "best_accuracy": max(curves[arm]),
                    "ticket_accuracy": tickets, "final_ticket_accuracy": tickets[-1],
                    "epochs_to_within_1pt": epochs_to_within(curves[arm]),
                    "train_time_s": sum(points[epoch_key(arm, e)]["train_s"] for e in range(1, cfg.epochs + 1))}
    return out


def epoch_frame(ctx: Context, run_id: str) -> pd.DataFrame:
    """The epoch points of a (possibly unfinished) run as a DataFrame: arm, epoch, accuracy, ci_low, ci_high, train_s."""
    rows = [p for k, p in ctx.store.points(run_id).items() if "-epoch-" in k]
    cols = ["arm", "epoch", "accuracy", "ci_low", "ci_high", "ticket_accuracy", "loss", "steps", "train_s"]
    return pd.DataFrame(rows, columns=cols).sort_values(["arm", "epoch"], ignore_index=True)


def lottery_runs(ctx: Context) -> pd.DataFrame:
    """Stored lottery-training runs of the current model and dataset (newest first), with a ``label`` column."""
    runs = ctx.store.runs(kind="lottery-train", model=ctx.model_id)
    runs = runs[runs["dataset"] == ctx.dataset].reset_index(drop=True)
    runs["label"] = [f"{c['scorer']}, drop {100 * c['drop']:.0f}% as {c.get('apply', 'pixels')}, {c['start']}, "
                     f"{c['epochs']} epoch{'s' if c['epochs'] != 1 else ''}, {100 * c['fraction']:.0f}% of the data ({s}) [{i[:6]}]"
                     for c, s, i in zip(runs["config"], runs["status"], runs["id"])]
    return runs


def lottery_train_headline(s: dict) -> Headline:
    """Headline of a stored lottery-training run: both arms' final accuracy."""
    lot, full = s["lottery"], s["full"]
    return Headline(lot["final_accuracy"], None,
                    f"after {s['epochs']} epochs: lottery {pct(lot['final_accuracy'])}, "
                    f"full {pct(full['final_accuracy'])}; within 1 point at epoch "
                    f"{lot['epochs_to_within_1pt'] or 'never'} / {full['epochs_to_within_1pt'] or 'never'}")


def epoch_curve(points: dict[str, dict], summary: dict | None) -> list[dict]:
    """Accuracy against epoch, one series per arm."""
    return [{"series": p["arm"], "axis": "epoch", "x": p["epoch"], "accuracy": p["accuracy"]}
            for k, p in points.items() if "-epoch-" in k]


register_experiment(ExperimentSpec("lottery-train", LotteryTrainConfig, run_lottery_train, lottery_train_headline,
                                   epoch_curve, job=True))
