"""Each pruning method owns its options end to end: a throwaway method registered here, with an options class of
its own holding an option no other file names, gets the value typed on the CLI, given to the dashboard's view
function and sent through a background job, as one instance of its options class; and a bad sweep is refused
before anything loads or any run is recorded."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

import lotus_core.context
from lotus_core import jobs
from lotus_core.core.errors import LotusError
from lotus_core.pruning import PRUNERS, Pruner
from lotus_core.pruning.omp import omp
from lotus_core.pruning.sweep import SweepConfig, run_sweep
from lotus_core.results.keys import experiment_config
from lotus_core.results.runs import run_id_for
from lotus_core.views.curves import curve_view
from tests.commands.test_core import run_cli


@dataclass(frozen=True)
class ToyOptions:
    """The throwaway method's options."""

    alpha: float = 0.5  # toy: an option only this class names


SEEN: list = []  # the options each call of the toy method received


def toy(params, options):
    """Global magnitude (omp), recording the options it was handed."""
    SEEN.append(options.own)
    return omp(params, options)


@pytest.fixture
def toy_method(monkeypatch):
    """``toy`` registered for one test (monkeypatch restores PRUNERS afterwards)."""
    SEEN.clear()
    monkeypatch.setitem(PRUNERS, "toy", Pruner("toy", toy, "throwaway method of this test", options=ToyOptions))
    yield
    SEEN.clear()


def test_the_option_typed_on_the_cli_reaches_the_method(toy_method, capsys, tmp_path):
    db = str(tmp_path / "r.db")
    code, out, err = run_cli(capsys, "prune", "--method", "toy", "--alpha", "0.3", "--sparsity", "0.5",
                             "--limit", "50", "--json", "--db", db)
    assert code == 0, err
    assert SEEN == [ToyOptions(alpha=0.3)] and json.loads(out)["sparsity_requested"] == 0.5
    code, out, err = run_cli(capsys, "sweep", "--methods", "omp,toy", "--alpha", "0.25", "--sparsities", "0,0.5",
                             "--limit", "50", "--json", "--db", db)
    assert code == 0, err
    assert SEEN[1:] == [ToyOptions(alpha=0.25)] and set(json.loads(out)["essential"]) == {"omp", "toy"}
    code, _, err = run_cli(capsys, "prune", "--method", "toy", "--sparsity", "0.5", "--limit", "50", "--db", db)
    assert code == 0 and SEEN[2:] == [ToyOptions(alpha=0.5)], err  # not typed: the class's default
    code, out, err = run_cli(capsys, "sweep", "--methods", "omp", "--alpha", "0.3", "--db", db)
    assert (code, out) == (2, "") and SEEN[3:] == [] and err == (  # it would reach no method: refused, not dropped
        "lotus sweep: error: --alpha 0.3 is an option of toy, none of the methods chosen (omp); add one of them or "
        "drop it\n")


def test_the_option_given_to_the_dashboards_view_reaches_the_method(toy_method, tiny_ctx):
    chosen = SweepConfig(methods=("toy",), sparsities=(0.0, 0.5), limit=50, method_options={"toy": {"alpha": 0.2}})
    view = curve_view(tiny_ctx, chosen, None, True, launch=lambda kind, config: pytest.fail("nothing is queued"))
    assert SEEN == [ToyOptions(alpha=0.2)] and view.config == chosen
    assert list(view.frame["method"]) == ["toy"] and list(view.frame["sparsity"]) == [0.5]


def test_the_option_sent_through_a_worker_job_reaches_the_method(toy_method, tiny_ctx, monkeypatch):
    """LOTUS_JOBS_IMMEDIATE (conftest): the job runs on submit, rebuilt from its JSON as a worker rebuilds it."""
    monkeypatch.setattr(jobs, "_context", lambda spec: tiny_ctx)
    config = SweepConfig(methods=("toy",), sparsities=(0.0, 0.5), limit=50, method_options={"toy": {"alpha": 0.7}})
    run_id = jobs.submit(jobs.context_spec(tiny_ctx, model="tiny"), "sweep", config, tiny_ctx)
    assert SEEN == [ToyOptions(alpha=0.7)]
    run = tiny_ctx.store.get_run(run_id)
    assert run["status"] == "done" and run["summary"]["essential"]["toy"]["evaluations"] == 1


