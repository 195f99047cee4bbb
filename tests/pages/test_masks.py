import json

from tests.pages.helpers import open_page


def _traces(at, i):
    return json.loads(at.get("plotly_chart")[i].proto.spec)["data"]


def test_masks_page_shows_similarity_against_chance_and_switches_measure():
    at = open_page("masks")
    assert not at.exception
    first = _traces(at, 0)
    assert [t["name"] for t in first][:2] == ["omp-layerwise: chance", "omp-layerwise"]
    assert "chance" in at.metric[1].label.lower()
    cos = at.metric[0].value
    at.radio[0].set_value("jaccard_pruned").run()
    assert not at.exception
    assert "Jaccard" in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["yaxis"]["title"]["text"]
    assert at.metric[0].value == cos  # the pair is unchanged, only the chart's measure


def test_masks_page_comparing_a_mask_with_itself_gives_one():
    at = open_page("masks")
    boxes = [s for s in at.selectbox if s.label in ("Mask A", "Mask B")]
    boxes[1].set_value(boxes[0].value).run()
    assert not at.exception
    assert at.metric[0].value == "100.00%"
