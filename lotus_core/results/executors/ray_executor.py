"""The ``ray`` executor: units as Ray core tasks (Moritz et al., "Ray: A Distributed Framework for Emerging AI
Applications", OSDI 2018), the connection to a cluster, and a local cluster that listens on loopback only.

The shared state goes to the object store once per experiment (``ray.put``); each unit is a task asking for
``cpus_per_task`` CPUs and ``gpus_per_task`` GPUs; results are collected in completion order with ``ray.wait``; a
task whose worker process died is retried ``max_retries`` times and then reported as a failed unit with its error.
Each Ray worker process sets the experiment's state up once (cached by a per-experiment token).
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import socket
import threading
import uuid
from typing import Any, Callable, Iterable, Iterator

from ...core.errors import LotusError
from ...core.paths import PACKAGE_DIR
from ...core.executor import ExecutorConfig
from .base import Batch, Executor, Outcome, Pool


RAY_VERSION = "2.60.0"  # the Ray pinned in requirements.txt; driver and cluster must run the same


_STATE: dict[str, Any] = {}  # in a Ray worker process: token -> the state of the one experiment it serves


def _ray_unit(token: str, setup: Callable[..., Any], fn: Callable[[Any, Any], Any], shared: list, unit: Any,
              threads: int = 1) -> Any:
    """The Ray task: set the experiment's state up once per worker process, then run one unit.

    ``shared`` is a one-element list holding the object-store reference, so Ray does not fetch
    and deserialise the model for every task, only when this process has not set it up yet.
    """
    import ray
    import torch

    if torch.get_num_threads() != threads:  # the driver's count: it is part of every result key
        torch.set_num_threads(threads)
    if token not in _STATE:
        _STATE.clear()  # one experiment at a time per process: never hold two models
        _STATE[token] = setup(*ray.get(shared[0]))
    if isinstance(unit, tuple):  # values shared with Pool.share
        unit = tuple(ray.get(u) if isinstance(u, ray.ObjectRef) else u for u in unit)
    from ...core.device import cpu_slot

    with cpu_slot():  # the host's CPU budget: local Ray workers share the cores with everything else
        return fn(_STATE[token], unit)


_connected: dict[str, str] = {}  # the address this process's Ray connection was made with
_connecting = threading.Lock()  # runs submitted together (run_together) connect from several threads


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's minute-long reconnect loop, when HOST:PORT does not answer."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise LotusError(f"Ray address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise LotusError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it with "
                         f"`ray start --head` there or fix --ray-address") from None


def connection_error(exc: BaseException, address: str) -> LotusError:
    """A one-line :class:`LotusError` for a failed ``ray.init`` (version mismatch, no cluster, ...)."""
    text = " ".join(str(exc).split())
    if "Version mismatch" in text:
        return LotusError(f"the Ray cluster at {address} runs another Ray or Python version ({text[:220]}); "
                          f"install ray=={RAY_VERSION} and the same Python on the driver and every node")
    if isinstance(exc, ConnectionError):
        return LotusError(f"no Ray cluster answered at {address} ({text[:160]}); start one with `ray start --head`, "
                          "or, if it uses token authentication, set RAY_AUTH_MODE=token here and copy the head's "
                          "~/.ray/auth_token")
    return LotusError(f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: {text[:200]}")


def connect(config: ExecutorConfig) -> None:
    """Connect this process to Ray once: a local cluster (``address`` None) or the given one.

    A Ray session someone else started in this process (a test fixture, a benchmark) is reused
    when no address is asked for.
    """
    with _connecting:
        _connect(config)


def _connect(config: ExecutorConfig) -> None:
    import ray

    address = config.address or "local"
    if ray.is_initialized() and (config.address is None or _connected.get("address") == address):
        return
    if config.address not in (None, "auto"):
        if config.address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
            raise LotusError("ray:// addresses need Ray Client: pip install the grpcio pinned in requirements.txt "
                             "(or give the head's HOST:6379 from a machine of the cluster)")
        _check_reachable(config.address)
    if ray.is_initialized():
        ray.shutdown()
    try:
        if config.address is None:
            start_local_cluster(log_to_driver=False)
        else:
            # the workers run the driver's own lotus_core, whatever is installed on the nodes
            with _loopback_node(_is_loopback_address(config.address)):
                ray.init(address=config.address, log_to_driver=False,
                         runtime_env={"py_modules": [str(PACKAGE_DIR)]})
    except (Exception, SystemExit) as exc:  # ray.init can also exit on a failed handshake
        raise connection_error(exc, config.address or "local") from None
    _connected["address"] = address


def start_local_cluster(**kwargs: Any) -> None:
    """Start a Ray cluster on this machine whose every listener is on loopback (127.0.0.1).

    By default Ray's GCS, raylet, workers and runtime-env agent listen on all interfaces (or the
    machine's network address), reachable by anyone on the network while a sweep runs. Ray binds to
    the node's IP address, so the node is 127.0.0.1 and there is no dashboard. ``ray.init`` turns a
    loopback ``_node_ip_address`` into the machine's network address unless Ray's clusters are
    disabled (its rule for macOS and Windows), so that switch is off while the cluster starts (under
    ``_connecting``; only ``ray.init`` reads it). ``kwargs`` go to ``ray.init`` (``num_cpus``, ``runtime_env``).
    A driver joining such a cluster by its loopback address (``127.0.0.1:PORT``) does the same.
    """
    import ray

    with _loopback_node():
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, **kwargs)


def _is_loopback_address(address: str) -> bool:
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def _loopback_node(active: bool = True) -> Iterator[None]:
    """While ``ray.init`` runs, this node's address stays 127.0.0.1 instead of the machine's network address."""
    if not active:
        yield
        return
    from unittest import mock

    from ray._private import ray_constants

    with mock.patch.object(ray_constants, "ENABLE_RAY_CLUSTER", False):
        yield


def _cluster(config: ExecutorConfig) -> dict:
    """The cluster's total CPUs and GPUs; refuses GPU or CPU requests no node could ever satisfy."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 0)), float(total.get("GPU", 0))
    where = config.address or "the local Ray cluster"
    if config.gpus_per_task > 0 and gpus < config.gpus_per_task:
        raise LotusError(f"--gpus-per-task {config.gpus_per_task:g} asks for GPUs but {where} has "
                         f"{gpus:g}; drop the flag or add GPU workers")
    if config.cpus > cpus:
        what = "--cpus-per-task" if config.cpus_per_task is not None else "each unit's $LOTUS_THREADS (--cpus-per-task)"
        raise LotusError(f"{what} {config.cpus:g} is more than the {cpus:g} CPUs of {where}")
    return total


