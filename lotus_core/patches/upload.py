"""An uploaded PNG or JPEG as a uint8 image at the model's input size and channels."""
from __future__ import annotations

import io

import numpy as np
import torch

from ..core.errors import LotusError
from ..data import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, to_rgb

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


def load_uploads(files: list[tuple[str, bytes]], data_config: dict) -> tuple[torch.Tensor | None, list[str]]:
    """Decode several uploads ``(name, data)``: the good ones stacked ``(B, C, H, W)`` (None if none) and
    one error message per bad one."""
    images, errors = [], []
    for name, data in files:
        try:
            images.append(load_upload(data, data_config, name))
        except LotusError as exc:
            errors.append(str(exc))
    return (torch.cat(images) if images else None), errors
