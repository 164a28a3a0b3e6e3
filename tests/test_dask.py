"""Campaigns on Dask for real: a ``dask scheduler`` and two ``dask worker`` processes started
with Dask's own commands on the loopback interface, a sweep sent there with ``--scheduler``,
one worker killed in the middle of it; the recorded figures equal the local run's, bit for bit.
Also: the embedded cluster and the plain local processes (no Dask) give the same figures for
any number of workers, and a scheduler that cannot be reached is one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import Client

from neuronspec.runs import campaign
from neuronspec.runs.sweep import sweep

ROOT = Path(__file__).resolve().parents[1]
DASK = str(Path(sys.executable).with_name("dask"))
#: float64 through the paced subject: 24 chunks of 1,000 cases, 0.05 s each
SWEEP = ("sweep", "tests/faults/subjects.py:paced", "--dtype", "float64", "--cases", "24000",
         "--chunk", "1000", "--seed", "7")
#: What may differ between two runs of the same sweep: the time it took and what ran it.
TIMING = {"seconds", "wall_seconds", "startup_seconds", "workers", "command"}


def _figures(path: Path) -> dict:
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if k not in TIMING}


def _start(args: list[str], log: Path) -> subprocess.Popen:
    """A Dask command in a session of its own (a worker is a nanny and its process: killing
    the session kills both, as losing its machine would)."""
    return subprocess.Popen([DASK, *args], cwd=ROOT, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _scheduler_address(info: Path, deadline: float) -> str:
    """The address in the scheduler's file, once the scheduler has written it whole (the file
    appears before its contents: reading it at once can see an empty or partial document)."""
    while True:
        try:
            return json.loads(info.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path):
    """(scheduler address, [worker processes], scheduler file): a scheduler and two one-thread
    workers."""
    info = tmp_path / "scheduler.json"
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(info)], tmp_path / "scheduler.log")]
    try:
        address = _scheduler_address(info, deadline=time.monotonic() + 60)
        assert address.startswith("tcp://127.0.0.1:")
        workers = [_start(["worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                           "--no-dashboard", "--name", f"w{i}"], tmp_path / f"worker{i}.log")
                   for i in range(2)]
        procs += workers
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=90)
        yield address, workers, info
    finally:
        for p in reversed(procs):
            _end(p)


def _neuronspec(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuronspec", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_a_sweep_on_a_cluster_survives_a_lost_worker_and_equals_the_local_run(cluster,
                                                                              tmp_path):
    address, workers, info = cluster
    # the local run to compare with, meanwhile (a paced sweep: mostly waiting)
    local = tmp_path / "local.json"
    alone = subprocess.Popen([sys.executable, "-m", "neuronspec", *SWEEP, "--workers", "1",
                              "--json", str(local)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        remote = tmp_path / "remote.json"
        run = subprocess.Popen([sys.executable, "-m", "neuronspec", *SWEEP, "--scheduler",
                                address, "--json", str(remote)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with Client(address, timeout=60, set_as_default=False) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # both workers busy with chunks: kill one
                busy = [w for w, keys in client.processing().items() if keys]
                if len(busy) == 2:
                    break
                time.sleep(0.05)
            assert len(busy) == 2, "the sweep never reached both workers"
            _end(workers[0])
            out, err = run.communicate(timeout=180)
            assert run.returncode == 0, out + err
            lost = len(client.nthreads())
        assert lost == 1  # the scheduler saw it go
        assert "Dask scheduler tcp://127.0.0.1:" in out + err
        done_out, done_err = alone.communicate(timeout=180)
    finally:
        if alone.poll() is None:
            alone.kill()
            alone.communicate()
    assert alone.returncode == 0, done_out + done_err
    figures = _figures(remote)
    assert figures["cases"] == 24000 and figures["chunks"] == 24  # retried, never counted twice
    assert figures == _figures(local)
    # the scheduler named by its file, as dask scheduler --scheduler-file writes it
    again = _neuronspec("sweep", "numpy", "--dtype", "float32", "--cases", "20000",
                        "--scheduler", str(info))
    assert again.returncode == 0 and "Dask scheduler" in again.stdout + again.stderr


@pytest.mark.parametrize("workers", [3])
def test_every_engine_gives_the_same_figures(workers, monkeypatch):
    """The embedded Dask cluster and plain local processes (Dask not installed), 3 workers:
    the same statistics as one worker."""
    spec, args = "numpy", ("float32", 60_000, 5)
    reference = sweep(spec, *args, workers=1, chunk=7_000).as_dict()
    dask = sweep(spec, *args, workers=workers, chunk=7_000)
    monkeypatch.setattr(campaign, "dask_installed", lambda: False)
    seen = []
    plain = sweep(spec, *args, workers=workers, chunk=7_000, started=seen.append)
    assert "dask[distributed] is not installed" in seen[0].engine
    assert "embedded Dask cluster" in dask.engine
    for result in (dask, plain):
        figures = result.as_dict()
        assert {k: v for k, v in figures.items() if k not in TIMING} == \
            {k: v for k, v in reference.items() if k not in TIMING}


def test_an_unreachable_scheduler_is_one_line_and_exit_2(monkeypatch):
    monkeypatch.setenv("NEURONSPEC_CONNECT_TIMEOUT", "1")
    run = _neuronspec("sweep", "numpy", "--dtype", "float32", "--cases", "1000",
                      "--scheduler", "tcp://127.0.0.1:9")
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in lines[0]
    assert "Traceback" not in run.stdout + run.stderr


def test_progress_on_a_terminal_and_quiet_elsewhere(tmp_path):
    """A terminal sees a progress bar (cases, cases/s, ETA, violations so far) and what runs
    the chunks; a pipe sees only the report."""
    import pty

    args = [sys.executable, "-m", "neuronspec", "sweep", "numpy", "--dtype", "float32",
            "--cases", "300000", "--chunk", "20000"]
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    out = proc.communicate(timeout=120)[0]
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    terminal = seen.decode(errors="replace")
    assert proc.returncode == 0, out + terminal
    assert "chunks on an embedded Dask cluster" in terminal
    assert "300,000/300,000 cases" in terminal and "M/s" in terminal and "ETA" in terminal
    assert "violations 0" in terminal
    quiet = _neuronspec(*args[3:])
    assert quiet.returncode == 0 and quiet.stderr == "" and "ETA" not in quiet.stdout


def test_an_exhaustive_sweep_covers_every_pair_once(tmp_path):
    """--exhaustive w,x through the CLI, on an embedded cluster of two workers: the record says
    what was swept, the cases are the pairs, and a bad option is one line, exit 2."""
    from neuronspec.cases.exhaustive import Exhaustive

    space = Exhaustive("float16", ("w", "x"))
    out = tmp_path / "s.json"
    first = 3 * 2**18 + 5  # (a chunk cut short at the end)
    run = _neuronspec("sweep", "numpy", "--dtype", "float16", "--exhaustive", "w,x",
                      "--cases", str(first), "--chunk", str(2**18), "--workers", "2",
                      "--json", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(out.read_text())
    assert data["cases"] == first and data["chunks"] == 4
    assert data["exhaustive"] == space.describe()
    assert "exhaustive over (w, x): 63,488 values each" in run.stdout
    label = space.labels[0]
    assert set(data["quantities"]["y"]["by_regime"]) == {label}
    bad = _neuronspec("sweep", "numpy", "--dtype", "float32", "--exhaustive", "w,x")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "float16" in bad.stderr


def test_crosscheck_and_soundness_chunks_give_the_same_counts_anywhere():
    """The reference's own campaigns: in this process, or as chunks on the embedded cluster."""
    from neuronspec.runs.crosscheck import crosscheck
    from neuronspec.runs.soundness import run as soundness

    here = crosscheck("float32", 3000, seed=3, workers=1, chunk=1000)
    there = crosscheck("float32", 3000, seed=3, workers=2, chunk=1000)
    assert here == there and here["cases"] == 3000
    a = soundness("bfloat16", 90, seed=4, workers=1, chunk=5, impls=["numpy"])
    b = soundness("bfloat16", 90, seed=4, workers=2, chunk=5, impls=["numpy"])
    a.pop("seconds"), b.pop("seconds")
    assert a == b and a["cases"] == 90


def test_the_scheduler_comes_from_the_option_else_the_environment(monkeypatch):
    monkeypatch.setenv(campaign.SCHEDULER_ENV, "tcp://10.1.2.3:8786")
    assert campaign.scheduler_address(None) == "tcp://10.1.2.3:8786"
    assert campaign.scheduler_address("tcp://127.0.0.1:1") == "tcp://127.0.0.1:1"
    monkeypatch.delenv(campaign.SCHEDULER_ENV)
    assert campaign.scheduler_address(None) is None
