import multiprocessing as mp
import sqlite3

import pytest

from lotus_core.core.errors import LotusError
from lotus_core.results.keys import canonical_json, config_id
from lotus_core.results.store import Store


def test_config_id_is_order_independent_and_sensitive_to_values():
    a = {"model": "default@abc", "method": "omp", "sparsity": 0.5, "seed": 0}
    b = {"seed": 0, "sparsity": 0.5, "method": "omp", "model": "default@abc"}
    assert config_id(a) == config_id(b) and len(config_id(a)) == 16
    assert config_id(a) != config_id({**a, "sparsity": 0.51})
    assert canonical_json((1, 2)) == "[1,2]"


def test_store_is_wal(tmp_path):
    store = Store(tmp_path / "r.db")
    con = sqlite3.connect(store.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_points_blobs_csv_export_and_delete(tmp_path):
    store = Store(tmp_path / "r.db")
    rid = store.start_run("sweep", {"m": "omp"}, model="default@1", dataset="fashion-mnist")
    store.put_point(rid, "omp@0.1000", {"sparsity": 0.1, "accuracy": 0.9})
    store.put_point(rid, "omp@0.2000", {"sparsity": 0.2, "accuracy": 0.85})
    store.put_blob(rid, "mask.safetensors", b"\x00\x01")
    assert list(store.points(rid)) == ["omp@0.1000", "omp@0.2000"]
    csv = store.export_csv(rid, tmp_path / "out.csv")
    assert csv.splitlines()[0] == "key,sparsity,accuracy"
    assert (tmp_path / "out.csv").read_text() == csv
    assert store.get_blob(rid, "mask.safetensors") == b"\x00\x01"
    store.delete_run(rid)
    assert store.get_run(rid) is None and store.points(rid) == {} and store.get_blob(rid, "mask.safetensors") is None
    with pytest.raises(LotusError, match="no run"):
        store.export_csv(rid)


def _writer(path: str, worker: int, n: int) -> None:
    store = Store(path)
    rid = store.start_run("sweep", {"worker": worker})
    for i in range(n):
        store.put_point(rid, f"p{i}", {"i": i, "worker": worker})
    store.finish_run(rid, {"points": n})


def test_several_processes_write_at_once(tmp_path):
    path = str(tmp_path / "r.db")
    Store(path)
    procs = [mp.get_context("spawn").Process(target=_writer, args=(path, w, 40)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    store = Store(path)
    runs = store.runs(kind="sweep")
    assert len(runs) == 3 and set(runs["status"]) == {"done"}
    assert all(len(store.points(r)) == 40 for r in runs["id"])


def test_unwritable_or_corrupt_store_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LotusError, match="cannot be opened"):
        Store(bad)


def test_a_run_without_result_points_exports_its_summary_and_bookkeeping_points_stay_out(tmp_path):
    import csv
    import io

    store = Store(tmp_path / "r.db")
    table = store.start_run("omp-vs-ticket", {"a": 1})  # its result is a table in the summary
    store.finish_run(table, {"rows": [{"round": 1, "cosine": 0.97}, {"round": 2, "cosine": 0.96}], "n": 2})
    assert list(csv.DictReader(io.StringIO(store.export_csv(table)))) == [
        {"round": "1", "cosine": "0.97"}, {"round": "2", "cosine": "0.96"}]
    dense = store.start_run("evaluate", {"limit": 10})  # only a bookkeeping point: the headline row
    store.put_point(dense, "order|hard-first", {"order": list(range(10))})
    store.finish_run(dense, {"accuracy": 0.9, "n": 10})
    assert list(csv.DictReader(io.StringIO(store.export_csv(dense)))) == [{"accuracy": "0.9", "n": "10"}]
    assert store.points_frame(dense).empty
    sweep = store.start_run("sweep", {"b": 1})
    store.put_point(sweep, "omp@0.5000", {"accuracy": 0.8})
    store.put_point(sweep, "search|best-batch", {"best": 64})
    assert store.points_frame(sweep)["key"].tolist() == ["omp@0.5000"]
