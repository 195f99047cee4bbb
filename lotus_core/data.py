"""Datasets: one registry, images held as uint8 tensors, converted per model on the fly.

Every dataset is loaded into an :class:`ImageSet` of ``uint8`` images ``(N, C, H, W)`` and
``int64`` labels. Turning images into model input (channels, size, normalisation) is
:func:`to_model_input`, driven by the model's timm data config, so one dataset serves both
the 28x28 grayscale default ViT and a 224x224 RGB hub model.

Fashion-MNIST is looked for, in order: a folder given by ``root`` or ``$LOTUS_DATA_ROOT``,
the Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist), a
torchvision download (when online), and finally the copy embedded in ``data/`` (the full
test split and a fixed 10,000-image training subset), so the default demo always works
offline. ``$LOTUS_NO_SYSTEM_DATA=1`` skips the system locations (the Debian package and the
download cache) and downloads, as on a fresh machine: CI runs the tests that way.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .core.errors import LotusError

from .core.paths import DATA_DIR, DEBIAN_FMNIST, EMBEDDED_FMNIST, REPO_ROOT  # noqa: F401 (re-exported)
from .core.paths import check_served_file

MAX_IMAGE_SIDE = 4096  # pixels: a larger image file (a decompression bomb, say) is refused before decoding
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # the largest image file read from a folder or an upload (10 MB)

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


@dataclass
class ImageSet:
    """A labelled image set held in memory.

    Attributes:
        name: registry name, e.g. ``"fashion-mnist"``.
        split: ``"train"`` or ``"test"``.
        images: ``(N, C, H, W)`` uint8 tensor.
        labels: ``(N,)`` int64 tensor of class indices.
        classes: class names, indexed by label.
        source: where the data was read from (a path or "embedded subset").
        notes: caveats shown with the data (e.g. "embedded 10,000-image training subset").
        split_rule: how the training and test images were told apart, in words.
        holdout: ``(test fraction, seed)`` when LOTUS drew the split itself (a flat image folder).
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str
    notes: list[str] = field(default_factory=list)
    split_rule: str = "the dataset's own train/test split"  # how train and test were told apart (shown to users)
    holdout: tuple[float, int] | None = None  # (test fraction, seed) of a split drawn by LOTUS (a flat folder)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of the split's content (images, labels, class names): which data a result saw."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images.numpy()).tobytes())
        h.update(np.ascontiguousarray(self.labels.numpy()).tobytes())
        h.update("\n".join(self.classes).encode())
        return h.hexdigest()

    @property
    def variant(self) -> str:
        """``"<images>@<digest prefix>"``, e.g. ``"10000@1f3a..."`` for the embedded training subset; part of
        every result key, so the embedded subset and the full set never share a result. A split LOTUS
        drew itself also names its fraction and seed: ``"1437@...+holdout0.2s0"``."""
        drawn = f"+holdout{self.holdout[0]:g}s{self.holdout[1]}" if self.holdout else ""
        return f"{len(self)}@{self.digest[:16]}{drawn}"

    def mean_pixel(self) -> torch.Tensor:
        """Per-channel mean in [0, 1], shape ``(C,)`` (the fill value for dropped patches)."""
        return self.images.float().mean(dim=(0, 2, 3)) / 255.0


def data_root() -> Path:
    """Where downloaded datasets go: ``$LOTUS_DATA_ROOT`` or ``~/.cache/lotus/datasets``."""
    return Path(os.environ.get("LOTUS_DATA_ROOT", Path.home() / ".cache" / "lotus" / "datasets"))


def system_data_hidden() -> bool:
    """True when ``$LOTUS_NO_SYSTEM_DATA`` is set: behave as on a fresh machine (embedded data only)."""
    return bool(os.environ.get("LOTUS_NO_SYSTEM_DATA"))


def downloads_allowed() -> bool:
    """Downloads are attempted unless ``$LOTUS_OFFLINE`` or ``$LOTUS_NO_SYSTEM_DATA`` is set to a non-empty value."""
    return not (os.environ.get("LOTUS_OFFLINE") or system_data_hidden())


# --------------------------------------------------------------------------- idx files
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST family's format), gzipped or not."""
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise LotusError(f"cannot read {path}: {exc}; re-download or reinstall the dataset") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise LotusError(f"{path} is not an IDX uint8 file; re-download or reinstall the dataset")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise LotusError(f"{path} is truncated ({data.size} of {int(np.prod(dims))} values); re-download it")
    return data.reshape(dims)


