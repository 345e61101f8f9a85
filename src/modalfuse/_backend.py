"""Where independent pieces of work run: in this process, in local worker processes, or on a Ray cluster.

Cross-validation folds and the per-input models of a fit do not depend on each other, so they can run
side by side. A :class:`Backend` says where:

- ``"serial"``: one after another in this process (the default);
- ``"processes"``: a pool of local worker processes (joblib's loky), for users without Ray;
- ``"ray"``: Ray tasks (the ``modalfuse[ray]`` extra), on this machine or on a cluster joined by its
  address (``address=`` or the ``RAY_ADDRESS`` environment variable).

Each task declares its resources (``cpus_per_task`` CPUs, 1 by default, and memory estimated from the table)
and runs with one torch thread per CPU it holds; results are gathered in the order of the tasks, whatever
order they finish in, and every random choice is seeded per task, so the same seed gives the same numbers
on every backend. A task that raises re-raises its error here; a worker that dies (killed, out of memory,
a lost node) or a task still running after ``timeout`` seconds stops the run with a
:class:`~modalfuse.TrainingError` naming the task, after the other tasks are cancelled and the workers this
run started are shut down.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from modalfuse._errors import OptionError, TrainingError, UnknownNameError

__all__ = [
    "BACKENDS",
    "Backend",
    "active_backend",
    "in_worker",
    "resolve_backend",
    "task_memory",
    "using_backend",
    "worker_info",
]

#: The backends by name.
BACKENDS = ("serial", "processes", "ray")

#: The extra that installs Ray.
RAY_EXTRA = "ray"

#: Memory a task reserves besides the table's share: torch, the interpreter, a model being trained.
TASK_BASE_BYTES = 512 * 1024**2
#: Bytes a decoded, preprocessed row of media takes per byte of its files (decoded images and spectrograms
#: are larger than their compressed files; measured about 3x on AV-Digits, rounded up).
DECODE_FACTOR = 4
#: Smallest object store Ray accepts when it starts locally (it refuses under 75 MiB).
MIN_OBJECT_STORE = 128 * 1024**2

_WORKER = {"active": False}


def in_worker() -> bool:
    """Whether this code runs inside a task of a :class:`Backend` (where nested work runs serially)."""
    return _WORKER["active"]


def worker_info() -> dict[str, Any]:
    """Where this code runs: ``host``, ``pid`` and, in a Ray worker, the Ray ``node`` id (else None)."""
    import socket

    node = None
    ray = sys.modules.get("ray")
    if ray is not None and in_worker():
        try:
            node = ray.get_runtime_context().get_node_id()
        except Exception:  # not in a Ray worker after all
            node = None
    return {"host": socket.gethostname(), "pid": os.getpid(), "node": node}


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where :func:`modalfuse.compare`, :func:`modalfuse.cross_validate` and a fit run their independent work.

    Parameters
    ----------
    name : {"serial", "processes", "ray"}, default="serial"
        One after another here; local worker processes (joblib's loky); Ray tasks.
    n_jobs : int, optional
        Tasks running at once. Default: every CPU (``processes``: this machine's; ``ray``: the cluster's
        CPUs divided by ``cpus_per_task``).
    address : str, optional
        ``ray`` only: the address of a running cluster to join (``"10.0.0.5:6379"``, ``"ray://host:10001"``).
        Default: the ``RAY_ADDRESS`` environment variable; without it Ray starts on this machine with
        ``n_jobs`` CPUs, no dashboard and no usage reporting, and stops when the run ends.
    timeout : float, optional
        Seconds a task may take from when it is handed to a worker (a worker's own start, the first time,
        counts); one still running then stops the run with a :class:`~modalfuse.TrainingError` naming it.
        Default: no limit.
    cpus_per_task : int, default=1
        CPUs each task declares, and its torch threads.
    memory_per_task : int, optional
        ``ray`` only: bytes of memory each task declares to Ray's scheduler. Default: estimated from the
        table (:func:`task_memory`), so Ray runs no more tasks on a node than its memory holds.
    retries : int, default=0
        ``ray`` only: times Ray reruns a task whose worker died before the run stops (the rerun gives the
        same numbers). 0 stops at the first lost worker with an error naming the task.
    """

    name: str = "serial"
    n_jobs: int | None = None
    address: str | None = None
    timeout: float | None = None
    cpus_per_task: int = 1
    memory_per_task: int | None = None
    retries: int = 0

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise UnknownNameError("backend", str(self.name), BACKENDS)
        _check_count("n_jobs", self.n_jobs, none_ok=True)
        _check_count("cpus_per_task", self.cpus_per_task)
        _check_count("memory_per_task", self.memory_per_task, none_ok=True)
        _check_count("retries", self.retries, low=0)
        if self.timeout is not None and (
            isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float) or self.timeout <= 0
        ):
            raise OptionError(
                f"Backend: timeout must be None or a number of seconds > 0, got {self.timeout!r}"
            )
        if self.address is not None and self.name != "ray":
            raise OptionError(f"Backend: address= is for the 'ray' backend, not {self.name!r}")

    @property
    def parallel(self) -> bool:
        """Whether tasks run elsewhere than in this process (not ``serial``)."""
        return self.name != "serial"

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        items: Sequence[Any],
        *,
        shared: Any = None,
        labels: Sequence[str] | None = None,
        on_result: Callable[[int, Any], None] | None = None,
        memory: int | None = None,
    ) -> list[Any]:
        """``[fn(shared, item) for item in items]``, the calls run as this backend's tasks.

        Parameters
        ----------
        fn : callable
            A module-level function (it is sent to the workers by reference) of ``(shared, item)``.
        items : sequence
            One task per item.
        shared : object, optional
            What every task reads (the table): sent once per worker, not once per task.
        labels : sequence of str, optional
            How errors name each task (``"fold 3"``); default ``"task i"``.
        on_result : callable, optional
            Called here as ``on_result(i, result)`` as soon as task ``i`` finishes (in the order tasks
            finish), e.g. to save it to a checkpoint.
        memory : int, optional
            Bytes each task needs (``memory_per_task`` wins); see :func:`task_memory`.

        Returns
        -------
        list
            The results in the order of ``items``.

        Raises
        ------
        TrainingError
            A worker died or a task ran past ``timeout``; the message names the task.
        Exception
            Whatever ``fn`` raised, re-raised here.
        """
        labels = list(labels) if labels is not None else [f"task {i}" for i in range(len(items))]
        if not self.parallel or in_worker() or not items:
            results = []
            for i, item in enumerate(items):
                results.append(fn(shared, item))
                if on_result is not None:
                    on_result(i, results[-1])
            return results
        runner = _run_ray if self.name == "ray" else _run_processes
        return runner(self, fn, list(items), shared, labels, on_result, self.memory_per_task or memory)


