"""Models: the embedded default ViT, any timm model, or a local checkpoint.

``load_model(name_or_path)`` is the one entry point. The returned module is in eval mode
and carries ``model.lotus_id`` (``"<name>@<sha256 prefix>"``; for a timm model also the hub
revision and the seed of a re-initialised head), which keys every result in the store, and
``model.lotus_head`` (:class:`Head`): whether its classifier was trained, and on which classes.
A head timm re-initialised for a new class count is seeded (two processes get the same head)
and marked ``new``: nothing prunes or reports such a model as if it were trained
(:meth:`lotus_core.core.context.Context.require_trained_head`). Checkpoints are read with safetensors or ``torch.load(weights_only=True)``, so a
file that would execute code on load is refused, never run.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import pickle
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import timm
import torch
from torch import nn

from ..core.paths import DATA_DIR
from ..core.errors import LotusError
from ..core.isolation import seeded

DEFAULT_WEIGHTS = DATA_DIR / "default_vit.safetensors"
DEFAULT_CARD = DATA_DIR / "default_vit.json"
# the transfer demo's upstream model: the default architecture pre-trained on Fashion-MNIST classes 0-4 only
# (`train-default --dataset fashion-mnist-0to4 --out data/transfer_vit.safetensors`), to fine-tune on classes 5-9
TRANSFER_WEIGHTS = DATA_DIR / "transfer_vit.safetensors"

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
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")  # a --model ending so is a checkpoint file
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
HEAD_KEY = "lotus_head"  # checkpoint header entry holding the Head as JSON


@dataclass(frozen=True)
class Head:
    """What a model's classifier head was trained on.

    ``state`` is ``"trained"`` (by LOTUS: on ``dataset``, whose class names are ``classes``),
    ``"pretrained"`` (kept from the hub or a weights file; its classes are not known here) or
    ``"new"`` (re-initialised at random from ``seed`` for ``num_classes`` classes: not trained).
    """

    state: str  # "trained" | "pretrained" | "new"
    num_classes: int  # output units of the head
    dataset: str | None = None  # what a "trained" head was trained on
    classes: tuple[str, ...] | None = None  # class names of that dataset, in label order
    seed: int | None = None  # seed of a "new" head's initialisation

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "classes": list(self.classes) if self.classes else None})

    @classmethod
    def from_json(cls, text: str, source: str = "checkpoint") -> "Head":
        """The head described by a checkpoint's ``lotus_head`` entry, every field checked (LotusError)."""
        return parse_head(parse_meta_json(text, HEAD_KEY, source), source)

    def problem(self, classes: list[str]) -> str | None:
        """Why this head cannot be used as-is on a dataset with ``classes`` (None when it can)."""
        if self.state == "new":
            return "head not trained on this dataset: fine-tune it first"
        if self.num_classes != len(classes):
            return (f"head not trained on this dataset ({self.num_classes} outputs, the dataset has "
                    f"{len(classes)} classes): fine-tune it first")
        if self.state == "trained" and self.classes is not None and tuple(self.classes) != tuple(classes):
            return (f"head not trained on this dataset (trained on {self.dataset}: "
                    f"{', '.join(self.classes[:3])}...): fine-tune it first")
        return None


HEAD_STATES = ("trained", "pretrained", "new")
MAX_META_CHARS = 8 << 20  # a checkpoint header entry larger than this is not LOTUS metadata
MAX_SEED = 2 ** 32 - 1  # every seed, on the CLI, in pages and in checkpoint metadata (numpy's range)


def parse_meta_json(text: Any, key: str, source: str) -> Any:
    """The JSON value of checkpoint header entry ``key`` (``lotus_arch``, ``lotus_head``); one LotusError for
    text that is not JSON, too large, or nested too deep to decode (a header is data, never trusted)."""
    if not isinstance(text, str) or len(text) > MAX_META_CHARS:
        raise LotusError(f"{source}: {key} metadata is not JSON text of at most {MAX_META_CHARS >> 20} MB; "
                         "re-save the checkpoint")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; 10k+ nested brackets recurse
        raise LotusError(f"{source}: {key} metadata is not valid JSON; re-save the checkpoint") from None


