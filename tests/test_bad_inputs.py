"""Every bad input gets one clear line and exit 2; nothing corrupt is accepted; nothing is recorded for it.

The exact cases are listed in tables (each row one distinct bad input, as a new user would try
it); property-based tests (hypothesis) then try many more numbers, texts and byte strings
against the argument types and the mask / checkpoint / architecture parsers.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lotus_core.cli import main
from lotus_core.models.checkpoint import save_checkpoint
from lotus_core.results.store import Store
from tests.conftest import TINY_ARCH, make_tiny_vit
from tests.commands.test_core import run_cli

ROOT = Path(__file__).resolve().parent.parent


def assert_one_line(code: int, out: str, err: str, message: str) -> None:
    assert code == 2 and out == "", (code, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err


# --------------------------------------------------------------------------- numbers and lists (argparse)
NUMERIC = [
    (["evaluate", "--limit", "0"], "--limit: 0 must be at least 1"),
    (["evaluate", "--limit", "1000000000"], "1000000000 is more than 10,000,000"),
    (["evaluate", "--limit", "1.5"], "'1.5' is not a whole number"),
    (["evaluate", "--limit", ""], "'' is not a whole number"),
    (["evaluate", "--seed", "-1"], "-1 is outside 0..4294967295"),
    (["evaluate", "--seed", "4294967296"], "4294967296 is outside 0..4294967295"),
    (["evaluate", "--seed", "zero"], "'zero' is not a whole number"),
    (["sweep", "--eps", "nan"], "--eps: nan is not a finite number"),
    (["sweep", "--eps", "inf"], "--eps: inf is not a finite number"),
    (["sweep", "--eps", "-0.01"], "-0.01 is outside [0, 1]"),
    (["sweep", "--eps", "5"], "5 is outside [0, 1]"),
    (["sweep", "--eps", "1%"], "'1%' is not a number"),
    (["sweep", "--refine", "--resolution", "0"], "--resolution: 0 is outside (0, 0.5]"),
    (["sweep", "--refine", "--resolution", "-0.01"], "-0.01 is outside (0, 0.5]"),
    (["sweep", "--refine", "--resolution", "nan"], "--resolution: nan is not a finite number"),
    (["sweep", "--refine", "--resolution", "0.9"], "0.9 is outside (0, 0.5]"),
    (["sweep", "--finetune-steps", "-5"], "--finetune-steps: -5 is outside 0..10,000,000"),
    (["sweep", "--finetune-steps", "1e3"], "'1e3' is not a whole number"),
    (["sweep", "--limit", "20000000"], "20000000 is more than 10,000,000"),
    (["sweep", "--n", "0"], "--n: 0 must be at least 1"),
    (["prune", "--method", "omp", "--sparsity", "1"], "1 is outside [0, 1)"),
    (["prune", "--method", "omp", "--sparsity", "nan"], "nan is not a finite number"),
    (["prune", "--method", "omp", "--sparsity", "50"], "not a percentage"),
    (["prune", "--method", "omp", "--sparsity", "-0.1"], "-0.1 is outside [0, 1)"),
    (["prune", "--method", "nope"], "invalid choice: 'nope'"),
    (["lth", "--target", "1.0"], "--target: 1.0 is outside [0, 1)"),
    (["lth", "--prune-fraction", "inf"], "inf is not a finite number"),
    (["lth", "--steps", "0"], "--steps: 0 must be at least 1"),
    (["lth", "--lr", "0"], "--lr: 0 is outside (0, 10]"),
    (["lth", "--lr", "nan"], "--lr: nan is not a finite number"),
    (["lth", "--lr=-1e-4"], "-1e-4 is outside (0, 10]"),
    (["lth", "--batch-size", "0"], "--batch-size: 0 must be at least 1"),
    (["lth", "--scope", "everything"], "invalid choice: 'everything'"),
    (["soup", "--data-fraction", "0"], "--data-fraction: 0 is outside (0, 1]"),
    (["soup", "--data-fraction", "1.5"], "1.5 is outside (0, 1]"),
    (["soup", "--data-fraction", "nan"], "nan is not a finite number"),
    (["soup", "--finetune-steps", "-5"], "--finetune-steps: -5 is outside 0..10,000,000"),
    (["soup", "--denoisers", "0"], "--denoisers: 0 must be at least 1"),
    (["soup", "--merge", "average"], "invalid choice: 'average'"),
    (["lottery-train", "--fraction", "0"], "--fraction: 0 is outside (0, 1]"),
    (["lottery-train", "--fraction", "20"], "20 is outside (0, 1]"),
    (["lottery-train", "--weight-decay", "-1"], "-1 is outside [0, 10]"),
    (["lottery-train", "--warmup-steps", "-1"], "--warmup-steps: -1 is outside 0..10,000,000"),
    (["lottery-train", "--steps-per-epoch", "-1"], "--steps-per-epoch: -1 is outside 0..10,000,000"),
    (["lottery-train", "--epochs", "0"], "--epochs: 0 must be at least 1"),
    (["lottery-train", "--drop", "1.0"], "--drop: 1.0 is outside [0, 1)"),
    (["fidelity", "--top-k", "0"], "--top-k: 0 is outside (0, 1]"),
    (["fidelity", "--score", "nope"], "unknown patch scorer 'nope'"),
    (["fidelity", "--steps", "0"], "--steps: 0 must be at least 1"),
    (["patches", "--drop", "1.5"], "1.5 is outside [0, 1)"),
    (["patches", "--discard-ratio", "1"], "--discard-ratio: 1 is outside [0, 1)"),
    (["report", "--limit", "-1"], "--limit: -1 must be at least 1"),
]


@pytest.mark.parametrize("args, message", NUMERIC, ids=[" ".join(a) for a, _ in NUMERIC])
def test_bad_numbers_are_refused_by_the_parser(capsys, tmp_path, args, message):
    db = tmp_path / "r.db"
    assert_one_line(*run_cli(capsys, *args, "--db", str(db)), message)
    assert not db.exists()  # refused before anything opened (or created) a store


# Values the parser accepts but the configuration refuses: still before any run is recorded.
CONFIG = [
    (["sweep", "--sparsities", "0:0.9:0"], "cannot read sparsities '0:0.9:0'"),
    (["sweep", "--sparsities", "0:inf:0.1"], "cannot read sparsities '0:inf:0.1'"),
    (["sweep", "--sparsities", "0:0.9:1e-9"], "make 900,000,001 points"),
    (["sweep", "--sparsities", "0.5,nan"], "sparsity nan is outside [0, 1)"),
    (["sweep", "--sparsities", "1.5"], "sparsity 1.5 is outside [0, 1)"),
    (["sweep", "--sparsities", ","], "no sparsities in ','"),
    (["sweep", "--methods", "omp,nope"], "unknown method 'nope'"),
    (["sweep", "--methods", ","], "no methods given"),
    (["sweep", "--n", "5", "--m", "4"], "--n 5 is an option of nm, sparsegpt-nm, none of the methods chosen (omp)"),
    (["lth", "--rewind", "bogus"], "rewind 'bogus' is not 'pretrained' or 'step:K'"),
    (["lth", "--rewind", "step:x"], "rewind 'step:x' is not 'pretrained' or 'step:K'"),
    (["soup-sweep", "--data-fractions", "0.1,abc"], "cannot read data fractions '0.1,abc'"),
    (["soup-sweep", "--data-fractions", "0.1,0"], "data fraction 0.0 is outside (0, 1]"),
    (["patches", "--index", "999999"], "index 999999 is outside the test split (0..9999)"),
    (["report", "--example-class", "99"], "--example-class 99 is outside 0..9"),
]


@pytest.mark.parametrize("args, message", CONFIG, ids=[" ".join(a) for a, _ in CONFIG])
def test_bad_configurations_are_refused_before_a_run_is_recorded(capsys, tmp_path, args, message):
    db = tmp_path / "r.db"
    assert_one_line(*run_cli(capsys, *args, "--db", str(db)), message)
    assert not db.exists() or Store(db).runs().empty  # no 'failed' (or any) row for rejected input


# --------------------------------------------------------------------------- model, data, weights
def tiny_checkpoint(folder: Path, arch: object = None, raw_meta: str | None = None) -> Path:
    """The tiny ViT as safetensors, with ``arch`` (or the raw ``raw_meta`` text) as its lotus_arch."""
    model = make_tiny_vit(0)
    path = folder / "tiny.safetensors"
    meta = raw_meta if raw_meta is not None else json.dumps(arch if arch is not None else TINY_ARCH)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata={"lotus_arch": meta})
    return path


ARCH = [
    ("{not json", None, "lotus_arch metadata is not valid JSON"),
    (None, ["vit_tiny_patch16_224"], "lotus_arch must be a JSON object, not list"),
    (None, {k: v for k, v in TINY_ARCH.items() if k != "model_name"}, "lotus_arch lacks model_name"),
    (None, {**TINY_ARCH, "model_name": "nope_model"}, "unknown architecture 'nope_model'"),
    (None, {**TINY_ARCH, "checkpoint_path": "/etc/passwd"}, "unsupported key 'checkpoint_path'"),
    (None, {**TINY_ARCH, "pretrained_cfg_overlay": {"file": "/x"}}, "unsupported key 'pretrained_cfg_overlay'"),
    (None, {**TINY_ARCH, "depth": 10_000}, "depth=10000 is outside 1..48"),
    (None, {**TINY_ARCH, "embed_dim": 100_000}, "embed_dim=100000 is outside 8..2048"),
    (None, {**TINY_ARCH, "img_size": 0}, "img_size=0 is outside 8..1024"),
    (None, {**TINY_ARCH, "num_heads": True}, "num_heads=True is outside 1..64"),
    (None, {**TINY_ARCH, "num_classes": "10"}, "num_classes='10' is outside 1..100000"),
    ('{"model_name": "vit_tiny_patch16_224", "mlp_ratio": NaN}', None, "mlp_ratio=nan is outside [0.25, 16.0]"),
    (None, {**TINY_ARCH, "mean": [0.5], "std": [0.0]}, "std=[0.0] is not a list of 1 to 4 finite numbers above 0"),
    (None, {**TINY_ARCH, "embed_dim": 15}, "cannot be built"),  # 15 is not divisible by 2 heads
    (None, {**TINY_ARCH, "depth": 3}, "does not fit the architecture: 12 missing"),  # a 3-block model, 2 stored
]


@pytest.mark.parametrize("raw, arch, message", ARCH, ids=[m for *_, m in ARCH])
def test_bad_checkpoint_metadata_is_refused(capsys, tmp_path, raw, arch, message):
    path = tiny_checkpoint(tmp_path, arch, raw)
    assert_one_line(*run_cli(capsys, "info", "--model", str(path), "--db", str(tmp_path / "r.db")), message)


def write_png(path: Path, width: int, height: int) -> Path:
    """A valid grayscale PNG header declaring ``width`` x ``height`` (the pixel data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def small_folder(root: Path, classes: list[str]) -> Path:
    from PIL import Image

    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        Image.new("L", (28, 28), 128).save(root / c / "a.png")
    return root


def model_and_data_cases(tmp: Path) -> list[tuple[list[str], str]]:
    ckpt = save_checkpoint(make_tiny_vit(0), tmp / "ck" / "tiny.safetensors")
    bare = tmp / "bare.pt"
    torch.save(make_tiny_vit(0).state_dict(), bare)
    (tmp / "zero.pt").write_bytes(b"")
    (tmp / "text.pt").write_text("hello, this is text\n")
    (tmp / "passwd.pt").symlink_to("/etc/passwd")
    (tmp / "passwd").symlink_to("/etc/passwd")
    (tmp / "garbage.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{garbage")
    torch.save([torch.zeros(2)], tmp / "list.pt")
    (tmp / "truncated.pt").write_bytes((tmp / "list.pt").read_bytes()[:60])
    bomb = small_folder(tmp / "bomb", ["a", "b"])
    write_png(bomb / "a" / "huge.png", 20_000, 20_000)
    wide = small_folder(tmp / "wide", ["a", "b"])
    write_png(wide / "b" / "wide.png", 5000, 10)
    notimg = small_folder(tmp / "notimg", ["a", "b"])
    (notimg / "a" / "fake.png").write_text("not an image")
    three = small_folder(tmp / "three", ["cat", "dog", "eel"])
    ten = small_folder(tmp / "ten", [f"c{i}" for i in range(10)])
    (tmp / "emptydir" / "a").mkdir(parents=True)
    return [
        (["info", "--model", str(tmp / "zero.pt")], "is empty (0 bytes)"),
        (["info", "--model", str(tmp / "text.pt")], "text.pt is not a checkpoint"),
        (["info", "--model", str(tmp / "passwd.pt")], "passwd.pt is not a checkpoint"),
        (["info", "--model", str(tmp / "passwd")], "passwd is not a checkpoint"),
        (["info", "--model", str(tmp / "garbage.safetensors")], "is not a valid safetensors file"),
        (["info", "--model", str(tmp / "list.pt")], "does not hold a state_dict of tensors"),
        (["info", "--model", str(tmp / "truncated.pt")], "is corrupt or not a torch file"),
        (["info", "--model", str(bare), "--arch", "nope_model"], "unknown architecture 'nope_model'"),
        (["info", "--model", str(bare), "--arch", "vit_base_patch16_224"], "does not fit the architecture"),
        (["info", "--arch", "vit_tiny_patch16_224"], "--arch describes a checkpoint file without metadata"),
        (["info", "--weights", str(ckpt)], "--weights applies to timm model names only"),
        (["info", "--model", str(ckpt), "--weights", str(ckpt)], "--weights applies to timm model names only"),
        (["info", "--data-root", str(tmp / "nope")], "is not a folder"),
        (["info", "--dataset", str(bomb)], "has too many pixels to decode safely"),
        (["info", "--dataset", str(wide)], "is 5000x10 pixels, over 4096 a side"),
        (["info", "--dataset", str(notimg)], "fake.png is not a readable image"),
        (["info", "--dataset", str(tmp / "emptydir")], "is not an image folder"),
        (["prune", "--method", "omp", "--limit", "3", "--dataset", str(three)],
         "head not trained on this dataset (10 outputs, the dataset has 3 classes): fine-tune it first"),
        (["prune", "--method", "omp", "--limit", "3", "--dataset", str(ten)], "head not trained on this dataset (trained on fashion-mnist"),
        (["prune", "--method", "omp", "--limit", "3", "--model", str(ckpt), "--dataset", str(three)],
         "head not trained on this dataset: fine-tune it first"),
    ]


MODEL_AND_DATA_CASES = 20


def test_bad_models_checkpoints_and_datasets_get_one_line(capsys, tmp_path):
    cases = model_and_data_cases(tmp_path)
    assert len(cases) == MODEL_AND_DATA_CASES
    for args, message in cases:
        assert_one_line(*run_cli(capsys, *args, "--db", str(tmp_path / "r.db")), message)


def test_code_carrying_pickle_is_refused_with_exactly_one_line_and_no_torch_warning(tmp_path):
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"w": Exploit()}, f, protocol=2)  # a legacy (non-zip) pickle: torch's noisiest path
    torch.save({"w": Exploit()}, tmp_path / "evil-zip.pt")
    for name in ("evil.pt", "evil-zip.pt"):
        proc = subprocess.run([sys.executable, "-m", "lotus_core", "info", "--model", str(tmp_path / name),
                               "--db", str(tmp_path / "r.db")], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and "could execute code" in proc.stderr, proc.stderr
    assert not (tmp_path / "pwned").exists()


def test_limit_above_the_test_set_is_said_out_loud(capsys, tmp_path):
    code, out, err = run_cli(capsys, "evaluate", "--limit", "20000", "--json", "--db", str(tmp_path / "r.db"))
    assert code == 0 and json.loads(out)["n"] == 10_000
    assert err == "lotus evaluate: note: --limit 20000 is more than the 10000 test images; all 10000 are used\n"


# --------------------------------------------------------------------------- results store and files
def damaged_store(path: Path) -> Path:
    """A store with enough rows to span many pages, then pages 3.. overwritten with garbage."""
    store = Store(path)
    for i in range(300):
        store.start_run("evaluate", {"i": i, "pad": "x" * 200}, status="done")
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(path.read_bytes())
    data[2 * 4096:] = os.urandom(len(data) - 2 * 4096)
    path.write_bytes(bytes(data))
    return path


def test_store_and_file_inputs_get_one_line(capsys, tmp_path, monkeypatch):
    damaged = damaged_store(tmp_path / "damaged.db")
    good = Store(tmp_path / "good.db")
    run_id = good.start_run("evaluate", {"x": 1})
    (tmp_path / "adir.db").mkdir()
    cases = [
        (["runs", "--db", str(damaged)], "cannot be opened: it is damaged"),
        (["evaluate", "--limit", "10", "--db", str(damaged)], "cannot be opened: it is damaged"),
        (["export", run_id, "--out", str(tmp_path), "--db", str(good.path)], "is a folder; give a file path"),
        (["export", run_id, "--out", str(tmp_path / "no" / "x.csv"), "--db", str(good.path)],
         f"folder {tmp_path / 'no'} does not exist"),
        (["export", "0123456789abcdef", "--out", str(tmp_path / "x.csv"), "--db", str(good.path)], "no run 0123"),
        (["runs", "--db", str(tmp_path / "typo" / "lotus.db")], "no results store at"),
        (["export", run_id, "--out", str(tmp_path / "y.csv"), "--db", str(tmp_path / "typo.db")], "no results store"),
        (["delete", run_id, "--db", str(tmp_path / "typo.db")], "no results store at"),
        (["worker", "--stop", "--db", str(tmp_path / "typo.db")], "no results store at"),
        (["runs", "--db", "file:lotus.db"], "is a URI; give a plain file path"),
        (["runs", "--db", str(tmp_path / "adir.db")], "is a folder; give a file path inside it"),
        (["similarity", str(tmp_path / "nope.safetensors"), str(tmp_path / "nope2.safetensors")], "does not exist"),
        (["essential", "--curve", str(tmp_path / "nope.csv")], "curve file"),
    ]
    for args, message in cases:
        assert_one_line(*run_cli(capsys, *args), message)
    assert not (tmp_path / "typo").exists() and not (tmp_path / "typo.db").exists()  # read-only: nothing created
    monkeypatch.chdir(tmp_path)
    for value, message in [("", "LOTUS_DB is set but empty"), ("   ", "LOTUS_DB is set but empty"),
                           ("file:x.db?mode=ro", "is a URI"), ("sqlite:///x.db", "is a URI")]:
        monkeypatch.setenv("LOTUS_DB", value)
        assert_one_line(*run_cli(capsys, "runs"), message)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("file", "sqlite"))) == []
    monkeypatch.setenv("LOTUS_THREADS", "0")
    assert_one_line(*run_cli(capsys, "info", "--db", str(good.path)), "LOTUS_THREADS='0' is not a thread count")


