"""A campaign: seeded chunks of work spread over processes, results merged in chunk order.

Chunks are small pure tasks (a seed, an index and a count in; statistics out), so the result is
the same whatever the number of workers.  Workers are fresh processes (``spawn``); a worker that
dies (a crash in a native library, ``os._exit``) stops the campaign with an error instead of a
hang."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from ..errors import WorkerDied

__all__ = ["run_chunks"]

def run_chunks(work: Callable[[Any], Any], tasks: Sequence[Any], *, workers: int = 1,
               initializer: Optional[Callable[..., None]] = None, initargs: Iterable = (),
               fresh: bool = False) -> Iterator[Any]:
    """``work(task)`` for every task, in order.  With one worker (and not ``fresh``) in this
    process, after ``initializer(*initargs)``; else in ``workers`` spawned processes, each
    initialised once (``fresh``: subprocesses even for one worker, e.g. for an environment
    variable that must be set before a library is imported)."""
    if workers <= 1 and not fresh:
        if initializer is not None:
            initializer(*initargs)
        yield from map(work, tasks)
        return
    import multiprocessing as mp

    pool = ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn"),
                               initializer=initializer, initargs=tuple(initargs))
    try:
        yield from pool.map(work, tasks)
    except BrokenProcessPool as exc:
        raise WorkerDied(f"a worker process died before returning its chunk ({exc}); "
                         "run with --workers 1 to see the error") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
