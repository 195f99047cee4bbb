"""The speed experiment: every configuration measured at every batch size, stored as it is produced.

Each (method, setting, batch size) is one stored point, written as soon as it is measured, so a
long measurement resumes where it stopped. The run's key holds the device, its name, the thread
count and the torch version (timings differ between them); accuracies are stored separately
(kind ``speed-accuracy``) and shared by every run with the same model, data and setting.

Latency is per batch (ms); images/s = batch size / latency; speed-up = dense latency / latency
at the same batch size; FLOPs are per image; peak memory is for one batch (weights included);
accuracy is a fraction on the fixed seeded test subset (fp32, the measured forward itself).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd
import torch

from ..core.context import Context
from ..core.device import default_device
from ..core.errors import LotusError
from ..core.isolation import seeded
from ..data import subset_indices, to_model_input
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run, run_experiment
from ..training.evaluate import predict, wilson_interval
from ..training.train import TrainConfig, train
from . import METHODS, get_method, measure
from .variants import Variant, Variants

ROW_FIELDS = ["method", "family", "setting", "value", "batch_size", "latency_ms", "iqr_ms", "images_per_s", "speedup",
              "flops", "params", "bytes", "peak_mem_bytes", "accuracy", "accuracy_finetuned", "tokens", "device",
              "threads", "dtype", "unavailable"]


EPS = 0.01  # default tolerance below dense accuracy for "within eps" (absolute fraction; not part of a run's key:
# it changes no measured number)


def _device() -> str:
    return default_device().type


@dataclass(frozen=True)
class SpeedConfig:
    """What to measure. Fractions in [0, 1]; the last four fields name the machine (they key the run)."""

    methods: tuple[str, ...] = ("dense", "masked", "csr", "nm-2:4", "heads", "channels", "evit", "tome",
                                "patch-dropout")  # keys of METHODS (dense is always measured: the reference)
    batch_sizes: tuple[int, ...] = (1, 32, 256)  # images per timed forward
    best_batch: bool = True  # also measure at the device's best batch size (the dense model's most images/s, found
    # by doubling from 1; see measure.best_batch_size), stored with the run
    sparsities: tuple[float, ...] = (0.5, 0.7, 0.9, 0.95)  # masked and csr: global magnitude sparsity of the blocks
    ratios: tuple[float, ...] = (0.25, 0.5)  # heads / channels: fraction removed in every block
    importance: str = "magnitude"  # structural ranking: magnitude or taylor
    keep_rates: tuple[float, ...] = (0.7, 0.5)  # evit: fraction of patch tokens kept at each reducing block
    fuse: bool = True  # evit: fuse the dropped tokens into one
    tome_r: tuple[int, ...] = (4, 8)  # tome: tokens merged per block
    drops: tuple[float, ...] = (0.25, 0.5)  # patch-dropout: fraction of patch tokens dropped at random
    limit: int = 1000  # test images for the accuracies (fixed seeded subset)
    seed: int = 0  # test subset, calibration images, patch dropout's draws
    finetune_steps: int = 0  # structural: also the accuracy after this many AdamW steps (0: one-shot only)
    finetune_lr: float = 1e-4  # peak learning rate of that fine-tune (cosine decay)
    min_run_time: float = 0.5  # seconds of timed blocks per configuration and batch size
    clock: str = "wall"  # "wall": latency; "cpu": process CPU time (a shared machine; see measure.time_forward)
    device: str = field(default_factory=_device)  # "cpu" or "cuda"
    device_name: str = field(default_factory=lambda: measure.device_name(default_device()))  # CPU model / GPU name
    threads: int = field(default_factory=torch.get_num_threads)  # torch intra-op threads while timing
    torch_version: str = torch.__version__  # timings differ between releases

    def __post_init__(self) -> None:
        """Normalise: sorted, de-duplicated tuples, and the settings of methods not measured reset, so that two
        requests that measure the same thing are one stored run."""
        used = set(self.methods)
        unused = {"sparsities": not used & {"masked", "csr"}, "ratios": not used & {"heads", "channels"},
                  "keep_rates": "evit" not in used, "tome_r": "tome" not in used, "drops": "patch-dropout" not in used}
        for name in ("batch_sizes", "sparsities", "ratios", "keep_rates", "tome_r", "drops"):
            values = () if unused.get(name) else tuple(sorted(set(getattr(self, name)), reverse=name == "keep_rates"))
            object.__setattr__(self, name, values)
        order = [m for m in METHODS if m in used] + [m for m in dict.fromkeys(self.methods) if m not in METHODS]
        object.__setattr__(self, "methods", tuple(order))  # registry order (unknown names last: the run rejects them)
        if unused["ratios"]:
            object.__setattr__(self, "importance", "magnitude")
            object.__setattr__(self, "finetune_steps", 0)
        if unused["keep_rates"]:
            object.__setattr__(self, "fuse", True)


def first_view(limit: int) -> SpeedConfig:
    """What the Speed page measures and draws on its first load (one setting per method, batch 32: about 10 s
    inline), and what the demo stores for the Report's "Does it run faster?": one measurement, one story."""
    return SpeedConfig(batch_sizes=(32,), sparsities=(0.9,), ratios=(0.5,), keep_rates=(0.5,), tome_r=(8,),
                       drops=(0.5,), best_batch=False, limit=limit, min_run_time=0.2)


