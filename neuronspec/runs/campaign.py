"""A campaign: chunks of work on Dask distributed, results yielded in chunk order.

Chunks are small pure tasks (a seed, an index and a count in; statistics out), so the result is
the same, bit for bit, whatever runs them.  Where they run (:class:`Campaign`):

- ``scheduler`` (``--scheduler tcp://HOST:PORT``, or ``NEURONSPEC_SCHEDULER``): that Dask
  cluster, every thread of every worker;
- else an embedded Dask cluster of ``workers`` workers in this process (no network);
- else, where the ``dask`` extra is not installed, ``workers`` threads of this process
  (:attr:`Campaign.engine` says so in one line).

Every chunk runs in a *supervised process* of its worker (:class:`Supervised`), never in the
worker itself: a worker plugin (:class:`Children`) starts one per worker thread when the
campaign begins, each initialised once (``initializer(*initargs)``: loading the implementation),
ignoring SIGINT and ending with its parent.  What the code under test does there is the chunk's
finding: a process that dies, raises what is not an error (``SystemExit``,
``KeyboardInterrupt``) or outlives ``timeout`` gives a :class:`ChunkFailed` (reported, never
retried) and is replaced; after ``MAX_FAILURES`` failed chunks in a row the campaign yields what
it has and stops (:class:`~neuronspec.errors.WorkerDied`).  A Dask worker that is lost (its
machine, its process killed) is Dask's to handle: its chunks run again on another worker and
count once, each chunk's result being taken from its one future.  An exception in the work
itself is a defect of neuronspec and is raised with its traceback.  Tasks are drawn from their
iterable as results are taken (at most ``DEPTH`` per worker thread in flight), so a campaign of
1e10 cases never holds its task list.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import itertools
import json
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Iterator, Optional

from ..errors import UsageError, WorkerDied
from ..implementations.process import exit_words

__all__ = ["Campaign", "run_chunks", "completed", "ChunkFailed", "Supervised", "Children",
           "MAX_FAILURES", "CHUNK_TIMEOUT", "DEPTH", "SCHEDULER_ENV", "scheduler_address",
           "dask_installed"]

#: Failed chunks in a row after which a campaign stops.
MAX_FAILURES = 3
#: Chunks in flight per worker thread: the next ones are queued at the worker when it
#: finishes one, and what waits to be yielded in order stays bounded.
DEPTH = 3
#: Seconds a chunk of a sweep may take before it counts as hung (``--timeout``).
CHUNK_TIMEOUT = 600.0
#: The environment variable naming a Dask scheduler when ``--scheduler`` is not given.
SCHEDULER_ENV = "NEURONSPEC_SCHEDULER"
#: Seconds to wait for a Dask scheduler to answer, and for its first worker
#: (``$NEURONSPEC_CONNECT_TIMEOUT`` overrides it).
CONNECT_TIMEOUT = 10.0


@dataclass
class ChunkFailed:
    """A chunk whose process died, hung or raised what is not an error: ``why`` says which."""

    task: Any
    why: str


def dask_installed() -> bool:
    return _has("distributed")


def scheduler_address(given: "str | None" = None) -> "str | None":
    """The scheduler to use: ``given``, else ``$NEURONSPEC_SCHEDULER``, else None (local)."""
    address = given or os.environ.get(SCHEDULER_ENV) or None
    return address.strip() if address else None


# ---- one supervised process -------------------------------------------------------------

def _serve(conn: Connection) -> None:
    """The supervised process: initialise, then run each ``(work, task)`` received and send
    back what happened."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    initializer, initargs = conn.recv()
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            work, task = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", work(task))
        except Exception as exc:  # a defect of the work: the campaign raises it
            import traceback
            reply = ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        except BaseException as exc:  # SystemExit, KeyboardInterrupt from the code under test
            reply = ("died", f"raised {type(exc).__name__}: {exc}")
        conn.send(reply)


def _lifeline(fd: int) -> None:
    """End this process when its parent does: the parent holds the other end of ``fd`` and
    never writes, so a read returns only when the parent is gone (whatever killed it)."""
    try:
        os.read(fd, 1)
    finally:
        os._exit(3)


