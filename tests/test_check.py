"""`neuronspec check`: verdicts, exit codes, fingerprints, reports, and the process protocol
with a C implementation, a broken copy of it, and processes that hang, crash or talk nonsense."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neuronspec.runs.check import check
from neuronspec.implementations import load

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "tests" / "mutants"
REPORT_SCHEMA = ROOT / "spec" / "schemas" / "report.schema.json"


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "neuronspec", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def fingerprint(report, fmt, group):
    return report["implementations"][0]["formats"][fmt]["fingerprint"][group]["words"]


def test_bundled_numpy_is_conformant_with_the_expected_fingerprint(tmp_path):
    proc = cli("check", "numpy", "--examples", "25", "--sweep", "3000", "--json",
               str(tmp_path / "r.json"),
               "--markdown", str(tmp_path / "r.md"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    *table, summary = proc.stdout.splitlines()  # the one-line summary: as long as it needs
    assert max(len(line) for line in table) <= 100
    assert summary.startswith("neuronspec check: CONFORMANT — numpy float16 ✓, ")
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(report, json.loads(REPORT_SCHEMA.read_text()))
    assert report["implementations"][0]["formats"]["bfloat16"]["status"] == "unsupported"
    assert fingerprint(report, "float32", "forward").startswith("two roundings")
    assert fingerprint(report, "float32", "update").startswith("two roundings")
    assert fingerprint(report, "float16", "subnormals").startswith("preserved")
    assert "## neuronspec check: conformant" in (tmp_path / "r.md").read_text()


def test_torch_sgd_fingerprint_matches_the_bit_exact_facts():
    torch = pytest.importorskip("torch")
    from neuronspec.runs.vectors import load as load_vectors

    report = check([load("torch_sgd")], formats=["float32"], examples=25,
                   vectors=load_vectors(ROOT / "spec" / "vectors"))
    assert report["conformant"]
    update = fingerprint(report, "float32", "update")
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        assert update.startswith("fused update"), update
    assert fingerprint(report, "float32", "forward").startswith("two roundings")
    assert fingerprint(report, "float32", "learning rate") == "a binary64 lr is rounded to the format"


@pytest.mark.parametrize("mutant, fmt, words", [
    ("sign_flipped", "float32", "dL_d"),
    ("lr_float32_for_float64", "float64", "narrower than its float64"),
    ("subnormals_flushed_to_zero", "float32", "flushes subnormal results to zero"),
])
def test_mutant_is_non_conformant_with_a_reason(mutant, fmt, words, tmp_path):
    # the format that shows the reason (every format's report: the bundled numpy test above)
    proc = cli("check", f"{MUTANTS / (mutant + '.py')}:step", "--dtype", fmt, "--examples", "25",
               "--sweep", "0", "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 1, proc.stdout[-1500:]
    assert words in proc.stdout and "replay: neuronspec replay" in proc.stdout
    jsonschema = pytest.importorskip("jsonschema")
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(report, json.loads(REPORT_SCHEMA.read_text()))
    assert any(f["failures"] for f in report["implementations"][0]["formats"].values())


@pytest.mark.parametrize("args, words", [
    (["check", "nosuch"], "cannot load implementation"),
    (["check", "tests/mutants/none.py:step"], "no file"),
    (["check", "reference.formats:nothing"], "no callable"),
    (["check", "numpy", "--model", "loose"], "unknown model"),
    (["check", "--cmd", "/nonexistent/program"], "cannot start"),
])
def test_usage_errors_exit_2_with_one_line(args, words):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- the process protocol ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def c_example(tmp_path_factory):
    if not (shutil.which("cc") and shutil.which("make")):
        pytest.skip("no C compiler or make: the C example cannot be built")
    build = tmp_path_factory.mktemp("c")
    for f in ("neuron_step.c", "Makefile"):
        shutil.copy(ROOT / "examples" / "c" / f, build / f)
    subprocess.run(["make", "-s", "-C", str(build)], check=True, capture_output=True, timeout=120)
    return build


def test_c_example_passes_through_the_protocol(c_example):
    proc = cli("check", "--cmd", str(c_example / "neuron_step"), "--examples", "40", "--sweep",
               "3000")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "float16: unsupported" in proc.stdout
    assert "fingerprint forward: two roundings" in proc.stdout


def test_broken_c_example_fails(c_example):
    proc = cli("check", "--cmd", str(c_example / "neuron_step_wrong_sign"), "--examples", "20",
               "--sweep", "0",
               "--dtype", "float32")
    assert proc.returncode == 1 and "within-bounds failed" in proc.stdout


@pytest.mark.parametrize("script, words, timeout", [
    # (a --cmd program's first answer waits for its start-up too: 1 s where it answers; the
    # one that never answers times out whatever the timeout, four times before the run stops)
    ("import time\nwhile True: time.sleep(1)", "timed out", "0.25"),
    ("import sys\nsys.stdin.readline(); sys.exit(3)", "exited with status 3", "1"),
    ("import sys\nfor line in sys.stdin: print('garbage', flush=True)", "not JSON", "1"),
])
def test_misbehaving_processes_get_a_clear_message_never_a_hang(tmp_path, script, words,
                                                                  timeout):
    prog = tmp_path / "prog.py"
    prog.write_text(script)
    proc = cli("check", "--cmd", f"{sys.executable} {prog}", "--dtype", "float32", "--sweep", "0",
               "--examples",
               "0", "--vectors", str(tmp_path / "few"), "--timeout", timeout, timeout=120)
    # --vectors pointing nowhere is a usage error: use the real ones, but only a few cases
    assert proc.returncode == 2 and "no vector files" in proc.stderr
    proc = cli("check", "--cmd", f"{sys.executable} {prog}", "--dtype", "float32", "--sweep", "0",
               "--examples",
               "3", "--vectors", "", "--timeout", timeout, timeout=300)
    assert proc.returncode == 1, proc.stdout[-1500:] + proc.stderr
    assert words in proc.stdout


def test_stdlib_server_serves_a_python_implementation():
    server = ROOT / "neuronspec" / "implementations" / "serve.py"
    proc = cli("check", "--cmd", f"{sys.executable} {server} "
               "neuronspec.implementations.bundled.numpy_scalar:step",
               "--dtype", "float32,bfloat16", "--examples", "20", "--sweep", "2000")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "bfloat16: unsupported" in proc.stdout


@pytest.mark.slow
# (not the run mutants sgd_*.py, whose plain step is right: tests/test_run_impls.py, nor their
# shared _sgd.py: a file whose name starts with "_" is not a mutant)
@pytest.mark.parametrize("path", sorted(p for p in MUTANTS.glob("*.py")
                                        if not p.stem.startswith(("sgd_", "_"))),
                         ids=lambda p: p.stem)
def test_every_mutant_gets_exit_1_and_a_reason_naming_the_quantity(path):
    proc = cli("check", f"{path}:step", "--examples", "100", "--sweep", "0")
    assert proc.returncode == 1, proc.stdout[-1500:]
    failed = [line for line in proc.stdout.splitlines() if " failed: " in line]
    assert failed, proc.stdout[-1500:]
    # the reason names the quantity: "y is outside its bound", "y = ... is not a float32 value",
    # or the exact/observed lines of the report ("  y: exact = ...")
    quantities = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new", "dL_dy")
    assert any(f"{q}:" in proc.stdout or f" {q} " in line for q in quantities for line in failed)


WIDE = '''
import numpy as np

def step(w, b, x, t, lr, dtype):
    if dtype != "float32":
        raise NotImplementedError(dtype)
    f = np.float32
    y = f(w) * f(x) + f(b)
    r = y - f(t)
    out = {"y": y, "loss": f(0.5) * r * r, "dL_dw": r * f(x), "dL_db": r,
           "w_new": f(w) - f(lr) * (r * f(x)), "b_new": f(b) - f(lr) * r}
    out["y"] = float(w) * float(x) + float(b)  # y kept in binary64: not a float32 value
    return out
'''


def test_replay_and_check_judge_alike(tmp_path):
    """One judge: a value outside the format fails in replay exactly as it fails in check."""
    impl = tmp_path / "wide.py"
    impl.write_text(WIDE)
    case = "0.5,-0.1,2,1,0.1"
    replay = cli("replay", f"{impl}:step", "--dtype", "float32", "--case", case)
    assert replay.returncode == 1, replay.stdout
    assert "FAIL (not a value of the format)" in replay.stdout
    check = cli("check", f"{impl}:step", "--dtype", "float32", "--examples", "5", "--sweep", "0")
    assert check.returncode == 1 and "is not a float32 value" in check.stdout