def _inputs(ctx: Context, batch_size: int, device: torch.device) -> torch.Tensor:
    """The first ``batch_size`` test images (repeated when the test set is smaller) as model input."""
    idx = torch.arange(batch_size) % len(ctx.test)
    return to_model_input(ctx.test.images[idx], ctx.data_config).to(device)


def _score(ctx: Context, model: torch.nn.Module, forward, config: SpeedConfig, device: torch.device) -> dict:
    """Top-1 accuracy of ``forward`` on the fixed test subset (fp32), with its 95% Wilson interval."""
    idx = subset_indices(len(ctx.test), config.limit, config.seed)
    with seeded(config.seed):  # patch dropout draws from torch's global generator (timm's PatchDropout)
        preds = predict(model.to(device).eval(), ctx.test.images[idx], ctx.data_config, bf16=False,
                        forward=lambda m, x, start: forward(x))
    correct = int((preds == ctx.test.labels[idx]).sum())
    return {"accuracy": correct / len(idx), "n": len(idx), "ci95": list(wilson_interval(correct, len(idx)))}


def _accuracy_params(method: str, value: float, config: SpeedConfig, device: torch.device, **extra) -> dict:
    """What keys one stored accuracy (kind speed-accuracy; the model and dataset are added by the store's key)."""
    if METHODS[method].family == "structural":
        extra["importance"] = config.importance
    if method == "evit":
        extra["fuse"] = config.fuse
    return {"method": method, "value": round(value, 6), "limit": config.limit, "seed": config.seed,
            "device": device.type, **extra}


def accuracy(ctx: Context, variant: Variant, config: SpeedConfig, device: torch.device) -> dict:
    """Accuracy of ``variant``'s forward on the test subset, stored (kind speed-accuracy)."""
    method, value = variant.accuracy_of or (variant.method, variant.value)
    return run_experiment(ctx, "speed-accuracy", _accuracy_params(method, value, config, device),
                          lambda c, _, run: _score(ctx, variant.model, variant.forward, config, device))


def finetuned_accuracy(ctx: Context, variant: Variant, config: SpeedConfig, device: torch.device) -> float:
    """Accuracy of a structurally pruned variant after ``config.finetune_steps`` steps of the training loop (stored)."""
    def compute(c: Context, _, run: Run) -> dict:
        model = copy.deepcopy(variant.trainable).to(device)  # trained where it sits
        train(model, ctx.train, TrainConfig(steps=config.finetune_steps, batch_size=64, lr=config.finetune_lr,
                                            weight_decay=0.0, seed=config.seed), ctx.data_config)
        return _score(ctx, model, model, config, device)

    params = _accuracy_params(variant.method, variant.value, config, device, finetune_steps=config.finetune_steps,
                              finetune_lr=config.finetune_lr)
    return run_experiment(ctx, "speed-accuracy", params, compute)["accuracy"]


def measure_row(variant: Variant, x: torch.Tensor, threads: int, min_run_time: float, clock: str = "wall") -> dict:
    """Latency, FLOPs, size and memory of ``variant`` on the batch ``x`` (no accuracy, no speed-up)."""
    timing = measure.time_forward(variant.forward, x, threads, min_run_time, clock=clock)
    latency = timing.median_s
    return {"latency_ms": 1e3 * latency, "iqr_ms": 1e3 * timing.iqr_s, "images_per_s": len(x) / latency,
            "flops": measure.count_flops(variant.forward, x[:1], variant.model), "params": measure.count_params(variant.model),
            "bytes": measure.checkpoint_bytes(variant.model),
            "peak_mem_bytes": measure.peak_memory(variant.forward, x, variant.model), "threads": timing.threads}


