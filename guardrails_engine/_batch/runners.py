"""Where the partitions of a batch job run: this process, a pool of processes on
this machine, or a Dask cluster.  Each runner maps a picklable function over
picklable items and yields ``(index, result)`` as each item finishes.

A policy travels to a worker as its source and is compiled there once per process
(``Policy.__reduce__``), never per row or partition.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from .._common.errors import GuardrailsError

__all__ = ["BatchError", "DaskRunner", "InProcess", "ProcessPool", "Runner"]

T = TypeVar("T")
R = TypeVar("R")

#: How often one item may take its process down before the job gives up on it.
MAX_ATTEMPTS = 3


class BatchError(GuardrailsError, RuntimeError):
    """A batch job could not finish (a partition kept killing its worker, a
    cluster could not be reached)."""


class Runner(Protocol):
    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]: ...

    def close(self) -> None: ...


class InProcess:
    """Every item in this process, in order."""

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        for i, item in enumerate(items):
            yield i, fn(item)

    def close(self) -> None:
        pass


class ProcessPool:
    """A pool of ``workers`` processes started with ``spawn`` (safe with threads
    and on every platform).  If a worker dies, the pool is started again and the
    unfinished items are sent again, at most :data:`MAX_ATTEMPTS` times each."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise BatchError(f"workers must be at least 1, not {workers}")
        self.workers = workers

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        pending = dict(enumerate(items))
        attempts = dict.fromkeys(pending, 0)
        context = multiprocessing.get_context("spawn")
        with tempfile.TemporaryDirectory(prefix="ge-batch-") as marks:
            while pending:
                broken: list[int] = []
                with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
                    futures: dict[Future[R], int] = {
                        pool.submit(_marked, fn, os.path.join(marks, str(i)), item): i
                        for i, item in pending.items()
                    }
                    todo = set(futures)
                    while todo:
                        done, todo = wait(todo, return_when=FIRST_COMPLETED)
                        for fut in done:
                            i = futures[fut]
                            try:
                                result = fut.result()
                            except BrokenProcessPool:
                                broken.append(i)
                                continue
                            del pending[i]
                            yield i, result
                # Only the items that had started when the pool broke are charged
                # (an item still queued did nothing wrong), all of them if none had.
                started = [i for i in broken if os.path.exists(os.path.join(marks, str(i)))]
                for i in started:
                    os.remove(os.path.join(marks, str(i)))
                for i in sorted(started or broken):
                    attempts[i] += 1
                    if attempts[i] >= MAX_ATTEMPTS:
                        raise BatchError(
                            f"item {i} stopped its worker process {MAX_ATTEMPTS} times"
                        )

    def close(self) -> None:
        pass


def _marked(fn: Callable[[T], R], marker: str, item: T) -> R:
    """``fn(item)`` in a worker, leaving ``marker`` to say the item started."""
    with open(marker, "wb"):
        pass
    return fn(item)


class DaskRunner:
    """Items as tasks of a Dask cluster: a new ``LocalCluster`` of ``local``
    worker processes, or the scheduler at ``address``.  A task whose worker dies
    is run again by Dask (up to its ``allowed-failures``)."""

    def __init__(self, *, local: int | None = None, address: str | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise BatchError(
                "a Dask cluster needs dask.distributed: pip install 'guardrails-engine[batch]'"
            ) from None
        self._cluster: Any = None
        if address is not None:
            try:
                self.client: Any = Client(address, timeout="10s")
            except OSError as exc:
                raise BatchError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        else:
            n = local or 1
            if n < 1:
                raise BatchError(f"local workers must be at least 1, not {n}")
            self._cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            self.client = Client(self._cluster)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        from distributed import as_completed

        futures = self.client.map(fn, list(items), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            yield index[fut.key], fut.result()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_runner(
    *, workers: int | None = None, local: int | None = None, scheduler: str | None = None
) -> Runner:
    """The runner the options name: at most one of them; none is this process."""
    given = [n for n, v in (("workers", workers), ("local", local), ("scheduler", scheduler)) if v]
    if len(given) > 1:
        raise BatchError(f"choose one of workers, local and scheduler, not {' and '.join(given)}")
    if workers:
        return ProcessPool(workers)
    if local or scheduler:
        return DaskRunner(local=local, address=scheduler)
    return InProcess()
