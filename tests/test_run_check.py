"""``neuronspec check --run`` and ``neuronspec replay --options/--init/--data``: runs of SGD with
options checked step by step over the supervised process protocol (spec/protocol.md R5, R7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuronspec.cases.options import DEFAULT_SETS, parse_spec

ROOT = Path(__file__).resolve().parent.parent
QUICK = ("--examples", "5", "--sweep", "0", "--runs", "2", "--steps", "3")


def neuronspec(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "neuronspec", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr
    return proc


def test_a_conformant_run_check_writes_its_runs(tmp_path):
    report = tmp_path / "report.json"
    proc = neuronspec("check", "numpy", "--dtype", "float16", "--run", *QUICK,
                      "--json", str(report))
    assert proc.returncode == 0, proc.stdout[-2000:]
    data = json.loads(report.read_text())  # (validated against its schema by check itself)
    (entry,) = data["runs"]
    assert entry["implementation"] == "numpy" and entry["verdict"] == "conformant"
    assert len(entry["results"]) == len(DEFAULT_SETS)
    for r in entry["results"]:
        assert r["verdict"] == "conformant" and r["stepsJudged"] == 6 and r["runStateless"]
        assert r["stepsFromStates"] == 2 and r["stepFromNotChecked"] is None
        assert all(q["explained"] == q["values"] > 0 for q in r["quantities"].values()
                   if q["values"])
    assert f"runs: {len(DEFAULT_SETS)} of {len(DEFAULT_SETS)} option sets" in \
        proc.stdout.splitlines()[-1]


def test_a_named_bug_fails_at_its_step_with_a_replay_command(tmp_path):
    junit, markdown = tmp_path / "r.xml", tmp_path / "r.md"
    proc = neuronspec("check", "tests/mutants/sgd_decay_after_momentum.py:step", "--dtype",
                      "float32", "--options", "momentum=0.9,weight_decay=0.01", *QUICK,
                      "--junit", str(junit), "--markdown", str(markdown))
    assert proc.returncode == 1
    assert "step 1: buf_w outside its bound" in proc.stdout
    import xml.etree.ElementTree as ET

    suite = next(s for s in ET.parse(junit).getroot() if s.get("name", "").endswith(" runs"))
    failed = {c.get("name") for c in suite if c.find("failure") is not None}
    assert "buf_w" in failed and "y" not in failed and suite.get("tests") == "8"
    text = markdown.read_text()
    assert "runs of SGD with options, non-conformant" in text and "step 1" in text
    assert "momentum=0.9,weight_decay=0.01 ✗" in proc.stdout.splitlines()[-1]
    replay = next(line.split("replay: ", 1)[1] for line in proc.stdout.splitlines()
                  if "replay: neuronspec replay" in line)
    again = subprocess.run(replay, shell=True, cwd=ROOT, capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, PATH=os.path.dirname(
                               sys.executable) + os.pathsep + os.environ["PATH"]))
    assert again.returncode == 1 and "FAIL: step 1, buf_w" in again.stdout, again.stdout


#: Run implementations that misbehave at step 2 (tests/faults/runs.py), and what the failure says.
MISBEHAVING = {"crash": "RuntimeError: the optimiser lost its state",
               "hang": "timed out after 1 s",
               "leave": "exited with status 3",
               "garbage": "w_new = 'twelve'",
               "short": "1 steps for 3 steps of data",
               "overflow": "OverflowError"}


def test_a_run_that_misbehaves_fails_the_step_it_belongs_to():
    """Each subject in its own supervised process (protocol version 2): each failure is that
    subject's, at step 2, with the words of what it did; the check goes on after it."""
    from neuronspec.implementations import supervised
    from neuronspec.runs.sgd import check_runs

    impls = {s: supervised(f"tests/faults/runs.py:{s}", 1.0, wait=False, runs=True)
             for s in MISBEHAVING}
    try:
        for subject, impl in impls.items():
            impl.wait_ready()
            (result,) = check_runs(impl, ["float32"], [parse_spec("momentum=0.5")], runs=1,
                                   steps=3)
            assert result.verdict == "non-conformant" and result.failures, subject
            failure = result.failures[0]
            assert failure["step"] == 2 and MISBEHAVING[subject] in failure["why"], failure
            assert failure["replay"].startswith("neuronspec replay")
    finally:
        for impl in impls.values():
            impl.close()


def test_runs_of_an_implementation_without_them_are_not_checked():
    proc = neuronspec("check", "tests/faults/runs.py:plain", "--dtype", "float32", "--options",
                      "maximize", *QUICK)
    assert proc.returncode == 2
    assert "not checked: offers no step_run" in proc.stdout


@pytest.mark.parametrize("args,words", [
    (("--options", "momentum=x"), "momentum=x is not a decimal or hex number"),
    (("--options", "speed=2"), "unknown option 'speed'"),
    (("--options", "nesterov"), "Nesterov momentum requires a momentum"),
    (("--run", "--convention", "keras", "--options", "momentum=0.5,dampening=0.5"),
     "the keras convention has no dampening"),
])
def test_bad_run_options_are_usage_errors(args, words, capsys):
    from neuronspec.cli import main

    assert main(["check", "numpy", "--dtype", "float32", *args]) == 2  # (before any process)
    err = capsys.readouterr().err
    assert words in err and len(err.splitlines()) == 1


