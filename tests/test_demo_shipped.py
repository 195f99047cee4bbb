"""The shipped demo store (data/demo/lotus-demo.db): what `make run` and the container start from on a fresh
machine. It was computed on a CPU with bf16 kernels, so keys are checked as that machine makes them."""
import json
import shutil

import pytest

from lotus_core.cli import main
from lotus_core.core import device
from lotus_core.core.context import open_context
from lotus_core.training.evaluate import DEFAULT_LIMIT
from lotus_core.views.demo import DEMO_DB, demo_plan, missing_steps


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    monkeypatch.setattr(device, "bf16_available", lambda d: d.type == "cpu")  # the machine that made it
    monkeypatch.delenv("LOTUS_THREADS", raising=False)
    db = tmp_path / "lotus.db"
    shutil.copy(DEMO_DB, db)
    return db


def test_the_shipped_demo_store_holds_every_step_for_the_default_model(shipped):
    """Every demo step's result is there under the code's current keys: a key change that forgets to
    regenerate it (python -m lotus_core prepare-demo --ship data/demo/lotus-demo.db) fails here."""
    assert missing_steps(open_context(db=shipped), DEFAULT_LIMIT) == []
    assert DEMO_DB.stat().st_size < 40e6  # small enough to ship in the repository


def test_prepare_demo_on_the_shipped_store_computes_nothing(capsys, shipped):
    assert main(["prepare-demo", "--db", str(shipped), "--json"]) == 0
    out, err = capsys.readouterr()
    res = json.loads(out)
    assert res["computed"] == 0 and len(res["steps"]) == len(demo_plan()) == 15 and res["limit"] == DEFAULT_LIMIT
    assert err.splitlines()[0].startswith("[1/15] dense accuracy (")


def test_a_first_visit_of_every_page_on_the_shipped_store_computes_nothing(shipped, monkeypatch):
    """What `make run` opens on a fresh machine: every page, with its default settings, is drawn from the
    shipped results (no page measures, sweeps or compares anything on a first visit), so the Speed page and
    the Report show the same measurement and the Soup and Masks pages open at once."""
    import sqlite3
    from pathlib import Path

    from tests.pages.helpers import open_page

    def runs() -> set[str]:
        with sqlite3.connect(shipped) as con:
            return {row[0] for row in con.execute("SELECT id FROM runs")}

    monkeypatch.setenv("LOTUS_DB", str(shipped))
    before = runs()
    pages = [None] + sorted(p.stem for p in (Path(__file__).parent.parent / "pages").glob("*.py")
                            if p.stem != "overview")
    for page in pages:
        at = open_page(page)
        assert not at.exception, (page, at.exception)
        assert runs() == before, (page, runs() - before)
    assert len(pages) == 8
