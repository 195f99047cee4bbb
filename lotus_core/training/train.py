"""One training loop for everything that trains: the default model, masked fine-tuning,
lottery-ticket rounds, soup look-aheads and training on data lottery tickets.

Pruned weights stay exactly zero: when a mask is given, gradients of pruned entries are
zeroed before the step and the weights are multiplied by the mask after it (AdamW's
decoupled weight decay cannot revive a zero either way).

Weight decay follows timm's and nanoGPT's convention: it applies to weight matrices only, not to
LayerNorm weights, biases or the position and CLS embeddings (every 1-D parameter, every
``.bias``, and the names in the model's ``no_weight_decay()``), via
``timm.optim.param_groups_weight_decay``. ``TrainConfig.exclude_from_decay=False`` decays all.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import ImageSet, to_model_input
from ..core.device import autocast, model_device
from ..core.errors import LotusError
from ..core.mask import apply_mask_


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`train`. Units: lr per step, steps are optimizer updates."""

    steps: int = 200  # optimizer updates
    batch_size: int = 128  # images per step
    lr: float = 1e-3  # peak AdamW learning rate
    weight_decay: float = 0.05  # decoupled (AdamW) weight decay
    exclude_from_decay: bool = True  # no decay for norms, biases, position/CLS embeddings (see the module docstring)
    warmup_steps: int = 0  # linear warm-up, then cosine decay to zero
    label_smoothing: float = 0.0
    augment: bool = False  # random shifts of up to 2 px and horizontal flips
    seed: int = 0
    bf16: bool = True  # bf16 autocast on GPUs


@dataclass
class TrainProgress:
    step: int
    steps: int
    loss: float
    elapsed_s: float


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    elapsed_s: float
    losses: list[float] = field(default_factory=list)
    optimizer_state: dict | None = field(default=None, repr=False)  # AdamW state, to continue with the next slice


def augment_batch(x: torch.Tensor, generator: torch.Generator, max_shift: float | None = None) -> torch.Tensor:
    """Random translation (up to ``max_shift`` pixels, zero padded; default 1/14 of the width: 2 px
    at 28 px, 16 px at 224 px) and horizontal flip, per image. Draws come from the CPU ``generator``."""
    b, _, h, w = x.shape
    max_shift = w / 14 if max_shift is None else max_shift
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * max_shift
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = shift[:, 0] * 2 / w
    theta[:, 1, 2] = shift[:, 1] * 2 / h
    flip = torch.rand(b, generator=generator) < 0.5
    theta[flip, 0, 0] = -1
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def weight_decay_groups(model: nn.Module, weight_decay: float, exclude: bool = True) -> list[dict]:
    """AdamW parameter groups: ``weight_decay`` on weight matrices, 0 on the parameters the module
    docstring names (with ``exclude``; otherwise everything decays). Frozen parameters are left out."""
    from timm.optim import param_groups_weight_decay

    skip = model.no_weight_decay() if exclude and hasattr(model, "no_weight_decay") else ()
    return param_groups_weight_decay(model, weight_decay, weight_decay_exclude_1d=exclude, no_weight_decay_list=skip)


