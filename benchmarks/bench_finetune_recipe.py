"""Does the default fine-tuning recipe fit the model? (issue 23, section 4; figures in docs/finetune.md)

The default ViT is fine-tuned to two small datasets unlike Fashion-MNIST, built here from real images
that ship with scikit-learn (offline):

- ``digits``: scikit-learn's handwritten digits (8x8, 17 grey levels; UCI optdigits), upscaled to
  32x32, ten classes, the first ``--per-class`` of each digit (default 30: 300 images);
- ``photo-crops``: 48x48 crops of scikit-learn's two sample photographs (``china.jpg``, ``flower.jpg``),
  ``--per-class`` of each of eight classes: which photograph and which quadrant of it the crop comes from (texture and colour
  recognition; crops of one quadrant overlap, so test crops are near, never equal to, training crops).

Each is a flat ``<class>/<image>.png`` folder, so LOTUS holds out 20% of each class for testing.
On each, the grid lr in {1e-4, 3e-4, 1e-3, 3e-3} is run with the ``fit`` preset's other settings
(AdamW, 8 epochs, batch 64), and then the default recipe (``finetune`` with no flags: the ``fit``
preset). When the default's learning rate is a grid point (1e-3 for the default ViT), it is that
grid run, the same key: ``finetune`` would serve it from the store, so it is not trained twice.
The target: the default within 3 points of the grid's best accuracy, in no more time than that run.
Runs already in the stores under ``--out`` are served, not recomputed (rerun to collect the figures).
``--essential`` also runs the Essential Sparsity preset (lr 2e-5), for the record.

Small on purpose (8 epochs of 240 training images are 24 steps), so the ten runs take minutes on an idle CPU.

    LOTUS_THREADS=2 .venv/bin/python benchmarks/bench_finetune_recipe.py [--out /tmp/ft-bench] [--per-class 30]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

GRID = (1e-4, 3e-4, 1e-3, 3e-3)


def write_digits_folder(root: Path, classes: range | list[int] = range(10), per_class: int | None = None,
                        size: int = 32) -> Path:
    """scikit-learn's digits as ``root/<digit>/<i>.png`` (grey, ``size`` pixels a side; ``per_class``:
    the first that many of each digit, all when None). Returns ``root``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for c in classes:
        (root / str(c)).mkdir(parents=True, exist_ok=True)
        picks = np.flatnonzero(digits.target == c)[:per_class]
        for i in picks:
            pixels = np.clip(digits.images[i] * 16, 0, 255).astype(np.uint8)  # 0..16 -> 0..255
            Image.fromarray(pixels, "L").resize((size, size), Image.BILINEAR).save(root / str(c) / f"{i}.png")
    return root


def write_photo_crops_folder(root: Path, per_class: int = 100, size: int = 48, seed: int = 0) -> Path:
    """Crops of scikit-learn's two sample photographs as ``root/<photo>-<quadrant>/<i>.png`` (8 classes)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    bunch = load_sample_images()
    for name, photo in zip(bunch.filenames, bunch.images):
        h, w = photo.shape[0] // 2, photo.shape[1] // 2
        for q, (top, left) in enumerate(((0, 0), (0, w), (h, 0), (h, w))):
            folder = root / f"{Path(name).stem}-q{q}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                y, x = top + int(rng.integers(0, h - size)), left + int(rng.integers(0, w - size))
                Image.fromarray(photo[y:y + size, x:x + size]).save(folder / f"{i}.png")
    return root


def run_recipe(folder: Path, db: Path, cfg) -> dict:
    from lotus_core.context import open_context
    from lotus_core.results.runs import run_experiment
    from lotus_core.training.finetune import run_finetune

    ctx = open_context("default", str(folder), db=db, device="cpu")
    start = time.perf_counter()
    summary = run_experiment(ctx, "finetune", cfg, run_finetune)
    return {"lr": cfg.lr, "epochs": cfg.epochs, "accuracy": summary["accuracy"], "ci95": summary["ci95"],
            "train_seconds": summary["seconds"], "wall_seconds": round(time.perf_counter() - start, 1),
            "train_images": summary["train_images"], "test_images": summary["test_images"],
            "run_id": summary["run_id"],  # finished at (UTC): match it with the load average logged then
            "finished_utc": time.strftime("%H:%M:%S", time.gmtime(ctx.store.get_run(summary["run_id"])["updated"]))}


def bench(folder: Path, out: Path, essential: bool = False) -> dict:
    from lotus_core.context import open_context
    from lotus_core.training.finetune import preset_config

    ctx = open_context("default", str(folder), db=out / "probe.db", device="cpu")
    fit = preset_config(ctx.model, "fit", limit=None)
    paper_cfg = preset_config(ctx.model, "essential-sparsity", limit=None)
    grid = [run_recipe(folder, out / f"{folder.name}-grid.db", preset_config(ctx.model, "fit", lr=lr, limit=None))
            for lr in GRID]
    same = next((r for r in grid if r["lr"] == fit.lr), None)
    default = same if same is not None else run_recipe(folder, out / f"{folder.name}-default.db", fit)
    paper = run_recipe(folder, out / f"{folder.name}-essential.db", paper_cfg) if essential else None
    best = max(grid, key=lambda r: r["accuracy"])
    return {"dataset": folder.name, "grid": grid, "default": {**default, "same_run_as_grid": same is not None},
            "essential_sparsity": paper, "load_1min_now": os.getloadavg()[0],
            "best_grid_lr": best["lr"], "gap_points": round(100 * (best["accuracy"] - default["accuracy"]), 2),
            "within_3_points": best["accuracy"] - default["accuracy"] <= 0.03,
            "time_vs_best": round(default["train_seconds"] / best["train_seconds"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/lotus-ft-bench", help="folders and stores go here")
    parser.add_argument("--per-class", type=int, default=30, help="images per class of each dataset")
    parser.add_argument("--essential", action="store_true", help="also run the Essential Sparsity preset (lr 2e-5)")
    parser.add_argument("--datasets", default="digits,photo-crops", help="which of digits, photo-crops (comma-separated)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    writers = {"digits": lambda: write_digits_folder(out / "digits", per_class=args.per_class),
               "photo-crops": lambda: write_photo_crops_folder(out / "photo-crops", args.per_class)}
    results = []
    for name in args.datasets.split(","):
        results.append(bench(writers[name](), out, args.essential))
        (out / f"{name}.json").write_text(json.dumps(results[-1], indent=1))  # each dataset as soon as it is done
    print(json.dumps({"threads": os.environ.get("LOTUS_THREADS", "2"), "results": results}, indent=1))


if __name__ == "__main__":
    main()
