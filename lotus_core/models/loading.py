"""Models: the embedded default ViT, any timm model, a local checkpoint, or an in-memory ViT.

``load_model(name_or_path)`` is the one entry point (``from_module`` for a module a notebook holds). The returned
module is in eval mode and carries ``model.lotus_id`` (``"<name>@<sha256 prefix>"``; for a timm model also the hub
revision and the seed of a re-initialised head), which keys every result in the store, and ``model.lotus_head``
(:class:`~lotus_core.models.heads.Head`): whether its classifier was trained, and on which classes. The pieces
live beside it: the architecture dict and its bounds in ``arch.py``, heads in ``heads.py``, checkpoint files
(read without executing code) in ``checkpoint.py``, hub models in ``timm_models.py``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.errors import LotusError, first_line
from ..core.paths import DATA_DIR
from .arch import DEFAULT_ARCH, build_from_arch, data_config, default_arch, head_outputs, validate_arch
from .checkpoint import load_checkpoint, load_state
from .heads import Head, new_head
from .timm_models import load_timm

DEFAULT_WEIGHTS = DATA_DIR / "default_vit.safetensors"
DEFAULT_CARD = DATA_DIR / "default_vit.json"
# the transfer demo's upstream model: the default architecture pre-trained on Fashion-MNIST classes 0-4 only
# (`train-default --dataset fashion-mnist-0to4 --out data/transfer_vit.safetensors`), to fine-tune on classes 5-9
TRANSFER_WEIGHTS = DATA_DIR / "transfer_vit.safetensors"

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")  # a --model ending so is a checkpoint file


def _load_default() -> nn.Module:
    if not DEFAULT_WEIGHTS.exists():
        raise LotusError(f"default model weights {DEFAULT_WEIGHTS} are missing; run `python -m lotus_core train-default`")
    model = load_checkpoint(DEFAULT_WEIGHTS, arch=default_arch(), name="default")
    from ..data.sources import FASHION_MNIST_CLASSES

    model.lotus_head = Head("trained", 10, "fashion-mnist", tuple(FASHION_MNIST_CLASSES))
    return model


def load_model(name_or_path: str = "default", num_classes: int | None = None,
               weights: str | Path | None = None, arch: str | None = None, head_seed: int = 0,
               classes: list[str] | None = None) -> nn.Module:
    """Load a model in eval mode.

    Args:
        name_or_path: ``"default"`` (the embedded Fashion-MNIST ViT), a checkpoint path
            (``.safetensors`` or a torch file), or a timm model name.
        num_classes: classes of the target dataset (timm models get a new head when it differs).
        weights: local weights file for a timm model instead of the hub.
        arch: timm model name describing a checkpoint that carries no architecture metadata.
        head_seed: seed of a re-initialised head.
        classes: the dataset's class names: a checkpoint's head trained on other classes is replaced.
    """
    if name_or_path == "default":
        return _load_default()
    path = Path(name_or_path)
    if path.suffix in CHECKPOINT_SUFFIXES or path.is_file():
        arch_dict = {"model_name": arch, **({"num_classes": num_classes} if num_classes else {})} if arch else None
        return load_checkpoint(path, arch=arch_dict, classes=classes, head_seed=head_seed)
    return load_timm(name_or_path, num_classes=num_classes, weights=weights, head_seed=head_seed, classes=classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_card() -> dict[str, Any]:
    """The default model's card (architecture, seed, data, epochs, accuracy, training time)."""
    if not DEFAULT_CARD.exists():
        raise LotusError(f"model card {DEFAULT_CARD} is missing; run `python -m lotus_core train-default`")
    return json.loads(DEFAULT_CARD.read_text())


def module_digest(model: nn.Module, arch: dict[str, Any]) -> str:
    """SHA-256 of a module's architecture (``arch`` as canonical JSON) and of every state entry (name, dtype,
    shape, bytes): what identifies an in-memory model in result keys (equal weights, equal id)."""
    h = hashlib.sha256(json.dumps(arch, sort_keys=True).encode())
    for name, value in sorted(model.state_dict().items()):
        tensor = value.detach().to("cpu").contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        h.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()


