"""Models: the embedded default ViT, any timm model, or a local checkpoint.

``load_model(name_or_path)`` is the one entry point. The returned module is in eval mode
and carries ``model.lotus_id`` (``"<name>@<sha256 prefix>"``), which keys every result in
the store. Checkpoints are read with safetensors or ``torch.load(weights_only=True)``, so a
file that would execute code on load is refused, never run.
"""
from __future__ import annotations

import functools
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from ..core.paths import DATA_DIR
from ..core.errors import LotusError

DEFAULT_WEIGHTS = DATA_DIR / "default_vit.safetensors"
DEFAULT_CARD = DATA_DIR / "default_vit.json"

# The default ViT: 28x28 grayscale, patch 4 -> a 7x7 grid of 49 patches plus the CLS token.
DEFAULT_ARCH: dict[str, Any] = {
    "model_name": "vit_tiny_patch16_224",  # timm VisionTransformer family; the kwargs below resize it
    "img_size": 28,
    "patch_size": 4,
    "in_chans": 1,
    "num_classes": 10,
    "embed_dim": 96,
    "depth": 6,
    "num_heads": 3,
    "mlp_ratio": 3.0,
}
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)


def build_from_arch(arch: dict[str, Any]) -> nn.Module:
    """Create an untrained timm model from an architecture dict (``model_name`` + kwargs).

    ``attn_head_dim`` (a structurally head-pruned ViT: fewer heads of the original width) becomes
    timm's Attention with that head width (:func:`head_width_attention`).
    """
    kwargs = {k: v for k, v in arch.items() if k not in ("model_name", "mean", "std", "attn_head_dim")}
    if arch.get("attn_head_dim") is not None:
        kwargs["attn_layer"] = head_width_attention(int(arch["attn_head_dim"]))
    model = timm.create_model(arch["model_name"], pretrained=False, **kwargs)
    if "mean" in arch:
        model.pretrained_cfg = {**model.pretrained_cfg, "mean": tuple(arch["mean"]), "std": tuple(arch["std"]),
                                "input_size": (arch.get("in_chans", 3), arch["img_size"], arch["img_size"])}
    return model


@functools.lru_cache(maxsize=None)
def head_width_attention(head_dim: int) -> type:
    """timm's Attention with heads of width ``head_dim`` whatever the embedding width (timm's
    ``attn_layer`` must be a class; plain timm: ``create_model(..., attn_layer=head_width_attention(d))``)."""
    from timm.layers import Attention

    def __init__(self, dim: int, num_heads: int = 8, **kwargs: Any) -> None:
        kwargs.pop("attn_head_dim", None)
        Attention.__init__(self, dim, num_heads=num_heads, attn_head_dim=head_dim, **kwargs)

    return type(f"Attention{head_dim}", (Attention,), {"__init__": __init__, "__module__": __name__})


