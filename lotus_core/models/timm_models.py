"""timm models by name: pretrained weights from the Hugging Face hub (or its local cache) or a local weights file.

The id of such a model names the pretrained tag, the weights (the hub commit, or the file's hash) and, for a head
re-initialised for another class count, its seed: ``vit_small_patch16_224.augreg_in21k_ft_in1k@hub-<commit>+head0``.
With ``$LOTUS_OFFLINE`` (or ``$LOTUS_NO_SYSTEM_DATA``) the hub is not tried, only its local cache.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import timm
from torch import nn

from ..core.errors import LotusError, first_line
from ..core.isolation import seeded
from .arch import data_config, head_outputs, on_meta, parse_meta_json, require_vit, validate_arch
from .checkpoint import check_values, file_sha256, load_checkpoint, read_checkpoint
from .heads import MAX_SEED, Head


@contextlib.contextmanager
def _hub_offline_unless_allowed() -> Iterator[None]:
    """With ``$LOTUS_OFFLINE`` (or ``$LOTUS_NO_SYSTEM_DATA``) the hub is not tried: the local cache only,
    failing at once instead of after huggingface_hub's retries."""
    from ..data.sources import downloads_allowed

    if downloads_allowed():
        yield
        return
    from unittest import mock

    import huggingface_hub.constants

    with mock.patch.object(huggingface_hub.constants, "HF_HUB_OFFLINE", True):
        yield


def _hub_revision(model: nn.Module) -> str:
    """The commit of the hub weights timm just loaded, read from the local cache (``"hub"`` if unknown)."""
    repo = (getattr(model, "pretrained_cfg", None) or {}).get("hf_hub_id")
    if not repo:
        return "hub"
    try:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            hit = try_to_load_from_cache(repo, filename)
            if isinstance(hit, str):
                return "hub-" + Path(hit).parent.name[:12]  # .../snapshots/<commit>/<file>
    except Exception:  # an unreadable cache must not stop loading the model
        pass
    return "hub"


def load_timm(name: str, num_classes: int | None = None, weights: str | Path | None = None,
              pretrained: bool = True, head_seed: int = 0, classes: list[str] | None = None) -> nn.Module:
    """A timm model with pretrained weights from the hub (online) or a local ``weights`` file.

    The classifier head is re-initialised for ``num_classes`` when it differs from the
    checkpoint's, from ``head_seed`` (the whole init is seeded, then the pretrained weights
    overwrite all but the head), and the model is marked ``Head("new")``. Input size and
    normalisation come from timm's pretrained config. The id names the pretrained tag, the
    weights (hub revision or file hash) and, for a new head, its seed:
    ``vit_small_patch16_224.augreg_in21k_ft_in1k@hub-<commit>+head0``.
    """
    base = _check_name(name, pretrained)
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    state, file_classes = None, None
    if weights is not None:
        if not Path(weights).is_file():
            raise LotusError(f"weights file {weights} does not exist; pass an existing --weights FILE")
        state, meta = read_checkpoint(weights)
        if "lotus_arch" in meta:  # a LOTUS checkpoint of a timm architecture (any size): its header builds it
            return _lotus_checkpoint(weights, meta, base, num_classes, classes, head_seed)
        head_w = next((v for k, v in state.items() if k.endswith("head.weight") or k.endswith("fc.weight")), None)
        file_classes = int(head_w.shape[0]) if head_w is not None and head_w.ndim == 2 else None
        # tell timm the file's head size, so a matching head is kept and a different one dropped
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights), **({"num_classes": file_classes} if file_classes else {})}
    if not 0 <= head_seed <= MAX_SEED:
        raise LotusError(f"head seed {head_seed} is outside 0..{MAX_SEED}; give a seed such as 0")
    _refuse_non_vit(base, name)
    model = _create(name, base, pretrained, head_seed, weights, kwargs)
    model.lotus_notes = check_values(model.state_dict(), state, str(weights)) if weights is not None else []
    hub_classes = file_classes if weights else (model.pretrained_cfg or {}).get("num_classes")
    outputs = head_outputs(model)
    new_head = pretrained and hub_classes is not None and outputs != hub_classes
    if not pretrained:
        digest = "random"
    else:
        digest = file_sha256(Path(weights))[:12] if weights else _hub_revision(model)
    model.lotus_head = Head("new", outputs, seed=head_seed) if new_head or not pretrained else Head("pretrained", outputs)
    model.lotus_id = f"{name}@{digest}" + (f"+head{head_seed}" if model.lotus_head.state == "new" else "")
    cfg = data_config(model)
    model.lotus_arch = {"model_name": name, "num_classes": outputs, "img_size": cfg["input_size"][-1],
                        "mean": list(cfg["mean"]), "std": list(cfg["std"])}
    return model


def _check_name(name: str, pretrained: bool) -> str:
    """The architecture of timm model ``name`` (``base.tag``); refuses an unknown one or an unknown pretrained tag."""
    base, _, tag = name.partition(".")
    if not timm.is_model(base):
        raise LotusError(f"unknown model {name!r}: not 'default', a checkpoint file, or a timm model name "
                         "(see timm.list_models())")
    if tag and pretrained and name not in timm.list_pretrained(f"{base}.*"):
        tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{base}.*")][:4]
        raise LotusError(f"unknown pretrained tag {tag!r} for {base}; use one of {', '.join(tags) or 'none'}")
    return base


def _lotus_checkpoint(weights: str | Path, meta: dict, base: str, num_classes: int | None,
                      classes: list[str] | None, head_seed: int) -> nn.Module:
    """A weights file LOTUS wrote (its header names the architecture, of any size), which must be a ``base``."""
    file_arch = validate_arch(parse_meta_json(meta["lotus_arch"], "lotus_arch", str(weights)), str(weights))
    if file_arch["model_name"].split(".")[0] != base:
        raise LotusError(f"weights file {weights} holds a {file_arch['model_name']}, not a {base}; "
                         "pass the weights of this architecture")
    if classes is None and num_classes:
        classes = [str(i) for i in range(num_classes)]
    return load_checkpoint(weights, classes=classes, head_seed=head_seed)


def _refuse_non_vit(base: str, name: str) -> None:
    """Refuse a CNN before fetching its weights (built on the meta device: nothing is allocated)."""
    try:
        probe = on_meta(timm.create_model, base, pretrained=False)
    except Exception:  # noqa: BLE001 - a model that cannot be built here is refused below with its reason
        probe = None
    if probe is not None:
        require_vit(probe, name)


def _create(name: str, base: str, pretrained: bool, head_seed: int, weights: str | Path | None,
            kwargs: dict[str, Any]) -> nn.Module:
    """timm's model ``name`` with its weights (hub or file), in eval mode, the head's init seeded; one LotusError
    for weights that do not fit, an unknown tag, or a hub that cannot be reached."""
    try:
        with seeded(head_seed), _hub_offline_unless_allowed():
            model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        msg = first_line(exc)
        if weights is not None:
            raise LotusError(f"weights file {weights} does not fit {name} ({msg}); pass the weights of this "
                             "architecture") from None
        if "Invalid pretrained tag" in msg:
            raise LotusError(f"{msg.rstrip('.')}; pick a tag from timm.list_pretrained('{base}.*')") from None
        raise LotusError(f"could not fetch the weights of {name} from the hub ({msg[:100]}); go online or pass "
                         "--weights FILE") from None
    return model.eval()
