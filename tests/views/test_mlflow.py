"""Runs exported to a real local MLflow tracking store and read back with MLflow's own client."""
from __future__ import annotations

import json
import sys

import pytest

from lotus_core.cli import main
from lotus_core.core.mask import Mask
from lotus_core.pruning.sweep import SweepConfig, run_sweep
from lotus_core.views import mlflow_export

import mlflow  # noqa: E402,F401 (the tracking extra, installed by `make test`)
from mlflow.tracking import MlflowClient  # noqa: E402


@pytest.fixture
def stored_sweep(tiny_ctx):
    """A finished two-method sweep of the tiny ViT, with a mask stored as a blob (as LTH rounds store theirs)."""
    result = run_sweep(tiny_ctx, SweepConfig(methods=("omp", "random"), sparsities=(0.5, 0.9), limit=40))
    mask = Mask({n: p.detach() > 0 for n, p in tiny_ctx.model.named_parameters() if n.endswith("fc1.weight")})
    tiny_ctx.store.put_blob(result.run_id, "mask-round1.safetensors", mask.to_bytes())
    return tiny_ctx.store, result


def _export(store, run_ids, uri, capsys) -> dict:
    assert main(["export", *run_ids, "--mlflow", uri, "--db", str(store.path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_sweep_reads_back_equal_and_exports_once(stored_sweep, tmp_path, capsys):
    store, result = stored_sweep
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _export(store, [result.run_id], uri, capsys)["runs"][0]
    assert first["created"] and first["run"] == result.run_id
    client = MlflowClient(tracking_uri=uri)
    got = client.get_run(first["mlflow_run"])
    run = store.get_run(result.run_id)

    # params: the whole configuration, flattened, values as text
    expected = {k: (v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":")))
                for k, v in mlflow_export.flat(run["config"]).items()}
    assert got.data.params == expected
    assert got.data.params["methods"] == '["omp","random"]' and got.data.params["limit"] == "40"

    # metrics: accuracy per method indexed by sparsity in per mille, the dense point at step 0
    for method in ("omp", "random"):
        history = {m.step: m.value for m in client.get_metric_history(got.info.run_id, f"accuracy/{method}")}
        stored = {round(1000 * p["sparsity"]): p["accuracy"] for p in store.points(result.run_id).values()
                  if p.get("method") == method}
        assert history == {0: run["summary"]["dense"]["accuracy"], **stored}
        assert got.data.metrics[f"summary.essential.{method}.essential_sparsity"] == \
            run["summary"]["essential"][method]["essential_sparsity"]
    assert got.data.metrics["summary.dense.accuracy"] == run["summary"]["dense"]["accuracy"]

    # tags: version, key, kind and provenance
    assert got.data.tags["lotus.run_key"] == result.run_id and got.data.tags["lotus.kind"] == "sweep"
    assert got.data.tags["lotus.model"] == "tiny@seed0" and got.data.tags["lotus.dataset"] == "tiny"
    assert got.data.tags["lotus.version"] == mlflow_export.version() != ""
    for field, value in mlflow_export.flat(mlflow_export.provenance(run)).items():  # where and how it was computed
        assert got.data.tags[f"lotus.provenance.{field}"] == mlflow_export.param_text(value)[:5000]

    # artifacts: the CSV, the configuration, the chart and the mask, byte for byte
    names = {a.path for a in client.list_artifacts(got.info.run_id)}
    assert names == {"table.csv", "config.json", "chart.html", "masks"}
    folder = client.download_artifacts(got.info.run_id, "", str(tmp_path / "back"))
    assert (tmp_path / "back" / "table.csv").read_text() == store.export_csv(result.run_id)
    assert json.loads((tmp_path / "back" / "config.json").read_text()) == run["config"]
    assert (tmp_path / "back" / "masks" / "mask-round1.safetensors").read_bytes() == \
        store.get_blob(result.run_id, "mask-round1.safetensors")
    assert "plotly" in (tmp_path / "back" / "chart.html").read_text() and folder

    # exporting again finds the run by its key: nothing is duplicated
    again = _export(store, [result.run_id[:8]], uri, capsys)["runs"][0]
    assert again == {"run": result.run_id, "mlflow_run": first["mlflow_run"], "created": False}
    experiment = client.get_experiment_by_name("LOTUS")
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_a_kind_without_a_curve_and_a_refused_store(tiny_ctx, tmp_path, capsys):
    summary = tiny_ctx.dense_accuracy(limit=30)
    uri = f"sqlite:///{tmp_path / 'second.db'}"
    out = _export(tiny_ctx.store, [summary["run_id"]], uri, capsys)["runs"][0]
    got = MlflowClient(tracking_uri=uri).get_run(out["mlflow_run"])
    assert got.data.metrics["summary.accuracy"] == summary["accuracy"]
    assert [got.data.metrics["summary.ci95.0"], got.data.metrics["summary.ci95.1"]] == summary["ci95"]
    assert got.data.metrics["summary.n"] == summary["n"] and got.data.tags["lotus.kind"] == "evaluate"
    assert got.data.metrics["summary.per_class.class6"] == summary["per_class"]["class6"]
    # MLflow 3 refuses file stores: said in one line, with what to pass instead
    assert main(["export", summary["run_id"], "--mlflow", (tmp_path / "mlruns").as_uri(),
                 "--db", str(tiny_ctx.store.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass a sqlite:/// URI" in err


def test_unfinished_runs_and_a_missing_mlflow_are_one_line(stored_sweep, tmp_path, capsys, monkeypatch):
    store, result = stored_sweep
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # as if MLflow were not installed
    assert main(["export", result.run_id, "--mlflow", f"sqlite:///{tmp_path / 'm.db'}", "--db", str(store.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install -e '.[tracking]'" in err
    monkeypatch.undo()
    store.set_status(result.run_id, "interrupted")
    assert main(["export", result.run_id, "--mlflow", f"sqlite:///{tmp_path / 'm.db'}", "--db", str(store.path)]) == 2
    assert "only finished runs are exported" in capsys.readouterr().err
    assert main(["export", result.run_id, result.run_id, "--out", str(tmp_path / "x.csv"), "--db", str(store.path)]) == 2
    assert "give one run and --out FILE" in capsys.readouterr().err


def test_the_experiments_page_button_exports_the_chosen_run(tmp_path, monkeypatch):
    from lotus_core.context import open_context
    from tests.pages.helpers import open_page

    uri = f"sqlite:///{tmp_path / 'page.db'}"
    at = open_page("experiments")  # without MLFLOW_TRACKING_URI the button is there, disabled, saying how
    assert at.button(key="mlflow-export").disabled and "MLFLOW_TRACKING_URI" in at.button(key="mlflow-export").help
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    at = open_page("experiments")
    chosen = at.selectbox[0].value  # the run picker's label ends its name with the id's first six characters
    at.button(key="mlflow-export").click().run()
    assert not at.exception and not at.error
    client = MlflowClient(tracking_uri=uri)
    (exported,) = client.search_runs([client.get_experiment_by_name("LOTUS").experiment_id])
    key = exported.data.tags["lotus.run_key"]
    assert open_context().store.get_run(key)["status"] == "done" and f" {key[:6]} " in f" {chosen} "