def speed(ctx: Context, config: SpeedConfig, run: Run) -> dict:
    """Experiment: the dense reference and every method's settings at every batch size (see the module docstring)."""
    for name in config.methods:
        get_method(name)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise LotusError("this run asks for CUDA but no CUDA device is present; measure on the CPU")
    device = torch.device(config.device)
    dense_acc = ctx.dense_accuracy(limit=config.limit, seed=config.seed, bf16=False)
    builder = Variants(ctx, device, config.importance, config.fuse, seed=config.seed)
    plan = [(m, s) for m in dict.fromkeys(("dense", *config.methods)) for s in METHODS[m].settings(config)]
    search = run.get(BEST_BATCH)
    if config.best_batch and search is None:
        dense = METHODS["dense"].build(builder, 0.0)
        run.progress(done=0, planned=len(plan) * len(config.batch_sizes), method="dense",
                     setting="searching the best batch size", batch_size=None)
        search = measure.best_batch_size(dense.forward, lambda bs: _inputs(ctx, bs, device), dense.model,
                                         config.threads, config.min_run_time, config.clock).to_dict()
        run.point(BEST_BATCH, search)  # kept when the run is interrupted: the search is not repeated
    sizes = tuple(sorted({*config.batch_sizes, *([search["best"]] if search else [])}))
    total, done = len(plan) * len(sizes), 0
    inputs = {bs: None for bs in sizes}
    dense_latency: dict[int, float] = {}
    for method, value in plan:
        variant: Variant | None = None
        for bs in sizes:
            key = f"{method}|{value:g}|{bs}"
            row = run.get(key)
            if row is None:
                variant = variant or METHODS[method].build(builder, value)
                row = {"method": method, "family": METHODS[method].family, "setting": variant.setting,
                       "value": value, "batch_size": bs, "device": f"{config.device} ({config.device_name})",
                       "threads": config.threads, "dtype": variant.dtype, "tokens": variant.tokens}
                if variant.unavailable:
                    row["unavailable"] = variant.unavailable
                else:
                    if inputs[bs] is None:
                        inputs[bs] = _inputs(ctx, bs, device)
                    row.update(measure_row(variant, inputs[bs], config.threads, config.min_run_time, config.clock))
                    row["accuracy"] = accuracy(ctx, variant, config, device)["accuracy"]
                    if config.finetune_steps and variant.trainable is not None:
                        row["accuracy_finetuned"] = finetuned_accuracy(ctx, variant, config, device)
                    base = dense_latency.get(bs, row["latency_ms"] if method == "dense" else None)
                    row["speedup"] = base / row["latency_ms"] if base else None
                run.point(key, row)
            if method == "dense":
                dense_latency[bs] = row["latency_ms"]
            done += 1
            run.progress(done=done, planned=total, method=method, setting=row["setting"], batch_size=bs)
            run.check()
    result = SpeedResult(rows_frame(run.points()), dense_acc, run.id, config)
    return {"dense": dense_acc, "configurations": len(result.frame), "eps": EPS,
            "best": result.best(EPS).to_dict(orient="records"), "best_batch": search}


BEST_BATCH = "search|best-batch"  # the run's point holding the batch-size search (measure.BatchSearch.to_dict)


def progress_text(p: dict) -> str:
    """One line for a speed run's progress report: what is being measured."""
    return f"{p['method']} {p['setting']}" + (f" at batch {p['batch_size']}" if p.get("batch_size") else "")


def rows_frame(points: dict[str, dict]) -> pd.DataFrame:
    """The stored rows as a table with :data:`ROW_FIELDS` columns, in measuring order (without the search)."""
    return pd.DataFrame([p for k, p in points.items() if k != BEST_BATCH], columns=ROW_FIELDS)