def vit_arch(model: nn.Module) -> dict[str, Any]:
    """The timm architecture dict (as :func:`build_from_arch` takes) of a ViT-structured module, read from
    its layers; raises LotusError naming what a ViT LOTUS can analyse lacks."""
    what = type(model).__name__
    try:
        embed, blocks = model.patch_embed, list(model.blocks)
        proj, attn, fc1 = embed.proj, blocks[0].attn, blocks[0].mlp.fc1
        embed_dim, heads = int(proj.out_channels), int(attn.num_heads)
        arch = {"model_name": DEFAULT_ARCH["model_name"], "img_size": int(embed.img_size[0]),
                "patch_size": int(proj.kernel_size[0]), "in_chans": int(proj.in_channels),
                "num_classes": int(head_outputs(model)), "embed_dim": embed_dim, "depth": len(blocks),
                "num_heads": heads, "mlp_ratio": fc1.out_features / embed_dim}
        if int(attn.head_dim) * heads != embed_dim:
            arch["attn_head_dim"] = int(attn.head_dim)
        square = embed.img_size[0] == embed.img_size[1] and proj.kernel_size[0] == proj.kernel_size[1]
        plain = getattr(model, "global_pool", "token") == "token" and not getattr(model, "num_reg_tokens", 0) \
            and getattr(model, "cls_token", None) is not None and not getattr(model, "dynamic_img_size", False)
    except (AttributeError, TypeError, IndexError) as exc:
        raise LotusError(f"a {what} is not a Vision Transformer LOTUS can analyse ({exc}); pass a timm "
                         "VisionTransformer (timm.create_model('vit_...')), a timm model name or a checkpoint file") from None
    if not (square and plain):
        raise LotusError(f"this {what} is a ViT variant LOTUS does not analyse (square images and patches, a class "
                         "token read by the head, no register tokens); pass a plain timm VisionTransformer")
    cfg = data_config(model)
    return {**arch, "mean": list(cfg["mean"]), "std": list(cfg["std"])}


def from_module(module: nn.Module, classes: list[str] | None = None, head_seed: int = 0) -> nn.Module:
    """An in-memory ViT as LOTUS's model: rebuilt as the timm VisionTransformer of its structure
    (:func:`vit_arch`) holding a copy of its weights, so ``module`` itself is never changed.

    The copy must compute what ``module`` computes (checked on one seeded batch), else it is refused with
    one LotusError: a module of another structure is not silently analysed as a ViT. Its id is
    ``"<class name>@<sha256 prefix of architecture and weights>"`` (:func:`module_digest`), so the same
    weights are served from the store in a later session. Its head counts as pre-trained; with ``classes``
    (the dataset's) and another output count, a seeded new head replaces it (``+head<seed>``), as
    :func:`load_checkpoint` does.
    """
    if not isinstance(module, nn.Module):
        raise LotusError(f"a model must be an nn.Module, a timm model name or a checkpoint file, not a "
                         f"{type(module).__name__}")
    arch = validate_arch(vit_arch(module), type(module).__name__)
    model = build_from_arch(arch)
    state = {k: v.detach().to("cpu") for k, v in module.state_dict().items()}
    load_state(model, state, f"the {type(module).__name__} given")
    model.eval()
    with torch.no_grad():
        x = torch.rand(2, arch["in_chans"], arch["img_size"], arch["img_size"], generator=torch.Generator().manual_seed(0))
        was_training = module.training
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        try:
            module.eval()
            theirs = module(x.to(device)).float().cpu()
        except Exception as exc:  # the module's own forward failed on its declared input size
            raise LotusError(f"the {type(module).__name__} given cannot run an image of its declared size "
                             f"({first_line(exc, 120)})") from None
        finally:
            module.train(was_training)
        if theirs.shape != (2, arch["num_classes"]) or not torch.allclose(model(x), theirs, rtol=1e-4, atol=1e-4):
            raise LotusError(f"the {type(module).__name__} given does not compute what a timm VisionTransformer "
                             "with its layers computes; pass a plain timm VisionTransformer")
    model.lotus_arch = arch
    model.lotus_id = f"{type(module).__name__}@{module_digest(model, arch)[:12]}"
    model.lotus_head = Head("pretrained", head_outputs(model))
    if classes is not None and head_outputs(model) != len(classes):
        new_head(model, len(classes), head_seed)
        model.lotus_id += f"+head{head_seed}"
    return model