STORE_AND_FILE_CASES = 13 + 4 + 1


def test_lotus_db_expands_the_user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LOTUS_DB", "~/stores/x.db")
    monkeypatch.chdir(tmp_path)
    assert Store().path == tmp_path / "stores" / "x.db" and (tmp_path / "stores" / "x.db").is_file()
    assert not (tmp_path / "~").exists()
    assert Store("~/y.db").path == tmp_path / "y.db"


# --------------------------------------------------------------------------- masks
def mask_cases(tmp: Path) -> list[tuple[bytes, str]]:
    from safetensors.torch import save

    return [
        (b"", "not a safetensors mask"),
        (b"\x00" * 7, "not a safetensors mask"),
        (b"\xff" * 64, "not a safetensors mask"),
        (save({"w": torch.tensor([0, 2], dtype=torch.uint8)}), "holds values other than 0 and 1"),
        (save({"w": torch.zeros(3)}), "is not a boolean tensor"),
        (save({}), "holds no tensors"),
        (b"\0" * (10 * 2**20 + 1), "over the 10 MB a mask may have here"),
    ]


MASK_CASES = 7


def test_bad_masks_are_refused(tmp_path):
    from lotus_core.core.errors import LotusError
    from lotus_core.pruning import Mask

    cases = mask_cases(tmp_path)
    assert len(cases) == MASK_CASES
    for data, message in cases:
        with pytest.raises(LotusError, match=message.replace("(", r"\(")):
            Mask.from_bytes(data)


