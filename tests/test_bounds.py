"""The bounds are sound (no admitted evaluation exceeds them), tight (the worst case comes close)
and able to fail (a weakened bound or an unadmitted evaluation is caught).  A derandomized
sample here; the million-case run is `neuronspec soundness` (see spec/tolerances.md)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from reference import bounds as bounds_module
from reference.bounds import IEEE, MODELS, STRICT, OutOfDomain, case_bounds, step_bounds
from reference.exact import exact_step
from reference.formats import FLOAT16, FLOAT32, FLOAT64, FORMATS
from reference.judge import judge
from reference.rounded import ALL_VARIANTS, evaluate, evaluate_variants, variants_for
from reference.step import REQUIRED as CHECKED

from neuronspec.cases.regimes import CAMPAIGN_REGIMES as REGIMES, regime_cases
from neuronspec.runs.soundness import run_chunk

SAMPLE = 60  # cases per format and regime in the default run


@pytest.fixture(scope="module", params=list(FORMATS))
def sample(request):
    """The soundness runner on a small derandomized sample of every regime."""
    fmt = request.param
    tallies = {}
    for regime in REGIMES:
        tallies[regime] = run_chunk({"format": fmt, "regime": regime, "seed": 7, "chunk": 0,
                                     "cases": SAMPLE, "impls": [], "variants": True,
                                     "options": True, "compare": False})
    return fmt, tallies


def test_no_variant_exceeds_its_bound(sample):
    fmt, tallies = sample
    for regime, t in tallies.items():
        for subject, qs in t["subjects"].items():
            for q, st in qs.items():
                assert st["violations"] == 0, (
                    f"{fmt} {regime}: {st['violations']} violations of the {subject} bound of "
                    f"{q}; first: {st['first_violations'][:1]}")


def test_the_sample_reaches_close_to_the_bound(sample):
    """Tightness: across the regimes, some case comes within a factor 2 of each bound."""
    fmt, tallies = sample
    for q in CHECKED:
        worst = max(t["subjects"]["ieee"][q]["max_ratio"] for t in tallies.values()
                    if q in t["subjects"]["ieee"])
        assert worst >= 0.5, f"{fmt} {q}: worst error/bound {worst:.3f} < 0.5 on the sample"


@pytest.mark.parametrize("name", list(FORMATS))
def test_a_posteriori_bounds_are_sound_and_never_looser(name):
    fmt = FORMATS[name]
    rng = np.random.default_rng(11)
    variants = variants_for(fmt)
    for regime in ("generic", "cancel-y-t", "tiny"):
        for case in regime_cases(fmt, regime, rng, 40):
            inputs = dict(zip("w b x t lr".split(), case))
            exact = exact_step(*case)
            prior = case_bounds(fmt, inputs)
            for vname, out in evaluate_variants(fmt, *case, variants).items():
                post = case_bounds(fmt, inputs, computed=out)
                for q in CHECKED:
                    if isinstance(prior[q], OutOfDomain):
                        assert isinstance(post[q], OutOfDomain)
                        continue
                    assert post[q] <= prior[q]
                    assert not judge(fmt, q, out[q], exact[q], post[q]).violation, \
                        f"{name} {vname} {q} exceeds its a-posteriori bound at {case}"


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32"])
def test_float_arithmetic_rounds_bounds_up(name):
    """The fast float64 evaluation of a bound is >= the exact one, and barely larger."""
    fmt = FORMATS[name]
    rng = np.random.default_rng(5)
    for regime in REGIMES:
        for case in regime_cases(fmt, regime, rng, 25):
            inputs = dict(zip("w b x t lr".split(), case))
            fast = case_bounds(fmt, inputs, exact_arithmetic=False)
            exact = case_bounds(fmt, inputs, exact_arithmetic=True)
            for q in CHECKED:
                if isinstance(exact[q], OutOfDomain):
                    continue
                assert not isinstance(fast[q], OutOfDomain), (name, q, case)
                assert Fraction(fast[q]) >= exact[q], f"{name} {q}: float bound below exact at {case}"
                # (a magnitude within the slack below a power of two takes the binade above in
                # binary64: a small term of the wider format's rounding may double, ~2^-17)
                assert Fraction(fast[q]) <= exact[q] * (1 + Fraction(1, 2**16)) + Fraction(2) ** -1074


# --- the checks can fail -------------------------------------------------------------------------


def _violations(fmt, model, variants, regimes=("cancel-y-t", "cancel-wx-b", "generic"), n=80):
    rng = np.random.default_rng(3)
    bad = 0
    for regime in regimes:
        for case in regime_cases(fmt, regime, rng, n):
            inputs = dict(zip("w b x t lr".split(), case))
            exact = exact_step(*case)
            bnd = case_bounds(fmt, inputs, model)
            for out in evaluate_variants(fmt, *case, variants).values():
                for q in CHECKED:
                    if not isinstance(bnd[q], OutOfDomain):
                        bad += judge(fmt, q, out[q], exact[q], bnd[q]).violation
    return bad


def test_strict_bound_rejects_a_square_off_by_one_ulp():
    """The pow allowance is needed: the one-ulp square violates the strict model's bound."""
    assert _violations(FLOAT32, STRICT, [ALL_VARIANTS["pow-one-ulp"]]) > 0


