"""``neuronspec sweep IMPL --run``: steps of runs from drawn states through step_from_batch
(spec/protocol.md R4), judged at both levels on the batch reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neuronspec.cases.options import DEFAULT_SETS, parse_spec
from neuronspec.implementations import load
from neuronspec.runs.run_sweep import run_step_chunk
from neuronspec.runs.sweep import SweepResult

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
    proc = _cli("sweep", "torch_autograd", "--dtype", "float32", "--run", "--cases", "100")
    assert proc.returncode == 2 and "offers no step_from_batch" in proc.stderr