def distinct_bad_inputs() -> int:
    """How many distinct bad inputs the exact tests above try (the README's figure)."""
    return (len(NUMERIC) + len(CONFIG) + len(ARCH) + MODEL_AND_DATA_CASES + 2  # + the two code-carrying pickles
            + STORE_AND_FILE_CASES + MASK_CASES + 1)  # + --limit above the test set


def test_at_least_sixty_distinct_bad_inputs_are_tried():
    assert distinct_bad_inputs() == 130 >= 60  # before issue 25
    assert issue25_inputs() == 90 >= 60  # the red-team classes of issue 25
    # the README's reliability section quotes their sum: 220


# =========================================================================== issue 25: the red-team classes
# Seeds and learning rates: one range for every seed flag (0..2**32-1, numpy's), refused by the parser.
SEEDS_AND_RATES = [
    (["finetune", "--seed", "18446744073709551616"], "--seed: 18446744073709551616 is outside 0..4294967295"),
    (["finetune", "--seed=-1"], "--seed: -1 is outside 0..4294967295"),
    (["evaluate", "--head-seed=-1"], "--head-seed: -1 is outside 0..4294967295"),
    (["evaluate", "--head-seed", "99999999999999999999999"], "--head-seed: 99999999999999999999999 is outside"),
    (["info", "--head-seed", "0.5"], "--head-seed: '0.5' is not a whole number"),
    (["lottery-train", "--seed=-3"], "--seed: -3 is outside 0..4294967295"),
    (["finetune", "--lr", "nan"], "--lr: nan is not a finite number"),
    (["finetune", "--lr", "inf"], "--lr: inf is not a finite number"),
    (["finetune", "--lr=-1"], "--lr: -1 is outside (0, 10]"),
    (["finetune", "--lr", "0"], "--lr: 0 is outside (0, 10]"),
    (["finetune", "--lr", "1e308"], "--lr: 1e308 is outside (0, 10]"),
    (["finetune", "--lr", "1e-400"], "--lr: 1e-400 is outside (0, 10]"),  # underflows to 0.0
    (["sweep", "--ft-lr", "nan"], "--ft-lr: nan is not a finite number"),
]


