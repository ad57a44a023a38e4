"""Independent points of work (training runs, place-and-route runs, simulator launches, blocks of a
trace) run on Dask: a ``LocalCluster`` of worker processes sized to the machine, or an existing cluster
given by its scheduler's address; with one local worker, in this process.

Every point runs in a worker with one thread (torch and BLAS too); results come back in the order the
points were given, whatever order they finish in, so a run on any number of workers gives the same
result as a one-worker run. A point that fails is reported with its error and the others go on.
Workers of an existing cluster must have leopard installed and see the same file system at the same
paths (the points read and write files by path, relative to the submitting command's folder).
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from leopard.hw.errors import LeopardError

WORKER_ENVIRONMENT = {name: 1 for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                            "NUMBA_NUM_THREADS")}
"""The environment of local workers: one thread each, so that workers do not share cores. It replaces
Dask's default, which also sets ``MALLOC_TRIM_THRESHOLD_``: a fixed trim threshold turns off glibc's
adaptive mmap threshold, so every large NumPy array is mapped and faulted in afresh (half the golden
model's time)."""
LOCAL_HTTP = "127.0.0.1:0"
"""Where a local cluster's scheduler serves HTTP: a free port on this machine only. Dask's default, port
8787, is taken by whichever cluster starts first, and the next one warns (an error under pytest)."""


@dataclass(frozen=True)
class Point:
    """One call ``function(*args, **kwargs)``, named in progress and error lines; ``cost`` estimates its
    work (the costliest points start first, so that a long one does not start last)."""

    name: str
    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What a point returned, or the one-line error it failed with."""

    name: str
    value: Any = None
    error: str | None = None
    seconds: float = 0.0


def machine_workers() -> int:
    """Local workers by default: one per core this process may use."""
    return len(os.sched_getaffinity(0))


def _call(name: str, folder: str, function: Callable[..., Any], kwargs: dict[str, Any],
          *args: Any) -> Outcome:
    """Run one point in the submitting process's working ``folder`` (so relative paths mean what they
    mean there), turning a failure into its error line (the arguments are passed flat so that Dask
    gives the worker the values of shared ones)."""
    started = time.perf_counter()
    here = os.getcwd()
    try:
        os.chdir(folder)
        value = function(*args, **kwargs)
    except LeopardError as error:
        return Outcome(name, error=str(error), seconds=time.perf_counter() - started)
    except Exception as error:  # any failure of one point is reported and the others go on
        return Outcome(name, error=f"{type(error).__name__}: {error}", seconds=time.perf_counter() - started)
    finally:
        os.chdir(here)
    return Outcome(name, value, seconds=time.perf_counter() - started)


def _call_here(point: Point) -> Outcome:
    return _call(point.name, os.getcwd(), point.function, point.kwargs, *point.args)


def _import(modules: tuple[str, ...]) -> None:
    for module in modules:
        importlib.import_module(module)


class Pool:
    """Where points run: ``workers`` local processes (default: ``machine_workers()``; 1 runs them here),
    or the cluster whose scheduler is at ``scheduler``."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None) -> None:
        self.workers = workers or machine_workers()
        self.scheduler = scheduler
        self._client: Any = None
        self._cluster: Any = None

    @property
    def serial(self) -> bool:
        return self.scheduler is None and self.workers == 1

    def __enter__(self) -> Pool:
        if self.serial:
            return self
        import dask
        from distributed import Client, LocalCluster

        try:
            if self.scheduler is None:
                with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRONMENT}):
                    self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                                 processes=True, dashboard_address=LOCAL_HTTP,
                                                 silence_logs=logging.ERROR)
                self._client = Client(self._cluster)
            else:
                self._client = Client(self.scheduler, timeout="10s")
        except (OSError, ValueError) as error:
            self.__exit__(None, None, None)
            where = f"the scheduler at {self.scheduler}" if self.scheduler else "a local cluster"
            raise LeopardError(f"cannot reach {where} ({error}); start it, or drop --scheduler to run "
                               "on this machine") from None
        if self.scheduler is not None:
            self._check_cluster()
        return self

    def _check_cluster(self) -> None:
        """An existing cluster's workers: at least one, each with one thread (a point changes its
        process's working folder while it runs)."""
        workers = self._client.scheduler_info()["workers"]
        threaded = [address for address, worker in workers.items() if worker.get("nthreads", 1) != 1]
        if not workers or threaded:
            self.__exit__(None, None, None)
            problem = "has no workers" if not workers else f"has workers with several threads ({threaded[0]})"
            raise LeopardError(f"the Dask cluster at {self.scheduler} {problem}; start workers with "
                               "`dask worker ADDRESS --nthreads 1`")
        self.workers = len(workers)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def describe(self) -> str:
        if self.scheduler:
            return f"the Dask cluster at {self.scheduler}"
        return "this process" if self.serial else f"{self.workers} local Dask workers"

    def warm(self, *modules: str) -> None:
        """Have every worker import ``modules`` now, while this process goes on (imports take seconds)."""
        if self.serial:
            return
        from distributed import fire_and_forget

        for worker in self._client.scheduler_info()["workers"]:
            fire_and_forget(self._client.submit(_import, modules, workers=[worker], allow_other_workers=False,
                                                pure=False))

    def share(self, value: Any) -> Any:
        """``value`` as an argument of many points: sent to every worker once."""
        if self.serial:
            return value
        return self._client.scatter(value, broadcast=True, hash=False)

    def run(self, points: Sequence[Point], progress: Callable[[str], None] | None = None,
            *, what: str = "points", summary: Callable[[Any], str] | None = None) -> list[Outcome]:
        """Run every point; their outcomes in the order of ``points``. Each one finished is a progress
        line, with ``summary(value)`` when given."""
        total = len(points)
        outcomes: dict[int, Outcome] = {}

        def finished(index: int, outcome: Outcome) -> None:
            outcomes[index] = outcome
            if progress:
                state = f"failed: {outcome.error}" if outcome.error else f"done in {outcome.seconds:.1f} s"
                if summary and outcome.error is None:
                    state += f", {summary(outcome.value)}"
                progress(f"[{len(outcomes)}/{total} {what}] {outcome.name}: {state}")

        if self.serial:
            for index, point in enumerate(points):
                finished(index, _call_here(point))
        else:
            from distributed import as_completed

            order = sorted(range(total), key=lambda index: -points[index].cost)
            futures = {self._submit(points[index]): index for index in order}
            for future in as_completed(futures):
                finished(futures[future], _collect(future, points[futures[future]].name))
        return [outcomes[index] for index in range(total)]

    def _submit(self, point: Point) -> Any:
        """``point`` sent to the cluster (its priority its cost), run in this process's folder."""
        return self._client.submit(_call, point.name, os.getcwd(), point.function, point.kwargs, *point.args,
                                   pure=False, priority=point.cost)

    def stream(self, points: Iterable[Point], window: int) -> Iterator[Outcome]:
        """The outcomes of ``points`` in order, taking the next point only while fewer than ``window``
        run or wait to be collected (so memory holds at most ``window`` points' data)."""
        if self.serial:
            for point in points:
                yield _call_here(point)
            return
        running: deque[tuple[str, Any]] = deque()
        for point in points:
            running.append((point.name, self._submit(point)))
            if len(running) >= window:
                name, future = running.popleft()
                yield _collect(future, name)
        while running:
            name, future = running.popleft()
            yield _collect(future, name)


def _collect(future: Any, name: str) -> Outcome:
    """The outcome of the point ``name`` that ``future`` runs."""
    try:
        return future.result()
    except Exception as error:  # the worker died (out of memory, killed): that point failed
        return Outcome(name, error=f"{type(error).__name__}: {error}")


def values(outcomes: Sequence[Outcome], what: str) -> list[Any]:
    """The points' values; one error naming every failed point (after all of them ran)."""
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    if failed:
        listed = "; ".join(f"{outcome.name}: {outcome.error}" for outcome in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        raise LeopardError(f"{len(failed)} of {len(outcomes)} {what} failed: {listed}{more}")
    return [outcome.value for outcome in outcomes]