def _idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    for suffix in (".gz", ""):
        img, lab = folder / f"{prefix}-images-idx3-ubyte{suffix}", folder / f"{prefix}-labels-idx1-ubyte{suffix}"
        if img.exists() and lab.exists():
            images, labels = read_idx(img), read_idx(lab)
            if images.shape[0] != labels.shape[0]:
                raise LotusError(f"{img} has {images.shape[0]} images but {lab} has {labels.shape[0]} labels")
            return images, labels
    return None


# --------------------------------------------------------------------------- loaders
def _fashion_mnist(split: str, root: Path | None) -> ImageSet:
    prefix = "train" if split == "train" else "t10k"
    system = () if system_data_hidden() else (data_root() / "FashionMNIST" / "raw", data_root(), DEBIAN_FMNIST)
    explicit = os.environ.get("LOTUS_DATA_ROOT") if system_data_hidden() else None
    if root is not None and not any(_idx_pair(f, prefix) for f in (Path(root), Path(root) / "FashionMNIST" / "raw")):
        raise LotusError(f"--data-root {root} holds no Fashion-MNIST {prefix}-images/labels idx files; pass the folder "
                         "that holds them, or leave --data-root out")  # never silently ignored
    candidates = [Path(p) for p in (root, *([Path(root) / "FashionMNIST" / "raw"] if root else []), explicit, *system)
                  if p]
    for folder in candidates:
        pair = _idx_pair(Path(folder), prefix)
        if pair is not None:
            return _from_arrays("fashion-mnist", split, pair, FASHION_MNIST_CLASSES, str(folder))
    if split == "train" and downloads_allowed():
        try:
            from torchvision.datasets import FashionMNIST

            ds = FashionMNIST(str(data_root()), train=True, download=True)
            return _from_arrays("fashion-mnist", split, (ds.data.numpy(), ds.targets.numpy()),
                                FASHION_MNIST_CLASSES, str(data_root()))
        except Exception:  # offline: fall back to the embedded copy below
            pass
    embedded_prefix = "train-subset" if split == "train" else "t10k"
    pair = _idx_pair(EMBEDDED_FMNIST, embedded_prefix)
    if pair is None:
        raise LotusError(
            f"Fashion-MNIST {split} split not found in {', '.join(map(str, candidates))} or {EMBEDDED_FMNIST}; "
            "run `apt-get install dataset-fashion-mnist` or set LOTUS_DATA_ROOT to a folder with the idx files"
        )
    ds = _from_arrays("fashion-mnist", split, pair, FASHION_MNIST_CLASSES, f"{EMBEDDED_FMNIST} (embedded)")
    if split == "train":
        ds.notes.append("embedded 10,000-image training subset (full set not found locally or online)")
    return ds


def _from_arrays(name: str, split: str, pair: tuple[np.ndarray, np.ndarray], classes: list[str], source: str) -> ImageSet:
    images, labels = pair
    images_t = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))
    if images_t.ndim == 3:  # (N, H, W) grayscale
        images_t = images_t.unsqueeze(1)
    elif images_t.ndim == 4 and images_t.shape[-1] in (1, 3):  # (N, H, W, C)
        images_t = images_t.permute(0, 3, 1, 2).contiguous()
    return ImageSet(name, split, images_t, torch.tensor(np.asarray(labels), dtype=torch.int64), classes, source)


def _cifar(which: str) -> Callable[[str, Path | None], ImageSet]:
    def load(split: str, root: Path | None) -> ImageSet:
        from torchvision.datasets import CIFAR10, CIFAR100

        cls = CIFAR10 if which == "cifar10" else CIFAR100
        folder = Path(root) if root else data_root()
        try:
            ds = cls(str(folder), train=(split == "train"), download=downloads_allowed())
        except Exception as exc:  # torchvision raises RuntimeError or URLError depending on the failure
            raise LotusError(
                f"{which} not found under {folder} and could not be downloaded ({type(exc).__name__}); "
                f"go online or put the extracted '{cls.base_folder}' folder there (or pass --data-root)"
            ) from None
        return _from_arrays(which, split, (ds.data, np.asarray(ds.targets)), list(ds.classes), str(folder))

    return load