def _check_count(name: str, value: Any, *, low: int = 1, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise OptionError(f"Backend: {name} must be a whole number >= {low}, got {value!r}")


def resolve_backend(backend: Backend | str | None) -> Backend:
    """``backend`` as a :class:`Backend`: a name gives one with default settings, None ``"serial"``."""
    if backend is None:
        return Backend()
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, str):
        return Backend(backend)
    raise OptionError(f"backend must be one of {', '.join(BACKENDS)} or a modalfuse.Backend, got {backend!r}")


_ACTIVE: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("modalfuse_backend", default=None)


def active_backend() -> Backend:
    """The backend set by :func:`using_backend` around this code; ``serial`` outside one, and always
    ``serial`` inside a backend's task (nested work does not fan out again)."""
    backend = _ACTIVE.get()
    return Backend() if backend is None or in_worker() else backend


@contextlib.contextmanager
def using_backend(backend: Backend | str | None) -> Iterator[Backend]:
    """Run the per-input models of the fits inside the block on ``backend`` (see :func:`resolve_backend`)."""
    resolved = resolve_backend(backend)
    token = _ACTIVE.set(resolved)
    try:
        yield resolved
    finally:
        _ACTIVE.reset(token)


def task_memory(table: Any) -> int:
    """Bytes one fold or input task over ``table`` reserves: :data:`TASK_BASE_BYTES` plus the table's
    frame and :data:`DECODE_FACTOR` times the bytes of its media files (read from their sizes on disk)."""
    frame = getattr(table, "frame", None)
    total = int(frame.memory_usage(deep=True).sum()) if frame is not None else 0
    return TASK_BASE_BYTES + total + DECODE_FACTOR * _media_bytes(table)


