import json

from lotus_core.core.context import open_context
from streamlit.testing.v1 import AppTest

from tests.pages.helpers import ENTRY, ROOT, open_page


def test_overview_shows_dense_accuracy_from_the_core():
    at = open_page()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    ctx = open_context()
    dense = ctx.dense_accuracy(limit=2000)
    assert metrics["Dense top-1 accuracy"] == f"{100 * dense['accuracy']:.2f}%"
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
    assert any("could not load timm weights" in e.value for e in at.error)
