"""The fault suite: what an implementation under test (or a user's mistake) can do to a run,
and what the run must do in return.

Each test runs the real command line on a subject from ``tests/faults/`` that commits one
fault, and asserts the three things a CI user relies on: the exit status (0 checked and
conformant, 1 wrong, 2 not checked, 130/143 interrupted), a message that names the fault, and
that nothing is left running afterwards (every process started by the run carries a token in
its environment; none may survive it).  No run may print a traceback.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ROOT / "tests" / "faults"
SUBJECTS = "tests/faults/subjects.py"
PROGRAM = f"{shlex.quote(sys.executable)} tests/faults/program.py"
#: A short check: one format, a few examples, no vectors.
QUICK = ("--dtype", "float64", "--examples", "5", "--vectors", "", "--sweep", "0")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _tagged(token: bytes) -> list[str]:
    """The processes whose environment holds ``token``: those a run started, still alive."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if token not in f.read():
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry}: {command}")
        except OSError:  # gone meanwhile, or a zombie
            continue
    return found


def neuronspec(*args: str, timeout: float = 240, stop: "tuple[int, int] | None" = None) -> Run:
    """Run ``neuronspec ARGS`` from the checkout; ``stop=(calls, signal)`` sends the signal
    once the subject has been called that many times (``slow`` and ``hang`` in subjects.py and
    program.py's slow-with-child count their calls in the file NEURONSPEC_FAULT_CALLS names,
    whichever process makes them).  Asserts that the run left nothing running and printed no
    traceback."""
    token = uuid.uuid4().hex
    env = dict(os.environ, NEURONSPEC_FAULT_TOKEN=token)
    counter = None
    if stop is not None:
        fd, counter = tempfile.mkstemp(prefix="neuronspec-calls-")
        os.close(fd)
        env["NEURONSPEC_FAULT_CALLS"] = counter
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "neuronspec", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if stop is not None:
            calls, sig = stop
            deadline = time.monotonic() + 120
            while os.path.getsize(counter) < calls and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if counter is not None:
            os.unlink(counter)
    run = Run(proc.returncode, out, err, time.monotonic() - started)
    deadline = time.monotonic() + 10
    while (left := _tagged(token.encode())) and time.monotonic() < deadline:
        time.sleep(0.1)
    for line in left:  # do not leave them to the next test either
        os.kill(int(line.split(":")[0]), signal.SIGKILL)
    assert not left, f"left running after the run: {left}"
    assert "Traceback" not in run.output, run.output[-3000:]
    return run


# --- 1. the subject cannot end or stall the run ----------------------------------------------

@pytest.mark.parametrize("subject, status, words", [
    ("exit_zero", 1, "SystemExit"),
    ("os_exit", 1, "exited with status 0"),
    ("interrupt", 1, "KeyboardInterrupt"),
    ("segfault", 1, "killed by SIGSEGV"),
    ("unsupported_midway", 1, "a format it supports"),
    ("infinite", 1, "is not finite"),
    ("nothing", 2, "NOT CHECKED"),
    ("noisy", 0, "verdict: CONFORMANT"),
    ("correct", 0, "verdict: CONFORMANT"),
])
def test_check_survives_what_a_python_step_does(subject, status, words):
    run = neuronspec("check", f"{SUBJECTS}:{subject}", *QUICK, "--timeout", "1")
    assert run.returncode == status, run.output[-3000:]
    assert words in run.stdout, run.output[-3000:]


def test_an_import_that_exits_is_a_load_error_not_a_pass():
    for command in ("check", "sweep"):
        extra = ("--cases", "100") if command == "sweep" else QUICK[2:]
        run = neuronspec(command, "tests/faults/exit_on_import.py:step", "--dtype", "float64",
                         *extra)
        assert run.returncode == 2, run.output
        assert "cannot load" in run.stderr and "SystemExit" in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1


def test_a_file_implementation_imports_the_module_beside_it():
    run = neuronspec("check", "tests/faults/uses_neighbour.py:step", *QUICK)
    assert run.returncode == 0, run.output[-2000:]


def test_a_hang_stops_after_three_restarts_with_the_partial_report(tmp_path):
    report = tmp_path / "r.json"
    # (a served Python step: its timeout counts from the call, after it loaded)
    run = neuronspec("check", f"{SUBJECTS}:hang", *QUICK, "--timeout", "0.25",
                     "--json", str(report))
    assert run.returncode == 1 and run.seconds < 60
    assert "failed 3 restarts in a row" in run.stdout
    data = json.loads(report.read_text())
    assert data["verdict"] == "non-conformant"
    assert "restarts" in data["implementations"][0]["error"]


