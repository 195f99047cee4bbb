"""The speed experiment: every configuration measured at every batch size, stored as it is produced.

Each (method, setting, batch size) is one stored point, written as soon as it is measured, so a
long measurement resumes where it stopped. The run's key holds the device, its name, the thread
count and the torch version (timings differ between them); accuracies are stored separately
(kind ``speed-accuracy``) and shared by every run with the same model, data and setting.

Timing is interleaved (:func:`lotus_core.speed.measure.interleaved`): at each batch size every
configuration is timed once per round, dense first, for ``rounds`` rounds, so a change of the
machine's load hits them all alike. Latency is the median over rounds, per batch (ms); images/s =
batch size / latency; the speed-up is the median over rounds of dense time / time in the same
round, with its 95% bootstrap interval (``speedup_low``, ``speedup_high``); FLOPs are per image;
peak memory is for one batch (weights included); accuracy is a fraction on the fixed seeded test
subset (fp32, the measured forward itself).

A measurement is *unreliable* (its rows carry the reason in ``unreliable``) when the machine was
busy (the 1-minute load average above the cores before or after timing, or another LOTUS run being
computed in the same store: the dashboard's worker, a CLI run) or when a speed-up's interval spans
more than :data:`~lotus_core.speed.reliability.MAX_SPREAD` of it. Unreliable rows are shown, but never feed a headline: not the
Pareto frontier, not the best point within eps, not the Report.

Every measurement is kept: ``take`` numbers the measurements of the same settings on the same
machine, each its own stored run (:mod:`lotus_core.speed.history`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import pandas as pd
import torch

from ..context import Context
from ..core.device import default_device
from ..core.errors import LotusError
from ..core.tolerance import DEFAULT_EPS, Tolerance
from ..data.images import to_model_input
from ..results.registry import ExperimentSpec, Headline, register_experiment
from ..results.keys import COMPUTED
from ..results.runs import Run, run_experiment
from . import METHODS, get_method, measure
from .accuracy import accuracy, finetuned_accuracy
from .costs import checkpoint_bytes, count_flops, count_params, peak_memory
from .reliability import busy_reason, timing_rows
from .variants import Variant, Variants

ROW_FIELDS = ["method", "family", "setting", "value", "batch_size", "latency_ms", "iqr_ms", "images_per_s", "speedup",
              "speedup_low", "speedup_high", "rounds", "unreliable", "load_before", "load_after", "flops", "params",
              "bytes", "peak_mem_bytes", "accuracy", "accuracy_finetuned", "tokens", "device", "threads", "dtype",
              "unavailable"]


EPS = DEFAULT_EPS  # default tolerance below dense accuracy for "within eps" (absolute fraction; not part of a run's
# key: it changes no measured number)


def _device() -> str:
    return default_device().type


@dataclass(frozen=True)
class SpeedConfig:
    """What to measure. Fractions in [0, 1]. ``device_name``, ``threads`` and ``torch_version`` say where it is
    measured (:data:`WHERE`): part of the run's id, not of its key, so that a measurement made on another machine
    (the shipped demo's, a colleague's store) is shown here labelled with where it was measured, with one click to
    measure here (docs/provenance.md)."""

    WHERE: ClassVar[tuple[str, ...]] = ("device_name", "threads", "torch_version")

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
    min_run_time: float = 0.5  # seconds of timed calls per configuration and batch size (over all rounds)
    rounds: int = 7  # interleaved rounds: every configuration timed once per round, dense first
    clock: str = "wall"  # "wall": latency; "cpu": process CPU time (a shared machine; see measure.time_forward)
    device: str = field(default_factory=_device)  # "cpu" or "cuda"
    device_name: str = field(default_factory=lambda: measure.device_name(default_device()))  # CPU model / GPU name
    threads: int = field(default_factory=torch.get_num_threads)  # torch intra-op threads while timing
    torch_version: str = torch.__version__  # timings differ between releases
    take: int = 1  # which measurement of these settings on this machine (measuring again stores the next one)

    def __post_init__(self) -> None:
        """Refuse numbers that cannot be measured (before a run is recorded); normalise: sorted, de-duplicated
        tuples, and the settings of methods not measured reset, so that two requests that measure the same thing
        are one stored run."""
        measure.check_run_time(self.min_run_time)
        for name, low, high in (("rounds", 3, 100), ("take", 1, 10 ** 6)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise LotusError(f"{name} must be a whole number in [{low}, {high:,}] (got {value!r})")
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


def measured_with(run: dict, name: str) -> object:
    """Where stored speed ``run`` was measured: its config's :data:`SpeedConfig.WHERE` field ``name`` (kept under
    the run id's ``computed`` entry, or at the top level in runs stored before it left the key); None if absent."""
    config = run.get("config") or {}
    return (config.get(COMPUTED) or {}).get(name, config.get(name))