@pytest.mark.parametrize("args, message", SEEDS_AND_RATES, ids=[" ".join(a) for a, _ in SEEDS_AND_RATES])
def test_seeds_and_learning_rates_are_refused_by_the_parser(capsys, tmp_path, args, message):
    db = tmp_path / "r.db"
    assert_one_line(*run_cli(capsys, *args, "--db", str(db)), message)
    assert not db.exists()


# Accepted by the parser, refused before a run is recorded (the store holds no run afterwards).
BEFORE_A_RUN = [
    (["finetune", "--lr", "5", "--epochs", "1"], "learning rate 5.0 is outside (0, 1)"),
    (["instability", "--ks=-1", "--limit", "10"], "rewinding point -1 is outside 0..100"),
    (["instability", "--ks", "0,500", "--steps", "100"], "rewinding point 500 is outside 0..100"),
    (["soup-sweep", "--data-fractions", "1e-300", "--limit", "10"], "fewer than one image per class (10)"),
    (["soup", "--data-fraction", "0.0004", "--limit", "10"], "--data-fraction 0.0004 of the 10,000 training images"),
    (["lottery-train", "--fraction", "1e-6", "--limit", "10"], "--fraction 1e-06 of the 10,000 training images"),
]


@pytest.mark.parametrize("args, message", BEFORE_A_RUN, ids=[" ".join(a) for a, _ in BEFORE_A_RUN])
def test_refused_before_a_run_is_recorded(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("LOTUS_NO_SYSTEM_DATA", "1")  # the embedded 10,000-image training split
    db = tmp_path / "r.db"
    assert_one_line(*run_cli(capsys, *args, "--db", str(db)), message)
    assert not db.exists() or Store(db).runs().empty


# lotus_head entries of a checkpoint (raw header text -> the refusal): every field is checked.
_HEAD = {"state": "trained", "num_classes": 10, "dataset": "fashion-mnist", "classes": None, "seed": None}
HEADS = [
    ("{bad json", "lotus_head metadata is not valid JSON"),
    ('{"state": ' + "[" * 200_000 + "]" * 200_000 + "}", "lotus_head metadata is not valid JSON"),
    ('{"a":' * 100_000 + "1" + "}" * 100_000, "lotus_head metadata is not valid JSON"),
    (json.dumps([_HEAD]), "lotus_head must be a JSON object, not list"),
    ("null", "lotus_head must be a JSON object, not NoneType"),
    (json.dumps({**_HEAD, "evil": 1}), "lotus_head carries unsupported key 'evil'"),
    (json.dumps({**_HEAD, "state": "hacked"}), "lotus_head state 'hacked' is not one of trained, pretrained, new"),
    (json.dumps({**_HEAD, "num_classes": 0}), "lotus_head num_classes='0' is outside 1..100000"),
    (json.dumps({**_HEAD, "num_classes": 10 ** 9}), "lotus_head num_classes='1000000000' is outside 1..100000"),
    (json.dumps({**_HEAD, "num_classes": 3}), "lotus_head says 3 outputs, the classifier has 10"),
    (json.dumps({**_HEAD, "classes": ["a", "b"]}), "lotus_head classes is not a list of 10 class names"),
    (json.dumps({**_HEAD, "classes": "abcdefghij"}), "lotus_head classes is not a list of 10 class names"),
    (json.dumps({**_HEAD, "state": "new", "seed": -1}), "lotus_head seed='-1' is outside 0..4294967295"),
    (json.dumps({**_HEAD, "dataset": 7}), "lotus_head dataset is not a name"),
]


@pytest.mark.parametrize("raw, message", HEADS, ids=[m + str(i) for i, (_, m) in enumerate(HEADS)])
def test_bad_head_metadata_is_refused(capsys, tmp_path, raw, message):
    model = make_tiny_vit(0)
    path = tmp_path / "h.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"lotus_arch": json.dumps(TINY_ARCH), "lotus_head": raw})
    assert_one_line(*run_cli(capsys, "info", "--model", str(path), "--db", str(tmp_path / "r.db")), message)


def test_a_valid_head_entry_is_read_back_exactly(tmp_path):
    from lotus_core.models.heads import Head
    from lotus_core.models.loading import load_model

    model = make_tiny_vit(0)
    model.lotus_head = Head("trained", 10, "fashion-mnist", tuple(f"c{i}" for i in range(10)))
    path = save_checkpoint(model, tmp_path / "ok.safetensors")
    assert load_model(str(path)).lotus_head == model.lotus_head


# lotus_arch of null / nested / of a CNN, in --model and in --weights files.
def _weights_file(tmp: Path, name: str, meta: dict) -> Path:
    path = tmp / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in make_tiny_vit(0).state_dict().items()}, str(path), metadata=meta)
    return path


