"""Checkpoint files: read without executing code, checked before use, saved canonically.

:func:`read_checkpoint` sniffs a file by its content (safetensors, a torch zip or a legacy pickle, the latter two
through ``torch.load(weights_only=True)``), so a file that would execute code on load is refused, never run.
A state is then checked against its architecture on the meta device (:func:`check_fits`: names, shapes, float
dtypes, finite values) before anything is allocated. :func:`save_checkpoint` writes safetensors with the
architecture and head in the header, byte for byte the same for the same weights (:func:`canonical_safetensors`),
since a checkpoint's id hashes the file.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.errors import LotusError, first_line
from .arch import build_from_arch, default_arch, head_outputs, instantiate, on_meta, parse_meta_json, require_vit, validate_arch
from .heads import HEAD_KEY, Head, new_head


# Weight dtypes: float32 and bfloat16 are read as they are; float16 and float64 are cast to the model's float32
# with one note; anything else (integers, booleans, complex numbers, 8-bit floats) is refused.
CAST_DTYPES = (torch.float16, torch.float64)
WEIGHT_DTYPES = (torch.float32, torch.bfloat16, *CAST_DTYPES)


def check_values(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Refuse tensors of ``state`` that cannot stand for ``own``'s (a float parameter given as int8, bool or
    complex; NaN or infinite values); returns the notes to show (a float16/float64 cast)."""
    cast = set()
    for k, t in state.items():
        if k not in own or not own[k].is_floating_point():
            continue
        if t.dtype not in WEIGHT_DTYPES:
            raise LotusError(f"{source} holds {str(t.dtype).replace('torch.', '')} weights ({k}); LOTUS reads float "
                             "weights (float32 or bfloat16; float16/float64 are cast): re-save the checkpoint in float32")
        if t.dtype in CAST_DTYPES:
            cast.add(str(t.dtype).replace("torch.", ""))
        if t.numel() and not bool(torch.isfinite(t).all()):
            raise LotusError(f"{source} holds NaN or infinite weights ({k}); it is not a usable model: "
                             "pass the checkpoint saved before training diverged")
    return [f"{source}: {' and '.join(sorted(cast))} weights are cast to float32"] if cast else []


