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
from lotus_core.models.loading import save_checkpoint
from lotus_core.results.store import Store
from tests.conftest import TINY_ARCH, make_tiny_vit
from tests.test_cli_core import run_cli

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
    (["sweep", "--n", "5", "--m", "4"], "N:M pattern 5:4 needs 1 <= N <= M"),
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
        (["prune", "--method", "omp", "--dataset", str(three), "--limit", "3"],
         "head not trained on this dataset (10 outputs, the dataset has 3 classes): fine-tune it first"),
        (["prune", "--method", "omp", "--dataset", str(ten)], "head not trained on this dataset (trained on fashion-mnist"),
        (["prune", "--method", "omp", "--model", str(ckpt), "--dataset", str(three), "--limit", "3"],
         "head not trained on this dataset (10 outputs, the dataset has 3 classes)"),
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
    assert distinct_bad_inputs() == 130 >= 60  # the README's reliability section quotes this figure