@dataclass
class SpeedResult:
    """A finished (or partial) speed run as a table."""

    frame: pd.DataFrame  # ROW_FIELDS
    dense: dict  # the dense model's accuracy summary (fp32)
    run_id: str
    config: SpeedConfig | None = None
    best_batch: dict | None = None  # the batch-size search (measure.BatchSearch.to_dict), when the run made one

    @property
    def batch_sizes(self) -> list[int]:
        """The batch sizes measured, ascending (the asked ones and the device's best)."""
        return sorted(int(b) for b in self.frame["batch_size"].unique())

    @property
    def measured(self) -> pd.DataFrame:
        """Rows that ran (not unavailable)."""
        return self.frame[self.frame["unavailable"].isna()]

    def at(self, batch_size: int) -> pd.DataFrame:
        """Measured rows at ``batch_size`` with ``pareto`` (on the accuracy-latency frontier) and ``drop``
        (dense accuracy minus accuracy, absolute fraction) columns."""
        part = self.measured[self.measured["batch_size"] == batch_size].copy()
        part["drop"] = self.dense["accuracy"] - part["accuracy"]
        part["pareto"] = pareto(part)
        return part

    def rows(self) -> list[dict]:
        """JSON-ready rows: every ROW_FIELDS key (null where not measured), without the optional
        ``unavailable``, ``accuracy_finetuned`` and ``tokens`` when they do not apply."""
        out = []
        for row in self.frame.to_dict(orient="records"):
            clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            out.append({k: v for k, v in clean.items()
                        if v is not None or k not in ("unavailable", "accuracy_finetuned", "tokens")})
        return out

    def best(self, eps: float = EPS) -> pd.DataFrame:
        """Per batch size and family: the fastest row within ``eps`` (absolute fraction) of dense accuracy."""
        ok = self.measured[self.measured["accuracy"] >= self.dense["accuracy"] - eps - 1e-12]
        if ok.empty:
            return ok
        idx = ok.groupby(["batch_size", "family"])["speedup"].idxmax()
        return ok.loc[idx, ["batch_size", "family", "method", "setting", "speedup", "latency_ms", "images_per_s",
                            "accuracy"]].reset_index(drop=True)


def pareto(frame: pd.DataFrame) -> pd.Series:
    """True for rows no other row beats: none is at least as fast and at least as accurate, and better in one."""
    lat, acc = frame["latency_ms"].to_numpy(), frame["accuracy"].to_numpy()
    keep = []
    for i in range(len(frame)):
        dominated = ((lat <= lat[i]) & (acc >= acc[i]) & ((lat < lat[i]) | (acc > acc[i]))).any()
        keep.append(not dominated)
    return pd.Series(keep, index=frame.index, dtype=bool)


def run_speed(ctx: Context, config: SpeedConfig, on_progress: Callable[[dict], None] | None = None,
              refresh: bool = False) -> SpeedResult:
    """Run (or read back) a stored speed measurement and return its table."""
    summary = run_experiment(ctx, "speed", config, speed, on_progress=on_progress, refresh=refresh)
    return speed_result(ctx, summary, config)


def speed_result(ctx: Context, summary: dict, config: SpeedConfig | None = None) -> SpeedResult:
    return SpeedResult(rows_frame(ctx.store.points(summary["run_id"])), summary["dense"], summary["run_id"], config,
                       summary.get("best_batch"))


def export_structural(ctx: Context, method: str, ratio: float, importance: str = "magnitude", seed: int = 0):
    """The structurally pruned model (``heads`` or ``channels`` at ``ratio``) as checked safetensors + ONNX
    (:class:`lotus_core.speed.export.Exported`)."""
    from .export import export

    if get_method(method).family != "structural":
        raise LotusError(f"only structurally pruned models are exported ({method!r} is not heads or channels)")
    variant = METHODS[method].build(Variants(ctx, torch.device("cpu"), importance, seed=seed), ratio)
    return export(variant.model, _inputs(ctx, 8, torch.device("cpu")),
                  extra={"lotus_pruned": f"{method} {ratio:g}", "lotus_base": ctx.model_id})


def speed_headline(s: dict) -> Headline:
    """A speed run's headline: the fastest configuration within eps at its largest batch size."""
    rows = [r for r in s["best"] if r["family"] != "reference"]
    if not rows:
        return Headline(s["dense"]["accuracy"], None, f"{s['configurations']} rows; none within eps is faster than dense")
    batch = max(r["batch_size"] for r in rows)
    best = max((r for r in rows if r["batch_size"] == batch), key=lambda r: r["speedup"])
    return Headline(best["accuracy"], None, f"{s['configurations']} rows; fastest within eps at batch {batch}: "
                    f"{best['method']} {best['setting']} {best['speedup']:.2f}x")


register_experiment(ExperimentSpec("speed", SpeedConfig, speed, headline=speed_headline, job=True))
register_experiment(ExperimentSpec("speed-accuracy", headline=lambda s: Headline(
    s["accuracy"], None, f"accuracy {pct(s['accuracy'])} of {s['n']:,}")))  # accuracy() stores it
