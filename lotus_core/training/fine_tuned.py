"""Fine-tuned models as files: where a fine-tune's checkpoint goes (``models/`` beside the results store), what its
header carries (architecture, head, provenance: source model, dataset and its variant, recipe, seed, accuracy;
never a wall-clock value, so a resumed run writes the same bytes and id), the fine-tuned models a store knows, and
the card of a loaded checkpoint."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from ..context import Context
from ..models.arch import head_outputs
from ..models.checkpoint import save_checkpoint
from ..models.heads import Head
from ..core.paths import models_dir
from ..results.store import Store

if TYPE_CHECKING:  # finetune.py imports this module
    from .finetune import FinetuneConfig


def checkpoint_path(store: Store, source_id: str, dataset: str, run_id: str) -> Path:
    """Where a fine-tuned model goes: ``models/`` beside the results store, named after source and dataset."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{source_id.split('@')[0]}-ft-{dataset}")[:80]
    return models_dir(store.path) / f"{stem}-{run_id[:8]}.safetensors"


def export_checkpoint(ctx: Context, cfg: FinetuneConfig, run_id: str, model: nn.Module, last: dict) -> Path:
    """Write the fine-tuned ``model`` with its architecture (its head's size included), head and provenance in
    the header; the training time stays in the run's summary (a wall-clock value would change the file's id)."""
    arch = getattr(model, "lotus_arch", None) or getattr(ctx.model, "lotus_arch", None) or {}
    model.lotus_arch = {**arch, "num_classes": head_outputs(model)} if arch else {}
    model.lotus_head = Head("trained", head_outputs(model), ctx.dataset, tuple(ctx.test.classes))
    provenance = {
        "lotus_source": ctx.model_id,  # name@weights hash (or hub revision, + head seed)
        "lotus_dataset": ctx.dataset,
        "lotus_dataset_variant": ctx.train.variant,  # "<images>@<digest prefix>"
        "lotus_recipe": json.dumps(dataclasses.asdict(cfg), sort_keys=True),
        "lotus_seed": str(cfg.seed),
        "lotus_accuracy": json.dumps({"accuracy": last["accuracy"], "ci95": [last["ci_low"], last["ci_high"]],
                                      "n": last["n"], "limit": cfg.limit}),
        "lotus_run": run_id,
    }
    return save_checkpoint(model, checkpoint_path(ctx.store, ctx.model_id, ctx.dataset, run_id), provenance)



def fine_tuned_models(store: Store) -> list[dict]:
    """Fine-tuned models known to the store whose checkpoint exists: checkpoint, source, dataset, accuracy, ..."""
    runs = store.runs(kind="finetune")
    out = []
    for _, r in runs[runs["status"] == "done"].iterrows():
        summary = r["summary"] or {}
        if summary.get("checkpoint") and Path(summary["checkpoint"]).is_file():
            out.append({"checkpoint": summary["checkpoint"], "model_id": summary["model_id"],
                        "source": summary.get("source"), "dataset": summary.get("dataset"),
                        "accuracy": summary.get("accuracy"), "ci95": summary.get("ci95"),
                        "epochs": summary.get("epochs"), "seconds": summary.get("seconds"),
                        "head_only": summary.get("head_only"), "run_id": r["id"]})
    return out


def checkpoint_card(model: nn.Module, data_config: dict, store: Store | None = None) -> dict:
    """Card of a loaded model: source, parameters, input size and patch grid, classes, accuracy with CI, recipe,
    and the training time (from the run in ``store`` that wrote it; older checkpoints carried it in the header)."""
    meta = getattr(model, "lotus_meta", {}) or {}
    head = getattr(model, "lotus_head", None)
    grid = None
    embed = getattr(model, "patch_embed", None)
    if embed is not None and getattr(embed, "grid_size", None):
        grid = "x".join(map(str, embed.grid_size))
    accuracy = json.loads(meta["lotus_accuracy"]) if "lotus_accuracy" in meta else None
    return {
        "model": getattr(model, "lotus_id", "?"),
        "source": meta.get("lotus_source"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_size": "x".join(map(str, data_config["input_size"])),
        "patch_grid": grid,
        "head": None if head is None else head.state,
        "classes": None if head is None or head.classes is None else list(head.classes),
        "trained_on": meta.get("lotus_dataset") or (None if head is None else head.dataset),
        "accuracy": None if accuracy is None else accuracy["accuracy"],
        "ci95": None if accuracy is None else accuracy["ci95"],
        "recipe": json.loads(meta["lotus_recipe"]) if "lotus_recipe" in meta else None,
        "train_seconds": _train_seconds(meta, store),
    }


def _train_seconds(meta: dict, store: Store | None) -> float | None:
    """Seconds of training of a fine-tuned checkpoint: its run's summary in ``store``, else an old header's entry."""
    if store is not None and meta.get("lotus_run"):
        run = store.get_run(meta["lotus_run"])
        seconds = ((run or {}).get("summary") or {}).get("seconds")
        if seconds is not None:
            return float(seconds)
    return float(meta["lotus_train_seconds"]) if "lotus_train_seconds" in meta else None