class RayExecutor(Executor):
    """Units as Ray tasks (see the module docstring)."""

    def __init__(self, config: ExecutorConfig):
        self.config = config

    def pool(self, setup: Callable[..., Any], ctx: Any, *extra: Any, train: bool = False) -> Pool:
        return _RayPool(self.config, setup, lambda: (shipped(ctx, train), *extra))

    def resources(self) -> dict:
        import ray

        connect(self.config)
        total = _cluster(self.config)
        alive = [n for n in ray.nodes() if n.get("Alive")]
        return {"executor": "ray", "address": self.config.address or "local", "ray_version": ray.__version__,
                "nodes": len(alive), "gpus_per_task": self.config.gpus_per_task,
                "cpus_per_task": self.config.cpus, "max_retries": self.config.max_retries,
                "resources": {"CPU": float(total.get("CPU", 0)), "GPU": float(total.get("GPU", 0)),
                              "memory_gb": round(float(total.get("memory", 0)) / 2**30, 2),
                              "object_store_gb": round(float(total.get("object_store_memory", 0)) / 2**30, 2)},
                "available": {k: float(v) for k, v in ray.available_resources().items() if k in ("CPU", "GPU")}}


class _RayPool(Pool):
    def __init__(self, config: ExecutorConfig, setup: Callable[..., Any], ship: Callable[[], tuple]):
        self.config, self._setup, self._ship, self._token = config, setup, ship, uuid.uuid4().hex
        self._ref = self._task = None

    def _start(self) -> None:
        import ray

        connect(self.config)
        total = _cluster(self.config)
        slots = int(float(total.get("CPU", 0)) // self.config.cpus)
        if self.config.gpus_per_task > 0:
            slots = min(slots, int(float(total.get("GPU", 0)) // self.config.gpus_per_task))
        self.slots = max(1, slots)
        self._ref = ray.put(self._ship())  # once per experiment, not once per task
        self._task = ray.remote(_ray_unit).options(num_cpus=self.config.cpus,
                                                  num_gpus=self.config.gpus_per_task,
                                                  max_retries=self.config.max_retries, retry_exceptions=False)

    def share(self, value: Any) -> Any:
        import ray

        if self._ref is None:
            self._start()
        return ray.put(value)

    def map(self, fn: Callable[[Any, Any], Any], units: dict[str, Any]) -> Batch:
        if self._ref is None and units:
            self._start()
        import torch

        threads = torch.get_num_threads()
        refs = {self._task.remote(self._token, self._setup, fn, [self._ref], unit, threads): key
                for key, unit in units.items()}
        return _RayBatch(refs)

    def close(self) -> None:
        self._ref = None  # the object store frees the state once no task holds it


class _RayBatch(Batch):
    def __init__(self, refs: dict):
        self._refs = refs  # ObjectRef -> unit key, for units not yet arrived

    def __iter__(self) -> Iterator[Outcome]:
        import ray
        from ray.exceptions import RayError, RayTaskError, TaskCancelledError

        try:
            while self._refs:
                (ref,), _ = ray.wait(list(self._refs), num_returns=1)
                key = self._refs.pop(ref)
                try:
                    result = ray.get(ref)  # already complete: returns at once
                except TaskCancelledError:
                    continue
                except RayTaskError as exc:  # the unit raised
                    cause = exc.cause if exc.cause is not None else exc
                    yield Outcome(key, error=f"{type(cause).__name__}: {' '.join(str(cause).split())[:200]}")
                except RayError as exc:  # its worker died more than max_retries times, out of memory, ...
                    yield Outcome(key, error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
                else:
                    yield Outcome(key, result)
        finally:  # the driver stopped early (cancelled, interrupted, failed): leave nothing running
            self.cancel(list(self._refs.values()))

    def cancel(self, keys: Iterable[str]) -> None:
        import ray

        drop = set(keys)
        for ref, key in list(self._refs.items()):
            if key in drop:
                ray.cancel(ref)
                del self._refs[ref]

    @property
    def pending(self) -> int:
        return len(self._refs)


def shipped(ctx: Any, train: bool = False) -> Any:
    """What units need of ``ctx``, for the object store: no results store, the model on the CPU,
    and the training split loaded when ``train`` (workers never read the driver's disk)."""
    model = ctx.model
    if any(p.device.type != "cpu" for p in model.parameters()):
        import copy

        model = copy.deepcopy(model).cpu()
    return dataclasses.replace(ctx, model=model, store=None, _train=ctx.train if train else None,
                               executor=ExecutorConfig())