def check_fits(arch: dict[str, Any], state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Refuse ``state`` unless it fits ``arch`` exactly, checked on the meta device (nothing is allocated):
    a ViT, the same names and shapes, usable values (:func:`check_values`, whose notes are returned)."""
    meta = on_meta(instantiate, arch)
    require_vit(meta, f"{source} (lotus_arch {arch['model_name']})")
    compare_state(meta.state_dict(), state, source)
    return check_values(meta.state_dict(), state, source)


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
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise LotusError(f"checkpoint {path} is empty (0 bytes); pass a .safetensors or .pt file")
    is_safetensors = len(head) > 8 and head[8:9] == b"{"
    if path.suffix == ".safetensors" or is_safetensors:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as exc:
            raise LotusError(f"checkpoint {path} is not a valid safetensors file ({exc}); re-export it") from None
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch's zip format, or a legacy pickle
        raise LotusError(f"{path} is not a checkpoint (neither safetensors nor a torch file); "
                         "pass a .safetensors or .pt file saved from a state_dict")
    try:
        with warnings.catch_warnings():  # the refusal below is the one line the user sees
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported object"
        if "weights only" not in str(exc).lower():
            raise LotusError(f"checkpoint {path} is corrupt or not a torch file ({first[:160]})") from None
        detail = next((ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln or "Unsupported" in ln), first)
        raise LotusError(
            f"refused to load {path}: it is not a plain tensor checkpoint and could execute code ({detail[:160]}); "
            "save a state_dict with safetensors instead"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a damaged file makes the unpickler raise almost anything
        msg = first_line(exc)
        raise LotusError(f"checkpoint {path} is corrupt or not a torch file ({msg})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise LotusError(f"checkpoint {path} does not hold a state_dict of tensors; save model.state_dict()")
    return obj, {}


def compare_state(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a one-line LotusError unless ``state`` has exactly the names and shapes of ``own``."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        detail = (f"{len(missing)} missing (e.g. {missing[0]})" if missing else
                  f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else f"wrong shape: {wrong[0]}")
        raise LotusError(f"checkpoint {source} does not fit the architecture: {detail}; pass the matching --arch")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly, with a one-line message on any mismatch."""
    compare_state(model.state_dict(), state, source)
    model.load_state_dict(state)


def load_checkpoint(path: str | Path, arch: dict[str, Any] | None = None, name: str | None = None,
                    classes: list[str] | None = None, head_seed: int = 0) -> nn.Module:
    """Load a local checkpoint. The architecture comes from ``arch``, else the file's
    ``lotus_arch`` metadata (written by :func:`save_checkpoint`), else the default ViT.

    With ``classes`` (the dataset's), a head trained on other classes or with another class
    count is replaced by a seeded new one (:func:`new_head`, ``+head<seed>`` in the id): it is
    a pre-trained model to fine-tune, not a classifier of these classes.
    """
    state, meta = read_checkpoint(path)
    if arch is None and "lotus_arch" in meta:  # a header that is there is checked, even when it says null
        arch = validate_arch(parse_meta_json(meta["lotus_arch"], "lotus_arch", str(path)), str(path))
    arch = validate_arch(arch, str(path)) if arch is not None else default_arch()
    file_head = Head.from_json(meta[HEAD_KEY], str(path)) if HEAD_KEY in meta else None
    notes = check_fits(arch, state, str(path))
    model = build_from_arch(arch)
    load_state(model, state, str(path))
    model.lotus_id = f"{name or Path(path).name}@{file_sha256(Path(path))[:12]}"
    model.lotus_arch = arch
    if file_head is not None and file_head.num_classes != head_outputs(model):
        raise LotusError(f"{path}: lotus_head says {file_head.num_classes} outputs, the classifier has "
                         f"{head_outputs(model)}; re-save the checkpoint")
    model.lotus_head = file_head or Head("pretrained", head_outputs(model))
    model.lotus_notes = notes  # said once by the CLI (a float16/float64 cast)
    model.lotus_meta = meta  # provenance written by save_checkpoint (source, dataset, recipe, accuracy, ...)
    if classes is not None and model.lotus_head.state == "trained" and model.lotus_head.problem(classes) \
            or classes is not None and head_outputs(model) != len(classes):
        new_head(model, len(classes), head_seed)
        model.lotus_id += f"+head{head_seed}"
    return model.eval()


def canonical_safetensors(data: bytes) -> bytes:
    """``data`` (a safetensors file) with its JSON header written with sorted keys, so equal tensors and
    metadata give equal bytes. safetensors serialises the header's metadata from a hash map, in an order
    that changes from one call to the next; a checkpoint's id hashes the file, so without this the same
    weights saved twice (a fine-tune resumed after a kill, say) would get two ids."""
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8:8 + n]), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header to 8-byte alignment with spaces
    return len(header).to_bytes(8, "little") + header + data[8 + n:]


def save_checkpoint(model: nn.Module, path: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Save ``model`` as safetensors with its architecture in the header, loadable by :func:`load_model`.

    The file is canonical (:func:`canonical_safetensors`): its bytes, and so the id :func:`load_checkpoint`
    gives it, depend only on the weights and the header's entries, which callers keep free of wall-clock
    values (a training time belongs in the run's summary, not here)."""
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"lotus_arch": json.dumps(getattr(model, "lotus_arch", default_arch())), **(extra or {})}
    if hasattr(model, "lotus_head") and HEAD_KEY not in meta:
        meta[HEAD_KEY] = model.lotus_head.to_json()
    data = save({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, metadata=meta)
    path.write_bytes(canonical_safetensors(data))
    return path