def parse_head(d: Any, source: str) -> "Head":
    """``d`` (a decoded ``lotus_head``) as a :class:`Head`: known keys only, a valid state, a class count
    in 1..100000, class names (as many as outputs) and a seed in range; LotusError otherwise."""
    def bad(what: str) -> LotusError:
        return LotusError(f"{source}: lotus_head {what}; re-save the checkpoint (or pass its weights without "
                          "the header)")

    if not isinstance(d, dict):
        raise bad(f"must be a JSON object, not {type(d).__name__}")
    extra = sorted(set(d) - {"state", "num_classes", "dataset", "classes", "seed"})
    if extra:
        raise bad(f"carries unsupported key {extra[0][:40]!r}")
    state, n, dataset, classes, seed = (d.get(k) for k in ("state", "num_classes", "dataset", "classes", "seed"))
    if state not in HEAD_STATES:
        raise bad(f"state {str(state)[:40]!r} is not one of {', '.join(HEAD_STATES)}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= ARCH_INT_BOUNDS["num_classes"][1]:
        raise bad(f"num_classes={str(n)[:40]!r} is outside 1..{ARCH_INT_BOUNDS['num_classes'][1]}")
    if dataset is not None and (not isinstance(dataset, str) or len(dataset) > 4096):
        raise bad("dataset is not a name")
    if classes is not None and (not isinstance(classes, list) or len(classes) != n
                                or not all(isinstance(c, str) and len(c) <= 4096 for c in classes)):
        raise bad(f"classes is not a list of {n} class names")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise bad(f"seed={str(seed)[:40]!r} is outside 0..{MAX_SEED}")
    return Head(state, n, dataset, tuple(classes) if classes else None, seed)


def require_vit(model: nn.Module, name: str) -> None:
    """Refuse a model outside timm's VisionTransformer family (pruning scopes, heads, patches and speed
    methods all address a ViT's blocks, attention and patch grid)."""
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):
        raise LotusError(f"{name} is a {type(model).__name__}, not a Vision Transformer; LOTUS handles timm "
                         "VisionTransformer-family models (vit_*, deit_*)")


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


def head_outputs(model: nn.Module) -> int:
    """Output units of the classifier (``model.num_classes`` for timm models)."""
    return int(getattr(model, "num_classes", 0) or model.get_classifier().out_features)


# Architecture keys a checkpoint's ``lotus_arch`` metadata (or --arch) may carry, with their bounds: any
# other key (e.g. timm's ``checkpoint_path``, which opens another file) is refused, and so is a size
# that would make the loader allocate far more than a LOTUS ViT needs.
ARCH_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "img_size": (8, 1024), "patch_size": (1, 64), "in_chans": (1, 4), "num_classes": (1, 100_000),
    "embed_dim": (8, 2048), "depth": (1, 48), "num_heads": (1, 64), "attn_head_dim": (1, 512),
}
ARCH_FLOAT_BOUNDS: dict[str, tuple[float, float]] = {"mlp_ratio": (0.25, 16.0)}
ARCH_KEYS = frozenset({"model_name", "mean", "std", *ARCH_INT_BOUNDS, *ARCH_FLOAT_BOUNDS})


def validate_arch(arch: Any, source: str) -> dict[str, Any]:
    """``arch`` checked against the allow-list :data:`ARCH_KEYS` and its bounds; raises LotusError.

    ``model_name`` must be a timm model; whole numbers must lie in :data:`ARCH_INT_BOUNDS`, the MLP
    ratio in :data:`ARCH_FLOAT_BOUNDS`; ``mean``/``std`` are lists of finite numbers (std > 0).
    """
    if not isinstance(arch, dict):
        raise LotusError(f"{source}: lotus_arch must be a JSON object, not {type(arch).__name__}; re-save the checkpoint")
    extra = sorted(set(arch) - ARCH_KEYS)
    if extra:
        raise LotusError(f"{source}: lotus_arch carries unsupported key {extra[0]!r}; allowed: "
                         f"{', '.join(sorted(ARCH_KEYS))}")
    name = arch.get("model_name")
    if not isinstance(name, str) or not name:
        raise LotusError(f"{source}: lotus_arch lacks model_name (a timm architecture such as vit_tiny_patch16_224)")
    if not timm.is_model(name.split(".")[0]):
        raise LotusError(f"{source}: unknown architecture {name!r}; name a timm model such as vit_tiny_patch16_224")
    for key, (lo, hi) in ARCH_INT_BOUNDS.items():
        value = arch.get(key)
        if key in arch and (isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi):
            raise LotusError(f"{source}: lotus_arch {key}={value!r} is outside {lo}..{hi}")
    for key, (lo, hi) in ARCH_FLOAT_BOUNDS.items():
        value = arch.get(key)
        if key in arch and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or not lo <= value <= hi):
            raise LotusError(f"{source}: lotus_arch {key}={value!r} is outside [{lo}, {hi}]")
    for key in ("mean", "std"):
        value = arch.get(key)
        if key not in arch:
            continue
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value) or (
                key == "std" and min(value) <= 0):
            raise LotusError(f"{source}: lotus_arch {key}={value!r} is not a list of 1 to 4 finite numbers"
                             f"{' above 0' if key == 'std' else ''}")
    if ("mean" in arch) != ("std" in arch):
        raise LotusError(f"{source}: lotus_arch gives {'mean' if 'mean' in arch else 'std'} without the other")
    if "mean" in arch and "img_size" not in arch:
        raise LotusError(f"{source}: lotus_arch gives mean/std without img_size")
    return dict(arch)


def _create(arch: dict[str, Any], **overrides: Any) -> nn.Module:
    kwargs = {k: v for k, v in arch.items() if k not in ("model_name", "mean", "std", "attn_head_dim")}
    if arch.get("attn_head_dim") is not None:  # a head-pruned ViT: fewer heads of the original width
        kwargs["attn_layer"] = head_width_attention(int(arch["attn_head_dim"]))
    try:
        return timm.create_model(arch["model_name"], pretrained=False, **{**kwargs, **overrides})
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise LotusError(f"architecture {arch['model_name']} cannot be built with {kwargs} ({msg})") from None


