"""Models the device benchmarks share: the default ViT and a 224 px timm ViT with random weights."""
from __future__ import annotations

from pathlib import Path

import timm
import torch

from lotus_core.models.heads import Head
from lotus_core.models.arch import data_config
from lotus_core.models.checkpoint import save_checkpoint


def vit224_checkpoint(folder: Path, name: str = "vit_small_patch16_224", num_classes: int = 10) -> Path:
    """A random-weights ``name`` (224 px, 14x14 patches) saved as a LOTUS checkpoint: fine for timing,
    loadable offline by ``--model PATH``. Its head is marked pre-trained so every command accepts it."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes).eval()
    cfg = data_config(model)
    model.lotus_arch = {"model_name": name, "num_classes": num_classes, "img_size": 224,
                        "mean": list(cfg["mean"]), "std": list(cfg["std"])}
    model.lotus_head = Head("pretrained", num_classes)
    return save_checkpoint(model, Path(folder) / f"{name}-random.safetensors")