def test_replay_of_a_run_judges_every_step():
    proc = neuronspec("replay", "numpy", "--dtype", "float32", "--options=momentum=0.5",
                      "--init=1,0.5", "--data=2,1,0.25;1,0,0.25")
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count(" ok ") == 18 and "step 2" in proc.stdout
    assert neuronspec("replay", "numpy", "--dtype", "float32", "--init=1,0.5").returncode == 2


def test_option_specs_round_trip():
    for spec in ("momentum=0.9,dampening=0.1,weight_decay=0.0001", "maximize",
                 "momentum=0.75,nesterov"):
        assert parse_spec(parse_spec(spec).spec()) == parse_spec(spec)
    assert parse_spec("momentum=0.9").for_format("float16")["momentum"] == 0.89990234375


def test_the_pytest_plugin_checks_runs(tmp_path):
    """``--neuronspec-options`` in any repository: one test per implementation, format and
    option set; a named bug fails with the first failing step and its replay command."""
    def pytest_run(impl: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
             "--neuronspec-impl", impl, "--neuronspec-dtype", "float32", "--neuronspec-options",
             "momentum=0.9,nesterov", "--neuronspec-runs", "2", "--neuronspec-steps", "3",
             "-k", "test_runs"], cwd=tmp_path, capture_output=True, text=True, timeout=240)

    good = pytest_run("numpy")
    assert good.returncode == 0 and "1 passed" in good.stdout, good.stdout[-2000:]
    bad = pytest_run(str(ROOT / "tests/mutants/sgd_nesterov_old_buffer.py") + ":step")
    assert bad.returncode == 1 and "step 1: w_new outside its bound" in bad.stdout
    assert "neuronspec replay" in bad.stdout and "1 failed" in bad.stdout


def test_a_failing_later_step_replays_as_one_step_from_its_state():
    """Where the implementation offers step_from, a failure at step k > 1 replays as that one
    step from the state reported at k - 1 (spec/protocol.md R7), and the replay fails too."""
    proc = neuronspec("check", "tests/mutants/sgd_tau_for_one_minus_tau.py:step", "--dtype",
                      "float32", "--options", "momentum=0.9,dampening=0.25", *QUICK)
    assert proc.returncode == 1 and "step 2: w_new outside its bound" in proc.stdout
    replay = next(line.split("replay: ", 1)[1] for line in proc.stdout.splitlines()
                  if "replay: neuronspec replay" in line)
    assert "--from-state=" in replay and "--init" not in replay
    args = replay.split()[2:]  # (no shell quoting needed: hex values and a plain SPEC)
    again = neuronspec("replay", *args)
    assert again.returncode == 1 and "FAIL: w_new: outside its bound" in again.stdout


def test_steps_from_states_of_an_implementation_without_step_from_are_not_checked():
    """R3: the property step-from is said not checked (never a pass); the verdict on runs
    rests on the runs."""
    from neuronspec.implementations import supervised
    from neuronspec.runs.sgd import check_runs

    impl = supervised("tests/faults/runs.py:only_runs", runs=True)
    try:
        (result,) = check_runs(impl, ["float32"], [parse_spec("momentum=0.5")], runs=2, steps=2)
    finally:
        impl.close()
    d = result.as_dict()
    assert d["verdict"] == "conformant" and d["stepsFromStates"] == 0
    assert d["stepFromNotChecked"] == "offers no step_from"


def test_a_step_from_that_forgets_its_state_fails_the_property_step_from():
    from neuronspec.implementations import supervised
    from neuronspec.runs.sgd import check_runs

    impl = supervised("tests/faults/runs.py:forgets", runs=True)
    try:
        (result,) = check_runs(impl, ["float32"], [parse_spec("momentum=0.5")], runs=5, steps=2)
    finally:
        impl.close()
    d = result.as_dict()
    assert d["failedRuns"] == 0 and d["failedStepsFromStates"] > 0
    assert d["verdict"] == "non-conformant"
    failure = d["failures"][0]
    assert failure["why"].startswith("step-from: ") and "--from-state=" in failure["replay"]


def test_a_program_that_never_runs_fails_the_runs_without_a_traceback():
    """A --cmd program that exits on every request: the one-step phase gives up on it, and the
    run phase reports it failing too (exit 1), with no traceback and nothing left running."""
    proc = neuronspec("check", "--cmd", f"{sys.executable} -c 'import sys; sys.exit(3)'",
                      "--dtype", "float32", "--options", "momentum=0.5", "--examples", "5",
                      "--sweep", "0", "--runs", "1", "--steps", "2", timeout=120)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "restarts in a row" in proc.stdout and "runs:" in proc.stdout.splitlines()[-1]


@pytest.mark.slow
def test_python_float_hyperparameters_under_hyper_binary64(tmp_path):
    """--model ieee+hyper-binary64: the --options values are rounded to binary64 (the report
    shows them in hex), torch_sgd is conformant at the exact level; without the option they
    are rounded to the format, as before."""
    pytest.importorskip("torch")
    for model, momentum in (("ieee+hyper-binary64", "0x1.ccccccccccccdp-1"),
                            ("ieee", "0x1.ccccccp-1")):
        report = tmp_path / f"{model}.json"
        proc = neuronspec("check", "torch_sgd", "--dtype", "float32", "--options",
                          "momentum=0.9,weight_decay=1e-4", "--model", model, *QUICK,
                          "--json", str(report))
        assert proc.returncode == 0, proc.stdout[-2000:]
        (result,) = json.loads(report.read_text())["runs"][0]["results"]
        assert result["verdict"] == "conformant" and result["values"]["momentum"] == momentum
