import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lotus_core.cli import main
from lotus_core.models.loading import model_card

ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys, *args):
    """Run the CLI in-process; argparse errors raise SystemExit, which we turn into the exit code."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_json_reports_fraction_ci_and_is_served_from_store(capsys, tmp_path):
    db = str(tmp_path / "r.db")
    code, out, err = run_cli(capsys, "evaluate", "--limit", "300", "--json", "--db", db)
    assert code == 0, err
    res = json.loads(out)
    assert res["n"] == 300 and 0.0 <= res["accuracy"] <= 1.0
    assert res["ci95"][0] <= res["accuracy"] <= res["ci95"][1]
    assert res["accuracy"] == res["correct"] / 300 and len(res["per_class"]) == 10
    code, out2, _ = run_cli(capsys, "evaluate", "--limit", "300", "--json", "--db", db)
    assert json.loads(out2) == res
    code, out3, _ = run_cli(capsys, "runs", "--json", "--db", db)
    runs = json.loads(out3)["runs"]
    assert len(runs) == 1 and runs[0]["kind"] == "evaluate" and runs[0]["status"] == "done"


def test_info_names_model_dataset_and_device(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "info", "--json", "--db", str(tmp_path / "r.db"))
    info = json.loads(out)
    assert code == 0 and info["model"].startswith("default@") and info["dataset"] == "fashion-mnist"
    assert info["input_size"] == [1, 28, 28] and info["test_images"] == 10_000 and info["device"] == "cpu"
    assert info["head"] == "trained on fashion-mnist" and info["device_detail"].startswith("cpu (")
    assert info["executor"] == "local" and info["resources"] == {"CPU": os.cpu_count(), "GPU": 0}
    # Ray-only flags without the Ray executor: one line, exit 2, nothing started
    code, _, err = run_cli(capsys, "info", "--gpus-per-task", "0.5", "--db", str(tmp_path / "r.db"))
    assert code == 2 and err.strip() == ("lotus info: error: --gpus-per-task applies only to Ray: add --executor ray "
                                         "(or set LOTUS_EXECUTOR=ray)")


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--limit", "-3"], "argument --limit: -3 must be at least 1"),
    (["evaluate", "--limit", "ten"], "'ten' is not a whole number"),
    (["evaluate", "--model", "no_such_model"], "unknown model 'no_such_model'"),
    (["evaluate", "--dataset", "imagenet-22k"], "unknown dataset 'imagenet-22k'"),
    (["evaluate", "--model", "/nonexistent/model.safetensors"], "does not exist"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, *args, "--db", str(tmp_path / "r.db"))
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_module_entry_point_runs_as_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lotus_core", "evaluate", "--limit", "0", "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().endswith("0 must be at least 1 (see --help)")


def test_full_test_set_accuracy_matches_model_card(capsys, tmp_path):
    card = model_card()
    code, out, _ = run_cli(capsys, "evaluate", "--limit", "10000", "--json", "--db", str(tmp_path / "r.db"))
    assert code == 0
    assert abs(json.loads(out)["accuracy"] - card["test_accuracy"]) <= 0.003
    assert card["test_accuracy"] >= 0.88
