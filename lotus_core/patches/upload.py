"""An uploaded PNG or JPEG as a uint8 image at the model's input size and channels, with its file name and a
word when its background is the opposite of the training images' (a dark-background model shown a photo on
white, issue 28 §5)."""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import LotusError
from ..data.folders import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, to_rgb

MAX_UPLOAD_BYTES = MAX_IMAGE_BYTES  # 10 MB: also Streamlit's server.maxUploadSize (.streamlit/config.toml)
MAX_UPLOAD_SIDE = MAX_IMAGE_SIDE  # pixels


def load_upload(data: bytes, data_config: dict, name: str = "upload") -> torch.Tensor:
    """Decode ``data`` (PNG or JPEG) to ``(1, C, H, W)`` uint8 at the model's input size and channels.

    Raises a LotusError for files over 10 MB, sides over 4096 px, or anything that is not a
    PNG or JPEG image. The image is read only after its header passed these checks.
    """
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_UPLOAD_BYTES:
        raise LotusError(f"{name} is {len(data) / 1e6:.1f} MB; upload an image of at most 10 MB")
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # a header claiming billions of pixels in a few bytes
        raise LotusError(f"{name} declares too many pixels to decode safely (a decompression bomb?); upload an "
                         f"image of at most {MAX_UPLOAD_SIDE} pixels per side") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise LotusError(f"{name} is not an image; upload a PNG or JPEG file") from None
    with im:
        if im.format not in ("PNG", "JPEG"):
            raise LotusError(f"{name} is a {im.format} image; upload a PNG or JPEG file")
        if max(im.size) > MAX_UPLOAD_SIDE:
            raise LotusError(f"{name} is {im.size[0]}x{im.size[1]} pixels; upload an image of at most "
                             f"{MAX_UPLOAD_SIDE} pixels per side")
        c, h, w = data_config["input_size"]
        try:
            im = to_rgb(im)[0]  # 16-bit scaled, transparency composited (as an image folder's files)
            im = (im.convert("L") if c == 1 else im).resize((w, h), Image.BILINEAR)
        except (OSError, ValueError, Image.DecompressionBombError):
            raise LotusError(f"{name} is a damaged image; upload another PNG or JPEG file") from None
        arr = np.array(im, dtype=np.uint8)
    t = torch.from_numpy(arr)
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    return t.unsqueeze(0).contiguous()


@dataclass(frozen=True)
class Uploads:
    """The decoded uploads: ``images`` ``(B, C, H, W)`` uint8 (None if none), the file ``names`` of those
    images (as given: escape them where shown) and one error line per file that was refused."""

    images: torch.Tensor | None
    names: list[str]
    errors: list[str]


def read_uploads(files: list[tuple[str, bytes]], data_config: dict) -> Uploads:
    """Decode several uploads ``(name, data)``; a bad file becomes an error line, the good ones are kept."""
    images, names, errors = [], [], []
    for name, data in files:
        try:
            images.append(load_upload(data, data_config, name))
            names.append(name)
        except LotusError as exc:
            errors.append(str(exc))
    return Uploads(torch.cat(images) if images else None, names, errors)


def load_uploads(files: list[tuple[str, bytes]], data_config: dict) -> tuple[torch.Tensor | None, list[str]]:
    """Decode several uploads ``(name, data)``: the good ones stacked ``(B, C, H, W)`` (None if none) and
    one error message per bad one."""
    uploads = read_uploads(files, data_config)
    return uploads.images, uploads.errors


# ---------------------------------------------------------------------------- polarity
DARK, LIGHT = 85, 170  # a background darker than a third of 255 is dark, one lighter than two thirds light


def border_mean(images: torch.Tensor) -> torch.Tensor:
    """The mean of each uint8 image's outermost ring of pixels ``(B,)``, in 0..255 (every channel): its
    background's brightness, as a photo or a dataset image is framed by its background."""
    x = images.float()
    ring = torch.cat([x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]], dim=-1)  # (B, C, ring)
    return ring.flatten(1).mean(1)


def polarity(border: float) -> str | None:
    """"dark" or "light" for a background brightness in 0..255 (:data:`DARK`, :data:`LIGHT`), else None
    (mid-grey, or a natural photo's mixed edges: no polarity to speak of)."""
    return "dark" if border < DARK else "light" if border > LIGHT else None


def polarity_notes(images: torch.Tensor, names: list[str], reference: torch.Tensor, dataset: str) -> list[str]:
    """One line per upload whose background is the opposite of the training data's: ``reference`` are images
    of the dataset the model was trained on (uint8), whose mean border is their background. Fashion-MNIST's
    is black (a light object on a dark background), so a photo on white is classified as something else
    than it shows, silently. Uploads whose polarity matches, or that have none, get no line."""
    expected = polarity(float(border_mean(reference).mean())) if len(reference) else None
    if expected is None:
        return []
    notes = []
    for name, border in zip(names, border_mean(images).tolist()):
        seen = polarity(border)
        if seen is not None and seen != expected:
            notes.append(f"{name} has a {seen} background (mean border pixel {border:.0f} of 255); the model was "
                         f"trained on {dataset} images on a {expected} background (mean border "
                         f"{float(border_mean(reference).mean()):.0f}), so its answer may be wrong: invert the "
                         "colours to show it as the model expects")
    return notes


def invert(images: torch.Tensor) -> torch.Tensor:
    """uint8 images with every pixel inverted (255 - x): a dark object on light becomes light on dark."""
    return 255 - images
