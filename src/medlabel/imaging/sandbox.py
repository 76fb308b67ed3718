"""Run untrusted decoding in worker processes with memory and time limits.

A decoder bug or a hostile file must cost one file, not the server: every file is handled
in a pool of worker processes whose address space is capped (``RLIMIT_AS``) and whose run
time per file is bounded. A worker that dies (segfault, OOM kill) or overruns its time is
replaced, and only that file is reported as failed.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import resource
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int = 4 * 1024**3
    seconds_per_task: float = 120.0
    workers: int = max(1, min(4, os.cpu_count() or 1))
    # Imported once by the fork server, so each worker starts warm (a spawned worker spends
    # about a second importing numpy, pydicom and the codecs).
    preload: tuple[str, ...] = ()


def _limit_memory(memory_bytes: int) -> None:
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


@dataclass(frozen=True)
class Failed:
    """A task that did not return: the worker died or ran out of time or memory."""

    reason: str


class Sandbox(Generic[T, R]):
    """Maps ``fn`` over tasks in limited worker processes, yielding results in task order."""

    def __init__(self, fn: Callable[[T], R], limits: SandboxLimits) -> None:
        self._fn = fn
        self._limits = limits
        self._pool: cf.ProcessPoolExecutor | None = None

    def __enter__(self) -> Sandbox[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _executor(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(self._limits.preload))
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self._limits.workers,
                mp_context=context,
                initializer=_limit_memory,
                initargs=(self._limits.memory_bytes,),
            )
        return self._pool

    def _reset(self) -> None:
        if self._pool is not None:
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.kill()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, tasks: Iterable[T], window: int = 32) -> Iterator[R | Failed]:
        """Results in order; at most ``window`` tasks in flight (bounded memory)."""
        pending: list[tuple[T, cf.Future[R]]] = []
        iterator = iter(tasks)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < window:
                try:
                    task = next(iterator)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((task, self._submit(task)))
            if not pending:
                break
            task, future = pending.pop(0)
            yield self._result(task, future, pending)

    def _result(
        self, task: T, future: cf.Future[R], pending: list[tuple[T, cf.Future[R]]]
    ) -> R | Failed:
        try:
            return future.result(timeout=self._limits.seconds_per_task)
        except cf.TimeoutError:
            outcome: R | Failed = Failed("decoding took too long and was stopped")
        except (BrokenProcessPool, MemoryError):
            outcome = Failed("the decoder ran out of memory or crashed on this file")
        except Exception:  # the task raised: only this file failed, the pool is fine
            return Failed("the file could not be processed (unexpected decoder error)")
        # The pool is unusable (or busy with a runaway task): restart it and resubmit the
        # other in-flight tasks, which did nothing wrong.
        self._reset()
        for i, (other, _) in enumerate(pending):
            pending[i] = (other, self._submit(other))
        return outcome

    def _submit(self, task: T) -> cf.Future[R]:
        try:
            return self._executor().submit(self._fn, task)
        except BrokenProcessPool:  # a worker died since the last result: start afresh
            self._reset()
            return self._executor().submit(self._fn, task)