def test_options_enter_the_key_only_away_from_their_defaults(toy_method, tiny_ctx):
    """A method's options at their defaults leave a sweep's key as it always was (the flat fields every key
    carries, and nothing more); another value is in the key, so it is another run."""
    default = SweepConfig(methods=("toy",), limit=50)
    key = experiment_config(tiny_ctx, "sweep", default)
    assert "method_options" not in key and {k: key[k] for k in ("calib_size", "n", "m", "damp", "blocksize",
                                                                 "rounds")} == \
        {"calib_size": 128, "n": 2, "m": 4, "damp": 0.01, "blocksize": 128, "rounds": 100}
    assert default == SweepConfig(methods=("toy",), limit=50, method_options={"toy": ToyOptions()})
    other = SweepConfig(methods=("toy",), limit=50, method_options={"toy": ToyOptions(alpha=0.1)})
    assert experiment_config(tiny_ctx, "sweep", other)["method_options"] == {"toy": {"alpha": 0.1}}
    assert run_id_for(tiny_ctx, "sweep", other) != run_id_for(tiny_ctx, "sweep", default)


@pytest.mark.parametrize("fields, line", [
    ({"methods": ("omp", "magic")}, "unknown pruning method 'magic'; choose one of omp, "),
    ({"methods": ()}, "no pruning methods given; choose from omp, "),
    ({"scope": "everything"}, "unknown scope 'everything'; choose one of blocks, "),
    ({"controls": ("shuffle", "flip")}, "unknown control 'flip'; choose one of "),
    ({"methods": ("nm",), "method_options": {"nm": {"n": 4, "m": 4}}}, "N:M = 4:4 is not a valid pattern"),
    ({"methods": ("nm",), "method_options": {"nm": {"k": 4}}}, "NMOptions has no setting 'k'; its settings are n, m"),
    ({"methods": ("omp",), "method_options": {"omp": {"n": 1}}}, "omp has no options of its own; drop 'n'"),
    ({"methods": ("omp",), "method_options": {"wanda": {}}}, "options given for 'wanda', which this sweep does not run"),
    ({"methods": ("sparsegpt",), "method_options": {"sparsegpt": {"blocksize": 0}}},
     "sparsegpt: blocksize 0 must be a whole number of at least 1"),
])
def test_a_bad_sweep_is_refused_when_made_with_one_line_and_no_run(tiny_ctx, fields, line):
    """Methods, their options, scope and controls are checked with every other field when the config is made:
    the CLI, the pages and the worker all make one before a run is recorded, so no 'failed' row is left."""
    with pytest.raises(LotusError) as exc:
        run_sweep(tiny_ctx, SweepConfig(**{"limit": 50, **fields}))
    assert str(exc.value).startswith(line) and "\n" not in str(exc.value)
    assert tiny_ctx.store.runs().empty


def test_a_refused_sweep_says_so_before_the_model_loads(capsys, tmp_path, monkeypatch):
    """The CLI checks a command's arguments before it opens the context (model, data, store)."""
    def never(*args, **kwargs):
        raise AssertionError("the model was loaded for a refused sweep")

    monkeypatch.setattr(lotus_core.context, "open_context", never)
    for argv in (["sweep", "--methods", "nm", "--n", "4", "--m", "4"], ["prune", "--method", "sparsegpt",
                                                                       "--damp", "-1"]):
        code, out, err = run_cli(capsys, *argv, "--db", str(tmp_path / "r.db"))
        assert (code, out) == (2, "") and err.count("\n") == 1, err
    assert "damp -1.0 must be a positive number" in err
    assert not (tmp_path / "r.db").exists()