def _media_bytes(table: Any) -> int:
    """Sum of the sizes of the media files a table's image and audio cells name (0 without any)."""
    columns = getattr(getattr(table, "schema", None), "columns", {}) or {}
    total = 0
    for column, modality in columns.items():
        if str(modality) not in ("image", "audio"):
            continue
        for value in table.frame[column]:
            total += _cell_bytes(value)
    return total


def _cell_bytes(value: Any) -> int:
    """Bytes of one media cell: its file's size (paths are absolute in a read table) or its own bytes."""
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, str) and value:
        try:
            return os.path.getsize(value)
        except OSError:
            return 0
    return 0


# ------------------------------------------------------------------------------------------- the task
def _call(fn: Callable[[Any, Any], Any], shared: Any, item: Any, threads: int) -> Any:
    """Run one task in a worker: nested work serial, ``threads`` torch threads."""
    _WORKER["active"] = True
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # a task that needs no torch
        pass
    return fn(shared, item)


def _died(label: str, detail: BaseException | str) -> TrainingError:
    text = str(detail).strip().splitlines()
    what = f"{type(detail).__name__}: {text[0]}" if isinstance(detail, BaseException) else str(detail)
    if isinstance(detail, BaseException) and not text:
        what = type(detail).__name__
    whose = "a worker running one of them" if " or " in label else "its worker"
    return TrainingError(f"{label}: {whose} died ({what}); the run stopped")


def _timed_out(label: str, timeout: float) -> TrainingError:
    return TrainingError(f"{label}: still running after the {timeout:g} s timeout; the run stopped")


class _Queue:
    """The tasks of one :meth:`Backend.map`: which wait, which run since when, and their results."""

    def __init__(self, items: list[Any], labels: list[str], width: int, timeout: float | None) -> None:
        self.items, self.labels, self.width, self.timeout = items, labels, max(1, width), timeout
        self.waiting = collections.deque(range(len(items)))
        self.running: dict[Any, tuple[int, float]] = {}  # handle -> (index, start)
        self.results: list[Any] = [None] * len(items)

    def fill(self, submit: Callable[[Any], Any]) -> None:
        """Start waiting tasks until ``width`` run."""
        while self.waiting and len(self.running) < self.width:
            i = self.waiting.popleft()
            self.running[submit(self.items[i])] = (i, time.monotonic())

    def wait_seconds(self) -> float | None:
        """Seconds until the first running task's timeout (None without one)."""
        if self.timeout is None or not self.running:
            return None
        first = min(start for _, start in self.running.values())
        return max(0.0, first + self.timeout - time.monotonic()) + 0.05

    def check_timeouts(self) -> None:
        if self.timeout is None:
            return
        now = time.monotonic()
        for i, start in self.running.values():
            if now - start > self.timeout:
                raise _timed_out(self.labels[i], self.timeout)

    def finish(self, handle: Any, value: Any, on_result: Callable[[int, Any], None] | None) -> None:
        i, _ = self.running.pop(handle)
        self.results[i] = value
        if on_result is not None:
            on_result(i, value)


# -------------------------------------------------------------------------------------- processes
#: Seconds an idle worker process of the ``processes`` backend waits for more work before it exits (the
#: pool is reused by the next run within that time, which saves starting Python and torch again).
IDLE_SECONDS = 120


def _process_call(fn: Callable[[Any, Any], Any], payload: bytes, item: Any, threads: int) -> Any:
    return _call(fn, pickle.loads(payload), item, threads)  # cloudpickle's output loads with pickle