def arch_and_weights_cases(tmp: Path) -> list[tuple[list[str], str]]:
    import timm

    cnn = timm.create_model("test_resnet", pretrained=False, num_classes=10, in_chans=1)
    cnn.lotus_arch = {"model_name": "test_resnet", "num_classes": 10, "in_chans": 1}
    resnet = save_checkpoint(cnn, tmp / "resnet.safetensors")
    vit = ["info", "--model", "vit_tiny_patch16_224", "--weights"]
    return [
        (["info", "--model", str(_weights_file(tmp, "null", {"lotus_arch": "null"}))],
         "lotus_arch must be a JSON object, not NoneType"),
        (["info", "--model", str(_weights_file(tmp, "deep", {"lotus_arch": "[" * 200_000 + "]" * 200_000}))],
         "lotus_arch metadata is not valid JSON"),
        (["info", "--model", str(_weights_file(tmp, "deepobj", {"lotus_arch": '{"a":' * 100_000 + "1" + "}" * 100_000}))],
         "lotus_arch metadata is not valid JSON"),
        (["info", "--model", str(resnet)], "is a ResNet, not a Vision Transformer; LOTUS handles timm "
                                           "VisionTransformer-family models"),
        (["finetune", "--model", str(resnet), "--head-only", "--epochs", "1"], "is a ResNet, not a Vision Transformer"),
        (["info", "--model", "resnet18"], "resnet18 is a ResNet, not a Vision Transformer"),
        (["evaluate", "--model", "convnext_atto", "--limit", "10"], "convnext_atto is a ConvNeXt, not a Vision Transformer"),
        ([*vit, str(_weights_file(tmp, "wbad", {"lotus_arch": "{bad json"}))], "lotus_arch metadata is not valid JSON"),
        ([*vit, str(_weights_file(tmp, "wlist", {"lotus_arch": json.dumps([TINY_ARCH])}))],
         "lotus_arch must be a JSON object, not list"),
        ([*vit, str(_weights_file(tmp, "wdeep", {"lotus_arch": "{" * 100_000}))], "lotus_arch metadata is not valid JSON"),
        ([*vit, str(_weights_file(tmp, "whead", {"lotus_arch": json.dumps(TINY_ARCH), "lotus_head": "{bad"}))],
         "lotus_head metadata is not valid JSON"),
    ]


def refused_without_a_row(capsys, tmp_path, cases: list, count: int) -> None:
    """Each of ``count`` cases is refused with its one line, and none leaves a run (a failed row) in the store."""
    assert len(cases) == count
    db = tmp_path / "r.db"
    for args, message in cases:
        assert_one_line(*run_cli(capsys, *args, "--db", str(db)), message)
    assert not db.exists() or Store(db).runs().empty


ARCH_AND_WEIGHTS_CASES = 11


def test_bad_arch_metadata_and_non_vit_models_get_one_line(capsys, tmp_path):
    refused_without_a_row(capsys, tmp_path, arch_and_weights_cases(tmp_path), ARCH_AND_WEIGHTS_CASES)


# Weight dtypes and values: float32/bfloat16 read as they are, float16/float64 cast with one note, the rest refused.
REFUSED_WEIGHTS = [
    (lambda v: (v * 10).to(torch.int8), "holds int8 weights"),
    (lambda v: v.to(torch.bool), "holds bool weights"),
    (lambda v: (v.abs() * 10).to(torch.uint8), "holds uint8 weights"),
    (lambda v: v.to(torch.complex64), "holds complex64 weights"),
    (lambda v: v.to(torch.float8_e4m3fn), "holds float8_e4m3fn weights"),
    (lambda v: torch.full_like(v, float("nan")), "holds NaN or infinite weights"),
    (lambda v: torch.full_like(v, float("inf")), "holds NaN or infinite weights"),
]