def first_view(limit: int) -> SpeedConfig:
    """What the Speed page measures and draws on its first load (one setting per method, batch 32, 21 interleaved
    rounds, 3 s of timed calls each: about 30 s inline on an idle 2-core machine), and what the demo stores for the
    Report's "Does it run faster?": one measurement, one story. Measured at 7 rounds and 0.5 s on an idle machine
    (load 0.7), five of the eight speed-ups had 95% intervals wider than 20% and were marked unreliable; at 21
    rounds and 3 s none was (load 1.2-1.5; docs/speed.md)."""
    return SpeedConfig(batch_sizes=(32,), sparsities=(0.9,), ratios=(0.5,), keep_rates=(0.5,), tome_r=(8,),
                       drops=(0.5,), best_batch=False, limit=limit, min_run_time=3.0, rounds=21)


def _inputs(ctx: Context, batch_size: int, device: torch.device) -> torch.Tensor:
    """The first ``batch_size`` test images (repeated when the test set is smaller) as model input."""
    idx = torch.arange(batch_size) % len(ctx.test)
    return to_model_input(ctx.test.images[idx], ctx.data_config).to(device)


def costs(variant: Variant, x: torch.Tensor) -> dict:
    """FLOPs, parameters, checkpoint bytes and peak memory of ``variant`` on the batch ``x`` (no timing)."""
    return {"flops": count_flops(variant.forward, x[:1], variant.model),
            "params": count_params(variant.model), "bytes": checkpoint_bytes(variant.model),
            "peak_mem_bytes": peak_memory(variant.forward, x, variant.model)}


def speed(ctx: Context, config: SpeedConfig, run: Run) -> dict:
    """Experiment: the dense reference and every method's settings at every batch size (see the module docstring).

    At each batch size every available configuration is timed in the same interleaved rounds and its rows are
    stored together (an interrupted run resumes at the first batch size not stored)."""
    for name in config.methods:
        get_method(name)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise LotusError("this run asks for CUDA but no CUDA device is present; measure on the CPU")
    device = torch.device(config.device)
    dense_acc = ctx.dense_accuracy(limit=config.limit, seed=config.seed, bf16=False)
    builder = Variants(ctx, device, config.importance, config.fuse, seed=config.seed)
    plan = [(m, s) for m in dict.fromkeys(("dense", *config.methods)) for s in METHODS[m].settings(config)]
    search = _best_batch(ctx, config, run, builder, device, len(plan))
    sizes = tuple(sorted({*config.batch_sizes, *([search["best"]] if search else [])}))
    total, done = len(plan) * len(sizes), 0
    built: dict[str, Variant] = {}
    for bs in sizes:
        keys = {f"{m}|{v:g}|{bs}": (m, v) for m, v in plan}
        if all(run.has(k) for k in keys):
            done += len(keys)
            continue
        for key, (method, value) in keys.items():
            if key.rsplit("|", 1)[0] not in built:
                built[key.rsplit("|", 1)[0]] = METHODS[method].build(builder, value)
        variants = {key: built[key.rsplit("|", 1)[0]] for key in keys}
        done = _measure_size(ctx, config, run, device, bs, keys, variants, done, total)
    result = SpeedResult(rows_frame(run.points()), dense_acc, run.id, config)
    per_size = result.frame.groupby("batch_size")[["load_before", "load_after"]].first()  # resumed sizes too
    loads = [float(x) for pair in per_size.to_numpy() for x in pair if x == x and x is not None]
    return {"dense": dense_acc, "configurations": len(result.frame), "eps": EPS,
            "best": result.best(EPS).to_dict(orient="records"), "best_batch": search,
            "unreliable": int(result.measured["unreliable"].notna().sum()),
            "provenance": {"cpu": measure.cpu_model(), "cores": measure.machine_load().cores,
                           "load": loads, "measured": time.strftime("%Y-%m-%d %H:%M")}}


