"""Every CLI experiment kind on CUDA at small size, CPU/GPU agreement, and GPU throughput.

    python benchmarks/gpu_check.py [--quick] [--device cpu]

Runs, on the default model and on a 224 px timm ViT (vit_small_patch16_224, random weights),
with ``--device cuda``: evaluate, prune (OMP, mask written), sweep (both protocols), sensitivity,
lth, lth-control, soup, lottery-train, fidelity, patches, finetune and report, each through
``python -m lotus_core`` in-process on a fresh store. It then checks that CPU and GPU agree: the
OMP masks at 50% are identical and the GPU accuracy lies inside the CPU accuracy's 95% CI; and
prints images/s of evaluation and fine-tuning on the GPU. Under 5 minutes on one GPU.
``--device cpu --quick`` runs the same commands on the CPU (a dry run of the script itself).

Exit status: 0 every check passed; 1 a check failed (listed); 2 no CUDA GPU on this machine
(nothing was run: say so in the closing note).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common_models import vit224_checkpoint  # noqa: E402
from lotus_core import cli  # noqa: E402
from lotus_core.core.mask import Mask  # noqa: E402

SMALL = {  # command -> arguments at small size (every experiment kind of the CLI)
    "evaluate": ["--limit", "500"],
    "prune": ["--method", "omp", "--sparsity", "0.5", "--limit", "500"],
    "sweep": ["--methods", "omp,wanda,random,nm", "--sparsities", "0:0.8:0.2", "--limit", "300"],
    "sweep-essential": ["--protocol", "essential", "--methods", "omp", "--sparsities", "0.5", "--limit", "300",
                        "--ft-epochs", "1", "--ft-train-limit", "256"],
    "sensitivity": ["--sparsities", "0.5", "--limit", "200"],
    "lth": ["--target", "0.4", "--steps", "5", "--limit", "200", "--batch-size", "32"],
    "lth-control": ["--target", "0.4", "--steps", "5", "--limit", "200", "--batch-size", "32", "--round", "1"],
    "soup": ["--target", "0.3", "--denoisers", "2", "--lookahead-steps", "3", "--finetune-steps", "3",
             "--limit", "200", "--batch-size", "32"],
    "lottery-train": ["--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "32", "--limit", "200"],
    "fidelity": ["--score", "cls,rollout", "--limit", "32"],
    "patches": ["--index", "0", "--index", "1"],
    "finetune": ["--epochs", "1", "--train-limit", "512", "--limit", "300"],
}


def cli_json(argv: list[str]) -> tuple[int, dict | str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, (json.loads(out.getvalue()) if rc == 0 else err.getvalue().strip().splitlines()[-1])


def throughput(model_arg: str, device: str, db: Path) -> dict:
    """Images/s of evaluation and of fine-tuning steps for ``model_arg`` on ``device``."""
    from lotus_core.context import open_context
    from lotus_core.training.train import TrainConfig, train

    ctx = open_context(model_arg, db=db, device=device)
    n = 2000 if ctx.data_config["input_size"][-1] < 100 else 512
    ctx.evaluate(limit=64)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    ctx.evaluate(limit=n)
    torch.cuda.synchronize()
    eval_ips = n / (time.perf_counter() - t0)
    model = ctx.copy_model()
    batch, steps = 64, 20
    train(model, ctx.train, TrainConfig(steps=2, batch_size=batch), ctx.data_config)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    train(model, ctx.train, TrainConfig(steps=steps, batch_size=batch), ctx.data_config)
    torch.cuda.synchronize()
    return {"eval_images_per_s": round(eval_ips), "train_images_per_s": round(batch * steps / (time.perf_counter() - t0))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the default model only")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run of the commands")
    args = parser.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU on this machine; nothing was run (exit 2). Run it where a GPU is present.")
        return 2
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = {"default": "default"}
        if not args.quick:
            models["vit_small_224"] = str(vit224_checkpoint(tmp))
        for label, model in models.items():
            t_model = time.perf_counter()
            for kind, extra in SMALL.items():
                command = kind.replace("-essential", "")
                if command == "sweep" and "essential" in kind and label != "default":
                    continue  # the essential protocol at 224 px: covered on the default model
                t0 = time.perf_counter()
                rc, out = cli_json([command, "--model", model, "--device", args.device, "--db", str(tmp / f"{label}.db"),
                                    "--json", *extra])
                status = "ok" if rc == 0 else f"FAILED: {out}"
                print(f"{label:14s} {kind:16s} {time.perf_counter() - t0:6.1f} s  {status}", flush=True)
                if rc != 0:
                    failures.append(f"{label} {kind}: {out}")
            if args.device == "cpu":
                continue  # a dry run: no second device to agree with, no GPU to time
            masks, accs = {}, {}
            for device in ("cpu", "cuda"):
                mask_path = tmp / f"{label}-{device}.safetensors"
                rc, out = cli_json(["prune", "--model", model, "--device", device, "--db", str(tmp / f"{label}-{device}-agree.db"),
                                    "--json", "--method", "omp", "--sparsity", "0.5", "--limit", "500", "--fp32",
                                    "--mask-out", str(mask_path)])
                if rc != 0:
                    failures.append(f"{label} prune on {device}: {out}")
                    continue
                masks[device], accs[device] = Mask.load(mask_path), out
            if len(masks) == 2:
                same = all(torch.equal(masks["cpu"][k], masks["cuda"][k]) for k in masks["cpu"])
                lo, hi = accs["cpu"]["ci95"]
                inside = lo <= accs["cuda"]["accuracy"] <= hi
                print(f"{label:14s} OMP 50% masks identical on CPU and GPU: {same}; GPU accuracy "
                      f"{accs['cuda']['accuracy']:.4f} inside the CPU CI [{lo:.4f}, {hi:.4f}]: {inside}")
                failures += [] if same else [f"{label}: OMP masks differ between CPU and GPU"]
                failures += [] if inside else [f"{label}: GPU accuracy outside the CPU CI"]
            print(f"{label:14s} throughput on {torch.cuda.get_device_name(0)}: "
                  f"{throughput(model, 'cuda', tmp / f'{label}-tp.db')}; all kinds {time.perf_counter() - t_model:.0f} s",
                  flush=True)
    for f in failures:
        print("FAILED:", f)
    print("gpu_check:", "all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
