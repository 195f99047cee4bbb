"""Image folders: ``<class>/<image>`` (flat) or ``{train,test}/<class>/<image>``, decoded safely.

Every file is bounded before decoding (:data:`MAX_IMAGE_BYTES`, :data:`MAX_IMAGE_SIDE`), each real file is read
once however many links lead to it, and :func:`to_rgb` says how an image that is not plain 8-bit was converted.
A flat folder has no split of its own: :func:`holdout_split` draws one, seeded and stratified, with duplicates
kept on one side.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..core.errors import LotusError
from ..core.paths import check_served_file
from .images import ImageSet

if TYPE_CHECKING:
    from PIL import Image


MAX_IMAGE_SIDE = 4096  # pixels: a larger image file (a decompression bomb, say) is refused before decoding
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # the largest image file read from a folder or an upload (10 MB)



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
        image, how = _decode(path, image_size)
        images.append(image)
        if how:
            conversions[how] = conversions.get(how, 0) + 1
    if not images:
        raise LotusError(f"{folder} holds no images; lay it out as <class>/<image>.png")
    if len(ds.classes) < 2:
        raise LotusError(f"{folder} has one class ({ds.classes[0][:40]!r}); a classifier needs at least two class "
                         "folders")
    notes = [f"images of {folder}: " + "; ".join(f"{n} {how}" for how, n in conversions.items())] if conversions else []
    return torch.stack(images), torch.tensor([t for _, t in samples], dtype=torch.int64), list(ds.classes), notes


def _decode(path: str, image_size: int) -> tuple[torch.Tensor, str | None]:
    """One image file as an RGB ``(3, image_size, image_size)`` uint8 tensor, and how it was converted
    (:func:`to_rgb`); bounded by :data:`MAX_IMAGE_BYTES` and :data:`MAX_IMAGE_SIDE` before decoding."""
    from PIL import Image, UnidentifiedImageError

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
            im = im.resize((image_size, image_size), Image.BILINEAR)
            return torch.from_numpy(np.array(im)).permute(2, 0, 1), how
    except LotusError as exc:
        if "pixels" in str(exc):
            raise
        raise LotusError(f"{path}: {exc}; convert it or remove it from the folder") from None
    except Image.DecompressionBombError:
        raise LotusError(f"{path} has too many pixels to decode safely (a decompression bomb?); "
                         "shrink it or remove it from the folder") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise LotusError(f"{path} is not a readable image; remove it from the folder") from None


def image_folder(split: str, root: Path | None, image_size: int = 224) -> ImageSet:
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