BEST_BATCH = "search|best-batch"  # the run's point holding the batch-size search (measure.BatchSearch.to_dict)


def _best_batch(ctx: Context, config: SpeedConfig, run: Run, builder: Variants, device: torch.device,
                planned: int) -> dict | None:
    """The device's best batch size for the dense model (:func:`~lotus_core.speed.measure.best_batch_size`), searched
    once per run and stored as the point :data:`BEST_BATCH` (kept when the run is interrupted: the search is not
    repeated); None unless ``config.best_batch``."""
    search = run.get(BEST_BATCH)
    if config.best_batch and search is None:
        dense = METHODS["dense"].build(builder, 0.0)
        run.progress(done=0, planned=planned, method="dense", setting="searching the best batch size",
                     batch_size=None)
        search = measure.best_batch_size(dense.forward, lambda bs: _inputs(ctx, bs, device), dense.model,
                                         config.threads, config.min_run_time, config.clock).to_dict()
        run.point(BEST_BATCH, search)
    return search


def _measure_size(ctx: Context, config: SpeedConfig, run: Run, device: torch.device, bs: int,
                  keys: dict[str, tuple[str, float]], variants: dict[str, Variant], done: int, total: int) -> int:
    """Time every available variant of ``variants`` at batch size ``bs`` in the same interleaved rounds, with the
    machine's load before and after, and store one row per configuration (an unavailable one with its reason);
    returns how many of the run's ``total`` rows are stored."""
    ready = {key: v for key, v in variants.items() if not v.unavailable}
    accuracies = {key: accuracy(ctx, v, config, device)["accuracy"] for key, v in ready.items()}
    x = _inputs(ctx, bs, device)
    run.progress(done=done, planned=total, method="all", setting=f"{len(ready)} configurations, "
                 f"{config.rounds} interleaved rounds", batch_size=bs)
    before = measure.machine_load()
    busy = busy_reason(ctx, before, run.id)
    times = measure.interleaved({key: v.forward for key, v in ready.items()}, x, config.threads, config.rounds,
                                config.min_run_time, config.clock, between=run.check)
    after = measure.machine_load()
    busy = busy or busy_reason(ctx, after, run.id)
    timed = timing_rows(times, bs, busy)
    for key, variant in variants.items():
        method, value = keys[key]
        row = {"method": method, "family": METHODS[method].family, "setting": variant.setting, "value": value,
               "batch_size": bs, "device": f"{config.device} ({config.device_name})", "threads": config.threads,
               "dtype": variant.dtype, "tokens": variant.tokens, "load_before": before.load,
               "load_after": after.load}
        if variant.unavailable:
            row["unavailable"] = variant.unavailable
        else:
            row.update(timed[key], **costs(variant, x), accuracy=accuracies[key])
            if config.finetune_steps and variant.trainable is not None:
                row["accuracy_finetuned"] = finetuned_accuracy(ctx, variant, config, device)
        run.point(key, row)
        done += 1
        run.progress(done=done, planned=total, method=method, setting=row["setting"], batch_size=bs)
    run.check()
    return done


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

    @property
    def reliable(self) -> pd.DataFrame:
        """Measured rows that may feed a headline: not marked unreliable, and with a speed-up interval (rows
        stored before intervals were measured have none: a single sample is not a finding)."""
        m = self.measured
        return m[m["unreliable"].isna() & m["speedup_low"].notna()]

    def at(self, batch_size: int) -> pd.DataFrame:
        """Measured rows at ``batch_size`` with ``reliable``, ``pareto`` (on the accuracy-latency frontier of the
        reliable rows; an unreliable row is never on it) and ``drop`` (dense accuracy minus accuracy, absolute
        fraction) columns."""
        part = self.measured[self.measured["batch_size"] == batch_size].copy()
        part["drop"] = self.dense["accuracy"] - part["accuracy"]
        part["reliable"] = part.index.isin(self.reliable.index)
        part["pareto"] = False
        part.loc[part["reliable"], "pareto"] = pareto(part[part["reliable"]])
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
        """Per batch size and family: the fastest reliable row within ``eps`` (absolute fraction) of dense accuracy,
        with its speed-up interval."""
        ok = self.reliable[Tolerance(self.dense["accuracy"], eps).within(self.reliable["accuracy"])]
        if ok.empty:
            return ok
        idx = ok.groupby(["batch_size", "family"])["speedup"].idxmax()
        return ok.loc[idx, ["batch_size", "family", "method", "setting", "speedup", "speedup_low", "speedup_high",
                            "latency_ms", "images_per_s", "accuracy"]].reset_index(drop=True)


