"""Images/s of evaluation and fine-tuning, default model and a 224 px ViT, side by side in one run.

    python benchmarks/bench_throughput.py [--device cpu|cuda] [--eval-images N] [--train-steps K]

Evaluation: ``evaluate`` on a fixed test subset with the device's batch size (bf16 autocast where
fast, as the dashboard). Fine-tuning: optimizer steps of the training loop at batch 64 (16 at 224 px;
fp32 on CPUs, bf16 autocast on GPUs), augmentation on. The 224 px model is vit_small_patch16_224 with
random weights (timing only). Figures go to docs/figures-throughput.md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common_models import vit224_checkpoint  # noqa: E402
from lotus_core.context import open_context  # noqa: E402
from lotus_core.core.device import describe, eval_batch_size  # noqa: E402
from lotus_core.training.train import TrainConfig, train  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model_arg: str, device: str | None, db: Path, eval_images: int, train_steps: int, batch: int = 64) -> dict:
    ctx = open_context(model_arg, db=db, device=device)
    ctx.evaluate(limit=16)  # warm-up
    sync(ctx.device)
    t0 = time.perf_counter()
    ctx.evaluate(limit=eval_images)
    sync(ctx.device)
    eval_s = time.perf_counter() - t0
    model = ctx.copy_model()
    train(model, ctx.train, TrainConfig(steps=1, batch_size=batch, augment=True), ctx.data_config)  # warm-up
    sync(ctx.device)
    t0 = time.perf_counter()
    train(model, ctx.train, TrainConfig(steps=train_steps, batch_size=batch, augment=True), ctx.data_config)
    sync(ctx.device)
    train_s = time.perf_counter() - t0
    return {"input": "x".join(map(str, ctx.data_config["input_size"])),
            "eval_batch": eval_batch_size(ctx.device, ctx.data_config["input_size"]),
            "eval_images_per_s": eval_images / eval_s, "train_images_per_s": batch * train_steps / train_s,
            "device": describe(ctx.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--eval-images", type=int, default=0, help="default: 2000 (28 px) / 64 (224 px)")
    parser.add_argument("--train-steps", type=int, default=0, help="default: 20 (28 px) / 2 (224 px)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {
            "default (28 px)": measure("default", args.device, Path(tmp) / "a.db", args.eval_images or 2000,
                                       args.train_steps or 20),
            "vit_small_patch16_224": measure(str(vit224_checkpoint(Path(tmp))), args.device, Path(tmp) / "b.db",
                                             args.eval_images or 64, args.train_steps or 2, batch=16),
        }
    print(f"on {rows['default (28 px)']['device']}")
    print("| model | input | eval batch | evaluation (images/s) | fine-tuning (images/s) |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['input']} | {r['eval_batch']} | {r['eval_images_per_s']:.0f} | {r['train_images_per_s']:.1f} |")
    d, v = rows["default (28 px)"], rows["vit_small_patch16_224"]
    print(f"ratio default / 224 px: evaluation {d['eval_images_per_s'] / v['eval_images_per_s']:.0f}x, "
          f"fine-tuning {d['train_images_per_s'] / v['train_images_per_s']:.0f}x")


if __name__ == "__main__":
    main()
