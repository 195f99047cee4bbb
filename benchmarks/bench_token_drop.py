"""Inference throughput with token dropping against the full token set, side by side in one run.

A data lottery ticket drops a fraction d of the patches; with token dropping
(:func:`lotus_core.patches.select.drop_tokens`) the transformer really computes on
``prefix + P - dropped`` tokens. This measures images/s under bf16 autocast (where it is fast,
see :mod:`lotus_core.core.device`) at d = 0.1, 0.25, 0.5 against the ordinary forward (fused
attention, all tokens) on

- the default model (7x7 grid = 49 patches + CLS, 28x28 Fashion-MNIST), and
- a vit_small-sized timm ViT (random init, 14x14 grid = 196 patches + CLS, 224x224), to show
  the effect where attention's quadratic cost and the MLPs dominate.

The kept patches come from the random scorer (throughput does not depend on which patches
are kept, only on how many). Every configuration is timed once per round, rounds interleave
the configurations (so background load hits them alike), and the median over rounds is reported.

Usage: python benchmarks/bench_token_drop.py [--rounds 5] [--batch 500] [--small-batch 32]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import timm  # noqa: E402
import torch  # noqa: E402

from lotus_core.data import load_dataset  # noqa: E402
from lotus_core.data.images import to_model_input  # noqa: E402
from lotus_core.core.device import autocast, bf16_available, default_device  # noqa: E402
from lotus_core.models.arch import data_config  # noqa: E402
from lotus_core.models.loading import load_model  # noqa: E402
from lotus_core.patches import patch_grid, score_patches  # noqa: E402
from lotus_core.patches.select import drop_count, drop_tokens, select_patches  # noqa: E402

DROPS = (0.1, 0.25, 0.5)


def timed(fn, x: torch.Tensor, device: torch.device) -> float:
    """Seconds for one batch (bf16 autocast where fast, inference mode)."""
    with torch.inference_mode(), autocast(device):
        t0 = time.perf_counter()
        fn(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def bench_model(name: str, model: torch.nn.Module, x: torch.Tensor, rounds: int, device: torch.device) -> list[dict]:
    """Rows for the full forward and token dropping at each drop ratio (median images/s over rounds)."""
    model = model.to(device).eval()
    x = x.to(device)
    grid = patch_grid(model, x.shape[-2:])
    configs = {"full": (0.0, model)}
    for d in DROPS:
        keep = select_patches(score_patches(model, x, "random"), d).to(device)
        configs[f"drop {d:g}"] = (d, lambda inp, keep=keep: drop_tokens(model, inp, keep))
    times = {k: [] for k in configs}
    for fn_name, (_, fn) in configs.items():  # warm-up (allocations, oneDNN kernel selection)
        timed(fn, x, device)
    for _ in range(rounds):
        for key, (_, fn) in configs.items():
            times[key].append(timed(fn, x, device))
    full = statistics.median(times["full"])
    rows = []
    for key, (d, _) in configs.items():
        t = statistics.median(times[key])
        dropped = drop_count(grid.num_patches, d)
        rows.append({"model": name, "setting": key, "tokens": grid.prefix_tokens + grid.num_patches - dropped,
                     "dropped": dropped, "patches": grid.num_patches, "images_s": len(x) / t, "speedup": full / t})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500, help="images per batch, default model")
    parser.add_argument("--small-batch", type=int, default=32, help="images per batch, vit_small at 224")
    args = parser.parse_args()
    device = default_device()
    test = load_dataset("fashion-mnist", "test")

    default = load_model("default")
    x_default = to_model_input(test.images[: args.batch], data_config(default))
    torch.manual_seed(0)
    small = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=10).eval()
    x_small = to_model_input(test.images[: args.small_batch], data_config(small))

    rows = bench_model("default (28x28, 7x7 grid)", default, x_default, args.rounds, device)
    rows += bench_model("vit_small random init (224x224, 14x14 grid)", small, x_small, args.rounds, device)

    print(f"device: {device}, bf16 autocast fast here: {bf16_available(device)}, threads: {torch.get_num_threads()}, "
          f"median of {args.rounds} interleaved rounds; batches: {args.batch} (default), {args.small_batch} (vit_small)")
    print("| model | setting | tokens (prefix + kept) | patches dropped | images/s | speed-up vs full |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['setting']} | {r['tokens']} | {r['dropped']} of {r['patches']} | "
              f"{r['images_s']:,.0f} | {r['speedup']:.2f}x |")
    for name in dict.fromkeys(r["model"] for r in rows):
        ratios = ", ".join(f"{r['setting']}: {r['speedup']:.2f}x" for r in rows if r["model"] == name and r["setting"] != "full")
        print(f"{name}: {ratios}")


if __name__ == "__main__":
    main()
