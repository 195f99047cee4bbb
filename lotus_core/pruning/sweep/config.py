"""A sweep's configuration: :class:`SweepConfig`, its checks, its key, its curves and a point's key.

Each pruning method owns its options (``Pruner.options``, e.g. :class:`~lotus_core.pruning.nm.NMOptions`):
a sweep carries them per method in ``method_options`` (method -> that method's options instance), and the
evaluator hands each instance to its method as it is (``masker(..., own=...)``), so an option added to a
method's options class reaches it from the CLI, the dashboard and the worker without any other file
naming it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from ...core.errors import LotusError
from ...core.tolerance import DEFAULT_EPS
from ...training.evaluate import DEFAULT_LIMIT
from ...training.finetune import FinetuneConfig
from .. import PRUNERS, get_pruner
from ..controls import check_control
from ..nm import NMOptions
from ..ranking import check_sparsity
from ..scope import SCOPES
from ..sparsegpt import SparseGPTOptions
from ..synflow import SynFlowOptions

SEARCHES = {"grid": "every grid sparsity (the curve), then with refine the bracket bisected",
            "bisect": "the turning point alone: bisection on the resolution grid from the start, early-decided points",
            "scout": "bisect, most points decided from the dense model's hardest images and only the answer's "
                     "bracket from every image it needs (same answer, fewer images)"}
DEFAULT_GRID = tuple(round(0.1 * i, 2) for i in range(10))
MAX_GRID = 1000  # the most sparsities a grid may hold
PROTOCOLS: dict[str, str] = {
    "lotus": "prune the model as it is (trained or fine-tuned on this dataset); dense line: that model",
    "essential": "Essential Sparsity: mask from the pre-trained weights, each masked model fine-tuned with the "
                 "dense reference's recipe; dense line: the fine-tuned dense model",
}

_FLAT = {**dataclasses.asdict(SparseGPTOptions()), **dataclasses.asdict(NMOptions()),
         **dataclasses.asdict(SynFlowOptions())}
KEY_OPTION_FIELDS: dict[str, Any] = {name: _FLAT[name] for name in ("calib_size", "n", "m", "damp", "blocksize",
                                                                    "rounds")}
"""The method options that were :class:`SweepConfig` fields until options became per method (defaults from
the options classes). Every sweep key still carries each, at the value the sweep's methods use (the first
method with the field; the default when none has it), so every stored sweep keeps its key; an option that
differs from that value, or any other option away from its class default, enters the key under
``method_options`` (:meth:`SweepConfig.key_params`). Read back from the store they are retired fields,
mapped to the methods that have them (:meth:`SweepConfig.upgrade_stored`)."""


def _options_of(methods: tuple[str, ...], given: Any) -> tuple[tuple[str, Any], ...]:
    """``given`` (a mapping method -> options instance or mapping of its fields, or the pairs JSON gives back)
    as one (method, options instance) pair per method of ``methods`` that has options, defaults filled in."""
    given = dict(given or {})
    stray = [m for m in given if m not in methods]
    if stray:
        raise LotusError(f"options given for {stray[0]!r}, which this sweep does not run; add it to the methods "
                         "or drop its options")
    own = ((m, get_pruner(m).make_options(given.get(m))) for m in dict.fromkeys(methods))
    return tuple((m, o) for m, o in own if o is not None)


@dataclass(frozen=True)
class SweepConfig:
    """A sparsity-accuracy sweep. Sparsities and accuracies are fractions in [0, 1]."""

    methods: tuple[str, ...] = ("omp",)  # keys of PRUNERS
    sparsities: tuple[float, ...] = DEFAULT_GRID  # the coarse grid
    limit: int = DEFAULT_LIMIT  # test images (fixed seeded subset)
    seed: int = 0  # test subset and random pruning
    scope: str = "blocks"  # which weights are pruned (pruning.scope.SCOPES)
    refine: bool = False  # bisect the turning point's bracket after the grid
    resolution: float = 0.01  # refine until the bracket is at most this wide
    eps: float = DEFAULT_EPS  # tolerance below dense accuracy, a fraction (0.01 = 1 accuracy point)
    finetune_steps: int = 0  # fine-tune each pruned model for this many steps before evaluating
    finetune_lr: float = 1e-4  # peak AdamW learning rate of that fine-tuning (cosine decay)
    method_options: tuple[tuple[str, Any], ...] = ()  # method -> its own options (Pruner.options; defaults if not given)
    controls: tuple[str, ...] = ()  # sanity checks drawn beside every method: shuffle, reinit
    bf16: bool = True  # bf16 autocast where fast (False: fp32 evaluation)
    stop_at_drop: bool = False  # end each method's grid at its first point below dense - eps (enough for the turning point)
    protocol: str = "lotus"  # lotus: prune the model as it is; essential: pre-trained masks, each fine-tuned (PROTOCOLS)
    recipe: FinetuneConfig | None = None  # the essential protocol's fine-tuning recipe (None: FinetuneConfig())
    search: str = "grid"  # a key of SEARCHES; "bisect"/"scout" search (0, max(sparsities)], check sparsities past it
    early: bool = True  # bisect, scout: evaluate each point only until within/below is certain (same answer)

    RETIRED: ClassVar[tuple[str, ...]] = tuple(KEY_OPTION_FIELDS)  # stored flat; upgrade_stored maps them

    @property
    def needs_trained_head(self) -> bool:
        """Only the essential protocol trains the head (of every point); ``lotus`` uses it as it is."""
        return self.protocol != "essential"

    @property
    def revision(self) -> dict[str, int]:
        """The corrected methods of this sweep with their ``Pruner.revision`` (in the run's key when non-empty:
        a sweep stored under a method's earlier algorithm is never served; other sweeps keep their keys)."""
        return {m: PRUNERS[m].revision for m in self.methods if m in PRUNERS and PRUNERS[m].revision}

    def finetune_recipe(self) -> FinetuneConfig:
        """The essential protocol's recipe, evaluated on this sweep's test subset and precision."""
        return dataclasses.replace(self.recipe or FinetuneConfig(), limit=self.limit, bf16=self.bf16)

    def options_for(self, method: str) -> Any:
        """``method``'s own options in this sweep (an instance of its options class), or None without any."""
        return dict(self.method_options).get(method)

    def fixed_sparsity(self, curve: str) -> float | None:
        """The sparsity the curve's method reaches whatever is asked (N:M: 1 - N/M), else None."""
        method = split_curve(curve)[0]
        return PRUNERS[method].fixed_sparsity(self.options_for(method))

    def key_params(self) -> dict:
        """What of this sweep enters its result key: its fields, with the options as :data:`KEY_OPTION_FIELDS`
        says (a sweep whose options are at their defaults has the key it always had)."""
        params = dataclasses.asdict(self)
        del params["method_options"]
        flat = {name: next((getattr(o, name) for _, o in self.method_options if hasattr(o, name)), default)
                for name, default in KEY_OPTION_FIELDS.items()}
        apart = {}
        for method, own in self.method_options:
            defaults = {**dataclasses.asdict(type(own)()), **flat}
            diff = {k: v for k, v in dataclasses.asdict(own).items() if v != defaults[k]}
            apart.update({method: diff} if diff else {})
        return {**params, **flat, **({"method_options": apart} if apart else {})}

    @classmethod
    def upgrade_stored(cls, values: dict) -> dict:
        """Stored sweep parameters (a run's key, an older job) as fields: each retired flat option
        (:data:`KEY_OPTION_FIELDS`) goes to the options of the sweep's methods that have it (below what
        ``method_options`` says for that method); one that none of its methods has never reached a method and
        is dropped."""
        flat = {name: values.pop(name) for name in cls.RETIRED if name in values}
        given = dict(values.pop("method_options", None) or {})
        options = {}
        for method in values.get("methods", cls.methods):
            own = getattr(PRUNERS.get(method), "options", None)
            names = {f.name for f in dataclasses.fields(own)} if own is not None else set()
            mine = {**{k: v for k, v in flat.items() if k in names}, **dict(given.pop(method, None) or {})}
            options.update({method: mine} if mine else {})
        return {**values, "method_options": {**options, **given}}  # a stray method's options are refused

    def __post_init__(self) -> None:  # refused before any run is recorded (no 'failed' rows for bad input)
        if isinstance(self.recipe, Mapping):  # rebuilt from JSON by the job worker
            object.__setattr__(self, "recipe", FinetuneConfig(**self.recipe))
        check_sweep(self)


def check_sweep(c: SweepConfig) -> None:
    """Raise LotusError for a sweep no run can use: methods, their options, scope, controls, tolerance,
    resolution, counts and sparsities out of range. Fills ``method_options`` (every method with options)."""
    if not c.methods:
        raise LotusError(f"no pruning methods given; choose from {', '.join(PRUNERS)}")
    object.__setattr__(c, "method_options", _options_of(tuple(c.methods), c.method_options))  # checks the methods
    for method, own in c.method_options:
        _check_options(method, own)
    if c.scope not in SCOPES:
        raise LotusError(f"unknown scope {c.scope!r}; choose one of {', '.join(SCOPES)}")
    for control in c.controls:
        check_control(control)
    if not (math.isfinite(c.eps) and 0 <= c.eps <= 1):
        raise LotusError(f"eps {c.eps} is outside [0, 1]; give an absolute tolerance such as {DEFAULT_EPS}")
    if not (math.isfinite(c.resolution) and 0 < c.resolution <= 0.5):
        raise LotusError(f"resolution {c.resolution} is outside (0, 0.5]; give a sparsity step such as 0.01")
    if c.finetune_steps < 0 or c.limit < 1:
        raise LotusError(f"finetune_steps {c.finetune_steps} must be at least 0 and limit {c.limit} at least 1")
    if not (math.isfinite(c.finetune_lr) and 0 < c.finetune_lr <= 10):
        raise LotusError(f"finetune_lr {c.finetune_lr} is outside (0, 10]")
    if c.search not in SEARCHES:
        raise LotusError(f"unknown search {c.search!r}; choose one of {', '.join(SEARCHES)}")
    if c.protocol not in PROTOCOLS:
        raise LotusError(f"unknown protocol {c.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    for s in c.sparsities:
        check_sparsity(s)


def _check_options(method: str, own: Any) -> None:
    """The bounds the methods' counts and scales share (calibration images, blocks, rounds: whole numbers >= 1;
    dampening and temperature positive), checked before any run (an options class checks its own rules when
    made: NMOptions its pattern)."""
    values = dataclasses.asdict(own)
    for name in ("calib_size", "blocksize", "rounds"):
        if name in values and not (isinstance(values[name], int) and values[name] >= 1):
            raise LotusError(f"{method}: {name} {values[name]!r} must be a whole number of at least 1")
    for name in ("damp", "temperature"):
        if name in values and not (isinstance(values[name], (int, float)) and math.isfinite(values[name])
                                   and values[name] > 0):
            raise LotusError(f"{method}: {name} {values[name]!r} must be a positive number")


def parse_sparsities(text: str) -> tuple[float, ...]:
    """``"0:0.9:0.1"`` (start:stop:step, stop included when on the grid) or ``"0.1,0.5,0.7"``."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if not (step > 0 and math.isfinite(start) and math.isfinite(stop) and math.isfinite(step)):
                raise ValueError
            count = int(round((stop - start) / step + 1e-9)) + 1
            if count > MAX_GRID:
                raise LotusError(f"sparsities {text!r} make {count:,} points; use a step giving at most {MAX_GRID}")
            values = [round(start + i * step, 6) for i in range(count) if start + i * step <= stop + 1e-9]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except (ValueError, OverflowError):
        raise LotusError(f"cannot read sparsities {text!r}; use start:stop:step (0:0.9:0.1) or a list (0.1,0.5)") from None
    for v in values:
        check_sparsity(v)
    if not values:
        raise LotusError(f"no sparsities in {text!r}")
    return tuple(sorted(set(values)))


def curve_name(method: str, control: str | None = None) -> str:
    """The label of ``method``'s curve, or of its ``control`` (``"snip+shuffle"``)."""
    return f"{method}+{control}" if control else method


def split_curve(curve: str) -> tuple[str, str | None]:
    """``(method, control or None)`` of a curve label (inverse of :func:`curve_name`)."""
    method, _, control = curve.partition("+")
    return method, control or None


def curves(config: SweepConfig) -> list[str]:
    """Every curve a sweep draws: each method, then each method's controls."""
    for control in config.controls:
        check_control(control)
    return [curve_name(m, c) for m in config.methods for c in (None, *config.controls)]


def point_config(config: SweepConfig, curve: str, sparsity: float) -> dict:
    """The key of one point of a curve (a method, or ``method+control``) beside model and dataset:
    everything that changes its accuracy (the method's own options at all their values)."""
    c = config
    method, control = split_curve(curve)
    extra = get_pruner(method).option_values(c.options_for(method))
    extra.update({"control": check_control(control)} if control else {})
    extra.update({"finetune_steps": c.finetune_steps, "finetune_lr": c.finetune_lr} if c.finetune_steps else {})
    extra.update({} if c.bf16 else {"bf16": False})
    if c.protocol == "essential":
        extra.update({"protocol": "essential", "recipe": dataclasses.asdict(c.finetune_recipe())})
    return dict(method=method, sparsity=round(sparsity, 6), scope=c.scope, limit=c.limit, seed=c.seed, **extra)


def grid(curve: str, config: SweepConfig) -> list[float]:
    """The coarse grid of ``curve``: the config's sparsities past 0, or one point at a fixed sparsity (N:M)."""
    fixed = config.fixed_sparsity(curve)
    if fixed is not None:  # N:M: one point at 1 - N/M
        return [fixed]
    return [s for s in config.sparsities if s > 0]