@pytest.mark.parametrize("mode, words", [
    ("huge-exponent", "exponent is out of range"),
    ("huge-decimal", "exponent is out of range"),
    ("invalid-utf8", "not UTF-8"),
    ("long-line", "without a newline"),
    ("markdown", "is not a decimal or hex number"),
])
def test_check_survives_what_a_cmd_program_answers(mode, words):
    run = neuronspec("check", "--cmd", f"{PROGRAM} {mode}", *QUICK, "--timeout", "2")
    assert run.returncode == 1, run.output[-3000:]
    assert words in run.stdout
    assert run.seconds < 60


def test_a_program_that_closes_its_output_and_runs_on_is_failed_and_killed():
    run = neuronspec("check", "--cmd", f"exec {PROGRAM} closed-stdout", *QUICK,
                     "--timeout", "1")
    assert run.returncode == 1
    assert "closed its standard output and kept running" in run.stdout


def test_a_command_that_does_not_exist_is_a_usage_error():
    run = neuronspec("check", "--cmd", "./no-such-program-here", *QUICK)
    assert run.returncode == 2 and "cannot start" in run.stderr


@pytest.mark.parametrize("subject, words", [
    ("segfault", "killed by SIGSEGV"),
    # (the other two deaths are the check's too: test_check_survives_what_a_python_step_does)
    pytest.param("os_exit", "exited with status 0", marks=pytest.mark.slow),
    pytest.param("exit_zero", "raised SystemExit", marks=pytest.mark.slow),
])
def test_a_sweep_survives_dying_workers_and_never_builds_its_task_list(subject, words):
    # 1e30 cases: a task list in memory would never fit; dying workers stop the sweep
    run = neuronspec("sweep", f"{SUBJECTS}:{subject}", "--dtype", "float64", "--workers", "2",
                     "--cases", "1e30", "--chunk", "1000")
    assert run.returncode == 1, run.output[-3000:]
    assert words in run.stdout and run.seconds < 120
    assert "3 chunks in a row failed" in run.stdout
    replay = next(line.split("replay: ", 1)[1] for line in run.stdout.splitlines()
                  if "replay: " in line)
    assert "--first-chunk" in replay


def test_a_sweep_of_a_hanging_step_stops_at_its_timeout():
    run = neuronspec("sweep", f"{SUBJECTS}:hang", "--dtype", "float64", "--cases", "5000",
                     "--timeout", "0.5")
    assert run.returncode == 1 and run.seconds < 60
    assert "did not finish within 0.5 s" in run.stdout
    assert "neuronspec replay" in run.stdout  # the first case, to replay alone


def test_a_sweep_reports_a_case_the_step_fails_on_as_a_finding():
    run = neuronspec("sweep", f"{SUBJECTS}:unsupported_midway", "--dtype", "float64",
                     "--cases", "3000", "--scalar")
    assert run.returncode == 1
    assert "a format it supports" in run.stdout
    replay = next(line.split("replay: ", 1)[1] for line in run.stdout.splitlines()
                  if "replay: neuronspec replay" in line)
    again = neuronspec(*shlex.split(replay)[1:])
    assert again.returncode == 1 and "a format it supports" in again.stdout
    run = neuronspec("replay", f"{SUBJECTS}:nothing", "--dtype", "float64", "--case=1,0,1,0,0")
    assert run.returncode == 2 and "NOT CHECKED" in run.stdout


# --- 2. the subject cannot change what it is judged on ----------------------------------------

def test_zeroing_the_inputs_does_not_make_zeros_right():
    run = neuronspec("sweep", f"{SUBJECTS}:zeroing", "--dtype", "float64", "--cases", "5000")
    assert run.returncode == 1 and "outside its bound" in run.stdout


def test_updating_the_parameters_in_place_is_not_a_violation():
    run = neuronspec("sweep", f"{SUBJECTS}:in_place", "--dtype", "float64", "--cases", "50000")
    assert run.returncode == 0, run.output[-3000:]
    assert "violations (bounded level): 0; unexplained values (exact level): 0" in run.stdout


@pytest.mark.parametrize("command, subject, words", [
    ("check", "complex_out", "complex number is not a value"),
    ("check", "huge_integer", "OverflowError"),
    ("sweep", "complex_out", "dtype complex128, not a real floating-point array"),
])
def test_outputs_that_are_not_real_floats_are_named_failures(command, subject, words):
    extra = QUICK[2:] if command == "check" else ("--cases", "2000")
    run = neuronspec(command, f"{SUBJECTS}:{subject}", "--dtype", "float64", *extra)
    assert run.returncode == 1, run.output[-3000:]
    assert words in run.stdout


