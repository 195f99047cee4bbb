"""Provenance beside every result, and the migration of stores written when keys held the machine's facts."""
import csv
import io
import json
import re
import sqlite3

from lotus_core.cli import main
from lotus_core.context import open_context
from lotus_core.results.keys import COMPUTED, canonical_json, config_id
from lotus_core.results.provenance import label, rekey
from lotus_core.results.store import Store

OLD_DATA = {"test": "200@aaaa", "train": "400@bbbb"}


def _old(kind: str, **params) -> dict:
    return {"model": "tiny@seed0", "dataset": "tiny", "data": OLD_DATA, "device": "cpu", "precision": "bf16",
            "threads": 2, "kind": kind, **params}


def test_rekey_moves_machine_facts_out_of_the_key_and_keeps_only_the_splits_read():
    assert rekey(_old("evaluate", limit=100, seed=0)) == {
        "model": "tiny@seed0", "dataset": "tiny", "data": {"test": "200@aaaa"}, "precision": "auto", "kind": "evaluate",
        "limit": 100, "seed": 0, COMPUTED: {"device": "cpu", "precision": "bf16", "threads": 2}}
    fp32 = rekey({**_old("lth", steps=10, bf16=False), "precision": "fp32"})
    assert fp32["data"] == OLD_DATA and fp32["precision"] == "fp32" and fp32[COMPUTED]["precision"] == "fp32"
    speed = rekey(_old("speed", limit=100))  # SpeedConfig's own device and threads fields stay in its key
    assert speed["device"] == "cpu" and speed["threads"] == 2 and speed[COMPUTED]["threads"] == 2


def test_an_old_store_is_rekeyed_on_open_with_its_points_blobs_and_references(tmp_path):
    path = tmp_path / "old.db"
    store = Store(path)
    lth, ticket = _old("lth", steps=10), None
    lth_id = config_id(lth)
    ticket = _old("omp-vs-ticket", run=lth_id, rounds=[0, 1])
    with sqlite3.connect(path) as con:  # rows as the previous release wrote them: no key_id, no provenance
        for cfg in (lth, ticket):
            con.execute("INSERT INTO runs(id, kind, model, dataset, config, status, summary, created, updated, duration_s) "
                        "VALUES (?,?,?,?,?,'done',?,1.7e9,1.7e9,12.5)", (config_id(cfg), cfg["kind"], "tiny@seed0", "tiny",
                                                                       canonical_json(cfg),
                                                                       json.dumps({"run_id": config_id(cfg)})))
        con.execute("INSERT INTO points VALUES (?, 'round-1', '{\"accuracy\": 0.5}', 1.7e9)", (lth_id,))
        con.execute("INSERT INTO blobs VALUES (?, 'mask-round-1.safetensors', x'00')", (lth_id,))
    store = Store(path)
    new_lth = config_id(rekey(lth))
    run = store.get_run(new_lth)
    assert run["summary"] == {"run_id": new_lth} and store.points(new_lth) == {"round-1": {"accuracy": 0.5}}
    assert store.blob_names(new_lth) == ["mask-round-1.safetensors"] and store.get_run(lth_id) is None
    new_ticket = config_id({**rekey(ticket), "run": new_lth})
    assert store.get_run(new_ticket)["config"]["run"] == new_lth  # the reference follows the re-keyed run
    assert run["provenance"] == {"device": "cpu", "precision": "bf16", "threads": 2, "device_name": None, "flags": [],
                                 "migrated": True, "wall_s": 12.5, "date": run["provenance"]["date"]}
    assert label(run["provenance"]).startswith("computed in bf16 on cpu, 2 threads, 20")
    assert Store(path).get_run(new_lth)["id"] == new_lth  # idempotent


def test_recompute_here_keeps_the_run_from_elsewhere_and_cli_json_names_the_provenance(tiny_ctx, monkeypatch,
                                                                                      tmp_path, capsys):
    """A sweep computed with bf16 kernels is served on a CPU without them, labelled; recompute_here computes the
    same config here (one more run, fp32 provenance), and the CLI's --json says where a result was computed."""
    from lotus_core.core import device
    from lotus_core.pruning.sweep import SweepConfig, run_sweep
    from lotus_core.results.runs import provenance_label, recompute_here, resolve, stored_config

    config = SweepConfig(methods=("omp",), sparsities=(0.5,), limit=40)
    monkeypatch.setattr(device, "bf16_available", lambda d: True)
    theirs = run_sweep(tiny_ctx, config)
    monkeypatch.setattr(device, "bf16_available", lambda d: False)
    assert run_sweep(tiny_ctx, config).run_id == theirs.run_id  # served, not computed
    run = tiny_ctx.store.get_run(theirs.run_id)
    assert stored_config(tiny_ctx, run) == config
    assert provenance_label(tiny_ctx, theirs.run_id).startswith("computed elsewhere (in bf16 (here: fp32)): ")
    mine = recompute_here(tiny_ctx, theirs.run_id)
    assert mine["run_id"] != theirs.run_id and resolve(tiny_ctx, "sweep", config)["id"] == mine["run_id"]
    assert tiny_ctx.store.get_run(mine["run_id"])["provenance"]["precision"] == "fp32"
    assert tiny_ctx.store.get_run(theirs.run_id)["provenance"]["precision"] == "bf16"  # both kept
    rows = list(csv.DictReader(io.StringIO(tiny_ctx.store.export_csv(theirs.run_id))))
    assert rows and {r["computed"] for r in rows} == {label(run["provenance"])}  # the CSV export names it on every row

    db = tmp_path / "cli.db"
    assert main(["sweep", "--db", str(db), "--methods", "omp", "--sparsities", "0.5", "--limit", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ctx = open_context(db=db)
    assert out["provenance"] == provenance_label(ctx, out["run_id"])
    assert out["provenance"].startswith("computed in fp32 on cpu (")
    assert re.search(r"\), (1 thread|[2-9]\d* threads), torch ", out["provenance"])  # "1 thread", "2 threads"
