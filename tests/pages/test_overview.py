import json

from lotus_core.core.context import open_context
from tests.pages.helpers import open_page


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


def test_overview_test_set_size_changes_the_evaluation():
    at = open_page()
    at.select_slider[0].set_value(500).run()
    assert not at.exception
    ctx = open_context()
    assert at.metric[0].value == f"{100 * ctx.dense_accuracy(limit=500)['accuracy']:.2f}%"
    assert "500" in at.metric[0].help


def test_sidebar_choice_of_a_missing_model_is_a_message_not_a_traceback():
    at = open_page()
    at.sidebar.selectbox[0].set_value("vit_small_patch16_224.dino").run()
    assert not at.exception
    assert any("go online or pass --weights FILE" in e.value for e in at.error)