@pytest.mark.parametrize("convert, message", REFUSED_WEIGHTS, ids=[m + str(i) for i, (_, m) in enumerate(REFUSED_WEIGHTS)])
def test_weights_of_unusable_dtype_or_value_are_refused(capsys, tmp_path, convert, message):
    state = {k: convert(v.contiguous()) for k, v in make_tiny_vit(0).state_dict().items()}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path), metadata={"lotus_arch": json.dumps(TINY_ARCH)})
    assert_one_line(*run_cli(capsys, "info", "--model", str(path), "--db", str(tmp_path / "r.db")), message)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_float16_and_float64_weights_are_cast_with_one_note(capsys, tmp_path, dtype):
    model = make_tiny_vit(0)
    state = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path), metadata={"lotus_arch": json.dumps(TINY_ARCH)})
    code, out, err = run_cli(capsys, "info", "--model", str(path), "--db", str(tmp_path / "r.db"))
    name = str(dtype).replace("torch.", "")
    assert code == 0 and err == f"lotus info: note: {path}: {name} weights are cast to float32\n", err
    from lotus_core.models.loading import load_model

    loaded = load_model(str(path))
    for k, v in loaded.state_dict().items():  # exactly the cast of the stored values
        assert v.dtype == torch.float32 and torch.equal(v, state[k].float())


# Paths the user gives: refused in one line before anything runs (tmp-built cases).
def path_cases(tmp: Path) -> list[tuple[list[str], str]]:
    good = Store(tmp / "good.db")
    run_id = good.start_run("evaluate", {"x": 1}, status="done")
    (tmp / "afile").write_text("x")
    (tmp / "adir").mkdir()
    (tmp / "blocked").mkdir()
    (tmp / "blocked" / "models").write_text("a file where fine-tuned checkpoints go")
    long = "x" * 300
    prune = ["prune", "--method", "omp", "--sparsity", "0.5", "--limit", "10", "--db", str(good.path)]
    return [
        ([*prune, "--mask-out", "/dev/full"], "cannot use a file: the disk is full; free space and rerun"),
        ([*prune, "--mask-out", str(tmp / "adir")], "--mask-out " + str(tmp / "adir") + " is a folder"),
        ([*prune, "--mask-out", str(tmp / "afile" / "m.safetensors")], f"folder {tmp / 'afile'} does not exist"),
        ([*prune, "--mask-out", str(tmp / (long + ".safetensors"))], "a name is longer than the file system's 255 bytes"),
        ([*prune, "--mask-out", "~no_such_user_lotus/m.safetensors"], "no such user folder ~no_such_user_lotus"),
        (["export", run_id, "--out", "/dev/full", "--db", str(good.path)], "cannot write /dev/full (No space left"),
        (["export", run_id, "--out", str(tmp / (long + ".csv")), "--db", str(good.path)], "a name is longer"),
        (["speed", "--methods", "heads", "--out", str(tmp / "afile"), "--db", str(good.path)],
         f"--out {tmp / 'afile'} is a file; give a folder"),
        (["report", "--out", str(tmp / "adir"), "--db", str(good.path)], "is a folder; give a file path inside it"),
        (["finetune", "--epochs", "1", "--db", str(tmp / "blocked" / "r.db")],
         f"the checkpoint folder {tmp / 'blocked' / 'models'} is a file"),
        (["runs", "--db", str(tmp / (long + ".db"))], "the name is too long for the file system"),
        (["evaluate", "--limit", "10", "--db", str(tmp / "afile" / "x.db")], "cannot be created (File exists)"),
        (["evaluate", "--limit", "10", "--db", "~no_such_user_lotus/x.db"], "no such user folder ~no_such_user_lotus"),
        (["info", "--dataset", str(tmp / long), "--db", str(good.path)], "the name is too long for the file system"),
        (["info", "--data-root", str(tmp / long), "--db", str(good.path)], "the name is too long for the file system"),
        (["info", "--model", str(tmp / (long + ".safetensors")), "--db", str(good.path)], "the name is too long"),
    ]


PATH_CASES = 16


def test_bad_paths_get_one_line_before_anything_runs(capsys, tmp_path):
    cases = path_cases(tmp_path)
    assert len(cases) == PATH_CASES
    for args, message in cases:
        assert_one_line(*run_cli(capsys, *args), message)
    assert not (tmp_path / "blocked" / "r.db").exists() or Store(tmp_path / "blocked" / "r.db").runs().empty


# SQLite files that are not this LOTUS's store: refused before anything reads or writes them.
def _sqlite(path: Path, sql: str, version: int = 0) -> Path:
    import sqlite3

    con = sqlite3.connect(path)
    con.executescript(sql)
    con.execute(f"PRAGMA user_version={version}")
    con.commit()
    con.close()
    return path


def store_schema_cases(tmp: Path) -> list[tuple[list[str], str, Path]]:
    from lotus_core.results.schema import SCHEMA

    other = _sqlite(tmp / "other.db", "CREATE TABLE notes(id INTEGER, body TEXT);")
    runs_other = _sqlite(tmp / "runs_other.db", "CREATE TABLE runs(id TEXT, name TEXT);")
    future = _sqlite(tmp / "future.db", SCHEMA, 99)
    future_col = _sqlite(tmp / "future_col.db", SCHEMA + "ALTER TABLE runs ADD COLUMN shard INTEGER NOT NULL DEFAULT 1;")
    future_table = _sqlite(tmp / "future_table.db", SCHEMA + "CREATE TABLE lineage(a TEXT);")
    (tmp / "zero.db").write_bytes(b"")
    return [
        (["runs", "--db", str(other)], "is an SQLite file of another program (tables: notes)", other),
        (["evaluate", "--limit", "10", "--db", str(other)], "not a LOTUS results store", other),
        (["runs", "--db", str(runs_other)], "is not a LOTUS results store (its runs table lacks config)", runs_other),
        (["runs", "--db", str(future)], "was written by a newer LOTUS (store version 99, this one knows 1)", future),
        (["evaluate", "--limit", "17", "--db", str(future)], "was written by a newer LOTUS", future),
        (["evaluate", "--limit", "17", "--db", str(future_col)], "has 'shard', unknown to this LOTUS", future_col),
        (["runs", "--db", str(future_table)], "has 'lineage', unknown to this LOTUS", future_table),
        (["runs", "--db", str(tmp / "zero.db")], "is empty (0 bytes), not a results store", tmp / "zero.db"),
        (["export", "abc", "--out", str(tmp / "x.csv"), "--db", str(tmp / "zero.db")], "is empty (0 bytes)",
         tmp / "zero.db"),
    ]


