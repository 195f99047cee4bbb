"""Transfer commands: finetune (a pre-trained model adapted to the dataset)."""
from __future__ import annotations

from ..core.paths import models_dir
from . import progress_stream
from . import arg, command, learning_rate, output_path, positive_int, seed


def _bar(fields: dict) -> None:
    """A one-line progress bar on stderr: epoch, steps done of the whole recipe, loss or accuracy."""
    if "step" in fields and fields.get("steps"):
        done = fields["step"] / fields["steps"]
        filled = int(30 * done)
        text = (f"\rfinetune epoch {fields['epoch']}/{fields['of']} [{'#' * filled}{'.' * (30 - filled)}] "
                f"step {fields['step']}/{fields['steps']} loss {fields['loss']:.3f}")
        print(text, end="", file=progress_stream(), flush=True)
    elif "accuracy" in fields:
        print(f"\rfinetune epoch {fields['epoch']}/{fields['of']}: test accuracy {fields['accuracy']:.4f}" + " " * 30,
              file=progress_stream(), flush=True)


def _finetune_args() -> list:
    from ..training.evaluate import DEFAULT_LIMIT
    from ..training.finetune import DEFAULT_PRESET, PRESETS

    return [
    arg("--preset", choices=list(PRESETS), default=DEFAULT_PRESET,
        help="; ".join(f"{name}: {p.what}" for name, p in PRESETS.items()) + f" (default {DEFAULT_PRESET})"),
    arg("--epochs", type=positive_int, default=None, help="passes over the training images (default: the preset's, 8)"),
    arg("--lr", type=learning_rate, default=None,
        help="peak AdamW learning rate (default: the preset's; fit scales it to the model's size)"),
    arg("--batch-size", type=positive_int, default=64),
    arg("--head-only", action="store_true", help="train the classifier head only (linear probe)"),
    arg("--no-augment", action="store_true", help="no random shifts and flips"),
    arg("--train-limit", type=positive_int, default=None, help="fine-tune on a fixed subset of this many images"),
    arg("--limit", type=positive_int, default=DEFAULT_LIMIT, help="test images evaluated after every epoch"),
    arg("--seed", type=seed, default=0, help="batch order and augmentation"),
    arg("--fp32", action="store_true", help="no bf16 autocast"),
    ]


@command("finetune", "fine-tune a pre-trained model on the dataset's training split (resumable by epoch); "
         "a flat image folder's training split is what is left after 20% of each class is held out for testing, "
         "a folder with train/ and test/ is used as given, one with test/ alone cannot be fine-tuned on",
         _finetune_args)
def finetune_cmd(args, ctx) -> dict:
    from ..results.runs import run_experiment
    from ..data import split_sizes
    from ..training.finetune import finetune_summary, preset_config, require_finetunable, run_finetune

    cfg = preset_config(ctx.model, args.preset, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                        head_only=args.head_only, augment=not args.no_augment, train_limit=args.train_limit,
                        limit=args.limit, seed=args.seed, bf16=not args.fp32)
    cfg.check()  # refused before a run is recorded (no 'failed' row for a bad recipe)
    output_path(str(models_dir(ctx.store.path)), "the checkpoint folder", folder=True)
    require_finetunable(ctx)  # no training images, one class: refused before a run is recorded
    summary = finetune_summary(ctx, cfg) or run_experiment(ctx, "finetune", cfg, run_finetune, on_progress=_bar)
    keys = ("model_id", "checkpoint", "accuracy", "ci95", "epochs", "seconds", "source", "dataset", "head_only",
            "accuracy_before", "per_epoch", "run_id")
    return {**{k: summary[k] for k in keys if k in summary}, "preset": args.preset, "lr": cfg.lr,
            **split_sizes(ctx.test, ctx.train)}
