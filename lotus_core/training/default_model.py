"""Training the embedded default model.

``python -m lotus_core train-default`` reproduces ``data/default_vit.safetensors`` and its
model card ``data/default_vit.json`` from a seed: a timm VisionTransformer (patch 4 on
28x28 grayscale, 7x7 = 49 patches + CLS) trained from scratch on the full Fashion-MNIST
training split with AdamW, warm-up + cosine schedule, label smoothing and light
augmentation. It uses a GPU when one is present.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from ..data import load_dataset
from ..core.device import default_device
from ..core.text import count_text
from ..core.isolation import seeded
from .evaluate import evaluate
from ..models.heads import Head
from ..models.loading import DEFAULT_CARD, DEFAULT_WEIGHTS, count_parameters
from ..models.arch import build_from_arch, data_config, default_arch
from ..models.checkpoint import save_checkpoint
from .train import TrainConfig, TrainProgress, train


def train_default(epochs: int = 20, seed: int = 0, batch_size: int = 128, lr: float = 1e-3,
                  out: Path = DEFAULT_WEIGHTS, card: Path = DEFAULT_CARD,
                  on_progress: Callable[[TrainProgress], None] | None = None,
                  dataset: str = "fashion-mnist") -> dict:
    """Train the default ViT architecture from scratch and write its weights and model card.

    ``dataset`` other than Fashion-MNIST trains the same architecture with a head of that
    dataset's classes: the transfer demo's upstream model is ``dataset="fashion-mnist-0to4"``
    (README "Transfer demo"). Returns the model card (dict). Test accuracy is measured on the
    full test split.
    """
    train_set = load_dataset(dataset, "train")
    test_set = load_dataset(dataset, "test")
    arch = {**default_arch(), "num_classes": len(train_set.classes)}
    with seeded(seed):  # timm initialises from torch's global generator
        model = build_from_arch(arch)
    model.lotus_arch = arch
    cfg = data_config(model)
    steps_per_epoch = len(train_set) // batch_size
    config = TrainConfig(steps=epochs * steps_per_epoch, batch_size=batch_size, lr=lr, weight_decay=0.05,
                         warmup_steps=steps_per_epoch, label_smoothing=0.1, augment=True, seed=seed)
    device = default_device()
    t0 = time.perf_counter()
    model.to(device)  # a fresh model this function owns
    train(model, train_set, config, cfg, on_progress=on_progress)
    train_time = time.perf_counter() - t0
    model.cpu()
    result = evaluate(model, test_set, cfg, limit=None, bf16=False)
    model.lotus_head = Head("trained", len(train_set.classes), dataset, tuple(train_set.classes))
    save_checkpoint(model, out)
    info = {
        "name": "default" if out == DEFAULT_WEIGHTS else Path(out).stem,
        "architecture": {k: (list(v) if isinstance(v, tuple) else v) for k, v in arch.items()},
        "parameters": count_parameters(model),
        "seed": seed,
        "data": {"dataset": dataset, "classes": train_set.classes, "train_images": len(train_set), "train_source": train_set.source,
                 "test_images": len(test_set)},
        "epochs": epochs,
        "training": {k: v for k, v in config.__dict__.items()},
        "test_accuracy": result.accuracy,
        "test_accuracy_ci95": list(result.ci95),
        "per_class_accuracy": result.per_class,
        "training_time_s": round(train_time, 1),
        "device": f"{device.type} ({platform.processor() or platform.machine()}, {count_text(torch.get_num_threads(), 'thread')})",
        "torch": torch.__version__,
    }
    Path(card).write_text(json.dumps(info, indent=2) + "\n")
    return info

