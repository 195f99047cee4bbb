"""The Report page on the default model: sections built from the store, missing ones name their page."""
from app.ui import literal
from lotus_core.context import open_context
from lotus_core.views.report import ReportOptions, build_report
from lotus_core.pruning.sweep import SweepConfig, run_sweep
from tests.pages.helpers import open_page

TITLES = ["How accurate is the model before pruning?", "How much can be pruned at almost no cost?",
          "Do lottery tickets and one-shot pruning keep the same weights?",
          "Are lottery tickets and Instant Soup worth their training?", "Which parts of an image does the model need?",
          "Does training on the kept patches learn as fast?", "Does it run faster?", "Paper claims vs measured here"]


def test_report_shows_stored_results_and_names_the_pages_for_missing_ones():
    run_sweep(open_context(), SweepConfig(methods=("omp",), sparsities=(0.0, 0.5), limit=2000))  # the sidebar's default
    at = open_page("report")
    assert not at.exception
    assert [s.value for s in at.subheader] == TITLES
    expected = build_report(open_context(), ReportOptions())
    shown = [m.value for m in at.markdown if m.value.startswith(("Before any pruning", "Pruning the", "The model's", "Of 7 claims"))]
    assert shown == [literal(s.sentence) for s in expected.sections if s.missing is None]  # shown as text
    infos = [i.value for i in at.info]
    assert any("produce it on the Soup page" in i for i in infos)
    assert any("produce it on the Patches page" in i for i in infos)
    assert any(i.startswith("Missing: no speed measurement is stored for this model yet; produce it on the Speed page")
               for i in infos)
    assert len(at.get("plotly_chart")) == 3  # dense, essential sparsity, patches
    claims = at.dataframe[0].value  # the claims table: one row per claim, its verdict and why
    assert list(claims.columns) == ["Claim", "Source", "Paper's number", "LOTUS's number", "Verdict", "Why", "Stored run"]
    assert claims["Verdict"].iloc[0] == "not comparable" and len(claims) == 7
    assert [b.label for b in at.get("download_button")] == ["Export as HTML (opens offline)"]


def test_the_example_class_changes_the_patch_example():
    at = open_page("report")
    before = next(m.value for m in at.markdown if m.value.startswith("The model's"))
    assert before.endswith("example T-shirt/top images.")
    at.selectbox[0].set_value(9).run()  # Ankle boot
    assert not at.exception
    after = next(m.value for m in at.markdown if m.value.startswith("The model's"))
    assert after == literal(build_report(open_context(), ReportOptions(example_class=9)).section("patches").sentence)
    assert after.endswith("example Ankle boot images.")