def check_fits(arch: dict[str, Any], state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Refuse ``state`` unless it fits ``arch`` exactly, checked on the meta device (nothing is allocated):
    a ViT, the same names and shapes, usable values (:func:`check_values`, whose notes are returned)."""
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = _create(arch)
    require_vit(meta, f"{source} (lotus_arch {arch['model_name']})")
    compare_state(meta.state_dict(), state, source)
    return check_values(meta.state_dict(), state, source)


def build_from_arch(arch: dict[str, Any]) -> nn.Module:
    """Create an untrained timm model from an architecture dict (``model_name`` + kwargs).

    ``attn_head_dim`` (a structurally head-pruned ViT: fewer heads of the original width) becomes
    timm's Attention with that head width (:func:`head_width_attention`).
    """
    model = _create(arch)
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
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
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


def _load_default() -> nn.Module:
    if not DEFAULT_WEIGHTS.exists():
        raise LotusError(f"default model weights {DEFAULT_WEIGHTS} are missing; run `python -m lotus_core train-default`")
    model = load_checkpoint(DEFAULT_WEIGHTS, arch=default_arch(), name="default")
    from ..data import FASHION_MNIST_CLASSES

    model.lotus_head = Head("trained", 10, "fashion-mnist", tuple(FASHION_MNIST_CLASSES))
    return model


def new_head(model: nn.Module, num_classes: int, seed: int) -> nn.Module:
    """Replace ``model``'s classifier by a fresh one for ``num_classes``, initialised from ``seed``; returned."""
    with seeded(seed):
        model.reset_classifier(num_classes)
    model.lotus_head = Head("new", num_classes, seed=seed)
    if getattr(model, "lotus_arch", None):
        model.lotus_arch = {**model.lotus_arch, "num_classes": num_classes}
    return model


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


@contextlib.contextmanager
def _hub_offline_unless_allowed() -> Iterator[None]:
    """With ``$LOTUS_OFFLINE`` (or ``$LOTUS_NO_SYSTEM_DATA``) the hub is not tried: the local cache only,
    failing at once instead of after huggingface_hub's retries."""
    from ..data import downloads_allowed

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
    base, _, tag = name.partition(".")
    if not timm.is_model(base):
        raise LotusError(f"unknown model {name!r}: not 'default', a checkpoint file, or a timm model name "
                         "(see timm.list_models())")
    if tag and pretrained and name not in timm.list_pretrained(f"{base}.*"):
        tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{base}.*")][:4]
        raise LotusError(f"unknown pretrained tag {tag!r} for {base}; use one of {', '.join(tags) or 'none'}")
    kwargs: dict[str, Any] = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    file_classes = None
    if weights is not None:
        if not Path(weights).is_file():
            raise LotusError(f"weights file {weights} does not exist; pass an existing --weights FILE")
        state, meta = read_checkpoint(weights)
        if "lotus_arch" in meta:  # a LOTUS checkpoint of a timm architecture (any size): its header builds it
            file_arch = validate_arch(parse_meta_json(meta["lotus_arch"], "lotus_arch", str(weights)), str(weights))
            if file_arch["model_name"].split(".")[0] != base:
                raise LotusError(f"weights file {weights} holds a {file_arch['model_name']}, not a {base}; "
                                 "pass the weights of this architecture")
            if classes is None and num_classes:
                classes = [str(i) for i in range(num_classes)]
            return load_checkpoint(weights, classes=classes, head_seed=head_seed)
        head_w = next((v for k, v in state.items() if k.endswith("head.weight") or k.endswith("fc.weight")), None)
        file_classes = int(head_w.shape[0]) if head_w is not None and head_w.ndim == 2 else None
        # tell timm the file's head size, so a matching head is kept and a different one dropped
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights), **({"num_classes": file_classes} if file_classes else {})}
    if not 0 <= head_seed <= MAX_SEED:
        raise LotusError(f"head seed {head_seed} is outside 0..{MAX_SEED}; give a seed such as 0")
    try:  # refuse a CNN before fetching its weights (built on the meta device: nothing is allocated)
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = timm.create_model(base, pretrained=False)
    except Exception:  # noqa: BLE001 - a model that cannot be built here is refused below with its reason
        probe = None
    if probe is not None:
        require_vit(probe, name)
    try:
        with seeded(head_seed), _hub_offline_unless_allowed():
            model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        if weights is not None:
            raise LotusError(f"weights file {weights} does not fit {name} ({msg}); pass the weights of this "
                             "architecture") from None
        if "Invalid pretrained tag" in msg:
            raise LotusError(f"{msg.rstrip('.')}; pick a tag from timm.list_pretrained('{base}.*')") from None
        raise LotusError(f"could not fetch the weights of {name} from the hub ({msg[:100]}); go online or pass "
                         "--weights FILE") from None
    model.eval()
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
                             f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from None
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
