"""The Speed page on the default model: Measure stores a run (jobs run inline in tests); the chart and the
table show its rows, with the dense point, the eps band, the Pareto frontier and the machine stated."""
import json

from lotus_core.context import open_context
from lotus_core.speed.run import SpeedConfig, first_view, run_speed
from lotus_core.training.evaluate import DEFAULT_LIMIT
from tests.pages.helpers import open_page, values


def test_measure_draws_the_frontier_and_the_table_of_the_stored_run():
    at = open_page("speed")  # first load: the page's default measurement, measured inline
    assert not at.exception
    first = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in first["data"]] == ["dense", "masked", "csr", "heads", "channels", "evit", "tome",
                                                  "patch-dropout", "Pareto frontier"]
    at.multiselect[0].set_value(["dense", "nm-2:4", "channels", "tome"])
    at.multiselect[1].set_value([8])
    at.run()
    assert any("Not measured yet" in i.value for i in at.info)
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["data"] == first["data"]  # the last measurement stays
    next(b for b in at.button if b.label == "Measure").click().run()
    at.run()
    assert not at.exception
    config = SpeedConfig(methods=("dense", "nm-2:4", "channels", "tome"), batch_sizes=(8,), best_batch=False,
                         ratios=(0.5,), tome_r=(8,), limit=DEFAULT_LIMIT, min_run_time=first_view(DEFAULT_LIMIT).min_run_time,
                         rounds=first_view(DEFAULT_LIMIT).rounds)
    result = run_speed(open_context(), config)  # served from the store the job wrote
    rows = result.at(8)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = {t["name"]: t for t in spec["data"]}
    assert list(traces) == ["dense", "channels", "tome", "Pareto frontier"]
    for method in ("dense", "channels", "tome"):
        part = rows[rows["method"] == method]
        assert values(traces[method]["x"]) == part["latency_ms"].tolist()
        assert values(traces[method]["y"]) == (100 * part["accuracy"]).tolist()
    assert traces["dense"]["marker"]["symbol"] == "star"
    front = rows[rows["pareto"]].sort_values("latency_ms")
    assert values(traces["Pareto frontier"]["x"]) == front["latency_ms"].tolist()
    title = f"batch 8 · {config.device} ({config.device_name}) · {config.threads} thread{'' if config.threads == 1 else 's'} · torch {config.torch_version}"
    assert "text" not in spec["layout"].get("title", {})  # drawn as text above the chart, where it wraps
    assert any(m.value.replace("\\", "") == f"**{title}**" for m in at.markdown)
    band = spec["layout"]["shapes"][0]
    assert (band["y0"], band["y1"]) == (100 * result.dense["accuracy"] - 1, 100 * result.dense["accuracy"])
    assert any(i.value.startswith("nm-2:4 is not measured here: 2:4 semi-structured kernels need an NVIDIA GPU")
               for i in at.info)
    table = at.dataframe[0].value
    assert table["method"].tolist() == ["dense", "channels", "tome"]
    assert table["setting"].tolist() == ["-", "50% (144 ch)", "r 8"]
    assert table["speed-up"].tolist() == rows["speedup"].tolist()
    assert table["tokens per block"].tolist()[2] == "[50, 42, 34, 26, 18, 10, 6]"
    export = next(b for b in at.button if b.label == "Export")
    export.click().run()
    assert not at.exception
    assert any("onnxruntime matches torch" in c.value for c in at.caption)