STORE_SCHEMA_CASES = 9


def test_stores_of_other_schemas_and_versions_are_refused_untouched(capsys, tmp_path):
    cases = store_schema_cases(tmp_path)
    assert len(cases) == STORE_SCHEMA_CASES
    for args, message, path in cases:
        before = path.read_bytes()
        assert_one_line(*run_cli(capsys, *args), message)
        assert path.read_bytes() == before  # neither read into nor written (the 0-byte file stays 0 bytes)


def test_a_new_store_carries_its_version_and_an_old_one_is_upgraded(tmp_path):
    import sqlite3

    from lotus_core.results.schema import SCHEMA, STORE_VERSION

    assert STORE_VERSION == 1
    Store(tmp_path / "new.db")
    old = _sqlite(tmp_path / "old.db", SCHEMA)  # a store of an earlier LOTUS: user_version 0
    Store(old)
    for path in (tmp_path / "new.db", old):
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1


# Image folders: dangling links, loops, one class, exotic pixel modes.
def dataset_cases(tmp: Path) -> list[tuple[list[str], str]]:
    dangling = small_folder(tmp / "dangling", ["a", "b"])
    (dangling / "a" / "gone.png").symlink_to(tmp / "nowhere.png")
    dangling_dir = small_folder(tmp / "dangling_dir", ["a", "b"])
    (dangling_dir / "c").symlink_to(tmp / "no-folder")
    one = small_folder(tmp / "one", ["only"])
    split = tmp / "split"
    small_folder(split / "train", ["a"]), small_folder(split / "test", ["a"])
    from PIL import Image

    big = small_folder(tmp / "bigfloat", ["a", "b"])
    Image.new("F", (28, 28), 2.5).save(big / "a" / "f.tiff")
    ten = small_folder(tmp / "ten", [f"c{i}" for i in range(10)])
    return [
        (["info", "--dataset", str(dangling)], f"{dangling / 'a' / 'gone.png'} is a dangling link or not a file"),
        (["info", "--dataset", str(dangling_dir)], "is a dangling link or not a file"),
        (["info", "--dataset", str(one)], "has one class ('only'); a classifier needs at least two class folders"),
        (["finetune", "--dataset", str(split), "--epochs", "1"], "has one class ('a')"),
        (["info", "--dataset", str(big)], "float image values are not intensities in [0, 1]"),
        (["evaluate", "--dataset", "fashion-mnist", "--data-root", str(ten), "--limit", "10"],
         f"--data-root {ten} holds no Fashion-MNIST t10k-images/labels idx files"),
        (["evaluate", "--dataset", str(ten), "--data-root", str(one), "--limit", "10"],
         "--data-root applies to named datasets"),
    ]


DATASET_CASES = 7


def test_bad_image_folders_get_one_line(capsys, tmp_path):
    refused_without_a_row(capsys, tmp_path, dataset_cases(tmp_path), DATASET_CASES)


def test_a_symlink_loop_counts_each_real_file_once(tmp_path):
    from PIL import Image

    from lotus_core.data import load_dataset

    root = tmp_path / "loop"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.new("L", (8, 8), 10 * i + (c == "b")).save(root / c / f"{i}.png")
    (root / "a" / "again").symlink_to(root)  # a loop back to the root
    (root / "b" / "self").symlink_to(root / "b")  # a self-loop
    train, test = load_dataset(str(root), "train"), load_dataset(str(root), "test")
    assert len(train) + len(test) == 10 and test.labels.tolist() == [0, 1]


def test_exotic_pixel_modes_are_converted_exactly_and_said_once(tmp_path):
    import numpy as np
    from PIL import Image

    from lotus_core.data import load_dataset
    from lotus_core.data.folders import to_rgb

    # 16-bit gray: 65535 -> 255, 32896 -> 128 (x 255/65535, rounded); Pillow alone clips all three to 255
    gray16 = Image.fromarray(np.array([[65535, 32896, 257]], dtype=np.uint16))
    assert np.asarray(to_rgb(gray16)[0])[0, :, 0].tolist() == [255, 128, 1]
    assert to_rgb(gray16)[1] == "16-bit gray scaled to 8 bits"
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")
    assert np.asarray(to_rgb(floats)[0])[0, :, 0].tolist() == [0, 128, 255]
    la = Image.fromarray(np.array([[[100, 255], [100, 0], [0, 128]]], dtype=np.uint8), "LA")
    # over white: alpha a -> round(v * a/255 + 255 * (1 - a/255)), Pillow's alpha_composite
    assert np.asarray(to_rgb(la)[0])[0, :, 0].tolist() == [100, 255, 127]
    assert to_rgb(Image.new("1", (2, 1), 1))[1] == "1-bit black/white as 0/255"
    assert to_rgb(Image.new("RGB", (2, 1)))[1] is None and to_rgb(Image.new("L", (2, 1)))[1] is None
    root = tmp_path / "modes"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((8, 8), 257 * (40 * i + 1), dtype=np.uint16)).save(root / c / f"{i}.png")
    train, test = load_dataset(str(root), "train"), load_dataset(str(root), "test")
    assert test.notes == [f"images of {root}: 10 16-bit gray scaled to 8 bits"]  # said once, for every image
    pixels = train.images[:, 0, 0, 0].tolist() + test.images[:, 0, 0, 0].tolist()
    assert sorted(pixels) == sorted([1, 41, 81, 121, 161] * 2)  # 257 * v scaled by 255/65535 is v exactly


def test_the_cli_says_a_conversion_once(capsys, tmp_path):
    import numpy as np
    from PIL import Image

    root = tmp_path / "rgba"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((8, 8, 4), dtype=np.uint8) + i, "RGBA").save(root / c / f"{i}.png")
    code, out, err = run_cli(capsys, "info", "--dataset", str(root), "--db", str(tmp_path / "r.db"))
    assert code == 0 and err == f"lotus info: note: images of {root}: 6 transparency composited over white\n", err


