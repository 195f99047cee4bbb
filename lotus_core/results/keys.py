"""A result's key and its run id: the one module that builds them.

A result's KEY names what it is: the model, the dataset, the data splits it read (:func:`base_key`; the
training split only for experiments that read training images, :func:`reads_train`), the precision policy,
the experiment kind, its hyperparameters and its algorithm's ``revision`` (:func:`experiment_config`). The run
ID (:func:`config_id` of the key plus :data:`COMPUTED`, where it was computed) tells apart results computed on
machines whose numbers may differ; the store finds a result computed elsewhere by its key alone
(:func:`reuse_ids`). :class:`lotus_core.context.Context` supplies the parts it owns (model id, data variants,
device) and calls :func:`base_key`; nothing else assembles a key.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

COMPUTED = "computed"  # the config's entry holding Context.computed(): part of the run id, not of the key


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces); dataclasses and tuples are normalised."""
    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o):
            return dataclasses.asdict(o)
        if isinstance(o, Path):
            return str(o)
        if hasattr(o, "item"):
            return o.item()
        raise TypeError(f"cannot hash {type(o).__name__} in a config")

    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=default)


def config_id(config: Any) -> str:
    """The experiment id: the first 16 hex digits of the SHA-256 of the canonical JSON config."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def key_of(config: dict) -> dict:
    """A stored run config's key: everything but where it was computed."""
    return {k: v for k, v in config.items() if k != COMPUTED}


def family_of(config: dict) -> dict:
    """A run config's key without the training split: results that differ only in the training images they
    read (the embedded 10,000-image subset against Debian's full 60,000) are one family."""
    key = key_of(config)
    data = key.get("data")
    if isinstance(data, dict) and "train" in data:
        key = {**key, "data": {k: v for k, v in data.items() if k != "train"}}
    return key


def reuse_ids(config: dict) -> tuple[str, str]:
    """``(key_id, family)`` of a stored run config (the store's lookup columns for results computed elsewhere)."""
    return config_id(key_of(config)), config_id(family_of(config))



TEST_ONLY_KINDS = frozenset({"evaluate", "prune-eval", "prune-decide", "prune-prefix", "sweep", "sensitivity", "omp-vs-ticket",
                             "omp-vs-one-shot", "speed", "speed-accuracy", "one-shot-mask"})
"""Kinds that evaluate on test images only, unless their parameters train or calibrate (:func:`reads_train`)."""


def reads_train(params: dict) -> bool:
    """Whether an experiment with these key parameters (``kind`` and hyperparameters) reads training images,
    and so whether the training split enters its key (:meth:`Context.key`). Kinds outside
    :data:`TEST_ONLY_KINDS` (LTH, ISSP, fine-tuning, fidelity's fill value, ...) train or read it; a test-only
    kind reads it when it fine-tunes (``finetune_steps``), follows the Essential Sparsity protocol, ranks by
    Taylor importance (a calibration batch), or uses a pruning method that calibrates on training images."""
    if params.get("kind") not in TEST_ONLY_KINDS:
        return True
    if params.get("finetune_steps") or params.get("protocol") == "essential" or params.get("importance") == "taylor":
        return True
    methods = list(params.get("methods") or ()) + ([params["method"]] if params.get("method") else [])
    if not methods:
        return False
    from ..pruning import PRUNERS  # the registry says which methods calibrate (imported late: it loads torch)

    return any(getattr(PRUNERS.get(str(m).split("+")[0]), "needs_calibration", False) for m in methods)


def base_key(model_id: str, dataset: str, test_variant: str, train_variant: str, **extra: Any) -> dict:
    """The base of every result key, what a result IS besides its hyperparameters ``extra``: ``model`` (name and
    checkpoint hash), ``dataset``, ``data`` (the splits the computation reads as ``"<images>@<content hash>"``:
    always ``test``, ``train`` only when :func:`reads_train`), and ``precision``, the precision POLICY (``auto``:
    bf16 where the device runs it fast, else fp32; ``fp32`` when ``bf16=False`` is in ``extra``), never the
    precision a machine happened to use (that is provenance: docs/provenance.md)."""
    data = {"test": test_variant}
    if reads_train(extra):
        data["train"] = train_variant
    return {"model": model_id, "dataset": dataset, "data": data,
            "precision": "auto" if bool(extra.get("bf16", True)) else "fp32", **extra}


def experiment_config(ctx: Any, kind: str, config: Any) -> dict:
    """The full configuration that keys an experiment: model, dataset, kind and hyperparameters, and the
    config's ``revision`` where it has a non-zero one (bumped when its algorithm is corrected, so results of
    the earlier algorithm are never served; configs without one keep the keys they always had)."""
    # a config with a key_params() says what of it enters the key (a sweep: its options as keys always had them)
    params = config.key_params() if hasattr(config, "key_params") else \
        dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    revision = getattr(config, "revision", None) if dataclasses.is_dataclass(config) else None
    # a config's WHERE fields say where it is computed (a timing's CPU, threads, torch): run id, not key
    where = {name: params.pop(name) for name in getattr(config, "WHERE", ()) if name in params}
    # what the result is (Context.key), and under "computed" the facts silent reuse requires (Context.computed):
    # both make the run id; the store indexes the key alone to find the result computed elsewhere
    return {**ctx.key(kind=kind, **params, **({"revision": revision} if revision else {})),
            COMPUTED: {**ctx.computed(**params), **where}}


def here_id(ctx: Any, kind: str, config: Any) -> str:
    """The id the run gets when computed here."""
    return config_id(experiment_config(ctx, kind, config))


__all__ = ["COMPUTED", "TEST_ONLY_KINDS", "base_key", "canonical_json", "config_id", "experiment_config",
           "family_of", "here_id", "key_of", "reads_train", "reuse_ids"]

