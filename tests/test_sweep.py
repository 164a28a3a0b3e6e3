"""neuronspec sweep: seeded, deterministic, clean on the bundled implementations, failing (with
replay commands) on wrong ones, and one clear line on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reference.formats import FLOAT32
from neuronspec.errors import ImplementationError
from neuronspec.implementations import load
from neuronspec.cases.chunks import chunk_cases
from neuronspec.runs.sweep import Sweeper, SweepResult, run_chunk, sweep

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "tests" / "mutants"


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "neuronspec", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_chunks_are_reproducible_and_distinct():
    a, slices = chunk_cases(FLOAT32, 7, 3, 6000)
    b, _ = chunk_cases(FLOAT32, 7, 3, 6000)
    c, _ = chunk_cases(FLOAT32, 7, 4, 6000)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["w"], c["w"])
    assert [s[0] for s in slices] == ["generic", "cancel-y-t", "cancel-wx-b", "tiny", "huge",
                                      "lr-range", "negative-lr", "subnormal-gradient",
                                      "same-params"]


@pytest.mark.parametrize("spec,fmt", [("numpy", "float32"), ("numpy", "float16"),
                                      ("numpy", "float64")])
def test_bundled_numpy_sweeps_clean(spec, fmt):
    result = sweep(spec, fmt, 12_000, seed=1, ratios_every=1)  # (float64: every ratio)
    assert result.violations == 0, result.first_violations
    assert result.cases == 12_000
    for q, t in result.quantities.items():
        assert t.checked > 5_000, q
        assert 0.9 < t.max_ratio <= 1.0, (q, t.max_ratio)  # tight: some case nearly meets it


@pytest.mark.parametrize("spec", ["torch_autograd",  # (torch_sgd's plain step: also in
                                  # test_run_impls and test_check's fingerprint; CI's time)
                                  pytest.param("torch_sgd", marks=pytest.mark.slow)])
def test_bundled_torch_sweeps_clean(spec):
    pytest.importorskip("torch")
    with Sweeper(spec) as sweeper:  # one worker (torch imported once) for both formats
        for fmt in ("float32", "bfloat16"):
            result = sweeper.run(fmt, 20_000, seed=2)
            assert result.violations == 0, result.first_violations


def test_compiled_and_numpy_paths_agree():
    pytest.importorskip("numba")
    impl = load("numpy")
    a = run_chunk(impl, "float32", 5, 0, 20_000, engine="numpy", ratios_every=1)
    b = run_chunk(impl, "float32", 5, 0, 20_000, engine="compiled", ratios_every=1)
    assert (a.path, b.path) == ("numpy", "compiled")
    for q in a.quantities:
        ta, tb = a.quantities[q], b.quantities[q]
        assert (ta.checked, ta.out_of_domain, ta.violations) == \
            (tb.checked, tb.out_of_domain, tb.violations), q
        assert ta.max_ratio == pytest.approx(tb.max_ratio, rel=1e-12), q


def test_workers_give_the_same_result():
    one = sweep("numpy", "float32", 40_000, seed=3, chunk=10_000)
    two = sweep("numpy", "float32", 40_000, seed=3, chunk=10_000, workers=2)
    for q in one.quantities:
        assert one.quantities[q].as_dict() == two.quantities[q].as_dict(), q


@pytest.mark.parametrize("mutant", ["sign_flipped", "float16_for_float32",
                                    "bias_dropped_in_forward", "y_one_ulp_high"])
def test_a_wrong_implementation_fails_with_replay_commands(mutant):
    path = MUTANTS / f"{mutant}.py"
    if not path.exists():
        pytest.skip(f"no mutant {mutant}")
    result = sweep(f"{path}:step", "float32", 3000, seed=4)
    assert result.violations > 0
    first = result.first_violations[0]
    assert first["replay"].startswith(f"neuronspec replay {path}:step --dtype float32 --case=")
    # the replay command reproduces the failure alone
    proc = _cli(*first["replay"].split()[1:])
    assert proc.returncode == 1, proc.stdout + proc.stderr


def test_cli_sweep_reports_and_exit_codes(tmp_path):
    out = tmp_path / "r.json"
    proc = _cli("sweep", "numpy", "--dtype", "float32", "--cases", "2e4", "--seed", "9",
                "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "20,000 cases, seed 9" in proc.stdout
    assert "violations (bounded level): 0; unexplained values (exact level): 0" in proc.stdout
    assert out.exists() and '"command": "neuronspec sweep numpy' in out.read_text()
    bad = _cli("sweep", str(MUTANTS / "sign_flipped.py") + ":step", "--dtype",
               "float32", "--cases", "2000")
    assert bad.returncode == 1 and "replay: neuronspec replay" in bad.stdout


@pytest.mark.parametrize("args,needle", [  # (one behind the slow marker: CI's time)
    (("sweep", "nosuch", "--dtype", "float32"), "cannot load implementation"),
    pytest.param(("sweep", "numpy", "--dtype", "bfloat16", "--cases", "10"),
                 "no native bfloat16", marks=pytest.mark.slow),
    (("sweep", "numpy", "--dtype", "float32", "--model", "ieee+ftz"), "covers the models ieee"),
])
def test_cli_sweep_bad_input_is_one_clear_line(args, needle):
    proc = _cli(*args)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("cases,needle", [("1.5", "not an integer"), ("0", "must be at least 1")])
def test_a_bad_case_count_is_one_clear_line(cases, needle, capsys):
    """The count's own checks, in this process (argparse's exit 2, no traceback)."""
    from neuronspec.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "numpy", "--dtype", "float32", "--cases", cases])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize("body,needle,cli", [
    ("return 3", "not a mapping", True),
    ("return {'y': [1.0]}", "returned no loss", False),
    ("return {k: [1.0, 2.0] for k in ('y','loss','dL_dw','dL_db','w_new','b_new')}", "shape",
     False),
    ("return {k: ['a'] * len(w) for k in ('y','loss','dL_dw','dL_db','w_new','b_new')}",
     "not a real floating-point array", False),
    ("return {k: np.zeros(len(w), complex) for k in ('y','loss','dL_dw','dL_db','w_new',"
     "'b_new')}", "complex128, not a real floating-point array", False),
    ("raise RuntimeError('boom')", "batch raised RuntimeError: boom", True),
])
def test_garbage_from_a_batch_callable_is_a_named_failure(tmp_path, body, needle, cli):
    """Garbage is the implementation's failure (exit 1), named in one line with the chunk and
    the command that reruns it; never a traceback, never a pass.  (The loader's check is the
    sweep's: two kinds go through the command line too, each costs a second.)"""
    impl = tmp_path / "garbage.py"
    impl.write_text("import numpy as np\n"
                    "def step(w, b, x, t, lr, dtype):\n    raise NotImplementedError\n"
                    f"def step_batch(w, b, x, t, lr, dtype):\n    {body}\n")
    with pytest.raises(ImplementationError, match=needle):
        load(f"{impl}:step").run_batch("float32", {k: np.ones(3) for k in "w b x t lr".split()})
    if not cli:
        return
    proc = _cli("sweep", f"{impl}:step", "--dtype", "float32", "--cases", "100")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert needle in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert "chunk 0 (100 cases)" in proc.stdout and "--first-chunk 0" in proc.stdout


def _half_update(tmp_path, fmt: str = "float64") -> str:
    """A batch implementation of ``fmt`` (float64 or float32) that rounds lr*dL_dw to the next
    narrower format (float32, float16) before the update."""
    narrower = {"float64": "float32", "float32": "float16"}[fmt]
    impl = tmp_path / f"half_update_{fmt}.py"
    impl.write_text(
        "import numpy as np\n"
        "from neuronspec.implementations.bundled.numpy_scalar import step, step_batch as _ok\n"
        "def step_batch(w, b, x, t, lr, dtype):\n"
        "    out = _ok(w, b, x, t, lr, dtype)\n"
        "    with np.errstate(all='ignore'):\n"
        f"        q = (lr * out['dL_dw']).astype(np.{narrower}).astype(np.{fmt})\n"
        f"        out['w_new'] = np.asarray(w, np.{fmt}) - q\n"
        "    return out\n")
    return f"{impl}:step"


@pytest.mark.parametrize("fmt,spec", [("float64", "numpy"), ("float64", "wrong"),
                                      ("float32", "numpy"), ("float32", "wrong"),
                                      ("float16", "numpy")])
def test_the_explained_path_gives_the_full_paths_verdict(fmt, spec, tmp_path):
    """Sweeps run the bound chain on a sample and on what the exact level leaves: the counts,
    verdicts and reasons are those of the chain on every case; only the error/bound statistics
    come from fewer values (never a larger maximum)."""
    impl = load(_half_update(tmp_path, fmt) if spec == "wrong" else spec)
    fast = run_chunk(impl, fmt, 9, 0, 20_000, ratios_every=64, why=True)
    full = run_chunk(impl, fmt, 9, 0, 20_000, ratios_every=1, why=True)
    assert fast.path.startswith("exact level")
    assert full.path == ("numpy" if fmt == "float64" else "compiled")
    assert (fast.violations, fast.unexplained) == (full.violations, full.unexplained)
    if spec == "wrong":  # (lr*g rounded to float16 in the update: w_new alone is wrong)
        assert fast.quantities["w_new"].violations > 1000
        assert all(fast.quantities[q].violations == 0 for q in ("y", "loss", "dL_dw"))
        assert [v["case"] for v in fast.first_violations] == \
            [v["case"] for v in full.first_violations]
    for q, tf in fast.quantities.items():
        tl = full.quantities[q]
        assert (tf.checked, tf.out_of_domain, tf.violations, tf.unexplained,
                tf.out_of_domain_why, tf.by_variant) == \
            (tl.checked, tl.out_of_domain, tl.violations, tl.unexplained,
             tl.out_of_domain_why, tl.by_variant), q
        assert tl.measured is None and 20_000 // 64 // 2 < tf.measured < tf.checked, q
        assert tf.max_ratio <= tl.max_ratio, q
    merged = SweepResult("numpy", fmt, "ieee", 9)
    merged.merge(full)
    merged.merge(fast)  # a measured tally merged with an unsampled one counts both
    t = merged.quantities["y"]
    assert t.measured == full.quantities["y"].checked + fast.quantities["y"].measured


def test_nonfinite_counts_are_numpys():
    """The explained path's count of non-finite values outside the judged cases (compiled)
    against numpy's definition: infinities of both signs, NaN, -0, skipped cases."""
    from neuronspec.runs.reductions import nonfinite_counts, nonfinite_counts_numpy
    rng = np.random.default_rng(3)
    block = rng.standard_normal((7, 5000))
    block[0, ::7], block[2, ::3], block[3, ::5], block[4, ::11] = np.inf, -np.inf, np.nan, -0.0
    skip = rng.random(5000) < 0.1
    assert nonfinite_counts(block, skip).tolist() == nonfinite_counts_numpy(block, skip).tolist()
    assert nonfinite_counts_numpy(block, skip)[3] > 0


def test_regime_reductions_are_numpys():
    """The tally's per-regime argmax and negative count (``runs.reductions``) on estimates
    with ties, NaN, -0 and negative values, against numpy's definition."""
    from neuronspec.runs.reductions import regime_reductions

    rng = np.random.default_rng(2)
    estimate = np.round(rng.random((3, 500)) * 4) - 1  # ties, -1 (outside the domain), 0
    estimate[0, 37], estimate[1, 400], estimate[2, 10] = np.nan, -0.0, np.inf
    slices = [("a", 0, 100), ("b", 100, 100), ("c", 100, 380), ("d", 380, 500)]
    argmax, below = regime_reductions(estimate, slices)
    for k in range(3):
        assert below[k] == np.count_nonzero(estimate[k] < 0)
        for g, (_, a, b) in enumerate(slices):
            assert argmax[k, g] == (a + np.argmax(estimate[k, a:b]) if b > a else -1)


FLUSHING_IMPL = '''
import ctypes, ctypes.util, struct
from neuronspec.implementations.bundled.numpy_scalar import step, step_batch as _numpy

_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))


def step_batch(w, b, x, t, lr, dtype="float32"):
    """numpy's step, after turning on flush-to-zero and denormals-are-zero (as a library built
    with -ffast-math does when loaded), left on."""
    env = ctypes.create_string_buffer(512)
    _LIBM.fegetenv(env)
    raw = bytearray(env.raw)
    struct.pack_into("<I", raw, 28, struct.unpack_from("<I", raw, 28)[0] | 0x8040)
    _LIBM.fesetenv(ctypes.create_string_buffer(bytes(raw), 512))
    return _numpy(w, b, x, t, lr, dtype)
'''


@pytest.mark.skipif(not (sys.platform.startswith("linux") and
                         __import__("platform").machine() == "x86_64"),
                    reason="sets MXCSR through glibc's x86-64 fenv_t")
def test_an_implementation_that_leaves_subnormals_flushing_is_caught(tmp_path):
    """The checker draws and judges in its own floating-point environment (``runs.fpenv``):
    an implementation that leaves flush-to-zero on flushes its own subnormal results, not the
    reference's binary32 arithmetic, so its values are unexplained."""
    from neuronspec.runs.fpenv import checker_environment, flushes_subnormals

    path = tmp_path / "flushing.py"
    path.write_text(FLUSHING_IMPL)
    impl = load(f"{path}:step")
    with checker_environment():  # this thread's environment, restored however the test ends
        result = run_chunk(impl, "float32", 5, 0, 9 * 3000)
        assert flushes_subnormals()  # the implementation's environment, given back to it
    assert not flushes_subnormals()
    assert result.unexplained > 0 and result.violations > 0
