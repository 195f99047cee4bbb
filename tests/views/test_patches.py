"""The Patches page's views: uploads titled by their (escaped) file name with a word on a background the model
does not expect, titles wrapped to fit two columns on a phone with room above each row, the scorer table in
reading order."""
import math

import pytest
import torch

from lotus_core.patches import PatchScoring
from lotus_core.patches.analysis import explain_images
from lotus_core.patches.grid import PatchGrid
from lotus_core.patches.upload import invert
from lotus_core.views.patch_figures import (TITLE_CHARS, TITLE_FONT_PX, patch_overlays, patch_title,
                                            title_lines)
from lotus_core.views.patches import selection


def test_uploads_are_titled_by_their_escaped_file_name_and_a_light_background_is_said(tiny_ctx):
    dark = tiny_ctx.test.images[:2]  # the tiny set's background is dark noise (0-60)
    light = invert(dark)
    view = selection(tiny_ctx, "cls", 0.25, PatchScoring(), images=light, names=["<b>bag</b>.png", "shoe.png"])
    classes, report = tiny_ctx.test.classes, view.report
    before, after = report.prediction.tolist(), report.prediction_lottery.tolist()
    assert [a.text for a in view.figure.layout.annotations] == [
        f"&lt;b&gt;bag&lt;/b&gt;.png<br>{classes[before[0]]} → {classes[after[0]]}",  # plotly titles are HTML
        f"shoe.png<br>{classes[before[1]]} → {classes[after[1]]}"]
    assert [n.split(" has a ")[0] for n in view.notes] == ["<b>bag</b>.png", "shoe.png"]  # escaped where shown
    assert all(" has a light background " in n and " on a dark background " in n for n in view.notes)

    inverted = selection(tiny_ctx, "cls", 0.25, PatchScoring(), images=light, names=["<b>bag</b>.png", "shoe.png"],
                         inverted=True)
    assert inverted.notes == [] and torch.equal(inverted.report.images, dark)  # shown to the model inverted
    expected = explain_images(tiny_ctx, "cls", 0.25, PatchScoring().with_seed(0), images=dark)
    assert torch.equal(inverted.report.scores, expected.scores)
    assert selection(tiny_ctx, "cls", 0.25, PatchScoring(), images=dark, names=["a.png", "b.png"]).notes == []


def test_test_images_are_titled_by_index_and_true_class(tiny_ctx):
    view = selection(tiny_ctx, "cls", 0.1, PatchScoring(), indices=[3, 14])
    classes, report = tiny_ctx.test.classes, view.report
    assert [a.text for a in view.figure.layout.annotations] == [
        f"#{i} {classes[label]}<br>{classes[p]} → {classes[q]}" for i, label, p, q in
        zip([3, 14], report.labels, report.prediction.tolist(), report.prediction_lottery.tolist())]


def test_titles_wrap_into_three_short_lines_at_most():
    assert patch_title("#19", "T-shirt/top", "T-shirt/top", "Pullover") == "#19 T-shirt/top\nT-shirt/top → Pullover"
    assert patch_title("photo.png", None, "Bag", "Bag") == "photo.png\nBag → Bag"
    assert title_lines("#19 T-shirt/top\nT-shirt/top → Pullover") == ["#19 T-shirt/top", "T-shirt/top →", "Pullover"]
    long = title_lines("x" * 70 + "\nBag → Bag")  # a file name without spaces: cut, the third line ends in "…"
    assert long == ["x" * TITLE_CHARS, "x" * TITLE_CHARS, "x" * (TITLE_CHARS - 1) + "…"]


def test_each_row_of_images_has_the_height_of_its_titles_above_it():
    images = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    grid = PatchGrid(rows=4, cols=4, patch_h=7, patch_w=7, height=28, width=28, prefix_tokens=1, tokens=True)
    titles = ["#1 Coat\nCoat → Shirt", "a very long upload file name.png\nBag → Bag", "#3 Bag\nBag → Bag"]
    fig = patch_overlays(images, torch.rand(3, 16), torch.ones(3, 16, dtype=torch.bool), grid, titles)
    title_px = math.ceil((3 + 0.5) * (TITLE_FONT_PX + 4))  # the longest title has 3 lines
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    gap = (fig.layout.yaxis.domain[0] - fig.layout.yaxis3.domain[1]) * plot_px  # rows 1 and 2 (two columns)
    assert gap == pytest.approx(title_px) and fig.layout.margin.t >= title_px
    assert [a.text for a in fig.layout.annotations][1] == "a very long upload<br>file name.png<br>Bag → Bag"