def train(
    model: nn.Module,
    data: ImageSet,
    config: TrainConfig,
    data_config: dict,
    mask: Mapping[str, torch.Tensor] | None = None,
    indices: torch.Tensor | None = None,
    forward: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, nn.Module], None] | None = None,
    start_step: int = 0,
    stop_step: int | None = None,
    optimizer_state: dict | None = None,
    update_mask: Callable[[int, nn.Module], Mapping[str, torch.Tensor] | None] | None = None,
    trainable: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``config.steps`` steps on ``data`` (optionally ``indices`` of it).

    Args:
        model: the model, trained in place (and left in eval mode).
        data: training images.
        config: hyperparameters.
        data_config: the model's input config (see :func:`lotus_core.models.arch.data_config`).
        mask: optional keep-mask; pruned weights are held at exactly zero throughout.
        indices: optional subset of ``data`` to draw batches from.
        forward: optional ``f(model, model_input, batch_indices) -> logits`` used instead of
            ``model(model_input)`` (e.g. a data lottery ticket: patches masked or tokens dropped).
        on_progress: called about 20 times per run and at the end.
        should_stop: polled each step; returning True ends training early (cancellation).
        on_step: called after every optimizer step with the step count (1-based) and the model
            (e.g. to keep the weights at step K for late rewinding).
        update_mask: called after each backward pass with the step index and the model (its
            ``.grad`` still dense); a mask it returns replaces ``mask`` from this step on (dropped
            weights are zeroed, grown ones start from their current value with zero AdamW moments)
            and that iteration takes no optimizer step: RigL's drop and grow, as google-research/rigl
            (``SparseRigLOptimizerBase.apply_gradients``: the mask update replaces the step).
        trainable: name -> bool tensor; entries that are False get no update and keep their values
            (not zeroed: sparse fine-tuning inside a mask, LoTA). Needs ``weight_decay=0`` to hold them exactly.
        start_step, stop_step: run only steps ``[start_step, stop_step)`` of the ``config.steps``
            schedule (resuming by epoch; the batch order of a slice is seeded by ``config.seed``
            and ``start_step``, so a resumed run repeats the same batches).
        optimizer_state: AdamW state to continue from (``TrainResult.optimizer_state`` of the
            previous slice).

    Training happens where ``model`` is (a copy the caller placed on its device; nothing is moved).
    """
    device = model_device(model)
    model.train()
    stop_step = config.steps if stop_step is None else min(stop_step, config.steps)
    g = torch.Generator().manual_seed(config.seed if start_step == 0 else config.seed * 1_000_003 + start_step)
    pool = indices if indices is not None else torch.arange(len(data))
    if len(pool) == 0:
        raise LotusError("no training images selected; use a larger data fraction")
    opt = torch.optim.AdamW(weight_decay_groups(model, config.weight_decay, config.exclude_from_decay), lr=config.lr)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        t = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return config.lr * 0.5 * (1 + math.cos(math.pi * t))

    keep = {n: m.to(device) for n, m in mask.items()} if mask is not None else None
    if trainable is not None and config.weight_decay:
        raise LotusError("training only some entries needs weight_decay=0 (decay would move the frozen ones)")
    train_only = {n: m.to(device) for n, m in trainable.items()} if trainable is not None else None
    params = dict(model.named_parameters())
    if keep is not None:
        apply_mask_(model, keep)
    order = pool[torch.randperm(len(pool), generator=g)]
    cursor, losses, t0 = 0, [], time.perf_counter()
    report_every = max(1, config.steps // 20)
    for step in range(start_step, stop_step):
        if should_stop is not None and should_stop():
            break
        if cursor + config.batch_size > len(order):
            order, cursor = pool[torch.randperm(len(pool), generator=g)], 0
        batch = order[cursor: cursor + config.batch_size]
        cursor += config.batch_size
        images = data.images[batch]
        if device.type == "cuda":  # uint8 over a pinned buffer: a quarter of the float bytes, asynchronous
            images = images.pin_memory().to(device, non_blocking=True)
        x = to_model_input(images, data_config)
        if config.augment:
            x = augment_batch(x, g)
        x, y = x.to(device), data.labels[batch].to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        # bf16 autocast only pays off for training on GPUs (measured on a 2-core AVX-512 CPU:
        # 100 s/epoch with bf16 against 80 s in fp32 for the default ViT)
        with autocast(device, config.bf16 and device.type == "cuda"):
            logits = model(x) if forward is None else forward(model, x, batch)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        mask_updated = False
        if update_mask is not None:
            new = update_mask(step, model)
            if new is not None:  # RigL: the mask update replaces this iteration's optimizer step
                mask_updated = True
                grown = {n: m.to(device) & ~keep[n] for n, m in new.items()} if keep is not None else {}
                keep = {n: m.to(device) for n, m in new.items()}
                apply_mask_(model, keep)
                for name, fresh in grown.items():  # no moments for new connections (rigl's reset_momentum)
                    for moment in opt.state.get(params[name], {}).values():
                        if moment.shape == fresh.shape:
                            moment.masked_fill_(fresh, 0)
        if train_only is not None:
            for name, m in train_only.items():
                if params[name].grad is not None:
                    params[name].grad.mul_(m)
        if keep is not None:
            for name, m in keep.items():
                if params[name].grad is not None:
                    params[name].grad.mul_(m)
        if not mask_updated:
            opt.step()
        if keep is not None:
            apply_mask_(model, keep)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, model)
        if on_progress is not None and ((step + 1) % report_every == 0 or step + 1 == stop_step):
            on_progress(TrainProgress(step + 1, config.steps, losses[-1], time.perf_counter() - t0))
    model.eval()
    return TrainResult(len(losses), losses[-1] if losses else float("nan"), time.perf_counter() - t0, losses,
                       opt.state_dict())
