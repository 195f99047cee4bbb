"""What enters a result's key: the one home of the rules that decide it.

A result's key names what it is (:meth:`lotus_core.context.Context.key` assembles the model, data and
precision parts; :func:`~lotus_core.results.store.config_id` hashes it). Which data split a key names is
decided here: the training split only for experiments that read training images (:func:`reads_train`), so
that a test-only result computed beside another training split is the same result.
"""
from __future__ import annotations

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


__all__ = ["TEST_ONLY_KINDS", "reads_train"]
