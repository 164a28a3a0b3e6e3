"""The two example implementations of the process protocol (spec/protocol.md), driven over
pipes without any checker command:

- examples/c/neuron_step.c, built with its Makefile into a temporary folder: every output,
  bit for bit, equals the canonical evaluation (reference.rounded.evaluate) in float32 and
  float64; float16/bfloat16 are "unsupported"; malformed lines get an "error" and the program
  goes on; the -DNEURON_WRONG_SIGN build answers a different dL_dw.
- neuronspec/implementations/serve.py, serving Python step callables: its answers equal calling the step
  directly; NotImplementedError is "unsupported", other failures are "error"; an IMPL that
  cannot be loaded exits 2 with one line on stderr.
"""

from __future__ import annotations

import ast
import json
import math
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reference.formats import FORMATS, float_hex
from neuronspec.implementations import load
from reference.rounded import evaluate
from reference.formats import exact_decimal

ROOT = Path(__file__).resolve().parents[1]
C_DIR = ROOT / "examples" / "c"
SERVER = ROOT / "neuronspec" / "implementations" / "serve.py"
HELLO = json.dumps({"protocol": "neuronspec-protocol/1"})
INPUTS = ("w", "b", "x", "t", "lr")
OUTPUTS = ("y", "loss", "dL_dw", "dL_db", "w_new", "b_new", "dL_dy")
SEED = {"w": "0.5", "b": "-0.1", "x": "2", "t": "1", "lr": "0.1"}
TIMEOUT = 20  # seconds per process conversation (generous: the machine may be loaded)


# --- requests and responses -----------------------------------------------------------------

def decimal_text(value: float) -> str:
    """The exact decimal of a value of a format, signed zeros as '0' / '-0'."""
    if value == 0.0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    return exact_decimal(value, 10000)


def make_request(rid: str, fmt: str, case, *, hex_: bool = True, decimal: bool = True) -> str:
    inputs = {}
    for name, value in zip(INPUTS, case):
        entry = {}
        if hex_:
            entry["hex"] = float_hex(value)
        if decimal:
            entry["decimal"] = decimal_text(value)
        inputs[name] = entry
    return json.dumps({"id": rid, "format": fmt, "inputs": inputs})


def seed_case(fmt: str) -> tuple:
    f = FORMATS[fmt]
    return tuple(f.parse(SEED[name]) for name in INPUTS)


def random_value(rng: random.Random, fmt: str) -> float:
    """A value of the format: moderate, any exponent (subnormals included), or special."""
    f = FORMATS[fmt]
    kind = rng.random()
    if kind < 0.45:
        return f.round(rng.uniform(-4.0, 4.0))
    if kind < 0.9:
        lo, hi = (-20, 20) if kind < 0.7 else (f.emin - 1, f.emax)
        e = rng.randint(max(lo, f.emin - 1), min(hi, f.emax))
        bits = rng.getrandbits(f.p - 1)
        if e < f.emin:  # subnormal (or zero)
            v = math.ldexp(bits, f.emin - f.p + 1)
        else:
            v = math.ldexp(bits | (1 << (f.p - 1)), e - f.p + 1)
        return -v if rng.random() < 0.5 else v
    return rng.choice((0.0, -0.0, 1.0, -1.0, f.smallest_subnormal, -f.smallest_normal,
                       f.largest_finite))


def random_cases(fmt: str, n: int, seed: int) -> list[tuple]:
    rng = random.Random(f"{fmt}-{seed}")
    f = FORMATS[fmt]
    out = []
    for _ in range(n):
        w, b, x, t = (random_value(rng, fmt) for _ in range(4))
        if rng.random() < 0.7:
            lr = f.round(rng.choice((0.1, 0.01, 0.001, 0.5, 1.0)) * rng.uniform(0.5, 2.0))
        else:
            lr = random_value(rng, fmt)
        out.append((w, b, x, t, lr))
    return out


def converse(cmd: list[str], lines: list[str], cwd: Path = ROOT) -> list[dict]:
    """Send the hello and ``lines``, close stdin; the responses, after a clean exit."""
    proc = subprocess.run(cmd, input="\n".join([HELLO, *lines]) + "\n", capture_output=True,
                          text=True, timeout=TIMEOUT, cwd=cwd)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}: {proc.stderr}"
    return [json.loads(line) for line in proc.stdout.splitlines()]


