from lotus_core.context import open_context
from lotus_core.pruning import PRUNERS
from lotus_core.sweep import PointEvaluator, SweepConfig
from tests.pages.helpers import open_page


def test_sparsity_curves_page_draws_a_curve_per_method_and_prunes_on_demand():
    at = open_page("sparsity_curves")
    assert not at.exception
    assert at.multiselect[0].options == [f"{m}: {PRUNERS[m].help}" for m in PRUNERS]
    at.select_slider[1].set_value(500).run()  # fewer test images: faster
    assert not at.exception
    curve = at.get("plotly_chart")[0]
    import json

    names = [t.get("name") for t in json.loads(curve.proto.spec)["data"] if t.get("mode") == "lines+markers"]
    assert names == ["omp", "random"]
    at.multiselect[0].set_value(["omp"]).run()
    names = [t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"] if t.get("mode") == "lines+markers"]
    assert names == ["omp"]
    next(b for b in at.button if b.label == "Prune").click().run()
    assert not at.exception
    pruned = next(m for m in at.metric if m.label == "Pruned accuracy")
    ctx = open_context()
    point = PointEvaluator(ctx, SweepConfig(methods=("omp",), limit=500)).evaluate("omp", 0.5)
    assert pruned.value == f"{100 * point['accuracy']:.2f}%"