def _run_processes(
    backend: Backend,
    fn: Callable[[Any, Any], Any],
    items: list[Any],
    shared: Any,
    labels: list[str],
    on_result: Callable[[int, Any], None] | None,
    memory: int | None,
) -> list[Any]:
    """:meth:`Backend.map` on a pool of local processes (loky's reusable pool: its workers exit after
    :data:`IDLE_SECONDS` idle); on a lost worker, a timeout or an interruption its workers are killed."""
    import cloudpickle
    from joblib.externals import loky

    width = backend.n_jobs or max(1, (os.cpu_count() or 1) // backend.cpus_per_task)
    width = min(width, len(items))
    threads = str(backend.cpus_per_task)
    env = {name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    payload = cloudpickle.dumps(shared)  # once for every task: closures (fold_metrics) included
    pool = loky.get_reusable_executor(max_workers=width, timeout=IDLE_SECONDS, env=env)
    queue = _Queue(items, labels, width, backend.timeout)
    try:
        while queue.waiting or queue.running:
            queue.fill(lambda item: pool.submit(_process_call, fn, payload, item, backend.cpus_per_task))
            done, _ = loky.wait(
                list(queue.running), timeout=queue.wait_seconds(), return_when=loky.FIRST_COMPLETED
            )
            if not done:
                queue.check_timeouts()
            for future in done:
                try:
                    value = future.result()
                except (
                    loky.BrokenProcessPool
                ) as exc:  # loky cannot tell whose worker died: name every running task
                    raise _died(" or ".join(labels[i] for i, _ in queue.running.values()), exc) from None
                queue.finish(future, value, on_result)
    except BaseException:
        pool.shutdown(wait=True, kill_workers=True)
        raise
    return queue.results


# --------------------------------------------------------------------------------------------- ray
def import_ray() -> Any:
    """The ``ray`` module, or an :class:`~modalfuse.OptionError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise OptionError(
            f"backend 'ray' needs Ray, which is not installed: pip install 'modalfuse[{RAY_EXTRA}]'"
        ) from None
    return ray


def _connect(backend: Backend, memory: int | None) -> bool:
    """Join the cluster at the backend's address (or ``RAY_ADDRESS``), or start Ray here; True when this
    call started or joined it (so the run shuts it down), False when Ray was already initialised."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = backend.address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        ray.init(address=address, configure_logging=False, log_to_driver=True)
        return True
    width = backend.n_jobs or os.cpu_count() or 1
    store = max(MIN_OBJECT_STORE, 2 * (memory or 0) - 2 * TASK_BASE_BYTES + MIN_OBJECT_STORE)
    ray.init(
        num_cpus=width * backend.cpus_per_task,
        include_dashboard=False,
        configure_logging=False,
        object_store_memory=int(store),
    )
    return True


def _ray_width(backend: Backend, ray: Any) -> int:
    if backend.n_jobs is not None:
        return backend.n_jobs
    return max(1, int(ray.cluster_resources().get("CPU", 1) // backend.cpus_per_task))


def _ray_value(ray: Any, ref: Any, label: str) -> Any:
    """The result of a finished task; its own error re-raised, a lost worker as a TrainingError."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise
    except ray.exceptions.RayError as exc:  # WorkerCrashedError, NodeDiedError, OutOfMemoryError, ...
        raise _died(label, exc) from None


def _run_ray(
    backend: Backend,
    fn: Callable[[Any, Any], Any],
    items: list[Any],
    shared: Any,
    labels: list[str],
    on_result: Callable[[int, Any], None] | None,
    memory: int | None,
) -> list[Any]:
    """:meth:`Backend.map` as Ray tasks; unfinished tasks are cancelled when the run stops early."""
    ray = import_ray()
    started = _connect(backend, memory)
    queue: _Queue | None = None
    try:
        options: dict[str, Any] = {"num_cpus": backend.cpus_per_task, "max_retries": backend.retries}
        if memory:
            options["memory"] = int(memory)
        remote = ray.remote(_call).options(**options)
        shared_ref = ray.put(shared)
        queue = _Queue(items, labels, _ray_width(backend, ray), backend.timeout)
        while queue.waiting or queue.running:
            queue.fill(lambda item: remote.remote(fn, shared_ref, item, backend.cpus_per_task))
            ready, _ = ray.wait(list(queue.running), num_returns=1, timeout=queue.wait_seconds())
            if not ready:
                queue.check_timeouts()
            for ref in ready:
                value = _ray_value(ray, ref, labels[queue.running[ref][0]])
                queue.finish(ref, value, on_result)
    finally:
        for ref in queue.running if queue is not None else ():
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
    return queue.results