HOLDOUT_FRACTION = 0.2  # of each class of a flat image folder, held out as its test split
HOLDOUT_SEED = 0  # which images are held out (a seeded draw per class)


def holdout_split(images: torch.Tensor, labels: torch.Tensor, fraction: float = HOLDOUT_FRACTION,
                  seed: int = HOLDOUT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded, stratified train/test split of one labelled pool: ``(train_idx, test_idx)``, each sorted.

    Images with identical pixels are one unit (they land on the same side, so no image is both
    trained and tested on). A class of ``n`` distinct images gives ``max(1, floor(fraction * n + 0.5))``
    of them to the test side (every class is tested; a class of one image is test-only), drawn by a
    permutation seeded with ``seed`` and the class index; a duplicate in two classes follows its
    first occurrence's class.
    """
    keys = [hashlib.sha256(np.ascontiguousarray(img.numpy()).tobytes()).digest() for img in images]
    first: dict[bytes, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    units = sorted(set(first.values()))  # one representative per distinct image
    test_reps: set[int] = set()
    for c in sorted(set(labels.tolist())):
        members = [i for i in units if int(labels[i]) == c]
        n_test = max(1, int(fraction * len(members) + 0.5))
        order = torch.randperm(len(members), generator=torch.Generator().manual_seed(seed * 100_003 + c))
        test_reps.update(members[j] for j in order[:n_test].tolist())
    is_test = torch.tensor([first[k] in test_reps for k in keys], dtype=torch.bool)
    return torch.nonzero(~is_test).flatten(), torch.nonzero(is_test).flatten()


# Pillow modes read without a word (8-bit gray, RGB, palettes without transparency, colour spaces Pillow converts)
PLAIN_MODES = frozenset({"L", "RGB", "P", "CMYK", "YCbCr"})


def to_rgb(im: "Image.Image") -> tuple["Image.Image", str | None]:
    """``im`` as 8-bit RGB, and how it was converted when that is more than a plain conversion (None).

    16-bit gray (``I;16``, ``I``) is scaled by 255/65535 (Pillow's own conversion clips it to 255), a float
    image (``F``) must hold intensities in [0, 1] and is scaled by 255, 1-bit images become 0/255, and an
    alpha channel (``LA``, ``RGBA``, a palette with transparency) is composited over white. Raises LotusError
    for values outside those ranges or modes Pillow cannot turn into RGB.
    """
    from PIL import Image

    mode = im.mode
    if mode in PLAIN_MODES and "transparency" not in im.info:
        return im.convert("RGB"), None
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I (a 16-bit PNG opens as one of these)
        a = np.asarray(im, dtype=np.int64)
        if a.min(initial=0) < 0 or a.max(initial=0) > 65535:
            raise LotusError(f"{mode} image values {a.min()}..{a.max()} are outside 0..65535 (16 bits)")
        gray = np.round(a * (255 / 65535)).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB"), "16-bit gray scaled to 8 bits"
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if not np.isfinite(a).all() or a.min(initial=0) < 0 or a.max(initial=0) > 1:
            raise LotusError("float image values are not intensities in [0, 1]")
        return Image.fromarray(np.round(a * 255).astype(np.uint8), "L").convert("RGB"), "float intensities x 255"
    if mode == "1":
        return im.convert("RGB"), "1-bit black/white as 0/255"
    if mode in ("LA", "La", "PA", "RGBA", "RGBa", "P", "L", "RGB"):  # an alpha channel or a transparent colour
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), "transparency composited over white"
    try:
        return im.convert("RGB"), f"{mode} converted to RGB"
    except ValueError:
        raise LotusError(f"images of mode {mode} cannot be converted to RGB") from None


def _read_folder(folder: Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """Decode every image of ``folder/<class>/<image>`` to RGB ``image_size`` squares (:func:`to_rgb`; each real
    file once, however many links lead to it): (images, labels, classes, notes on how images were converted)."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets import ImageFolder

    broken = next((e for e in sorted(Path(folder).iterdir()) if e.is_symlink() and not e.exists()), None) \
        if Path(folder).is_dir() else None
    if broken is not None:  # ImageFolder would skip a class folder whose link leads nowhere, without a word
        raise LotusError(f"{broken} is a dangling link or not a file; remove it from the folder")
    try:
        ds = ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as exc:
        raise LotusError(f"{folder} is not an image folder ({exc}); lay it out as <class>/<image>.png") from None
    images, conversions, shortest = [], {}, {}
    for path, target in ds.samples:  # a symlink loop lists one file many times: each real file counts once, under
        check_served_file(path, "image")  # served on a network: a linked class folder or image stays inside
        real = os.path.realpath(path)  # its most direct path (a/again/b/x.png is b/x.png, of class b)
        if real not in shortest or len(Path(path).parts) < len(Path(shortest[real][0]).parts):
            shortest[real] = (path, target)
    samples = sorted(shortest.values())
    for path, _ in samples:
        if not os.path.isfile(path):
            raise LotusError(f"{path} is a dangling link or not a file; remove it from the folder")
        if os.path.getsize(path) > MAX_IMAGE_BYTES:
            raise LotusError(f"{path} is {os.path.getsize(path) / 1e6:.1f} MB, over the 10 MB an image may have; "
                             "shrink it or remove it from the folder")
        try:
            with Image.open(path) as im:
                if max(im.size) > MAX_IMAGE_SIDE:
                    raise LotusError(f"{path} is {im.size[0]}x{im.size[1]} pixels, over {MAX_IMAGE_SIDE} a side "
                                     "(a decompression bomb?); shrink it or remove it from the folder")
                im, how = to_rgb(im)
                if how:
                    conversions[how] = conversions.get(how, 0) + 1
                im = im.resize((image_size, image_size), Image.BILINEAR)
                images.append(torch.from_numpy(np.array(im)).permute(2, 0, 1))
        except LotusError as exc:
            if "pixels" in str(exc):
                raise
            raise LotusError(f"{path}: {exc}; convert it or remove it from the folder") from None
        except Image.DecompressionBombError:
            raise LotusError(f"{path} has too many pixels to decode safely (a decompression bomb?); "
                             "shrink it or remove it from the folder") from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise LotusError(f"{path} is not a readable image; remove it from the folder") from None
    if not images:
        raise LotusError(f"{folder} holds no images; lay it out as <class>/<image>.png")
    if len(ds.classes) < 2:
        raise LotusError(f"{folder} has one class ({ds.classes[0][:40]!r}); a classifier needs at least two class "
                         "folders")
    notes = [f"images of {folder}: " + "; ".join(f"{n} {how}" for how, n in conversions.items())] if conversions else []
    return torch.stack(images), torch.tensor([t for _, t in samples], dtype=torch.int64), list(ds.classes), notes


def _imagefolder(split: str, root: Path | None, image_size: int = 224) -> ImageSet:
    """Any folder laid out as ``root/<class>/<image>`` (flat: a seeded, stratified :data:`HOLDOUT_FRACTION`
    of each class is the test split, the rest the training split, see :func:`holdout_split`), or
    ``root/{train,test}/<class>/<image>`` (split: used as given; ``val/`` stands for a missing ``test/``)."""
    from torchvision.datasets.folder import find_classes

    if root is None or not Path(root).is_dir():
        raise LotusError(f"image folder {root} does not exist; pass a directory laid out as <class>/<image>")
    root = Path(root)
    name = f"imagefolder:{root}"
    train_dir, test_dir = root / "train", next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if train_dir.is_dir() or test_dir is not None:  # the split layout
        if test_dir is None:
            raise LotusError(f"{root} has train/ but no test/ (or val/) folder; add one, or lay the folder out flat "
                             f"as <class>/<image> ({HOLDOUT_FRACTION:.0%} of each class is then held out for testing)")
        rule = f"train/ and {test_dir.name}/ folders as given"
        if split == "train" and not train_dir.is_dir():  # test images only: nothing to fine-tune on
            classes = find_classes(str(test_dir))[0]
            return ImageSet(name, split, torch.zeros(0, 3, image_size, image_size, dtype=torch.uint8),
                            torch.zeros(0, dtype=torch.int64), classes, str(root), split_rule=
                            f"{test_dir.name}/ only: no training images (add a train/ folder beside it)")
        if train_dir.is_dir() and find_classes(str(train_dir))[0] != find_classes(str(test_dir))[0]:
            raise LotusError(f"{root}: train/ and {test_dir.name}/ hold different class folders; give both the same "
                             "<class> folders so that labels mean the same on both sides")
        sub = train_dir if split == "train" else test_dir
        images, labels, classes, notes = _read_folder(sub, image_size)
        return ImageSet(name, split, images, labels, classes, str(sub), notes, split_rule=rule)
    images, labels, classes, notes = _read_folder(root, image_size)
    train_idx, test_idx = holdout_split(images, labels)
    idx = train_idx if split == "train" else test_idx
    return ImageSet(name, split, images[idx], labels[idx], classes, str(root), notes,
                    split_rule=f"flat folder: {HOLDOUT_FRACTION:.0%} of each class held out for testing "
                               f"(seed {HOLDOUT_SEED}), the rest for training",
                    holdout=(HOLDOUT_FRACTION, HOLDOUT_SEED))


def split_sizes(test: ImageSet, train: ImageSet) -> dict:
    """How many images each side of a dataset has, and how they were told apart (``info``, ``evaluate``,
    ``finetune`` and the Overview page say it)."""
    return {"train_images": len(train), "test_images": len(test), "split": test.split_rule}


def _class_subset(base: Callable[[str, Path | None], ImageSet], name: str, keep: range) -> Callable[..., ImageSet]:
    """``base`` restricted to the classes in ``keep``, relabelled 0..len(keep)-1 (a transfer split)."""
    def load(split: str, root: Path | None) -> ImageSet:
        full = base(split, root)
        sel = (full.labels >= keep.start) & (full.labels < keep.stop)
        return ImageSet(name, split, full.images[sel], full.labels[sel] - keep.start,
                        full.classes[keep.start:keep.stop], full.source, list(full.notes))

    return load


DATASETS: dict[str, Callable[..., ImageSet]] = {
    "fashion-mnist": _fashion_mnist,
    # the transfer demo's upstream / downstream halves: a model pre-trained on five classes is
    # fine-tuned to the five it never saw (README "Transfer demo")
    "fashion-mnist-0to4": _class_subset(_fashion_mnist, "fashion-mnist-0to4", range(0, 5)),
    "fashion-mnist-5to9": _class_subset(_fashion_mnist, "fashion-mnist-5to9", range(5, 10)),
    "cifar10": _cifar("cifar10"),
    "cifar100": _cifar("cifar100"),
    "imagefolder": _imagefolder,
}
"""The dataset registry. ``imagefolder`` takes its directory as ``imagefolder:/path`` or ``root``."""


def load_dataset(name: str = "fashion-mnist", split: str = "test", root: str | Path | None = None) -> ImageSet:
    """Load a dataset split into memory.

    Args:
        name: a key of :data:`DATASETS`, ``imagefolder:/path/to/dir``, or a directory path.
        split: ``"train"`` or ``"test"``.
        root: optional folder to look in (or the image folder itself).
    """
    if split not in ("train", "test"):
        raise LotusError(f"unknown split {split!r}; use 'train' or 'test'")
    given_root = root
    if name.startswith("imagefolder:"):
        name, root = "imagefolder", name.split(":", 1)[1]
    elif name not in DATASETS and Path(name).is_dir():
        name, root = "imagefolder", name
    if name == "imagefolder" and given_root is not None and str(root) != str(given_root):
        raise LotusError("--data-root applies to named datasets; an image folder is given by --dataset alone, "
                         "so leave --data-root out")
    if name not in DATASETS:
        raise LotusError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} or an image folder path")
    return DATASETS[name](split, Path(root) if root else None)


# --------------------------------------------------------------------------- model input
def to_model_input(images: torch.Tensor, data_config: dict) -> torch.Tensor:
    """Convert uint8 images ``(B, C, H, W)`` to a model's normalised float input.

    Channels are adapted (grayscale repeated to RGB, RGB averaged to grayscale), images are
    resized (bilinear, antialiased) to ``data_config['input_size']`` and normalised with its
    ``mean`` and ``std`` (timm's data config keys).
    """
    c, h, w = data_config["input_size"]
    x = images.float().div_(255.0)
    if x.shape[1] != c:
        x = x.mean(dim=1, keepdim=True).expand(-1, c, -1, -1) if c in (1, 3) else x
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(data_config["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(data_config["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def subset_indices(n_total: int, limit: int | None, seed: int = 0) -> torch.Tensor:
    """A fixed, seeded subset of ``limit`` indices out of ``n_total`` (sorted; all when limit is None or too big)."""
    if limit is not None and limit <= 0:
        raise LotusError(f"--limit must be a positive number of images, got {limit}")
    if limit is None or limit >= n_total:
        return torch.arange(n_total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=g)[:limit].sort().values