def child_main() -> None:
    """Entry point of a supervised process (``Supervised`` starts it)."""
    conn_fd, life_fd = (int(v) for v in sys.argv[1:3])
    threading.Thread(target=_lifeline, args=(life_fd,), daemon=True).start()
    _serve(Connection(conn_fd))


_START = ("import sys, json, os; sys.path[:0] = json.loads(os.environ.pop('NEURONSPEC_PATH')); "
          "from neuronspec.runs.campaign import child_main; child_main()")


class Supervised:
    """One supervised process, initialised once by ``initializer(*initargs)``.

    Started as a plain subprocess (a Dask worker may be a daemonic process, which
    ``multiprocessing`` forbids to have children); work and results travel pickled over a
    socket pair of its own, so that nothing the code under test prints can garble them."""

    def __init__(self, initializer: Optional[Callable[..., None]], initargs: tuple) -> None:
        import socket

        mine, theirs = socket.socketpair()
        life_r, self._life_w = os.pipe()
        env = dict(os.environ, NEURONSPEC_PATH=json.dumps([p for p in sys.path if p]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", _START, str(theirs.fileno()), str(life_r)],
            pass_fds=(theirs.fileno(), life_r), env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        os.close(life_r)
        self.conn = Connection(mine.detach())
        self.ended = _exit_fd(self.process)
        self.conn.send((initializer, tuple(initargs)))

    def run(self, work: Callable[[Any], Any], task: Any, timeout: Optional[float]) -> Any:
        """``work(task)`` there: its result, or a :class:`ChunkFailed` saying why not (the
        process is then ended).  A defect of the work raises RuntimeError here."""
        try:
            self.conn.send((work, task))
        except OSError:
            pass  # it is gone: how, below
        ready = wait([self.conn, self.ended], timeout)
        why = None
        if self.conn in ready:
            try:
                reply = self.conn.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                reply = None
            if reply is not None and reply[0] == "ok":
                return reply[1]
            if reply is not None and reply[0] == "error":
                raise RuntimeError(f"{reply[1]}\n{reply[2]}")
            why = reply[1] if reply is not None else None
        if why is None and (self.ended in ready or self.conn in ready):
            try:
                code = self.process.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            why = f"the worker process {exit_words(code)}"
        if why is None:
            why = f"the chunk did not finish within {timeout:g} s"
        self.kill()
        return ChunkFailed(task, why)

    def kill(self) -> None:
        """End the process (once: its descriptors are closed here)."""
        if self.conn.closed:
            return
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()
        for fd in (self._life_w, self.ended):
            try:
                os.close(fd)
            except OSError:
                pass


def _exit_fd(process: subprocess.Popen) -> int:
    """A descriptor readable once ``process`` has ended (for ``connection.wait``): a pidfd
    where Linux has one, else a pipe closed by a thread that waits for the process."""
    if hasattr(os, "pidfd_open"):
        try:
            return os.pidfd_open(process.pid)
        except OSError:
            pass
    r, w = os.pipe()

    def watch() -> None:
        process.wait()
        os.close(w)
    threading.Thread(target=watch, daemon=True).start()
    return r


class Children:
    """A worker's supervised processes for one campaign: one per task thread, started at
    once (their start-up overlaps), replaced when one fails."""

    def __init__(self, initializer: Optional[Callable[..., None]], initargs: tuple,
                 count: int) -> None:
        self.initializer, self.initargs = initializer, tuple(initargs)
        self.idle: "queue.SimpleQueue[Supervised]" = queue.SimpleQueue()
        self.started: list[Supervised] = []
        self.lock = threading.Lock()
        self.closed = False
        for _ in range(max(1, count)):
            self.idle.put(self._start())

    def _start(self) -> Supervised:
        child = Supervised(self.initializer, self.initargs)
        with self.lock:
            self.started.append(child)
        return child

    def run(self, work: Callable[[Any], Any], task: Any, timeout: Optional[float]) -> Any:
        if self.closed:
            return ChunkFailed(task, "the campaign ended before the chunk ran")
        try:
            child = self.idle.get_nowait()
        except queue.Empty:
            child = self._start()
        try:
            result = child.run(work, task, timeout)
        except BaseException:
            self._end(child)
            raise
        if isinstance(result, ChunkFailed) or self.closed:
            self._end(child)
        else:
            self.idle.put(child)
        return result

    def run_all(self, work: Callable[[Any], Any], tasks: list,
                timeout: Optional[float]) -> list:
        """:meth:`run` for each of a few consecutive chunks, one after the other."""
        return [self.run(work, task, timeout) for task in tasks]

    def _end(self, child: Supervised) -> None:
        child.kill()
        with self.lock:
            if child in self.started:
                self.started.remove(child)

    def close(self) -> None:
        """End every process: idle ones here; a busy one's thread sees it end, reports its
        chunk failed and closes what it holds (a descriptor another thread waits on is
        never closed under it)."""
        with self.lock:
            self.closed = True
            started = list(self.started)
        for child in started:
            if child.process.poll() is None:
                child.process.kill()
        while True:
            try:
                child = self.idle.get_nowait()
            except queue.Empty:
                break
            child.kill()


# ---- the engines: Dask, or threads of this process ---------------------------------------

def _plugin_class():
    from distributed.diagnostics.plugin import WorkerPlugin

    class CampaignPlugin(WorkerPlugin):
        """Starts a worker's :class:`Children` for a campaign, and ends them."""

        def __init__(self, initializer, initargs) -> None:
            self.initializer, self.initargs = initializer, tuple(initargs)
            self.children: "Children | None" = None

        def setup(self, worker) -> None:
            threads = getattr(getattr(worker, "state", None), "nthreads", None) or worker.nthreads
            self.children = Children(self.initializer, self.initargs, threads)

        def teardown(self, worker) -> None:
            if self.children is not None:
                self.children.close()

    return CampaignPlugin


def _run_on_worker(name: str, work: Callable[[Any], Any], tasks: list,
                   timeout: Optional[float]) -> list:
    """A few consecutive chunks as one Dask task: run in one of this worker's supervised
    processes."""
    from distributed import get_worker

    plugin = get_worker().plugins.get(name)
    if plugin is None or plugin.children is None:  # the campaign ended while it was queued
        return [ChunkFailed(task, "the campaign ended before the chunk ran") for task in tasks]
    return plugin.children.run_all(work, tasks, timeout)


class _DaskEngine:
    def __init__(self, workers: int, initializer, initargs, scheduler: "str | None") -> None:
        from distributed import Client, LocalCluster

        self.cluster = None
        wait_s = _connect_timeout()
        if scheduler:
            # a scheduler file (dask scheduler --scheduler-file F) names its address
            given = {"scheduler_file": scheduler} if os.path.isfile(scheduler) else \
                {"address": scheduler}
            try:
                self.client = Client(**given, timeout=wait_s, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise UsageError(
                    f"cannot reach the Dask scheduler at {scheduler}: {str(exc).splitlines()[0]}"
                    f"; start one (dask scheduler, dask worker {scheduler}) or correct "
                    f"--scheduler / ${SCHEDULER_ENV}") from None
            try:
                self.client.wait_for_workers(1, timeout=wait_s)
            except (TimeoutError, OSError):
                self.client.close()
                raise UsageError(f"the Dask scheduler at {scheduler} has no workers after "
                                 f"{wait_s:g} s; start some with: dask worker "
                                 f"{scheduler}") from None
            where = f"Dask scheduler {scheduler}"
        else:
            # workers as threads of this process, each driving its own supervised process:
            # no network, started in milliseconds
            import dask

            # (its HTTP servers on the loopback interface only, on free ports; no stack
            # sampling or work stealing, which cost this process CPU its supervised
            # processes need and give nothing for equal chunks)
            with dask.config.set({"distributed.worker.profile.enabled": False,
                                  "distributed.scheduler.work-stealing": False}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                            processes=False, silence_logs=logging.CRITICAL,
                                            dashboard_address="127.0.0.1:0",
                                            worker_dashboard_address="127.0.0.1:0")
            self.client = Client(self.cluster, set_as_default=False)
            where = "an embedded Dask cluster"
        from distributed import as_completed

        self.finished = as_completed(loop=self.client.loop)
        self.name = f"neuronspec-campaign-{uuid.uuid4().hex[:12]}"
        self.client.register_plugin(_plugin_class()(initializer, initargs), name=self.name)
        self.threads = max(1, sum(self.client.nthreads().values()))
        self.dashboard = _dashboard(self.client, local=self.cluster is not None)
        n = len(self.client.nthreads())
        self.description = (f"{where}: {n} worker{'s' * (n != 1)}, "
                            f"{self.threads} thread{'s' * (self.threads != 1)}")

    def submit(self, work, tasks: list, timeout):
        future = self.client.submit(_run_on_worker, self.name, work, tasks, timeout, pure=False)
        self.finished.add(future)
        return future

    def next_done(self):
        """A submitted future that has finished (waits for one)."""
        return next(self.finished)

    def outcome(self, future, tasks: list) -> list:
        """The chunks' results; a worker lost on them too often fails them."""
        from distributed import KilledWorker

        try:
            return future.result()
        except KilledWorker as exc:
            return [ChunkFailed(task, f"its Dask workers were lost while running it ({exc})")
                    for task in tasks]

    def cancel(self, futures) -> None:
        if futures:
            self.client.cancel(list(futures))

    def close(self) -> None:
        # closing while a batched send is under way makes Dask log the closed connection with
        # its traceback (at INFO): nothing is lost then, and the run's own output says so
        log = logging.getLogger("distributed")
        level = log.level
        log.setLevel(logging.CRITICAL)
        try:
            try:
                self.client.unregister_worker_plugin(self.name)  # ends the supervised processes
            except Exception:  # a scheduler already gone: its workers end their children then
                pass
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            log.setLevel(level)


class _LocalEngine:
    """No Dask: ``workers`` threads of this process, each driving a supervised process."""

    def __init__(self, workers: int, initializer, initargs, why: str = "") -> None:
        self.threads = max(1, workers)
        self.children = Children(initializer, initargs, self.threads)
        self.pool = concurrent.futures.ThreadPoolExecutor(self.threads)
        self.finished: "queue.SimpleQueue" = queue.SimpleQueue()
        self.dashboard = None
        self.description = f"{self.threads} local process{'es' if self.threads > 1 else ''}" \
            + (f" ({why})" if why else "")

    def submit(self, work, tasks: list, timeout):
        future = self.pool.submit(self.children.run_all, work, tasks, timeout)
        future.add_done_callback(self.finished.put)
        return future

    def next_done(self):
        """A submitted future that has finished (waits for one)."""
        return self.finished.get()

    def outcome(self, future, tasks: list) -> list:
        return future.result()

    def cancel(self, futures) -> None:
        for f in futures:
            f.cancel()

    def close(self) -> None:
        self.children.close()  # (a thread waiting on a child's answer returns now)
        self.pool.shutdown(wait=True, cancel_futures=True)


def _connect_timeout() -> float:
    text = os.environ.get("NEURONSPEC_CONNECT_TIMEOUT")
    try:
        return float(text) if text else CONNECT_TIMEOUT
    except ValueError:
        raise UsageError(f"NEURONSPEC_CONNECT_TIMEOUT={text!r} is not a number of seconds; "
                         "set it to e.g. 10, or unset it") from None


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _dashboard(client, local: bool) -> "str | None":
    """The dashboard's address: a remote scheduler's as it reports it; the embedded one's
    where bokeh (which draws it) is installed, on the loopback interface it listens on."""
    try:
        port = client.scheduler_info().get("services", {}).get("dashboard")
    except Exception:
        return None
    if not port:
        return None
    if local:
        return f"http://127.0.0.1:{port}/status" if _has("bokeh") else None
    return client.dashboard_link


class Campaign:
    """Chunks of work on a Dask cluster (``scheduler``, else an embedded one of ``workers``
    workers; without Dask, or ``local``, ``workers`` local processes), each chunk in a
    supervised process initialised once by ``initializer(*initargs)``, kept for several
    :meth:`map` calls (a sweep loads its implementation once, then asks what it is, whether it
    supports the format, and runs the chunks).  A context manager: the processes end with it.
    ``engine`` says in one line what runs the chunks; ``dashboard``, the Dask dashboard's
    address if there is one."""

    def __init__(self, workers: int = 1, initializer: Optional[Callable[..., None]] = None,
                 initargs: Iterable = (), scheduler: "str | None" = None,
                 local: bool = False) -> None:
        scheduler = None if local else scheduler_address(scheduler)
        if scheduler and not dask_installed():
            raise UsageError(f"--scheduler {scheduler} needs Dask: pip install "
                             "'neuronspec[dask]' (or run without --scheduler)")
        if local:  # (a check's short sweep phase: no cluster to start for one process)
            self._engine: Any = _LocalEngine(workers, initializer, tuple(initargs))
        elif dask_installed():
            self._engine = _DaskEngine(workers, initializer, tuple(initargs), scheduler)
        else:
            self._engine = _LocalEngine(workers, initializer, tuple(initargs),
                                        "dask[distributed] is not installed: pip install "
                                        "'neuronspec[dask]' to run on a cluster")
        self.engine: str = self._engine.description
        self.dashboard: "str | None" = self._engine.dashboard
        self.threads: int = self._engine.threads

    def __enter__(self) -> "Campaign":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.close()

    def map(self, work: Callable[[Any], Any], tasks: Iterable[Any],
            timeout: Optional[float] = None, group: int = 1) -> Iterator[Any]:
        """``work(task)`` for every task, in task order (a :class:`ChunkFailed` in place of a
        chunk that failed).  ``work`` must be importable (a module-level function) where the
        chunks run.  ``group``: consecutive chunks per Dask task (each still its own chunk,
        with its own timeout), so that a few milliseconds of scheduling per task are paid
        once for them all."""
        engine = self._engine
        source = enumerate(tasks)
        window = DEPTH * self.threads * group
        pending: dict = {}  # future -> [(index, task), ...]
        done: dict[int, Any] = {}
        next_index, exhausted, failures = 0, False, 0
        try:
            while True:
                while not exhausted and sum(map(len, pending.values())) + len(done) < window:
                    items = [item for item in itertools.islice(source, group)]
                    if len(items) < group:
                        exhausted = True
                    if items:
                        future = engine.submit(work, [task for _, task in items], timeout)
                        pending[future] = items
                if next_index in done:
                    result = done.pop(next_index)
                    next_index += 1
                    yield result
                    failures = failures + 1 if isinstance(result, ChunkFailed) else 0
                    if failures >= MAX_FAILURES:  # every chunk would: stop
                        raise WorkerDied(f"{MAX_FAILURES} chunks in a row failed; last: "
                                         f"{result.why}")
                    continue
                if not pending:
                    break
                future = engine.next_done()
                if future not in pending:  # (cancelled by an earlier map that stopped early)
                    continue
                items = pending.pop(future)
                try:
                    results = engine.outcome(future, [task for _, task in items])
                except RuntimeError as exc:  # a defect of the work, with its traceback
                    raise RuntimeError(f"chunk {items[0][0]} failed: {exc}") from None
                for (index, _), result in zip(items, results):
                    done[index] = result
        finally:  # stopped early (an error, an interruption, a consumer that stopped reading)
            engine.cancel(set(pending))


def run_chunks(work: Callable[[Any], Any], tasks: Iterable[Any], *, workers: int = 1,
               initializer: Optional[Callable[..., None]] = None, initargs: Iterable = (),
               in_process: bool = False, timeout: Optional[float] = None,
               scheduler: "str | None" = None,
               started: Optional[Callable[["Campaign"], None]] = None) -> Iterator[Any]:
    """``work(task)`` for every task, in task order (a :class:`ChunkFailed` in place of a chunk
    that failed).  ``in_process``: run here, after ``initializer(*initargs)`` (for trusted work
    only, and no scheduler); else in a :class:`Campaign` (``started(campaign)`` once it is
    up)."""
    if in_process and not scheduler_address(scheduler):
        if initializer is not None:
            initializer(*initargs)
        yield from map(work, tasks)
        return
    with Campaign(workers, initializer, initargs, scheduler) as campaign:
        if started is not None:
            started(campaign)
        yield from campaign.map(work, tasks, timeout)


def completed(parts: Iterable[Any]) -> Iterator[Any]:
    """The chunks of a campaign that must all finish (the reference's own campaigns): a failed
    chunk stops it with :class:`~neuronspec.errors.WorkerDied` naming why."""
    for part in parts:
        if isinstance(part, ChunkFailed):
            raise WorkerDied(f"a chunk of the campaign failed: {part.why}")
        yield part
