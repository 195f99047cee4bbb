import json

import numpy as np
import pytest

from lotus_core.context import open_context
from lotus_core.patches.ticket_training import lottery_runs
from lotus_core.patches import ScoreOptions
from lotus_core.patches.analysis import class_indices, explain_images
from lotus_core.patches.fidelity import FidelityConfig, fidelity
from lotus_core.views.patch_figures import DROPPED_FILL
from tests.pages.helpers import array, open_page


def widget(items, label):
    return next(w for w in items if w.label == label)


def overlay(at) -> tuple[np.ndarray, int]:
    """The heatmaps' z values and the number of washed-out (dropped) patches in the overlay figure."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    z = np.stack([array(t["z"]) for t in spec["data"] if t["type"] == "heatmap"])
    red = sum(1 for s in spec["layout"]["shapes"] if s.get("fillcolor") == DROPPED_FILL and s["name"] == "dropped")
    return z, red


def test_patches_page_shows_the_core_scores_and_follows_scorer_and_drop():
    at = open_page("patches")
    assert not at.exception
    ctx = open_context()
    indices = class_indices(ctx.test, 0, 4)  # default: the first 4 images of class 0
    assert widget(at.metric, "Kept patches per image").value == "44 of 49"
    z, red = overlay(at)
    expected = explain_images(ctx, "cls", 0.1, ScoreOptions(), indices=indices)
    assert red == 4 * 5 and len(z) == 4
    np.testing.assert_allclose(z, expected.scores.view(4, 7, 7).numpy(), rtol=1e-5, atol=1e-7)
    unchanged = widget(at.metric, "Unchanged (pixels)").value
    assert unchanged == f"{expected.unchanged_lottery} of 4"

    widget(at.slider, "Drop ratio (% of patches)").set_value(25).run()
    assert not at.exception
    assert widget(at.metric, "Kept patches per image").value == "37 of 49"
    assert overlay(at)[1] == 4 * 12

    widget(at.selectbox, "Scorer").set_value("rollout").run()
    assert not at.exception
    z_rollout, _ = overlay(at)
    rollout = explain_images(ctx, "rollout", 0.25, ScoreOptions(), indices=indices)
    np.testing.assert_allclose(z_rollout, rollout.scores.view(4, 7, 7).numpy(), rtol=1e-5, atol=1e-7)
    assert not np.allclose(z_rollout, z)


def test_patches_page_compares_scorers_and_launches_lottery_training():
    at = open_page("patches")
    widget(at.multiselect, "Scorers to compare").set_value(["cls", "random"]).run()
    widget(at.select_slider, "Test images").set_value(50).run()
    assert widget(at.button, "Compare scorers")
    assert any("It runs in the background (the job list shows its progress" in i.value for i in at.info)
    widget(at.button, "Compare scorers").click().run()  # a background job (run inline in tests)
    assert not at.exception
    ctx = open_context()
    job = ctx.store.runs(kind="fidelity")
    assert len(job) == 1 and job.iloc[0]["status"] == "done" and ctx.store.get_run(job.iloc[0]["id"])["job"] is not None
    result = fidelity(ctx, FidelityConfig(scorers=("cls", "random"), limit=50))
    shown = at.dataframe[0].value
    assert list(shown["scorer"]) == ["cls"] and shown["rank agreement (-1 to 1)"].iloc[0] == pytest.approx(
        result.agreement["spearman"].iloc[0])
    assert not any(w in " ".join(shown.columns) for w in ("spearman", "topk", "_"))  # plain words only
    names = [[t["name"] for t in json.loads(c.proto.spec)["data"]] for c in at.get("plotly_chart")[1:3]]
    areas = result.auc.set_index("scorer")
    assert names[0] == [f"{s} (AUC {areas.loc[s, 'deletion_auc']:.3f})" for s in ("cls", "random")]
    assert names[1] == [f"{s} (AUC {areas.loc[s, 'insertion_auc']:.3f})" for s in ("cls", "random")]

    widget(at.number_input, "Epochs").set_value(1)
    widget(at.select_slider, "Training data used").set_value(0.01)
    widget(at.button, "Launch lottery training").click().run()  # jobs run inline in tests
    assert not at.exception
    runs = lottery_runs(ctx)
    assert len(runs) == 1 and runs.iloc[0]["status"] == "done"
    assert runs.iloc[0]["config"]["epochs"] == 1 and runs.iloc[0]["config"]["fraction"] == 0.01
    assert runs.iloc[0]["label"].startswith("cls, drop 10% as pixels, scratch, 1 epoch, 1% of the data (done)")
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert [t["name"] for t in chart["data"]] == ["full images", "full images, tested on tickets", "data lottery ticket",
                                                  "data lottery ticket, tested on tickets"]
    summary = runs.iloc[0]["summary"]
    assert array(chart["data"][0]["y"]).tolist() == pytest.approx([100 * summary["full"]["accuracy"][0]])


def test_an_upload_is_titled_by_its_file_name_and_a_light_background_is_said_and_can_be_inverted():
    import io

    import torch
    from PIL import Image

    from lotus_core.patches.upload import invert
    from lotus_core.patches import PatchScoring

    bag = np.full((56, 56), 245, np.uint8)  # a dark bag on white: the opposite of Fashion-MNIST's images
    bag[14:46, 10:46] = 40
    data = io.BytesIO()
    Image.fromarray(bag).save(data, format="PNG")
    at = open_page("patches")
    widget(at.radio, "Images").set_value("Upload").run()
    at.file_uploader[0].set_value(("<b>bag</b>.png", data.getvalue(), "image/png")).run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["annotations"][0]["text"].startswith("&lt;b&gt;bag&lt;/b&gt;.png<br>")  # not "upload 1"
    from app.ui import literal

    ctx = open_context()
    reference = ctx.test.images[:500].numpy().astype(float)  # the background the model saw: its images' outer ring
    ring = np.concatenate([reference[..., 0, :], reference[..., -1, :], reference[..., 1:-1, 0],
                           reference[..., 1:-1, -1]], axis=-1)
    [warning] = at.warning
    assert warning.value == literal(f"<b>bag</b>.png has a light background (mean border pixel 245 of 255); the model "
                                    f"was trained on fashion-mnist images on a dark background (mean border "
                                    f"{ring.mean():.0f}), so its answer may be wrong: invert the colours to show it "
                                    "as the model expects")
    widget(at.checkbox, "Invert the uploads' colours").check().run()
    assert not at.exception and not at.warning
    shown = torch.from_numpy(np.array(Image.fromarray(bag).resize((28, 28), Image.BILINEAR)))[None, None]
    expected = explain_images(ctx, "cls", 0.1, PatchScoring().with_seed(0), images=invert(shown))
    z, _ = overlay(at)
    np.testing.assert_allclose(z, expected.scores.view(1, 7, 7).numpy(), rtol=1e-5, atol=1e-7)
