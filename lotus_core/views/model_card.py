"""What the Overview page shows of the model under study: its dense accuracy with the 95% interval, its card
as rows of text, and sample predictions (computed once per process for a seed). Accuracies are fractions; texts are what the page prints."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..context import Context
from ..data import split_sizes
from ..models.loading import count_parameters, model_card
from ..training.fine_tuned import checkpoint_card
from .overview import Prediction, sample_predictions


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


@dataclass(frozen=True)
class DenseView:
    """The dense model on the page's test subset (``dense`` as :meth:`Context.dense_accuracy` returns it)."""
    dense: dict
    parameters: int
    input_size: str  # e.g. "1x28x28"
    sides: dict  # split_sizes: train_images, test_images, split

    @property
    def half_width_points(self) -> float:
        """Half the width of the dense accuracy's Wilson 95% interval, in accuracy points."""
        return 50 * (self.dense["ci95"][1] - self.dense["ci95"][0])


def dense_view(ctx: Context, limit: int) -> DenseView:
    """The dense accuracy on ``limit`` test images (served from the store once computed) and the model's size."""
    return DenseView(ctx.dense_accuracy(limit=limit), count_parameters(ctx.model),
                     "x".join(map(str, ctx.data_config["input_size"])), split_sizes(ctx.test, ctx.train))


def card_rows(ctx: Context, default: bool) -> tuple[dict[str, str], dict]:
    """The model card as label -> text rows, and the card they come from: the embedded default model's card
    (``default``; raises LotusError when it is missing) or a loaded checkpoint's
    (:func:`~lotus_core.training.fine_tuned.checkpoint_card`)."""
    if default:
        card = model_card()
        arch = card.get("architecture", {})
        return {
            "Architecture": f"ViT, patch {arch.get('patch_size')} on {arch.get('img_size')}px, width "
                            f"{arch.get('embed_dim')}, depth {arch.get('depth')}, {arch.get('num_heads')} heads",
            "Parameters": f"{card.get('parameters', 0):,}",
            "Training data": f"{card.get('data', {}).get('train_images', 0):,} Fashion-MNIST images",
            "Epochs / seed": f"{card.get('epochs')} / {card.get('seed')}",
            "Test accuracy (10,000 images)": _pct(card.get("test_accuracy"), 2),
            "Training time": f"{card.get('training_time_s', 0) / 60:.1f} min on {card.get('device', '?')}",
        }, card
    card = checkpoint_card(ctx.model, ctx.data_config, ctx.store)
    recipe = card["recipe"]
    recipe_text = None if not recipe else (
        f"{'head only' if recipe['head_only'] else 'full'}, {recipe['epochs']} epochs, AdamW lr {recipe['lr']:g}, "
        f"batch {recipe['batch_size']}, seed {recipe['seed']}")
    return {
        "Source": card["source"] or ctx.model_id,
        "Parameters": f"{card['parameters']:,}",
        "Input / patch grid": f"{card['input_size']} / {card['patch_grid'] or '?'}",
        "Head": {"trained": f"trained on {card['trained_on']}", "new": "new, not trained",
                 "pretrained": "pre-trained (classes not checked)"}.get(card["head"], "?"),
        "Classes": ", ".join(card["classes"] or ctx.test.classes),
        "Accuracy (at fine-tuning)": "n/a" if card["accuracy"] is None else
        f"{_pct(card['accuracy'], 2)} ({_pct(card['ci95'][0])} - {_pct(card['ci95'][1])})",
        "Recipe": recipe_text or "n/a",
        "Training time": "n/a" if card["train_seconds"] is None else f"{card['train_seconds']:.0f} s",
    }, card


_SAMPLES: OrderedDict[tuple, list[Prediction]] = OrderedDict()  # (model object, data, seed, n) -> predictions
_SAMPLES_MAX = 16


def samples(ctx: Context, seed: int, n: int = 16) -> list[Prediction]:
    """:func:`~lotus_core.views.overview.sample_predictions`, computed once per process for the same loaded model,
    data and seed (a rerun of the page does not run the model again). Read only: the list is shared."""
    key = (id(ctx.model), ctx.model_id, ctx.dataset, len(ctx.test), seed, n)
    if key not in _SAMPLES:
        if len(_SAMPLES) >= _SAMPLES_MAX:
            _SAMPLES.popitem(last=False)  # the oldest
        _SAMPLES[key] = sample_predictions(ctx, n=n, seed=seed)
    return _SAMPLES[key]