def test_ieee_bound_rejects_flush_to_zero_unless_declared():
    tiny = ("tiny",)
    assert _violations(FLOAT32, IEEE, [ALL_VARIANTS["ftz"]], regimes=tiny) > 0
    assert _violations(FLOAT32, MODELS["ieee+ftz"], [ALL_VARIANTS["ftz"]], regimes=tiny) == 0


def test_a_bound_without_the_cancellation_term_is_caught(monkeypatch):
    """Drop the operand error carried into y - t (a relative bound on r): violations appear."""
    original = bounds_module.Chain.node

    def node_without_propagation(self, name, prop, operand_flag, rounding=None):
        original(self, name, prop, operand_flag, rounding)
        if name == "r":
            self.errors[name] -= prop

    monkeypatch.setattr(bounds_module.Chain, "node", node_without_propagation)
    assert _violations(FLOAT32, IEEE, variants_for(FLOAT32), regimes=("cancel-y-t",)) > 0


# --- domain and inputs ---------------------------------------------------------------------------


def test_out_of_domain_says_why():
    b = step_bounds(FLOAT16, 300.0, 0.0, 300.0, 0.0, 1.0)
    assert all(isinstance(v, OutOfDomain) for v in b.values())
    assert "w*x" in b["y"].reason and "float16" in b["y"].reason and "65504" in b["y"].reason


def test_loss_may_leave_the_domain_while_y_stays():
    b = step_bounds(FLOAT16, 1.0, 0.0, 1.0, 512.0, 0.0)  # r = -511: r*r = 261121 overflows
    assert isinstance(b["loss"], OutOfDomain) and "r*r" in b["loss"].reason
    assert not isinstance(b["y"], OutOfDomain) and not isinstance(b["dL_db"], OutOfDomain)


def test_autograd_doubling_of_r_bounds_the_gradient_domain():
    b = step_bounds(FLOAT16, 0.0, 40000.0, 1.0, 0.0, 0.0)  # r = 40000, 2r overflows float16
    assert not isinstance(b["y"], OutOfDomain)
    assert isinstance(b["dL_db"], OutOfDomain) and "2*r" in b["dL_db"].reason


def test_lr_outside_the_format_needs_the_option():
    with pytest.raises(ValueError, match="lr-binary64"):
        step_bounds(FLOAT32, 0.5, 0.0, 1.0, 0.0, 0.1)
    b = step_bounds(FLOAT32, 0.5, 0.0, 1.0, 0.0, 0.1, model="ieee+lr-binary64")
    assert b["w_new"] > step_bounds(FLOAT32, 0.5, 0.0, 1.0, 0.0, FLOAT32.round(0.1))["w_new"]


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="choose ieee or strict"):
        step_bounds(FLOAT32, 0.5, 0.0, 1.0, 0.0, 0.5, model="loose")


# --- the seed's code is within its bounds ----------------------------------------------------------


def test_seed_example_within_bounds_and_close_to_them():
    f32 = {k: FLOAT32.parse(v) for k, v in (("w", "0.5"), ("b", "-0.1"), ("x", "2"), ("t", "1"),
                                             ("lr", "0.1"))}
    bounds = step_bounds(FLOAT32, **f32)
    exact = exact_step(**f32).as_fractions()
    out = evaluate(FLOAT32, **f32)
    err = abs(Fraction(out["dL_db"]) - exact["dL_db"])
    assert err == 3 * FLOAT32.ulp(exact["dL_db"])  # the seed's 3 ulps
    assert err <= bounds["dL_db"] < 2 * err
    b64 = step_bounds(FLOAT64, 0.5, -0.1, 2.0, 1.0, 0.1)
    assert all(not isinstance(v, OutOfDomain) and v > 0 for v in b64.values())
    assert math.isclose(float(b64["y"]), 2.0**-54, rel_tol=1.0)
