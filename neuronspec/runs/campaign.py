"""A campaign: seeded chunks of work spread over supervised worker processes, results yielded
in chunk order.

Chunks are small pure tasks (a seed, an index and a count in; statistics out), so the result is
the same whatever the number of workers.  Workers are fresh processes (``spawn``) that ignore
SIGINT (the parent decides) and end when their parent does.  A worker that dies (a crash in a
native library, ``os._exit``), raises something that is not an error (``SystemExit``,
``KeyboardInterrupt`` from the code under test) or outlives ``timeout`` yields a
:class:`ChunkFailed` for its chunk and is replaced; after ``MAX_FAILURES`` failed chunks in a row
the campaign yields what it has and stops (:class:`~neuronspec.errors.WorkerDied`).  An
exception in the work itself is a defect of neuronspec and is raised with its traceback.  Tasks are drawn from their iterable as
workers free up, so a campaign of 1e10 cases never holds its task list.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator, Optional

from ..errors import WorkerDied
from ..implementations.process import exit_words

__all__ = ["Campaign", "run_chunks", "completed", "ChunkFailed", "MAX_FAILURES", "CHUNK_TIMEOUT"]

#: Failed chunks in a row after which a campaign stops.
MAX_FAILURES = 3
#: Tasks a worker holds at once: the next is there when it finishes one.
DEPTH = 2
#: Seconds a chunk of a sweep may take before it counts as hung (``--timeout``).
CHUNK_TIMEOUT = 600.0


@dataclass
class ChunkFailed:
    """A chunk whose worker died, hung or raised what is not an error: ``why`` says which."""

    task: Any
    why: str


def _watch_parent() -> None:
    parent = mp.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os._exit(3)  # the parent is gone: never outlive it


def _serve(conn, initializer: Optional[Callable], initargs: tuple) -> None:
    """A worker: run each ``(work, task)`` received, send back what happened."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, daemon=True).start()
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            work, task = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", work(task))
        except Exception as exc:  # a defect of the work: the parent raises it
            reply = ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        except BaseException as exc:  # SystemExit, KeyboardInterrupt from the code under test
            reply = ("died", f"raised {type(exc).__name__}: {exc}")
        conn.send(reply)


class _Worker:
    def __init__(self, ctx, initializer, initargs) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, initializer, initargs),
                                   daemon=True)
        self.process.start()
        child.close()
        self.jobs: "deque[list]" = deque()  # [index, task, started]: sent, not yet answered

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class Campaign:
    """``workers`` supervised processes, each initialised once by ``initializer(*initargs)``,
    kept for several :meth:`map` calls (a sweep loads its implementation once, then asks
    what it is, whether it supports the format, and runs the chunks).  A context manager: the
    processes end with it."""

    def __init__(self, workers: int = 1, initializer: Optional[Callable[..., None]] = None,
                 initargs: Iterable = ()) -> None:
        self._ctx = mp.get_context("spawn")
        self._init = (initializer, tuple(initargs))
        self._pool = [self._new() for _ in range(max(1, workers))]

    def _new(self) -> _Worker:
        return _Worker(self._ctx, *self._init)

    def __enter__(self) -> "Campaign":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self._pool:
            if w is not None:
                w.kill()

    def map(self, work: Callable[[Any], Any], tasks: Iterable[Any],
            timeout: Optional[float] = None) -> Iterator[Any]:
        """``work(task)`` for every task, in task order (a :class:`ChunkFailed` in place of a
        chunk that failed).  ``work`` must be importable (a module-level function).  Each
        worker holds up to ``DEPTH`` tasks, so it never waits for the parent between two."""
        pool: "list[_Worker | None]" = self._pool
        source = enumerate(tasks)
        retry: "deque[tuple[int, Any]]" = deque()  # sent to a worker that died on another task
        done: dict[int, Any] = {}
        next_index, exhausted, failures = 0, False, 0
        try:
            while True:
                for i, w in enumerate(pool):  # keep every worker's queue full
                    if w is None:  # ended by an earlier map that stopped early
                        pool[i] = w = self._new()
                    while len(w.jobs) < DEPTH and (retry or not exhausted):
                        item = retry.popleft() if retry else next(source, None)
                        if item is None:
                            exhausted = True
                            break
                        w.jobs.append([item[0], item[1], time.monotonic()])
                        try:
                            w.conn.send((work, item[1]))
                        except OSError:  # it died (say, importing the code under test):
                            break  # its sentinel says how, below
                busy = [w for w in pool if w is not None and w.jobs]
                if not busy:
                    break
                wait_for = None
                if timeout is not None:
                    wait_for = max(0.0, min(w.jobs[0][2] + timeout for w in busy)
                                   - time.monotonic())
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                                 wait_for))
                for i, w in enumerate(pool):
                    if w is None or not w.jobs:
                        continue
                    index, task, started = w.jobs[0]
                    why = None
                    if w.conn in ready:
                        try:
                            reply = w.conn.recv()
                        except (EOFError, OSError):
                            reply = None
                        if reply is not None and reply[0] == "ok":
                            done[index], failures = reply[1], 0
                            w.jobs.popleft()
                            if w.jobs:  # the next one starts now
                                w.jobs[0][2] = time.monotonic()
                            continue
                        if reply is not None and reply[0] == "error":
                            raise RuntimeError(f"chunk {index} failed: {reply[1]}\n{reply[2]}")
                        why = reply[1] if reply is not None else None
                    if why is None and w.process.sentinel in ready:
                        w.process.join(1)
                        why = f"the worker process {exit_words(w.process.exitcode)}"
                    if why is None and timeout is not None \
                            and time.monotonic() - started >= timeout:
                        why = f"the chunk did not finish within {timeout:g} s"
                    if why is None:
                        continue
                    w.kill()
                    pool[i] = self._new()
                    w.jobs.popleft()
                    retry.extend((j[0], j[1]) for j in w.jobs)  # never started: not theirs
                    done[index] = ChunkFailed(task, why)
                    failures += 1
                    if failures >= MAX_FAILURES:  # what is done (failures included), then stop
                        for k in sorted(done):
                            yield done.pop(k)
                        raise WorkerDied(f"{MAX_FAILURES} chunks in a row failed; last: {why}")
                while next_index in done:
                    yield done.pop(next_index)
                    next_index += 1
        finally:  # stopped early (an error, an interruption, a consumer that stopped reading):
            for i, w in enumerate(pool):  # a busy worker's answers would come to the next map
                if w is not None and w.jobs:
                    w.kill()
                    pool[i] = None


def run_chunks(work: Callable[[Any], Any], tasks: Iterable[Any], *, workers: int = 1,
               initializer: Optional[Callable[..., None]] = None, initargs: Iterable = (),
               in_process: bool = False, timeout: Optional[float] = None) -> Iterator[Any]:
    """``work(task)`` for every task, in task order (a :class:`ChunkFailed` in place of a chunk
    that failed).  ``in_process``: run here, after ``initializer(*initargs)`` (for trusted work
    only); else in a :class:`Campaign` of ``workers`` processes."""
    if in_process:
        if initializer is not None:
            initializer(*initargs)
        yield from map(work, tasks)
        return
    with Campaign(workers, initializer, initargs) as campaign:
        yield from campaign.map(work, tasks, timeout)


def completed(parts: Iterable[Any]) -> Iterator[Any]:
    """The chunks of a campaign that must all finish (the reference's own campaigns): a failed
    chunk stops it with :class:`~neuronspec.errors.WorkerDied` naming why."""
    for part in parts:
        if isinstance(part, ChunkFailed):
            raise WorkerDied(f"a chunk of the campaign failed: {part.why}")
        yield part
