"""The shipped demo store (data/demo/lotus-demo.db): what `make run` and the container start from on a fresh
machine. It was computed on a CPU with bf16 kernels (AMD EPYC, avx512_bf16) at 2 threads on the embedded data;
it must open on any machine: without bf16 kernels, with Debian's full Fashion-MNIST training split installed
(simulated: a larger training split), at any LOTUS_THREADS. Results computed elsewhere are served labelled
(lotus_core.results.provenance), never recomputed."""
import dataclasses
import json
import shutil
import sqlite3

import pytest
import torch

from lotus_core.cli import main
from lotus_core import context as context_module
from lotus_core.core import device
from lotus_core.context import open_context
from lotus_core.results.runs import provenance_label, resolve
from lotus_core.training.evaluate import DEFAULT_LIMIT
from lotus_core.views.demo import DEMO_DB, demo_plan, missing_steps

MACHINES = {  # name -> (bf16 kernels, LOTUS_THREADS, full training split installed)
    "the machine that made it": (True, None, False),
    "AVX2-only CPU, full Fashion-MNIST, 4 threads": (False, "4", True),
    "bf16 CPU, full Fashion-MNIST, 1 thread": (True, "1", True),
    "AVX2-only CPU, embedded data, default threads": (False, None, False),
}


def _machine(monkeypatch, bf16: bool, threads: str | None, full_train: bool) -> None:
    monkeypatch.setattr(device, "bf16_available", lambda d: bf16 and d.type == "cpu")
    if threads is None:
        monkeypatch.delenv("LOTUS_THREADS", raising=False)
    else:
        monkeypatch.setenv("LOTUS_THREADS", threads)
    if full_train:  # Debian's 60,000-image split in place of the embedded 10,000: another training variant
        load = context_module.load_dataset

        def fuller(name, split="test", root=None):
            data = load(name, split, root)
            if split != "train":
                return data
            return dataclasses.replace(data, images=torch.cat([data.images, data.images.flip(-1)]),
                                       labels=torch.cat([data.labels, data.labels]))

        monkeypatch.setattr(context_module, "load_dataset", fuller)


@pytest.fixture
def shipped(tmp_path):
    db = tmp_path / "lotus.db"
    shutil.copy(DEMO_DB, db)
    threads = torch.get_num_threads()
    yield db
    torch.set_num_threads(threads)  # open_context applied LOTUS_THREADS


def _runs(db) -> set[str]:
    with sqlite3.connect(db) as con:
        return {row[0] for row in con.execute("SELECT id FROM runs")}


@pytest.mark.parametrize("machine", list(MACHINES))
def test_every_demo_step_is_found_on_any_machine(shipped, monkeypatch, machine):
    """Every demo step's result is served (computed here or elsewhere, labelled) under the code's current keys:
    a key change that forgets the shipped store fails here; prepare-demo then computes nothing."""
    bf16, threads, full_train = MACHINES[machine]
    _machine(monkeypatch, bf16, threads, full_train)
    ctx = open_context(db=shipped)
    assert missing_steps(ctx, DEFAULT_LIMIT) == []
    before = _runs(shipped)
    assert main(["prepare-demo", "--db", str(shipped), "--json"]) == 0
    assert _runs(shipped) == before
    assert DEMO_DB.stat().st_size < 40e6  # small enough to ship in the repository


def test_prepare_demo_on_the_shipped_store_computes_nothing(capsys, shipped, monkeypatch):
    _machine(monkeypatch, *MACHINES["the machine that made it"])
    assert main(["prepare-demo", "--db", str(shipped), "--json"]) == 0
    out, err = capsys.readouterr()
    res = json.loads(out)
    assert res["computed"] == 0 and len(res["steps"]) == len(demo_plan()) == 15 and res["limit"] == DEFAULT_LIMIT
    assert err.splitlines()[0].startswith("[1/15] dense accuracy (")


def test_results_from_elsewhere_are_labelled_with_what_differs(shipped, monkeypatch):
    """On an AVX2-only CPU at 4 threads with the full training split, the dense accuracy (test-only: its key has
    no training split) is the same result computed in bf16 at 2 threads; the LTH ticket was trained on the
    embedded 10,000 images. Both are served and say so; on the machine that made them, nothing is labelled."""
    from lotus_core.lottery.lth import LTHConfig

    lth = LTHConfig(target=0.8, prune_fraction=0.2, steps=100, rewind="pretrained", limit=DEFAULT_LIMIT)
    _machine(monkeypatch, *MACHINES["the machine that made it"])
    ctx = open_context(db=shipped)
    dense = resolve(ctx, "evaluate", ctx.dense_params())
    assert provenance_label(ctx, dense["id"]).startswith("computed in bf16 on cpu (AMD EPYC, avx512_bf16), 2 threads")
    assert "train" not in dense["config"]["data"] and dense["config"]["precision"] == "auto"

    monkeypatch.undo()
    _machine(monkeypatch, *MACHINES["AVX2-only CPU, full Fashion-MNIST, 4 threads"])
    ctx = open_context(db=shipped)
    assert resolve(ctx, "evaluate", ctx.dense_params())["id"] == dense["id"]
    assert provenance_label(ctx, dense["id"]).startswith(
        "computed elsewhere (in bf16 (here: fp32); on 2 threads (here: 4)): computed in bf16 on cpu (AMD EPYC")
    ticket = resolve(ctx, "lth", lth)
    assert ticket["config"]["data"]["train"] == "10000@aa438754006bfd68" != ctx.train.variant
    assert "trained on 10,000 training images (here: 20,000)" in provenance_label(ctx, ticket["id"])


def test_a_first_visit_of_every_page_on_the_shipped_store_computes_nothing(shipped, monkeypatch):
    """What `make run` opens on a fresh machine unlike the one that made the store (no bf16 kernels, the full
    training split, 4 threads): every page, with its default settings, is drawn from the shipped results (no
    page measures, sweeps or compares anything on a first visit)."""
    from pathlib import Path

    from tests.pages.helpers import open_page

    _machine(monkeypatch, *MACHINES["AVX2-only CPU, full Fashion-MNIST, 4 threads"])
    monkeypatch.setenv("LOTUS_DB", str(shipped))
    before = _runs(shipped)
    pages = [None] + sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "pages").glob("*.py")
                            if p.stem != "overview")
    for page in pages:
        at = open_page(page)
        assert not at.exception, (page, at.exception)
        assert _runs(shipped) == before, (page, _runs(shipped) - before)
    assert len(pages) == 8
