"""One executor for every fan-out: sweeps, benches, image batches -- on Dask.

``Executor(workers=N)`` starts a :class:`distributed.LocalCluster` of ``N`` worker
processes (one thread each: a simulation is one process, so threads would only
contend) listening on 127.0.0.1; ``Executor(scheduler="tcp://host:8786")`` connects
to a running Dask scheduler whose workers have nnaccel installed (``pip install``
the project on each; no shared file system is needed: a task carries its inputs
and returns its result, and each worker keeps its own build cache, keyed by
content, under ``$NNACCEL_CACHE``); ``Executor(workers=0)`` runs the tasks one
after another in this process (no Dask at all: the reference a parallel run is
compared with).

:meth:`Executor.run` submits ``fn(item)`` per item and yields an :class:`Outcome` per
item as each finishes, in completion order. A task that raises yields its error
(one line, the exception's type and message) and the others go on; a worker that
dies mid-task has its task rerun elsewhere by the scheduler (Dask's own
``allowed_failures``), and a task that kills workers three times yields an error.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from distributed.diagnostics.plugin import WorkerPlugin


@dataclass
class Outcome:
    key: str
    ok: bool
    value: Any  # fn's return value, or None
    error: str | None  # one line when not ok
    worker: str  # where it ran ("local" in process)
    wall_s: float  # seconds from submission to result, as the client saw it


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def _malloc_defaults() -> None:
    """Undo the Dask nanny's ``MALLOC_TRIM_THRESHOLD_=65536``: with a fixed trim
    threshold glibc stops adapting its mmap threshold, and every numpy array above
    128 kB is mapped and unmapped anew -- the cycle models ran 1.8x slower on a worker
    than in a plain process (measured, ``nnaccel bench sweep``). Large thresholds restore
    heap reuse."""
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD (its maximum on 64-bit)
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to undo


class _Setup(WorkerPlugin):
    """A Dask worker plugin: the allocator fixed and the task's modules imported, on
    every worker before its first task (the imports then count as start-up, not as the
    first tasks' overhead)."""

    def __init__(self, modules: tuple[str, ...]):
        self.modules = tuple(modules)

    def setup(self, worker) -> None:
        import importlib
        _malloc_defaults()
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # nor in the simulators the tasks start
        for m in self.modules:
            importlib.import_module(m)


def _call(fn: Callable, item) -> tuple[Any, str]:
    """What a worker runs: ``fn(item)`` and where it ran."""
    return fn(item), f"{socket.gethostname()}:{os.getpid()}"


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def check_scheduler(address: str) -> str:
    """``address`` if it looks like a Dask scheduler address, else ValueError."""
    if "://" not in address or not address.split("://", 1)[1]:
        raise ValueError(f"--scheduler {address!r} is not a scheduler address (expected tcp://HOST:PORT)")
    return address


class Executor:
    """A context manager; see the module docstring."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, *, connect_timeout_s: float = 60,
                 preload: tuple[str, ...] = ()):
        if workers is not None and workers < 0:
            raise ValueError(f"--workers must be >= 0, not {workers}")
        self.scheduler = check_scheduler(scheduler) if scheduler else None
        self.workers = default_workers() if workers is None and not scheduler else workers
        self.connect_timeout_s = connect_timeout_s
        self.preload = preload
        self.client = None
        self._cluster = None

    @property
    def serial(self) -> bool:
        return not self.scheduler and self.workers == 0

    def describe(self) -> str:
        if self.serial:
            return "in this process, one task at a time"
        if self.scheduler:
            n = len(self.client.scheduler_info(n_workers=-1)["workers"]) if self.client else "?"
            return f"Dask scheduler {self.scheduler} ({n} workers)"
        return f"local Dask cluster, {self.workers} worker processes"

    def __enter__(self) -> "Executor":
        if self.serial:
            return self
        from distributed import Client, LocalCluster
        for name in ("distributed", "distributed.worker", "distributed.nanny", "distributed.scheduler",
                     "distributed.core", "distributed.comm", "tornado"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        if self.scheduler:
            if self.scheduler.startswith("tcp://"):  # a closed port fails at once, not after the timeout
                host, _, port = self.scheduler[6:].rpartition(":")
                try:
                    socket.create_connection((host.strip("[]"), int(port)), timeout=self.connect_timeout_s).close()
                except (OSError, ValueError) as e:
                    raise ConnectionError(f"cannot reach the Dask scheduler at {self.scheduler}: "
                                          f"{_one_line(e)}") from None
            try:
                self.client = Client(self.scheduler, timeout=f"{self.connect_timeout_s}s")
            except (OSError, TimeoutError) as e:
                raise ConnectionError(f"cannot reach the Dask scheduler at {self.scheduler}: {_one_line(e)}") from None
        else:
            import dask
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                             host="127.0.0.1", dashboard_address=None,
                                             silence_logs=logging.CRITICAL)
            self.client = Client(self._cluster)
        # every worker (and one that joins later, e.g. a restarted one) set up before its first task
        try:
            self.client.register_plugin(_Setup(self.preload), name="nnaccel-setup")
        except Exception as e:  # noqa: BLE001  (a worker without nnaccel: say so, once)
            self.__exit__()
            raise ConnectionError(f"the Dask workers cannot set up nnaccel ({_one_line(e)}): install nnaccel on "
                                  f"every worker") from None
        return self

    def __exit__(self, *exc) -> None:
        for thing in (self.client, self._cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001  (closing after an interrupt: nothing more to do)
                    pass
        self.client = self._cluster = None

    def runner(self, what: str, resources: dict[str, float] | None = None) -> Callable:
        """``run(fn, items, labels) -> [fn(item) ...]`` in the items' order, on this
        executor: the hook a long study (``cosim/benches/phantom.py``, ``analog/aid.py``)
        takes so its jobs run here while the study itself knows nothing of Dask. A job
        that fails ends it with ``what``, the job's label and the error (one line).
        ``resources``: the slots each job holds (:meth:`slots`)."""
        return _runner(self, what, resources)

    def slots(self, wanted: dict[str, float] | None) -> dict[str, float] | None:
        """The part of ``wanted`` (e.g. ``{"synth": 1}``) that the cluster's workers declare
        (``dask worker --resources "synth=1 ngspice=2"``): a task then holds that slot while
        it runs, so a worker with several threads runs at most as many such tasks at once
        as it has slots. A resource no worker declares is not asked for (a task waiting
        for it would wait for ever)."""
        if not wanted or self.client is None:
            return None
        offered = set()
        for w in self.client.scheduler_info(n_workers=-1)["workers"].values():
            offered |= set(w.get("resources") or {})
        return {k: v for k, v in wanted.items() if k in offered} or None

    def run(self, fn: Callable, items: Iterable, keys: Iterable[str], *,
            resources: dict[str, float] | None = None) -> Iterator[Outcome]:
        """``fn(item)`` per item (``fn`` a module-level function, ``item`` picklable), an
        :class:`Outcome` per item as each finishes; the tasks start in the items' order
        (put the longest first); ``keys`` name the tasks (unique);
        ``resources``: the slots each task holds where workers declare them (:meth:`slots`)."""
        items, keys = list(items), list(keys)
        if len(set(keys)) != len(keys):
            raise ValueError("task keys must be unique")
        if self.serial:
            for key, item in zip(keys, items):
                t0 = time.perf_counter()
                try:
                    value, where = _call(fn, item)
                    yield Outcome(key, True, value, None, "local", time.perf_counter() - t0)
                except Exception as e:  # noqa: BLE001  (a failed task is a result, not the end of the run)
                    yield Outcome(key, False, None, _one_line(e), "local", time.perf_counter() - t0)
            return
        from distributed import as_completed
        t0 = time.perf_counter()
        held = self.slots(resources)
        n = len(items)  # the items' order is the run order: the first has the highest priority
        futures = {self.client.submit(_call, fn, item, key=key, pure=False, resources=held, priority=n - i): key
                   for i, (key, item) in enumerate(zip(keys, items))}
        try:
            for fut in as_completed(list(futures)):
                key = futures[fut]
                try:
                    value, where = fut.result()
                    yield Outcome(key, True, value, None, where, time.perf_counter() - t0)
                except Exception as e:  # noqa: BLE001
                    yield Outcome(key, False, None, _one_line(e), "?", time.perf_counter() - t0)
                fut.release()
        finally:
            self.client.cancel([f for f in futures if not f.done()])


def _runner(ex: "Executor", what: str, resources: dict | None):
    def run(fn: Callable, items: list, labels: list[str]) -> list:
        from golden.errors import CosimError
        stamp = time.time_ns()
        results = [None] * len(items)
        for o in ex.run(fn, items, [f"{i}-{stamp}" for i in range(len(items))], resources=resources):
            i = int(o.key.split("-")[0])
            if not o.ok:
                raise CosimError(f"{what}: {labels[i]}: {o.error}")
            results[i] = o.value
            print(f"{what}: {labels[i]} done on {o.worker} ({o.wall_s:.0f} s from the start)",
                  file=sys.stderr, flush=True)
        return results
    return run