def pareto(frame: pd.DataFrame) -> pd.Series:
    """True for rows no other row beats: none is at least as fast and at least as accurate, and better in one."""
    lat, acc = frame["latency_ms"].to_numpy(), frame["accuracy"].to_numpy()
    keep = []
    for i in range(len(frame)):
        dominated = ((lat <= lat[i]) & (acc >= acc[i]) & ((lat < lat[i]) | (acc > acc[i]))).any()
        keep.append(not dominated)
    return pd.Series(keep, index=frame.index, dtype=bool)


def run_speed(ctx: Context, config: SpeedConfig, on_progress: Callable[[dict], None] | None = None,
              refresh: bool = False, here: bool = False) -> SpeedResult:
    """Run (or read back) a stored speed measurement and return its table: the one measured here, else the same
    settings measured on another machine (labelled by its provenance), else measured now; ``here`` measures on
    this machine even when another machine's measurement is stored (both are kept)."""
    summary = run_experiment(ctx, "speed", config, speed, on_progress=on_progress, refresh=refresh, here=here)
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
    """A speed run's headline: the fastest reliable configuration within eps at its largest batch size."""
    rows = [r for r in s["best"] if r["family"] != "reference"]
    doubt = f" ({s['unreliable']} unreliable)" if s.get("unreliable") else ""
    if not rows:
        return Headline(s["dense"]["accuracy"], None, f"{s['configurations']} rows{doubt}; none reliably within eps "
                        "is faster than dense")
    batch = max(r["batch_size"] for r in rows)
    best = max((r for r in rows if r["batch_size"] == batch), key=lambda r: r["speedup"])
    return Headline(best["accuracy"], None, f"{s['configurations']} rows{doubt}; fastest within eps at batch {batch}: "
                    f"{best['method']} {best['setting']} {speedup_text(best)}")


def speedup_text(row) -> str:
    """A speed-up with its 95% interval, e.g. "1.42x (1.38-1.47x)" (no interval where none was measured)."""
    low, high = row.get("speedup_low"), row.get("speedup_high")
    if low is None or low != low:
        return f"{row['speedup']:.2f}x"
    return f"{row['speedup']:.2f}x ({low:.2f}-{high:.2f}x)"


register_experiment(ExperimentSpec("speed", SpeedConfig, speed, headline=speed_headline, job=True))
