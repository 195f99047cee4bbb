"""Uploaded images: decoded to the model's input size and channels, or refused with one line."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from lotus_core.core.errors import LotusError
from lotus_core.patches.analysis import explain_images
from lotus_core.patches.upload import (MAX_UPLOAD_BYTES, border_mean, invert, load_upload, load_uploads,
                                      polarity_notes, read_uploads)

GRAY_28 = {"input_size": (1, 28, 28), "mean": (0.5,), "std": (0.5,)}


def encoded(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def test_a_colour_png_becomes_a_grayscale_image_at_the_model_size():
    rgb = np.zeros((40, 50, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red: luminance 0.299 * 255 = 76
    out = load_upload(encoded(rgb, "PNG"), GRAY_28)
    assert out.shape == (1, 1, 28, 28) and out.dtype == torch.uint8 and out.unique().tolist() == [76]
    rgb_out = load_upload(encoded(np.full((10, 10), 200, np.uint8), "JPEG"), {**GRAY_28, "input_size": (3, 16, 16)})
    assert rgb_out.shape == (1, 3, 16, 16) and (rgb_out.int() - 200).abs().max() <= 2


@pytest.mark.parametrize("data, message", [
    (b"not an image at all", "not an image; upload a PNG or JPEG file"),
    (encoded(np.zeros((8, 8), np.uint8), "GIF"), "is a GIF image; upload a PNG or JPEG file"),
    (b"\x89PNG" + bytes(MAX_UPLOAD_BYTES), "MB; upload an image of at most 10 MB"),
    (encoded(np.zeros((2, 4100), np.uint8), "PNG"), "is 4100x2 pixels; upload an image of at most 4096 pixels"),
])
def test_non_images_and_oversized_uploads_are_refused_with_one_line(data, message):
    with pytest.raises(LotusError, match=message):
        load_upload(data, GRAY_28, "photo")


def test_load_uploads_keeps_the_good_files_and_reports_the_bad_ones():
    good = encoded(np.full((28, 28), 9, np.uint8), "PNG")
    images, errors = load_uploads([("a.png", good), ("b.txt", b"hello"), ("c.png", good)], GRAY_28)
    assert images.shape == (2, 1, 28, 28) and errors == ["b.txt is not an image; upload a PNG or JPEG file"]
    assert load_uploads([], GRAY_28) == (None, [])


def test_explaining_uploads_has_no_labels_and_the_same_selection_rule(tiny_ctx):
    images = tiny_ctx.test.images[:3]
    report = explain_images(tiny_ctx, "cls", 0.1, images=images)
    by_index = explain_images(tiny_ctx, "cls", 0.1, indices=[0, 1, 2])
    assert [r["label"] for r in report.records()] == [None] * 3 and [r["index"] for r in report.records()] == [None] * 3
    assert torch.equal(report.keep, by_index.keep) and torch.equal(report.prediction, by_index.prediction)
    with pytest.raises(LotusError, match="give test-set indices or images, not both"):
        explain_images(tiny_ctx, "cls", 0.1, indices=[0], images=images)


def test_read_uploads_names_the_good_files_in_order():
    good = encoded(np.full((28, 28), 9, np.uint8), "PNG")
    uploads = read_uploads([("a.png", good), ("b.txt", b"hello"), ("<c>.png", good)], GRAY_28)
    assert uploads.names == ["a.png", "<c>.png"] and uploads.images.shape == (2, 1, 28, 28)
    assert uploads.errors == ["b.txt is not an image; upload a PNG or JPEG file"]


def test_border_mean_is_the_mean_of_the_outer_ring_of_pixels():
    image = torch.zeros(1, 1, 5, 5, dtype=torch.uint8)
    image[0, 0, 0, :] = 200  # top row: 5 of the 16 ring pixels
    image[0, 0, 2, 2] = 255  # the centre is not part of the background
    assert border_mean(image).tolist() == [pytest.approx(5 * 200 / 16)]
    rgb = torch.stack([torch.full((4, 4), v, dtype=torch.uint8) for v in (0, 30, 90)])[None]  # every channel
    assert border_mean(rgb).tolist() == [pytest.approx(40.0)]


def test_a_light_background_upload_gets_a_line_and_a_matching_one_none():
    reference = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)  # a dark-background dataset (mean border 0)
    reference[:, :, 10:18, 10:18] = 255
    light = torch.full((1, 28, 28), 240, dtype=torch.uint8)
    light[:, 8:20, 8:20] = 20  # a dark bag on white
    dark = invert(light)  # the same bag, light on black
    grey = torch.full((1, 28, 28), 128, dtype=torch.uint8)  # no polarity to speak of
    notes = polarity_notes(torch.stack([light, dark, grey]), ["bag.png", "bag-inverted.png", "grey.png"], reference,
                           "fashion-mnist")
    assert notes == ["bag.png has a light background (mean border pixel 240 of 255); the model was trained on "
                     "fashion-mnist images on a dark background (mean border 0), so its answer may be wrong: invert "
                     "the colours to show it as the model expects"]
    assert torch.equal(invert(dark), light) and dark[0, 0, 0] == 15
    assert polarity_notes(light[None], ["x.png"], torch.full((2, 1, 28, 28), 128, dtype=torch.uint8), "cifar10") == []
