"""``neuronspec sweep IMPL --run``: steps of runs from drawn states through step_from_batch
(spec/protocol.md R4), judged at both levels on the batch reference."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from neuronspec.cases.options import DEFAULT_SETS, parse_spec
from neuronspec.implementations import load
from neuronspec.cases.runs import draw_run_arrays
from neuronspec.runs.run_sweep import run_step_chunk, run_whole_chunk
from neuronspec.runs.sweep import SweepResult
from reference.formats import get_format

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "neuronspec", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def _chunk(spec: str, fmt: str, options, index: int, n: int = 4000) -> SweepResult:
    result = SweepResult(spec, fmt, "ieee", 1, cases=n, chunks=1, options=options.spec())
    run_step_chunk(result, load(spec), fmt, options.for_format(fmt), options.spec(), 1,
                   index, n)
    return result


@pytest.mark.parametrize("fmt", [pytest.param("float16", marks=pytest.mark.slow), "float32",
                                 pytest.param("float64", marks=pytest.mark.slow)])
def test_numpy_steps_are_conformant_and_explained(fmt):
    for index in (0, 1):  # first steps, then later steps with buffers
        result = _chunk("numpy", fmt, DEFAULT_SETS[-1], index, 2000)
        assert result.violations == 0 and result.unexplained == 0, result.first_violations
        assert set(result.quantities) >= {"w_new", "b_new", "buf_w", "buf_b"}
        for q, t in result.quantities.items():
            assert t.checked + t.out_of_domain == 2000 and t.explained == 2000, q
        assert max(t.max_ratio for t in result.quantities.values()) > 0.5  # (tight)


def _wrong(tmp_path) -> str:
    impl = tmp_path / "old_buffer.py"
    impl.write_text(
        "import numpy as np\n"
        "from neuronspec.implementations.bundled.numpy_scalar import step\n"
        "from neuronspec.implementations.bundled.numpy_scalar import step_from_batch as _ok\n"
        "def step_from_batch(w, b, buf_w, buf_b, x, t, lr, options, dtype):\n"
        "    out = _ok(w, b, buf_w, buf_b, x, t, lr, options, dtype)\n"
        "    if buf_w is not None:  # the step taken with the old buffer (a named bug)\n"
        "        out['w_new'] = (np.float32(w) - np.float32(lr) * np.float32(buf_w))\n"
        "    return out\n"
        "def step_from(state, x, t, lr, options, dtype):  # the same, one step\n"
        "    one = [None if v is None else np.array([v]) for v in (state['w'], state['b'],\n"
        "           state.get('buf_w'), state.get('buf_b'), x, t, lr)]\n"
        "    out = step_from_batch(*one, options, dtype)\n"
        "    return {k: None if v is None else float(v[0]) for k, v in out.items()}\n")
    return f"{impl}:step"


def test_a_wrong_step_fails_with_replay_commands(tmp_path):
    spec = _wrong(tmp_path)
    options = parse_spec("momentum=0.875")
    first = _chunk(spec, "float32", options, 0)  # no buffer yet: the bug does not show
    assert first.violations == 0
    later = _chunk(spec, "float32", options, 1)
    assert later.quantities["w_new"].violations > 3000 and later.quantities["w_new"].unexplained
    assert all(later.quantities[q].violations == 0 for q in ("y", "b_new", "buf_w"))
    replay = later.first_violations[0]["replay"]
    assert replay.startswith(f"neuronspec replay {spec} --dtype float32 --options=") \
        and "--from-state=" in replay
    proc = _cli(*replay.split()[1:])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    chunk = later.first_violations[0]["replay_chunk"]  # the whole chunk, alone
    assert "--first-chunk 1" in chunk
    proc = _cli(*chunk.split()[1:])
    assert proc.returncode == 1 and "w_new outside its bound" in proc.stdout, proc.stdout


def test_the_command_line_sweeps_records_and_refuses(tmp_path):
    out = tmp_path / "r.json"
    proc = _cli("sweep", "numpy", "--dtype", "float32", "--run", "--options",
                "momentum=0.5,nesterov", "--cases", "20000", "--json", str(out),
                "--record", str(tmp_path / "sweeps.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "steps from drawn states of runs with momentum=0.5,nesterov" in proc.stdout
    (result,) = json.loads(out.read_text())
    assert result["options"] == "momentum=0.5,nesterov" and result["violations"] == 0
    recorded = json.loads((tmp_path / "sweeps.json").read_text())
    assert "numpy/float32/run:momentum=0.5,nesterov" in recorded["runs"]
    plain = f"{ROOT / 'tests' / 'mutants' / 'sign_flipped.py'}:step"  # (no run forms)
    proc = _cli("sweep", plain, "--dtype", "float32", "--run", "--cases", "100")
    assert proc.returncode == 2 and "offers no step_from_batch" in proc.stderr
    proc = _cli("sweep", plain, "--dtype", "float32", "--run", "--steps", "4")
    assert proc.returncode == 2 and "offers no step_run_batch and no step_run" in proc.stderr


# ---- sweeps of whole runs (step_run_batch, else step_run run by run) ---------------------------

def _runs(spec: str, fmt: str, options, n: int = 240, steps: int = 5, index: int = 0
          ) -> SweepResult:
    result = SweepResult(spec, fmt, "ieee", 1, cases=n * steps, chunks=1,
                         options=options.spec(), run_steps=steps)
    run_whole_chunk(result, load(spec), fmt, options.for_format(fmt), options.spec(), 1,
                    index, n, steps)
    return result


@pytest.mark.parametrize("spec", ["numpy", pytest.param("torch_sgd", marks=pytest.mark.torch)])
def test_whole_runs_are_judged_step_by_step_from_their_own_states(spec):
    """Every step of every run judged (each from the state reported before it), explained at
    the exact level, within its bound: step_run_batch and the run callable run by run agree."""
    if spec == "torch_sgd":
        pytest.importorskip("torch")
    result = _runs(spec, "float32", DEFAULT_SETS[-1])
    assert result.violations == 0 and result.unexplained == 0, result.first_violations
    assert result.unjudged == 0
    for q in ("w_new", "buf_w", "loss"):
        t = result.quantities[q]
        assert t.checked + t.out_of_domain == 240 * 5 and t.explained == 240 * 5, q
    impl = load(spec)
    one_by_one = dataclasses.replace(impl, run_batch_form=None)  # the fallback: step_run
    w0, b0, data, _ = draw_run_arrays(get_format("float32"), 1, 0, 30, 5)
    options = DEFAULT_SETS[-1].for_format("float32")
    fast, slow = (i.runs_batch("float32", w0, b0, data, options) for i in (impl, one_by_one))
    assert {q: v.tobytes() for q, v in fast.items()} == {q: v.tobytes() for q, v in slow.items()}


def test_a_state_leaking_into_the_next_run_fails_its_first_step():
    """What no sweep of steps from drawn states can see (each step from a fresh state): the
    mutant's runs, run by run through its step_run, carry the buffers over; step 1 of a later
    run fails, with its run and step named."""
    spec = f"{ROOT / 'tests' / 'mutants' / 'sgd_state_leaks.py'}:step"
    result = _runs(spec, "float32", parse_spec("momentum=0.875"), n=30, steps=3)
    for q in ("w_new", "b_new", "buf_w", "buf_b"):  # at step 1 of every run but the first
        assert result.quantities[q].violations == 29, q
    assert result.quantities["y"].violations == 0
    first = result.first_violations[0]
    assert (first["quantity"], first["step"], first["run"]) == ("w_new", 1, 1)
    assert "--steps 3" in first["replay_chunk"]


def test_a_state_that_is_not_finite_ends_the_judging_of_its_run(tmp_path):
    impl = tmp_path / "overflows.py"
    impl.write_text(
        "import numpy as np\n"
        "from neuronspec.implementations.bundled.numpy_scalar import step\n"
        "from neuronspec.implementations.bundled.numpy_scalar import step_run_batch as _ok\n"
        "def step_run_batch(w0, b0, x, t, lr, options, dtype):\n"
        "    out = _ok(w0, b0, x, t, lr, options, dtype)\n"
        "    out['w_new'][1, :10] = np.inf  # step 2 of the first ten runs\n"
        "    return out\n")
    result = _runs(f"{impl}:step", "float32", parse_spec("momentum=0.5"), n=60, steps=5)
    assert result.unjudged == 10 * 3 and result.stopped_runs == 10
    assert result.quantities["w_new"].violations == 10  # the infinite values, at their step
    assert result.quantities["w_new"].checked == 60 * 5 - 30


@pytest.mark.skipif(not (sys.platform.startswith("linux") and
                         __import__("platform").machine() == "x86_64"),
                    reason="sets MXCSR through glibc's x86-64 fenv_t")
def test_steps_of_runs_are_judged_in_the_checkers_floating_point_environment(tmp_path):
    """As plain sweeps (tests/test_sweep.py): an implementation that leaves flush-to-zero on
    flushes its own subnormal results, not the reference's binary32 arithmetic."""
    from neuronspec.runs.fpenv import checker_environment, flushes_subnormals

    path = tmp_path / "flushing.py"
    path.write_text(
        "import ctypes, ctypes.util, struct\n"
        "from neuronspec.implementations.bundled.numpy_scalar import step\n"
        "from neuronspec.implementations.bundled.numpy_scalar import step_from_batch as _ok\n"
        "_LIBM = ctypes.CDLL(ctypes.util.find_library('m'))\n"
        "def step_from_batch(*args):  # numpy's steps with FTZ and DAZ on, left on\n"
        "    env = ctypes.create_string_buffer(512)\n"
        "    _LIBM.fegetenv(env)\n"
        "    raw = bytearray(env.raw)\n"
        "    struct.pack_into('<I', raw, 28, struct.unpack_from('<I', raw, 28)[0] | 0x8040)\n"
        "    _LIBM.fesetenv(ctypes.create_string_buffer(bytes(raw), 512))\n"
        "    return _ok(*args)\n")
    with checker_environment():  # this thread's environment, restored however the test ends
        result = _chunk(f"{path}:step", "float32", parse_spec("momentum=0.5"), 0, 3000)
        assert flushes_subnormals()  # the implementation's environment, given back to it
    assert result.unexplained > 0 and result.quantities["y"].unexplained > 0