def same_bits(a: float, b: float) -> bool:
    """Equal values with equal signs (zeros included); any NaN equals any NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def read_outputs(response: dict, rid: str, fmt: str) -> dict[str, float]:
    assert response.get("id") == rid, response
    assert "outputs" in response, response
    values = {}
    for q in OUTPUTS:
        text = response["outputs"][q]
        assert isinstance(text, str), (q, text)
        v = float.fromhex(text)  # also reads inf, -inf, nan
        assert math.isnan(v) or FORMATS[fmt].contains(v), f"{q} = {text} is not a {fmt} value"
        values[q] = v
    return values


def mismatches(got: dict, want: dict) -> list[str]:
    return [f"{q}: got {float_hex(got[q])}, want {float_hex(want[q])}"
            for q in OUTPUTS if not same_bits(got[q], want[q])]


def read_line_within(stream, seconds: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    assert box, f"no response within {seconds} s (is the output flushed after each line?)"
    return box[0]


# --- the C example --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def c_build(tmp_path_factory) -> Path:
    """neuron_step and neuron_step_wrong_sign, built by the example's Makefile in a copy."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler: `cc` is not on PATH")
    if shutil.which("make") is None:
        pytest.skip("no `make` on PATH to build examples/c")
    build = tmp_path_factory.mktemp("c_example")
    for name in ("neuron_step.c", "Makefile"):
        shutil.copy(C_DIR / name, build / name)
    proc = subprocess.run(["make", "-C", str(build)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"make failed:\n{proc.stdout}\n{proc.stderr}"
    return build


def test_c_matches_the_canonical_evaluation_bit_for_bit(c_build):
    lines, expected = [], []
    for fmt in ("float32", "float64"):
        cases = [seed_case(fmt)] + random_cases(fmt, 150, seed=1)
        for i, case in enumerate(cases):
            rid = f"{fmt}-{i}" if i % 7 else f'{fmt} "odd" \\ id \u00e9 {i}'  # echoed exactly
            lines.append(make_request(rid, fmt, case))
            expected.append((rid, fmt, case))
    responses = converse([str(c_build / "neuron_step")], lines)
    assert len(responses) == len(expected)
    failures = []
    for response, (rid, fmt, case) in zip(responses, expected):
        got = read_outputs(response, rid, fmt)
        bad = mismatches(got, evaluate(fmt, *case))
        if bad:
            failures.append(f"{rid} {[float_hex(v) for v in case]}: {'; '.join(bad)}")
    assert not failures, "\n".join(failures[:10])


def test_c_answers_the_spec_example(c_build):
    # The float32 response shown in spec/protocol.md, for the seed case.
    spec = {"y": "0x1.ccccccp-1", "loss": "0x1.47ae1ep-8", "dL_dw": "-0x1.9999ap-3",
            "dL_db": "-0x1.9999ap-4", "w_new": "0x1.0a3d7p-1", "b_new": "-0x1.70a3d6p-4",
            "dL_dy": "-0x1.9999ap-4"}
    case = seed_case("float32")
    (response,) = converse([str(c_build / "neuron_step")],
                           [make_request("float32-17", "float32", case)])
    got = read_outputs(response, "float32-17", "float32")
    assert all(same_bits(got[q], float.fromhex(spec[q])) for q in OUTPUTS), response
    assert all(same_bits(got[q], v) for q, v in evaluate("float32", *case).items())


def test_c_reads_the_decimal_when_there_is_no_hex(c_build):
    lines, expected = [], []
    for fmt in ("float32", "float64"):
        for i, case in enumerate([seed_case(fmt)] + random_cases(fmt, 10, seed=2)):
            lines.append(make_request(f"{fmt}-{i}", fmt, case, hex_=False))
            expected.append((f"{fmt}-{i}", fmt, case))
    responses = converse([str(c_build / "neuron_step")], lines)
    for response, (rid, fmt, case) in zip(responses, expected, strict=True):
        assert not mismatches(read_outputs(response, rid, fmt), evaluate(fmt, *case)), rid


def test_c_says_unsupported_for_float16_and_bfloat16(c_build):
    lines = [make_request(f"{fmt}-0", fmt, seed_case(fmt)) for fmt in ("float16", "bfloat16")]
    responses = converse([str(c_build / "neuron_step")], lines)
    assert [r["id"] for r in responses] == ["float16-0", "bfloat16-0"]
    for r in responses:
        assert isinstance(r.get("unsupported"), str) and r["unsupported"], r
        assert "outputs" not in r and "error" not in r


def test_c_answers_malformed_lines_with_errors_and_goes_on(c_build):
    good = make_request("good", "float64", seed_case("float64"))
    bad_hex = json.loads(good)
    bad_hex["id"] = "bad-hex"
    bad_hex["inputs"]["w"] = {"hex": "0x1.zzp+0"}
    no_lr = json.loads(good)
    no_lr["id"] = "no-lr"
    del no_lr["inputs"]["lr"]
    not_f32 = json.loads(make_request("not-f32", "float32", seed_case("float32")))
    not_f32["inputs"]["b"] = {"hex": float_hex(-0.1)}  # a float64 value, not a float32 one
    unknown = json.loads(good)
    unknown["id"], unknown["format"] = "unknown-format", "float8"
    lines = [
        "this is not JSON",                       # no id to be found: id ""
        good[: len(good) // 2],                    # truncated after the id
        "",                                        # blank: no response
        json.dumps(bad_hex), json.dumps(no_lr), json.dumps(not_f32), json.dumps(unknown),
        json.dumps({"id": 17, "format": "float64"}),  # id not a string
        "[1, 2, 3]",
        good,                                      # still answered
    ]
    responses = converse([str(c_build / "neuron_step")], lines)
    ids = ["", "good", "bad-hex", "no-lr", "not-f32", "unknown-format", "", "", "good"]
    assert [r.get("id") for r in responses] == ids, responses
    for r in responses[:-1]:
        assert isinstance(r.get("error"), str) and r["error"], r
    got = read_outputs(responses[-1], "good", "float64")
    assert not mismatches(got, evaluate("float64", *seed_case("float64")))


def test_c_wrong_sign_build_gives_a_different_gradient(c_build):
    lines = [make_request(fmt, fmt, seed_case(fmt)) for fmt in ("float32", "float64")]
    right = converse([str(c_build / "neuron_step")], lines)
    wrong = converse([str(c_build / "neuron_step_wrong_sign")], lines)
    for r, w, fmt in zip(right, wrong, ("float32", "float64")):
        good, bad = read_outputs(r, fmt, fmt), read_outputs(w, fmt, fmt)
        assert not mismatches(good, evaluate(fmt, *seed_case(fmt)))
        assert bad["dL_dw"] != good["dL_dw"]
        assert bad["dL_dw"] == -good["dL_dw"]  # t - y is exactly -(y - t)
        assert bad["w_new"] != good["w_new"]


# --- neuronspec/implementations/serve.py, the stdlib-only server -----------------------------

SERVER_IMPLS = {
    # id: (spec given to serve.py, spec for neuronspec.implementations.load, formats)
    "numpy_scalar": ("neuronspec.implementations.bundled.numpy_scalar:step",
                     "neuronspec.implementations.bundled.numpy_scalar:step",
                     ("float16", "float32", "float64")),
    "sign_flipped": ("tests/mutants/sign_flipped.py:step",
                     f"{ROOT / 'tests' / 'mutants' / 'sign_flipped.py'}:step",
                     ("float16", "bfloat16", "float32", "float64")),
}


def server(spec: str) -> list[str]:
    return [sys.executable, str(SERVER), spec]


@pytest.mark.parametrize("name", SERVER_IMPLS)
def test_server_answers_what_the_step_returns(name):
    pytest.importorskip("numpy")
    if name == "sign_flipped":
        pytest.importorskip("ml_dtypes")
    spec, load_spec, formats = SERVER_IMPLS[name]
    step = load(load_spec).step
    lines, expected = [], []
    for fmt in formats:
        for i, case in enumerate([seed_case(fmt)] + random_cases(fmt, 30, seed=3)):
            lines.append(make_request(f"{fmt}-{i}", fmt, case))
            expected.append((f"{fmt}-{i}", fmt, {q: float(v) for q, v in
                                                 step(*case, fmt).items()}))
    responses = converse(server(spec), lines)
    assert len(responses) == len(expected)
    for response, (rid, fmt, want) in zip(responses, expected):
        assert set(response["outputs"]) == set(want), response
        got = read_outputs(response, rid, fmt)
        assert not mismatches(got, want), (rid, mismatches(got, want))


def test_server_says_unsupported_for_numpy_bfloat16():
    pytest.importorskip("numpy")
    (response,) = converse(server("neuronspec.implementations.bundled.numpy_scalar:step"),
                           [make_request("bf16", "bfloat16", seed_case("bfloat16"))])
    assert response == {"id": "bf16", "unsupported": "numpy has no native bfloat16 scalar type"}


FAULTY = '''
import sys

GOOD = {"y": 1.0, "loss": 0.0, "dL_dw": 0.0, "dL_db": 0.0, "w_new": 1.0, "b_new": 0.0}

def raises(w, b, x, t, lr, dtype):
    raise ValueError(f"boom in {dtype}")

def overflows(w, b, x, t, lr, dtype):
    raise OverflowError(f"too big in {dtype}")

def exits(w, b, x, t, lr, dtype):
    sys.exit(3)

def missing(w, b, x, t, lr, dtype):
    return {"y": 1.0}

def not_a_number(w, b, x, t, lr, dtype):
    return dict(GOOD, loss="lots")

def not_a_mapping(w, b, x, t, lr, dtype):
    return [1.0] * 6

def chatty(w, b, x, t, lr, dtype):
    print("debugging output on stdout")
    sys.stdout.flush()
    return dict(GOOD, y=float("inf"), loss=float("nan"), dL_dw=-0.0)
'''


@pytest.mark.parametrize("callable_, expect", [
    ("raises", {"failure": "ValueError: boom in float32"}),
    ("overflows", {"error": "OverflowError: too big in float32"}),
    ("exits", {"failure": "SystemExit: 3"}),
    ("missing", {"failure": "KeyError: step returned no loss, dL_dw, dL_db, w_new, b_new "
                            "(it must return y, loss, dL_dw, dL_db, w_new, b_new)"}),
    ("not_a_number", "ValueError: "),
    ("not_a_mapping", "TypeError: "),
    ("chatty", {"outputs": {"y": "inf", "loss": "nan", "dL_dw": "-0x0.0p+0", "dL_db": "0x0.0p+0",
                            "w_new": "0x1.0000000000000p+0", "b_new": "0x0.0p+0"}}),
])
def test_server_reports_what_goes_wrong_in_the_step(tmp_path, callable_, expect):
    (tmp_path / "faulty_impl.py").write_text(FAULTY)
    # module:callable is imported from the current directory, as `python -m` would
    responses = converse(server(f"faulty_impl:{callable_}"),
                         [make_request("c1", "float32", seed_case("float32")),
                          "{not json", json.dumps({"id": "c2", "format": "float32"}),
                          make_request("c3", "float32", seed_case("float32"))],
                         cwd=tmp_path)
    assert [r["id"] for r in responses] == ["c1", "", "c2", "c3"]
    assert responses[1]["failure"].startswith("JSONDecodeError: ")
    assert responses[2] == {"id": "c2", "failure": "KeyError: request has no 'inputs'"}
    for r in (responses[0], responses[3]):
        if isinstance(expect, dict):
            assert {k: v for k, v in r.items() if k != "id"} == expect
        else:  # an output that is not a number: never allowed, unlike an overflow error
            assert set(r) == {"id", "failure"} and r["failure"].startswith(expect), r


@pytest.mark.parametrize("spec, why", [
    ("numpy_scalar", "use module:callable"),
    ("no_such_module_xyz:step", "ModuleNotFoundError"),
    ("neuronspec.implementations.bundled.numpy_scalar:no_such_step", "has no callable"),
    ("no/such/file.py:step", "no file"),
    ("broken_impl.py:step", "RuntimeError: cannot import"),
])
def test_server_rejects_an_impl_it_cannot_load(tmp_path, spec, why):
    (tmp_path / "broken_impl.py").write_text('raise RuntimeError("cannot import\\nthis")\n')
    cwd = tmp_path if spec.startswith("broken") else ROOT
    proc = subprocess.run(server(spec), input=HELLO + "\n", capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("serve.py: cannot load implementation") and why in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("which", ["c", "server"])
def test_each_response_comes_before_the_next_request(which, request):
    """The checker waits for each answer: the output must be flushed line by line."""
    if which == "c":
        cmd = [str(request.getfixturevalue("c_build") / "neuron_step")]
    else:
        pytest.importorskip("numpy")
        cmd = server("neuronspec.implementations.bundled.numpy_scalar:step")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        proc.stdin.write(HELLO + "\n")
        for fmt in ("float32", "float64", "float32"):
            proc.stdin.write(make_request(f"live-{fmt}", fmt, seed_case(fmt)) + "\n")
            proc.stdin.flush()
            response = json.loads(read_line_within(proc.stdout, TIMEOUT))
            got = read_outputs(response, f"live-{fmt}", fmt)
            if which == "c":
                assert not mismatches(got, evaluate(fmt, *seed_case(fmt)))
        proc.stdin.close()
        assert proc.wait(timeout=TIMEOUT) == 0  # end of input: a clean exit
        assert proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_server_is_a_standalone_python38_file():
    source = SERVER.read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "serve.py must not use relative imports"
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    assert not imported & {"numpy", "reference", "neuronspec", "mpmath"}
    assert "neuronspec-protocol/1" in ast.get_docstring(tree)
