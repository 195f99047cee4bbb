import json

from lotus_core.context import open_context
from lotus_core.lottery.lth import LTHConfig
from tests.pages.helpers import open_page


def test_soup_page_compares_omp_and_random_and_launches_an_lth_run():
    at = open_page("soup")
    assert not at.exception
    names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert names == ["omp", "random"]
    at.number_input[0].set_value(2).run()  # 2 fine-tune steps per round: a fast run (jobs run inline in tests)
    at.slider[0].set_value(40).run()
    next(b for b in at.button if b.label == "Launch LTH").click().run()
    assert not at.exception
    names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert names[:2] == ["omp", "random"] and len(names) == 3 and names[2].startswith("LTH ")
    ctx = open_context()
    runs = ctx.store.runs(kind="lth")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "done"
    assert runs.iloc[0]["config"]["steps"] == 2 and runs.iloc[0]["config"]["target"] == 0.4