def default_arch() -> dict[str, Any]:
    return {**DEFAULT_ARCH, "mean": FASHION_MNIST_MEAN, "std": FASHION_MNIST_STD}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a state dict without executing code.

    Returns ``(state_dict, metadata)``; metadata is the safetensors header metadata (empty for
    torch files). Raises :class:`LotusError` for missing, corrupt or code-carrying files.
    """
    path = Path(path)
    if not path.is_file():
        raise LotusError(f"checkpoint {path} does not exist; pass a .safetensors or .pt file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as exc:
            raise LotusError(f"checkpoint {path} is not a valid safetensors file ({exc}); re-export it") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported object"
        raise LotusError(
            f"refused to load {path}: it is not a plain tensor checkpoint and could execute code ({first[:160]}); "
            "save a state_dict with safetensors instead"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise LotusError(f"checkpoint {path} is corrupt or not a torch file ({str(exc).splitlines()[0][:160]})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise LotusError(f"checkpoint {path} does not hold a state_dict of tensors; save model.state_dict()")
    return obj, {}


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly, with a one-line message on any mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        detail = (f"{len(missing)} missing (e.g. {missing[0]})" if missing else
                  f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else f"wrong shape: {wrong[0]}")
        raise LotusError(f"checkpoint {source} does not fit the architecture: {detail}; pass the matching --arch")
    model.load_state_dict(state)


def _load_default() -> nn.Module:
    if not DEFAULT_WEIGHTS.exists():
        raise LotusError(f"default model weights {DEFAULT_WEIGHTS} are missing; run `python -m lotus_core train-default`")
    return load_checkpoint(DEFAULT_WEIGHTS, arch=default_arch(), name="default")


def load_checkpoint(path: str | Path, arch: dict[str, Any] | None = None, name: str | None = None) -> nn.Module:
    """Load a local checkpoint. The architecture comes from ``arch``, else the file's
    ``lotus_arch`` metadata (written by :func:`save_checkpoint`), else the default ViT."""
    state, meta = read_checkpoint(path)
    if arch is None:
        arch = json.loads(meta["lotus_arch"]) if "lotus_arch" in meta else default_arch()
    model = build_from_arch(arch)
    load_state(model, state, str(path))
    model.lotus_id = f"{name or Path(path).name}@{file_sha256(Path(path))[:12]}"
    model.lotus_arch = arch
    return model.eval()


def save_checkpoint(model: nn.Module, path: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Save ``model`` as safetensors with its architecture in the header, loadable by :func:`load_model`."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"lotus_arch": json.dumps(getattr(model, "lotus_arch", default_arch())), **(extra or {})}
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(path), metadata=meta)
    return path


def load_timm(name: str, num_classes: int | None = None, weights: str | Path | None = None,
              pretrained: bool = True) -> nn.Module:
    """A timm model with pretrained weights from the hub (online) or a local ``weights`` file.

    The classifier head is re-initialised for ``num_classes`` when it differs from the
    checkpoint's; input size and normalisation come from timm's pretrained config.
    """
    base = name.split(".")[0]
    if not timm.is_model(base):
        raise LotusError(f"unknown model {name!r}: not 'default', a checkpoint file, or a timm model name")
    kwargs: dict[str, Any] = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if weights is not None:
        if not Path(weights).is_file():
            raise LotusError(f"weights file {weights} does not exist")
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights)}
    try:
        model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:  # hub unreachable, bad file, unknown tag
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise LotusError(f"could not load timm weights for {name} ({msg}); go online or pass --weights FILE") from None
    digest = file_sha256(Path(weights))[:12] if weights else ("hub" if pretrained else "random")
    model.lotus_id = f"{name}@{digest}"
    model.lotus_arch = {"model_name": name, **({"num_classes": num_classes} if num_classes else {})}
    return model.eval()


def load_model(name_or_path: str = "default", num_classes: int | None = None,
               weights: str | Path | None = None, arch: str | None = None) -> nn.Module:
    """Load a model in eval mode.

    Args:
        name_or_path: ``"default"`` (the embedded Fashion-MNIST ViT), a checkpoint path
            (``.safetensors`` or a torch file), or a timm model name.
        num_classes: classes of the target dataset (timm models get a new head when it differs).
        weights: local weights file for a timm model instead of the hub.
        arch: timm model name describing a checkpoint that carries no architecture metadata.
    """
    if name_or_path == "default":
        return _load_default()
    path = Path(name_or_path)
    if path.suffix in (".safetensors", ".pt", ".pth", ".bin") or path.is_file():
        arch_dict = {"model_name": arch, **({"num_classes": num_classes} if num_classes else {})} if arch else None
        return load_checkpoint(path, arch=arch_dict)
    return load_timm(name_or_path, num_classes=num_classes, weights=weights)


def data_config(model: nn.Module) -> dict[str, Any]:
    """timm's data config for ``model``: ``input_size`` (C, H, W), ``mean``, ``std``."""
    cfg = timm.data.resolve_data_config(model=model)
    input_size = tuple(cfg["input_size"])
    embed = getattr(model, "patch_embed", None)
    if embed is not None and getattr(embed, "img_size", None) and hasattr(embed, "proj"):
        # a ViT's own geometry wins over a pretrained config written for another size
        input_size = (embed.proj.in_channels, *embed.img_size)
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if len(mean) != input_size[0]:
        mean, std = (sum(mean) / len(mean),) * input_size[0], (sum(std) / len(std),) * input_size[0]
    return {"input_size": input_size, "mean": mean, "std": std}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_card() -> dict[str, Any]:
    """The default model's card (architecture, seed, data, epochs, accuracy, training time)."""
    if not DEFAULT_CARD.exists():
        raise LotusError(f"model card {DEFAULT_CARD} is missing; run `python -m lotus_core train-default`")
    return json.loads(DEFAULT_CARD.read_text())