# A fine-tune that diverges writes no checkpoint: the rule, pinned on its defining cases.
def test_divergence_rule():
    from lotus_core.training.finetune import diverged

    assert diverged(1.0, {"accuracy": 0.0, "loss": 9.0}, 10) == "test accuracy fell from 1.000 to 0.000, chance is 0.100"
    assert diverged(0.9, {"accuracy": 0.49, "loss": 1.0}, 10) is not None  # below 0.1 + (0.9 - 0.1) / 2 = 0.5
    assert diverged(0.9, {"accuracy": 0.5, "loss": 1.0}, 10) is None
    assert diverged(0.12, {"accuracy": 0.0, "loss": 2.0}, 10) is None  # began at chance: a new head, not a divergence
    assert diverged(0.1, {"accuracy": 0.9, "loss": float("nan")}, 10) == "training loss nan"


def test_a_diverging_fine_tune_is_refused_without_a_checkpoint(capsys, tmp_path, monkeypatch):
    from lotus_core.training import finetune as ft

    monkeypatch.setenv("LOTUS_NO_SYSTEM_DATA", "1")
    monkeypatch.setattr(ft, "diverged", lambda start, last, classes: "test accuracy fell from 0.900 to 0.000")
    db = tmp_path / "r.db"
    code, out, err = run_cli(capsys, "finetune", "--head-only", "--epochs", "1", "--train-limit", "8", "--limit", "8",
                             "--batch-size", "4", "--db", str(db))
    assert (code, out) == (2, "") and "Traceback" not in err  # the progress bar, then the one error line
    assert err.endswith("lotus finetune: error: the fine-tune diverged (test accuracy fell from 0.900 to 0.000); no "
                        "checkpoint written: lower --lr (now 0.001) and rerun\n"), err
    runs = Store(db).runs()
    assert runs["status"].tolist() == ["failed"] and not (tmp_path / "models").exists()


# Faults: a full disk interrupts the run (not failed, not left running) and it resumes once space is freed.
def test_a_full_disk_interrupts_the_run_and_it_resumes(capsys, tmp_path, monkeypatch):
    import sqlite3

    from lotus_core.results import store as store_mod

    db = tmp_path / "r.db"
    real = store_mod.Store.put_point
    calls = {"n": 0}

    def full_after_two(self, run_id, key, data):
        calls["n"] += 1
        if calls["n"] > 2:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, run_id, key, data)

    argv = ["sweep", "--methods", "omp", "--sparsities", "0.1,0.2,0.3,0.4", "--limit", "20", "--json", "--db", str(db)]
    monkeypatch.setattr(store_mod.Store, "put_point", full_after_two)
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "") and "Traceback" not in err  # progress lines, then the one error line
    assert err.splitlines()[-1] == ("lotus sweep: error: the disk is full; free space and rerun to resume (finished "
                                    "results are kept)")
    run = Store(db).runs(kind="sweep").iloc[0]
    assert run["status"] == "interrupted" and run["error"] == "the disk is full; free space and rerun to resume"
    assert sum(len(Store(db).points(r)) for r in Store(db).runs()["id"]) == 2  # what was written before is kept
    monkeypatch.setattr(store_mod.Store, "put_point", real)  # space freed
    code, out, err = run_cli(capsys, *argv)
    assert code == 0 and json.loads(out)["run_id"] == run["id"]
    assert Store(db).get_run(run["id"])["status"] == "done"
    fresh = [*argv[:-1], str(tmp_path / "fresh.db")]
    assert run_cli(capsys, *fresh)[1] == out  # the resumed sweep equals an uninterrupted one


def issue25_inputs() -> int:
    """Distinct bad inputs the issue-25 tests above add."""
    return (len(SEEDS_AND_RATES) + len(BEFORE_A_RUN) + len(HEADS) + ARCH_AND_WEIGHTS_CASES + len(REFUSED_WEIGHTS) + 2
            + PATH_CASES + STORE_SCHEMA_CASES + DATASET_CASES + 2 + 1 + 1 + 1)  # + fp16/64, loop, modes, diverge, full


def test_a_killed_workers_row_is_cleaned(tmp_path):
    import socket

    from lotus_core import jobs

    store = Store(tmp_path / "r.db")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is now a process that is gone (as after kill -9: no goodbye row deletion)
    store.worker_beat("dead-worker", dead.pid, socket.gethostname())
    store.worker_beat("other-host", 12345, "another-machine")  # another machine's worker is judged by heartbeat
    assert [w["token"] for w in jobs.live_workers(store)] == ["other-host"]
    import sqlite3

    rows = sqlite3.connect(store.path).execute("SELECT token FROM workers").fetchall()
    assert rows == [("other-host",)]


def test_a_decompression_bomb_upload_is_refused_in_one_line(tmp_path):
    from lotus_core.core.errors import LotusError
    from lotus_core.patches.upload import load_upload, load_uploads

    bomb = write_png(tmp_path / "bomb.png", 50_000, 50_000).read_bytes()  # 69 bytes claiming 2.5 gigapixels
    assert len(bomb) < 100
    with pytest.raises(LotusError, match=r"^bomb.png declares too many pixels to decode safely"):
        load_upload(bomb, {"input_size": (1, 28, 28)}, "bomb.png")
    images, errors = load_uploads([("bomb.png", bomb)], {"input_size": (1, 28, 28)})
    assert images is None and len(errors) == 1 and "\n" not in errors[0]


def test_a_run_whose_process_died_is_listed_interrupted_not_running(tmp_path):
    """A process stopped by a full disk (no room left to record it) or kill -9 leaves its row 'running': the
    listing says 'interrupted', without writing the store, and a rerun resumes it as before."""
    import socket

    store = Store(tmp_path / "r.db")
    run_id = store.start_run("evaluate", {"x": 1}, status="queued")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert store.claim(run_id, f"{socket.gethostname()}:{dead.pid}:abcd1234", lease_s=15)
    listed = store.runs().iloc[0]
    assert (listed["status"], listed["error"]) == ("interrupted", "its process ended; rerun to resume")
    assert store.get_run(run_id)["status"] == "running"  # the row itself is untouched (a read-only listing)
    live = store.start_run("evaluate", {"x": 2}, status="queued")
    assert store.claim(live, f"{socket.gethostname()}:{os.getpid()}:abcd1234", lease_s=15)
    assert store.runs().set_index("id").loc[live, "status"] == "running"  # a live owner's run stays running
