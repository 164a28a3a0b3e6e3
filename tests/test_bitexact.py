"""Bit-exact levels: which evaluation each bundled implementation performs, bit for bit.

- torch (float32, float64): forward and backward equal the canonical evaluation; the SGD update
  is fused under the vectorised CPU dispatch and rounds twice under ATEN_CPU_CAPABILITY=default;
  the manual no_grad update rounds twice.
- torch (float16, bfloat16): recorded: every quantity equals the canonical evaluation (each
  operation runs in float32 and is rounded once to the format, which is innocuous here).
- manual and numpy: every quantity equals the canonical evaluation, except the loss, whose
  ``**2`` goes through pow: within one ulp of r*r/2 (the pow allowance of the ieee model).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, example, given

from reference.bounds import OutOfDomain, case_bounds
from reference.formats import FORMATS
from neuronspec.errors import LoadError
from neuronspec.implementations import load
from reference.rounded import VARIANTS, evaluate_variants
from neuronspec.cases.strategies import cases

ROOT = Path(__file__).resolve().parents[1]
FORWARD_BACKWARD = ("y", "dL_dy", "loss", "dL_dw", "dL_db")
UPDATE = ("w_new", "b_new")


def impl(name):
    try:
        return load(name)
    except LoadError as exc:
        pytest.skip(str(exc))


def same(a: float, b: float) -> bool:
    return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (a != a and b != b)


def in_domain(fmt, case, quantities):
    b = case_bounds(fmt, dict(zip("w b x t lr".split(), case)))
    return all(not isinstance(b[q], OutOfDomain) for q in quantities)


def check_matches(out, expected, quantities, what):
    for q in quantities:
        assert same(out[q], expected[q]), f"{what}: {q} = {out[q]!r}, expected {expected[q]!r}"


def _torch_forward_backward(fmt):
    @given(labelled=cases(fmt))
    def run(labelled):
        regime, case = labelled
        assume(in_domain(fmt, case, FORWARD_BACKWARD + UPDATE))
        canonical = evaluate_variants(fmt, *case, [VARIANTS["canonical"]])["canonical"]
        for name in ("torch_autograd", "torch_sgd"):
            out = impl(name)(fmt, case)
            check_matches(out, canonical, FORWARD_BACKWARD, f"{name} {fmt} {regime} {case}")
        # the manual no_grad update rounds twice: the canonical update
        check_matches(impl("torch_autograd")(fmt, case), canonical, UPDATE,
                      f"torch_autograd update {fmt} {case}")
    return run


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_torch_forward_backward_and_manual_update_are_canonical(fmt):
    pytest.importorskip("torch")
    _torch_forward_backward(fmt)()


#: Cases whose fused and two-rounding updates differ in both parameters: every run checks them,
#: so the check is never vacuous, and hypothesis adds its own.
TELLING = {
    "float32": ("-0x1.edf952p-5", "-0x1.254b4ep-1", "-0x1.3b3b8p-1", "0x1.3b37e2p-3",
                "0x1.3f3a02p-1"),
    "float64": ("-0x1.d1123c5a0f61cp-1", "0x1.b1560f4b63e0cp-1", "-0x1.7315913082ee0p-3",
                "-0x1.6c8a5680e5cacp-1", "0x1.e5243a8e9dcc8p-2"),
}


@pytest.mark.parametrize("fmt", ["float32", "float64"])
def test_torch_sgd_update_is_fused_under_vectorised_dispatch(fmt):
    torch = pytest.importorskip("torch")
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "DEFAULT":
        pytest.skip("this process runs torch's portable kernels (ATEN_CPU_CAPABILITY=default)")
    differs = []

    @example(labelled=("telling", tuple(float.fromhex(v) for v in TELLING[fmt])))
    @given(labelled=cases(fmt))
    def run(labelled):
        regime, case = labelled
        assume(in_domain(fmt, case, UPDATE))
        res = evaluate_variants(fmt, *case, [VARIANTS["canonical"], VARIANTS["fused-update"]])
        out = impl("torch_sgd")(fmt, case)
        check_matches(out, res["fused-update"], UPDATE, f"torch_sgd {fmt} ({capability}) {case}")
        if any(not same(res["canonical"][q], res["fused-update"][q]) for q in UPDATE):
            differs.append(case)

    run()
    assert differs, "no case told the fused and the two-rounding update apart: the check is vacuous"


def test_torch_sgd_update_rounds_twice_with_portable_kernels():
    """Run in a subprocess with ATEN_CPU_CAPABILITY=default (it must be set before torch loads)."""
    pytest.importorskip("torch")
    script = (
        "import json, numpy as np\n"
        "from neuronspec.cases.regimes import regime_cases\n"
        "from reference.formats import FLOAT32\n"
        "from reference.rounded import evaluate_variants, VARIANTS\n"
        "from reference.bounds import case_bounds, OutOfDomain\n"
        "from neuronspec.implementations.bundled import torch_sgd\n"
        "import torch\n"
        "rng = np.random.default_rng(2026)\n"
        "n = canon = fused_differs = 0\n"
        "for regime in ('cancel-y-t', 'lr-range', 'generic'):\n"
        "    for case in regime_cases(FLOAT32, regime, rng, 400):\n"
        "        b = case_bounds(FLOAT32, dict(zip('w b x t lr'.split(), case)))\n"
        "        if any(isinstance(b[q], OutOfDomain) for q in ('w_new', 'b_new')): continue\n"
        "        res = evaluate_variants(FLOAT32, *case, [VARIANTS['canonical'], VARIANTS['fused-update']])\n"
        "        out = torch_sgd.step(*case, 'float32')\n"
        "        n += 1\n"
        "        canon += all(out[q] == res['canonical'][q] for q in ('w_new', 'b_new'))\n"
        "        fused_differs += any(res['fused-update'][q] != res['canonical'][q] for q in ('w_new', 'b_new'))\n"
        "print(json.dumps({'capability': torch.backends.cpu.get_cpu_capability(), 'n': n,\n"
        "                  'canonical': canon, 'fused_differs': fused_differs}))\n"
    )
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["capability"] == "DEFAULT"
    assert r["n"] > 500 and r["canonical"] == r["n"], r
    assert r["fused_differs"] > 0, "the sample cannot tell fused from two-rounding updates"


@pytest.mark.parametrize("name,fmts", [("manual", ["float64"]),
                                       ("numpy", ["float16", "float32", "float64"])])
def test_manual_and_numpy_are_canonical_except_the_pow_loss(name, fmts):
    for fmt_name in fmts:
        fmt = FORMATS[fmt_name]

        @given(labelled=cases(fmt))
        def run(labelled):
            regime, case = labelled
            assume(in_domain(fmt, case, FORWARD_BACKWARD + UPDATE))
            canonical = evaluate_variants(fmt, *case, [VARIANTS["canonical"]])["canonical"]
            out = impl(name)(fmt_name, case)
            check_matches(out, canonical, ("y", "dL_dy", "dL_dw", "dL_db") + UPDATE,
                          f"{name} {fmt_name} {case}")
            # loss = 0.5 * pow(r, 2): pow within one ulp of r*r, then an exact halving
            r = out["dL_dy"]
            exact_half_square = Fraction(r) ** 2 / 2
            assert abs(Fraction(out["loss"]) - exact_half_square) <= fmt.ulp(exact_half_square), \
                f"{name} {fmt_name} loss {out['loss']!r} is more than one ulp from r*r/2 at {case}"

        run()


def test_autograd_update_equals_optimizer_step_where_the_seed_says():
    pytest.importorskip("torch")
    f32 = FORMATS["float32"]
    case = tuple(f32.parse(v) for v in ("0.5", "-0.1", "2.0", "1.0", "0.1"))
    a, s = impl("torch_autograd")("float32", case), impl("torch_sgd")("float32", case)
    assert (a["w_new"], a["b_new"]) == (s["w_new"], s["b_new"]) == (0.5199999809265137,
                                                                     -0.08999999612569809)