# --- 3. bounded parsing -----------------------------------------------------------------------

@pytest.mark.parametrize("case", ["0x1p99999999999,0,1,0,0", "1e-999999999,0,1,0,0",
                                  "-0x1p-99999999999,0,1,0,0"])
def test_replay_refuses_absurd_exponents_in_one_line(case):
    run = neuronspec("replay", "manual", "--dtype", "float64", f"--case={case}", timeout=30)
    assert run.returncode == 2 and run.seconds < 20
    assert "exponent" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def _results(tmp_path, vectors: Path) -> tuple[dict, list]:
    out = tmp_path / "manual.json"
    run = neuronspec("vectors", "run", "manual", "--dir", str(vectors), "--output", str(out))
    assert run.returncode == 0, run.output
    data = json.loads(out.read_text())
    return data, [e for e in data["results"] if e["format"] == "float64" and "tcId" in e]


def test_vectors_verify_counts_what_is_missing_duplicated_or_malformed(tmp_path):
    vectors = tmp_path / "vectors"  # float64 only: quicker to load
    vectors.mkdir()
    (vectors / "float64.json").write_text((ROOT / "spec/vectors/float64.json").read_text())
    data, f64 = _results(tmp_path, vectors)
    cases = {
        "empty": ({"implementation": "x", "results": []}, 2, "nothing was checked"),
        "partial": (dict(data, results=f64[:5]), 1, f"{len(f64) - 5} missing"),
        "duplicate": (dict(data, results=data["results"] + f64[:1]), 1, "1 duplicates"),
    }
    bad = json.loads(json.dumps(data))
    entries = [e for e in bad["results"] if e["format"] == "float64" and "tcId" in e]
    entries[1]["outputs"]["y"] = "1e-999999999"  # an absurd exponent: refused, not parsed
    entries[2]["outputs"]["y"] = 12  # a number where text belongs
    cases["malformed"] = (bad, 1, "1 malformed")
    for name, (content, status, words) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(content))
        run = neuronspec("vectors", "verify", str(path), "--dir", str(vectors), timeout=60)
        assert run.returncode == status, (name, run.output[-2000:])
        assert words in run.output, (name, run.output[-2000:])
    assert "exponent is out of range" in run.stdout


@pytest.mark.parametrize("corrupt, words", [
    (lambda t: t["inputs"]["w"].update(hex="0x1p-99999999999", decimal="1e-999999999"),
     "exponent is out of range"),
    (lambda t: t["inputs"]["w"].update(hex="0x1.00000001p-1"), "differ"),
    (lambda t: t["expected"]["y"].update(exactHex="0x1p+99999999999"), "out of range"),
    (None, "is not a vector file"),
])
def test_a_corrupt_vector_folder_is_one_line_before_anything_runs(tmp_path, corrupt, words):
    content = json.loads((ROOT / "spec" / "vectors" / "float64.json").read_text())
    if corrupt is None:
        text = "{garbage"
    else:
        corrupt(content["testGroups"][0]["tests"][0])
        text = json.dumps(content)
    (tmp_path / "float64.json").write_text(text)
    run = neuronspec("check", "manual", "--dtype", "float64", "--sweep", "0", "--vectors", str(tmp_path),
                     timeout=60)
    assert run.returncode == 2 and words in run.stderr, run.output[-2000:]
    assert len(run.stderr.strip().splitlines()) == 1 and run.seconds < 30


# --- 4. honest exit codes ---------------------------------------------------------------------

def test_nothing_checked_is_exit_2_never_conformant(tmp_path):
    run = neuronspec("check", "manual", "--examples", "0", "--vectors", "", "--sweep", "0",
                     "--json", str(tmp_path / "r.json"))
    assert run.returncode == 2 and "NOT CHECKED" in run.stdout
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "not checked"
    run = neuronspec("sweep", f"{SUBJECTS}:nothing", "--dtype", "float64", "--cases", "100")
    assert run.returncode == 2 and "does not support float64" in run.stderr


@pytest.mark.parametrize("args, words", [
    (("check", "manual", "--timeout", "nan"), "--timeout"),
    (("check", "manual", "--timeout", "0"), "--timeout"),
    (("sweep", "manual", "--dtype", "float64", "--timeout", "-1"), "--timeout"),
    (("replay", "manual", "--dtype", "float64", "--case=1,0,1,0,0", "--timeout", "inf"),
     "--timeout"),
    (("sweep", "manual", "--dtype", "float64", "--seed", "-5"), "--seed"),
    (("check", "manual", "--examples", "-1"), "--examples"),
])
def test_bad_options_are_one_line_naming_the_option(args, words):
    run = neuronspec(*args, timeout=60)
    assert run.returncode == 2 and words in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# --- 5. records and output paths --------------------------------------------------------------

