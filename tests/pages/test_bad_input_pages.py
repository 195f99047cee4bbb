"""Bad input through the dashboard (issue 25 §3): each is a clear message on the page, never a traceback, and
the page stays usable (the Overview's fine-tune control stays reachable)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.pages.helpers import ENTRY, ROOT


def three_class_folder(root: Path) -> Path:
    for c, value in (("cat", 30), ("dog", 120), ("eel", 220)):
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.new("L", (28, 28), value + i).save(root / c / f"{i}.png")
    return root


def test_an_absurdly_long_url_value_is_refused_with_a_message():
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.query_params.update({"model": "m" * 20_000, "dataset": "d" * 20_000})
    at.run()
    assert not at.exception
    errors = [e.value for e in at.sidebar.error]
    assert "The link's `model` value is 20,000 characters long (at most 1,024); it was ignored." in errors
    assert "The link's `dataset` value is 20,000 characters long (at most 1,024); it was ignored." in errors
    assert at.sidebar.selectbox[0].value == "default"  # the page works on the defaults


def test_a_dataset_with_fewer_classes_than_the_head_is_a_message_and_fine_tuning_stays_reachable(tmp_path):
    folder = three_class_folder(tmp_path / "three")
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.query_params["dataset"] = str(folder)
    at.run()
    assert not at.exception
    warning = "head not trained on this dataset (10 outputs, the dataset has 3 classes): fine-tune it first"
    assert any(warning in w.value.replace("\\", "") for w in at.main.warning), [w.value for w in at.main.warning]
    assert any(b.label == "Fine-tune" for b in at.button)  # below the sample images, which no longer crash
    patches = AppTest.from_file(ENTRY, default_timeout=180)  # a typed dataset path is not among the options, which
    patches.query_params["dataset"] = str(folder)  # AppTest cannot carry across a page switch: open the page first
    patches.switch_page(str(ROOT / "pages" / "patches.py")).run()
    assert not patches.exception and patches.title[0].value == "Patches"


def test_thousands_of_indices_are_capped(tmp_path):
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.query_params.update({"images": "By index", "indices": ",".join(map(str, range(100)))})  # 100 images
    at.switch_page(str(ROOT / "pages" / "patches.py")).run()
    assert not at.exception
    assert any("give at most 32 test-set indices at once" in e.value.replace("\\", "") for e in at.error)
    long = AppTest.from_file(ENTRY, default_timeout=180)  # 5,000 entries: over the URL limit, refused before parsing
    long.query_params.update({"images": "By index", "indices": ",".join(["1"] * 5000)})
    long.switch_page(str(ROOT / "pages" / "patches.py")).run()
    assert not long.exception
    assert "The link's `indices` value is 9,999 characters long (at most 1,024); it was ignored." in [
        e.value for e in long.main.error]
