import json

from lotus_core.context import open_context
from streamlit.testing.v1 import AppTest

from tests.pages.helpers import ENTRY, ROOT, open_page


def test_overview_shows_dense_accuracy_from_the_core():
    at = open_page()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    ctx = open_context()
    dense = ctx.dense_accuracy(limit=2000)
    assert metrics["Dense accuracy"] == f"{100 * dense['accuracy']:.2f}%"
    assert metrics["Parameters"] == f"{sum(p.numel() for p in ctx.model.parameters()):,}"
    assert metrics["Input"] == "1x28x28"
    assert len(at.get("plotly_chart")) == 2


def test_the_sidebar_test_set_size_is_one_setting_for_every_page_and_lives_in_the_url():
    at = open_page()
    at.sidebar.select_slider[0].set_value(500).run()
    assert not at.exception
    ctx = open_context()
    assert at.metric[0].value == f"{100 * ctx.dense_accuracy(limit=500)['accuracy']:.2f}%"
    assert "500 test images" in at.metric[0].help
    assert at.query_params["n"] == ["500"] or at.query_params["n"] == "500"
    at.switch_page(str(ROOT / "pages" / "sparsity_curves.py")).run()  # the same session on another page
    assert not at.exception and at.sidebar.select_slider[0].value == 500
    assert not [w for w in at.main.select_slider if "Test images" in w.label]  # no second, disagreeing setting
    dense_line = next(a["text"] for a in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["annotations"]
                      if a["text"].startswith("dense"))
    assert dense_line.startswith(f"dense {100 * ctx.dense_accuracy(limit=500)['accuracy']:.1f}%")


def test_a_shared_link_reopens_its_test_set_size():
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.query_params["n"] = "1000"
    at.run()
    assert not at.exception and at.sidebar.select_slider[0].value == 1000
    assert at.metric[0].value == f"{100 * open_context().dense_accuracy(limit=1000)['accuracy']:.2f}%"


def test_sidebar_choice_of_a_missing_model_is_a_message_not_a_traceback():
    at = open_page()
    at.sidebar.selectbox[0].set_value("vit_small_patch16_224.dino").run()
    assert not at.exception
    assert any("go online or pass --weights FILE" in e.value for e in at.error)


def test_overview_fine_tunes_the_transfer_model_and_the_sidebar_lists_it():
    from lotus_core.models.loading import TRANSFER_WEIGHTS

    at = open_page()
    at.sidebar.selectbox[0].set_value(str(TRANSFER_WEIGHTS)).run()
    at.sidebar.selectbox[1].set_value("fashion-mnist-5to9").run()
    assert not at.exception
    no_head = "head not trained on this dataset: fine-tune it first"
    assert any(no_head in w.value for w in at.sidebar.warning) and any(no_head in w.value for w in at.main.warning)
    assert next(w for w in at.sidebar.caption if w.value.startswith("Running on")).value.startswith("Running on cpu")
    assert next(w for w in at.select_slider if w.label == "Learning rate").value == 1e-3  # fit_lr of this ViT
    assert next(w for w in at.number_input if w.label == "Epochs").value == 8  # the fit preset's
    assert any(c.value.startswith("**fit**: AdamW, 8 epochs") and "the learning rate is 0.001" in c.value
               and "training images" in c.value for c in at.caption)
    next(w for w in at.number_input if w.label == "Epochs").set_value(1)
    next(w for w in at.select_slider if w.label == "Training images").set_value(500)
    next(w for w in at.select_slider if w.label == "Learning rate").set_value(1e-3)
    next(b for b in at.button if b.label == "Fine-tune").click().run()  # jobs run synchronously in tests
    at.run()
    assert not at.exception
    done = next(s.value for s in at.success if s.value.startswith("Fine-tuned:"))
    checkpoint = done.split("Checkpoint `")[1].rstrip("`.")
    accuracy = done.split("Fine-tuned: ")[1].split(" ")[0]  # e.g. 49.80%
    label = f"fine-tuned: transfer_vit.safetensors on fashion-mnist-5to9 ({float(accuracy[:-1]):.1f}%)"
    assert label in at.sidebar.selectbox[0].options  # models known to the store, labelled
    next(b for b in at.button if b.label == "Use the fine-tuned model").click().run()
    assert not at.exception and at.sidebar.selectbox[0].value == checkpoint
    assert not at.sidebar.warning and not at.main.warning  # the head is trained now
    card = at.table[0].value["value"]
    assert card["Head"] == "trained on fashion-mnist-5to9" and card["Recipe"].startswith("full, 1 epochs, AdamW lr 0.001")
    assert card["Training time"].endswith(" s")  # from the run in the store (the checkpoint holds no clock time)


def test_a_shared_link_reopens_the_patches_and_masks_settings_and_ignores_bad_values():
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.query_params.update({"n": "200", "images": "At random", "random_count": "3", "seed": "7", "scorer": "rollout",
                            "drop": "30", "discard": "33", "measure": "jaccard_pruned", "mask_sparsity": "70"})
    at.run()
    at.switch_page(str(ROOT / "pages" / "patches.py")).run()
    assert not at.exception
    assert at.radio[0].value == "At random" and at.slider[0].value == 3 and at.number_input[0].value == 7
    assert at.selectbox[0].value.startswith("rollout") and at.slider[1].value == 30
    assert at.slider[2].value == 0  # 33 is off the 5% grid: the default
    at.switch_page(str(ROOT / "pages" / "masks.py")).run()
    assert not at.exception and at.radio[0].value == "jaccard_pruned" and at.slider[0].value == 70


def test_a_dataset_smaller_than_the_sidebar_setting_is_said_with_its_real_count(tmp_path):
    """The sidebar offers 2,000 test images; a folder with a handful says how many every page really uses, and the
    Overview's figures are measured on them (issue 28 §5)."""
    from tests.pages.test_bad_input_pages import three_class_folder

    folder = three_class_folder(tmp_path / "three")
    n = len(open_context("default", str(folder)).test)
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.query_params["dataset"] = str(folder)
    at.run()
    assert not at.exception and at.sidebar.select_slider[0].value == 2000
    assert f"This dataset has {n:,} test images: every page uses all {n:,}, not 2,000." in [
        c.value for c in at.sidebar.caption]
    assert f"on {n:,} test images" in at.metric[0].help
