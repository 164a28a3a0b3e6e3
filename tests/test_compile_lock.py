"""Generated modules (``kernel.load_source``: the batch and exact-level kernels) compile once
across processes: a process needing a function that another one is compiling waits for it, then
loads it from numba's cache (``kernel.compile_lock``); and the lock never stands in the way: where
it cannot be taken, compilation goes on without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from reference.batch import kernel

ROOT = Path(__file__).resolve().parents[1]

numba = pytest.importorskip("numba")
fcntl = pytest.importorskip("fcntl")

#: A small generated module: one function numba caches (compiled in a fraction of a second).
SOURCE = kernel.HELPERS + '''

@njit(cache=True, error_model="numpy")
def twice(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = _pow2floor(x[i]) * 2.0
    return out
'''

#: A process that loads SOURCE, says so (the file argv[1]), waits for the file argv[2] if given,
#: calls ``twice`` and prints numba's cache hits and misses and when the call returned.
CHILD = textwrap.dedent('''\
    import json, os, sys, time
    import numpy as np
    from reference.batch import kernel
    module = kernel.load_source(sys.argv[3], "locktest_", "_neuronspec_locktest")
    open(sys.argv[1], "w").close()
    while sys.argv[2] and not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
    assert module.twice(np.array([3.0]))[0] == 4.0
    stats = module.twice.stats
    print(json.dumps({"hits": sum(stats.cache_hits.values()),
                      "misses": sum(stats.cache_misses.values()), "end": time.monotonic()}))
    ''')


def _child(cache: Path, ready: Path, go: "Path | None") -> subprocess.Popen:
    env = dict(os.environ, NEURONSPEC_CACHE_DIR=str(cache))
    return subprocess.Popen([sys.executable, "-c", CHILD, str(ready), str(go or ""), SOURCE],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {path.name} after 60 s"
        time.sleep(0.01)


def test_a_process_waits_for_the_one_compiling_and_loads_its_result(tmp_path, monkeypatch):
    """This process holds the function's lock and compiles while another one asks for the same
    function: that one compiles nothing, it loads what this one compiled."""
    monkeypatch.setenv("NEURONSPEC_CACHE_DIR", str(tmp_path))
    module = kernel.load_source(SOURCE, "locktest_", "_neuronspec_locktest")
    path = Path(module.__file__)
    ready = tmp_path / "ready"
    with kernel.compile_lock(path.with_name(f"{path.stem}.twice.lock")) as held:
        assert held
        child = _child(tmp_path, ready, None)
        _wait_for(ready, child)
        time.sleep(0.5)  # the child is at its call now, waiting for the lock
        module.twice(np.array([1.0]))  # compiled here, within the lock
        assert sum(module.twice.stats.cache_misses.values()) == 1
        released = time.monotonic()
    result = _result(child)
    assert (result["hits"], result["misses"]) == (1, 0), result
    assert result["end"] >= released, result


def test_two_processes_at_once_compile_a_function_once(tmp_path):
    go = tmp_path / "go"
    children = [(_child(tmp_path, tmp_path / f"ready{i}", go), tmp_path / f"ready{i}")
                for i in range(2)]
    for child, ready in children:
        _wait_for(ready, child)
    go.touch()  # both ask for the function now
    results = [_result(child) for child, _ in children]
    assert sorted((r["hits"], r["misses"]) for r in results) == [(0, 1), (1, 0)], results


def test_the_lock_gives_way_where_it_cannot_be_taken(tmp_path, monkeypatch):
    """No lock, at once, in a directory that is not there; after the timeout where another holder
    keeps it; at once within a lock this thread holds (no deadlock with itself); none without
    fcntl.  Each time the caller goes on."""
    started = time.monotonic()
    with kernel.compile_lock(tmp_path / "absent" / "x.lock", timeout=30) as held:
        assert not held
    assert time.monotonic() - started < 5

    path = tmp_path / "x.lock"
    other = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)  # another holder (another open file: flock excludes it)
    try:
        started = time.monotonic()
        with kernel.compile_lock(path, timeout=0.3) as held:
            assert not held
        assert 0.3 <= time.monotonic() - started < 10
    finally:
        os.close(other)

    with kernel.compile_lock(path) as held:
        assert held
        started = time.monotonic()
        with kernel.compile_lock(path, timeout=30) as inner:
            assert not inner
        assert time.monotonic() - started < 5
        # another thread of this process waits for it as another process would
        seen = []

        def other_thread() -> None:
            with kernel.compile_lock(path, timeout=0.2) as held_there:
                seen.append(held_there)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert seen == [False]

    monkeypatch.setattr(kernel, "fcntl", None)
    with kernel.compile_lock(path) as held:
        assert not held


def test_a_kernel_compiles_and_runs_without_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONSPEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(kernel, "fcntl", None)
    module = kernel.load_source(SOURCE, "locktest_", "_neuronspec_locktest")
    assert module.twice(np.array([5.0, 0.75])).tolist() == [8.0, 1.0]


def test_a_damaged_source_file_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONSPEC_CACHE_DIR", str(tmp_path))
    first = Path(kernel.load_source(SOURCE, "locktest_", "_neuronspec_locktest").__file__)
    stamp = first.stat().st_mtime_ns
    again = Path(kernel.load_source(SOURCE, "locktest_", "_neuronspec_locktest").__file__)
    assert again == first and first.stat().st_mtime_ns == stamp  # (numba's cache stamp kept)
    first.write_text(SOURCE[:100])
    kernel.load_source(SOURCE, "locktest_", "_neuronspec_locktest")
    assert first.read_text() == SOURCE