def _add_entries(path: str, first: int, count: int) -> None:
    """``count`` read-modify-write updates of the sweeps record, as concurrent runs make."""
    from neuronspec.artefacts import records

    for i in range(first, first + count):
        entry = {"impl": f"impl{i}", "format": "float64", "model": "ieee", "seed": i,
                 "cases": 1, "violations": 0, "quantities": {}, "command": "test",
                 "path": "numpy", "wall_seconds": 0.0, "workers": 1}
        records.update("sweeps", path, lambda old, i=i, entry=entry: dict(
            old, runs={**old.get("runs", {}), f"impl{i}/float64": entry}))


def test_concurrent_record_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "sweeps.json")
    ctx = mp.get_context("spawn")
    writers = [ctx.Process(target=_add_entries, args=(path, 100 * k, 15)) for k in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    content = json.loads(Path(path).read_text())
    assert len(content["runs"]) == 60
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_record_keeps_the_permissions_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "sweeps.json"
    _add_entries(str(path), 0, 1)  # new: readable as the umask allows, not mkstemp's 0600
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    path.chmod(0o640)
    _add_entries(str(path), 10, 1)
    assert path.stat().st_mode & 0o777 == 0o640
    assert len(json.loads(path.read_text())["runs"]) == 2


def test_an_invalid_record_is_refused_before_the_run(tmp_path):
    record = tmp_path / "sweeps.json"
    record.write_text("{not json")
    run = neuronspec("sweep", "manual", "--dtype", "float64", "--cases", "1e9",
                     "--record", str(record), timeout=60)
    assert run.returncode == 2 and "not valid JSON" in run.stderr and run.seconds < 30
    assert record.read_text() == "{not json"  # untouched


@pytest.mark.parametrize("args", [
    ("check", "manual", "--json", "{missing}/r.json"),
    ("check", "manual", "--markdown", "{folder}"),
    ("check", "manual", "--junit", "{missing}/r.xml"),
    ("check", "manual", "--summary", "{folder}"),
    ("sweep", "manual", "--dtype", "float64", "--cases", "1e9", "--json", "{missing}/s.json"),
    ("vectors", "run", "manual", "--output", "{missing}/v.json"),
    ("crosscheck", "--cases", "1e9", "--record", "{folder}"),
])
def test_unwritable_output_paths_are_refused_before_the_run(tmp_path, args):
    args = [a.format(missing=tmp_path / "no" / "such" / "dir", folder=tmp_path) for a in args]
    run = neuronspec(*args, timeout=60)
    assert run.returncode == 2 and run.seconds < 30, run.output[-2000:]
    assert len(run.stderr.strip().splitlines()) == 1 and "verdict" not in run.stdout


# --- 6. clean interruption --------------------------------------------------------------------

@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_every_child_and_keeps_the_partial_report(tmp_path, sig, status):
    report, junit, summary = tmp_path / "r.json", tmp_path / "r.xml", tmp_path / "s.txt"
    run = neuronspec("check", "--cmd", f"{PROGRAM} slow-with-child", "--dtype", "float64", "--sweep", "0",
                     "--examples", "100000", "--vectors", "", "--json", str(report),
                     "--junit", str(junit), "--summary", str(summary),
                     stop=(20, sig))  # a few cases answered (about 8 answers a case)
    assert run.returncode == status, run.output[-2000:]
    data = json.loads(report.read_text())
    name = signal.Signals(sig).name
    assert data["interrupted"] == name
    assert data["implementations"][0]["formats"]["float64"]["cases"] > 0
    assert "interrupted by" in run.stdout.lower()
    error = ET.parse(junit).getroot().find("*/testcase[@name='step']/error")
    assert error.get("type") == "interrupted" and name in error.get("message")
    assert f"(INTERRUPTED BY {name}) — program.py float64 ✓ (interrupted)" in summary.read_text()


def test_a_signal_ends_a_python_subject_and_sweep_workers(tmp_path):
    run = neuronspec("check", f"{SUBJECTS}:slow", *QUICK[:2], "--sweep", "0", "--examples", "100000",
                     "--vectors", "", stop=(3, signal.SIGTERM))
    assert run.returncode == 143
    out = tmp_path / "s.json"
    run = neuronspec("sweep", f"{SUBJECTS}:slow", "--dtype", "float64", "--scalar",
                     "--workers", "2", "--cases", "1e9", "--chunk", "10", "--json", str(out),
                     stop=(45, signal.SIGTERM))  # a worker has finished 2 chunks of 10
    assert run.returncode == 143, run.output[-2000:]
    data = json.loads(out.read_text())
    assert data["interrupted"] == "SIGTERM" and data["cases"] > 0


def test_nothing_outlives_a_killed_checker():
    # no handler runs on SIGKILL: sweep workers and the Python server watch their parent
    run = neuronspec("sweep", f"{SUBJECTS}:slow", "--dtype", "float64", "--scalar",
                     "--workers", "2", "--cases", "1e9", "--chunk", "10",
                     stop=(25, signal.SIGKILL))  # chunks running in the workers
    assert run.returncode == -signal.SIGKILL  # and, checked by neuronspec(), nothing left
    run = neuronspec("check", f"{SUBJECTS}:hang", *QUICK, "--timeout", "600",
                     stop=(1, signal.SIGKILL))  # its server is in the call
    assert run.returncode == -signal.SIGKILL


def test_a_corrupt_record_is_one_line_and_exit_2_not_stale(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for record in (ROOT / "spec" / "data").glob("*.json"):
        content = json.loads(record.read_text())
        if record.name == "sweeps.json":  # a required field missing
            del next(iter(content["runs"].values()))["cases"]
        (data / record.name).write_text(json.dumps(content))
    run = neuronspec("tables", "--check", "--data", str(data), timeout=60)
    assert run.returncode == 2 and "'cases' is a required property" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# --- 7. declared models apply to every property -----------------------------------------------

def test_a_declared_flush_to_zero_passes_every_property():
    mutant = "tests/mutants/subnormals_flushed_to_zero.py:step"
    run = neuronspec("check", mutant, "--dtype", "float32", "--examples", "60", "--vectors", "",
                     "--sweep", "0")
    assert run.returncode == 1 and "flush" in run.stdout
    # the failure names the evaluation that explains the value, the simplest first
    assert "evaluations outside the model that give it: ftz," in run.stdout
    run = neuronspec("check", mutant, "--dtype", "float32", "--examples", "60", "--vectors", "",
                     "--sweep", "0", "--model", "ieee+ftz")
    assert run.returncode == 0, run.stdout[-3000:]


# --- 8. reports are safe to paste -------------------------------------------------------------

@pytest.mark.parametrize("target", [(f"{SUBJECTS}:markdown",), ("--cmd", f"{PROGRAM} markdown")])
def test_the_markdown_report_escapes_what_the_subject_says(tmp_path, target):
    md = tmp_path / "r.md"
    run = neuronspec("check", *target, *QUICK, "--markdown", str(md))
    assert run.returncode == 1
    text = md.read_text()
    assert "Forged heading" in text  # reported ...
    outside, fence = [], ""
    for line in text.splitlines():  # ... only as literal text in code blocks, or escaped
        if fence:
            if line.strip() == fence:
                fence = ""
            else:
                assert not line.lstrip().startswith(fence), line  # no early close
            continue
        if line.startswith("```"):
            fence = line.strip()
            continue
        outside.append(line)
    assert fence == "", "a code block is left open"
    prose = "\n".join(outside)
    assert not re.search(r"^\s*#+ Forged", prose, re.M)
    assert "<script" not in prose and "<img" not in prose and "](http" not in prose


def test_printed_replay_commands_run_as_printed_with_a_negative_first_input():
    run = neuronspec("sweep", "tests/mutants/y_one_ulp_high.py:step", "--dtype", "float64",
                     "--cases", "20000")
    assert run.returncode == 1
    replays = [line.split("replay: ", 1)[1] for line in run.stdout.splitlines()
               if "replay: neuronspec replay" in line]
    negative = next(r for r in replays if "--case=-" in r)
    again = subprocess.run(negative, shell=True, cwd=ROOT, capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, PATH=f"{Path(sys.executable).parent}"
                                                 f"{os.pathsep}{os.environ['PATH']}"))
    assert again.returncode == 1, again.stdout + again.stderr
    assert "outside its bound" in again.stdout or "FAIL" in again.stdout


def test_json_reports_are_standard_json(tmp_path):
    def strict(text):
        return json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in JSON"))

    report = tmp_path / "r.json"
    run = neuronspec("check", f"{SUBJECTS}:infinite", *QUICK, "--json", str(report))
    assert run.returncode == 1
    strict(report.read_text())
    sweep = tmp_path / "s.json"
    run = neuronspec("sweep", f"{SUBJECTS}:infinite", "--dtype", "float64", "--cases", "2000",
                     "--json", str(sweep))
    assert run.returncode == 1
    strict(sweep.read_text())
