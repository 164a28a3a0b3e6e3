"""float64's batch reference in binary64 alone (reference/batch/scaled.py, used where the
platform lacks x87 extended precision): exact pairs within their delta, bounds bracketing the
scalar (Fraction) bound, the verdict equal to the extended path's and the scalar one's, its
primitives exact, and a sweep that runs without extended precision."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from reference.batch import arith, check_batch, verdict as verdict_module
from reference.batch.arith import ArrayOps
from reference.batch.judgement import BEYOND, OK
from reference.batch.scaled import round64, scaled_bounds, scaled_pairs
from reference.bounds import OutOfDomain, case_bounds, get_model
from reference.exact import exact_step
from reference.formats import FLOAT64
from reference.step import INPUTS, NODE_OF, REQUIRED

from neuronspec.cases.regimes import CAMPAIGN_REGIMES, regime_cases
from neuronspec.runs import crosscheck as crosscheck_module
from neuronspec.runs.crosscheck import outputs_around_bounds


def _x(m, k) -> Fraction:
    m, k = float(m), float(k)
    if m == 0:
        return Fraction(0)
    assert abs(k) < 10_000, (m, k)  # a nonzero value never has a zero's exponent
    return Fraction(m) * Fraction(2) ** int(k)


def _cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    cases = []
    for regime in CAMPAIGN_REGIMES:
        cases += regime_cases(FLOAT64, regime, rng, n)
    return cases, {k: np.array([c[i] for c in cases]) for i, k in enumerate(INPUTS)}


@pytest.mark.parametrize("model", ["ieee", "strict"])
def test_pairs_are_exact_and_bounds_bracket_the_scalar_bound(model):
    cases, cols = _cases(25, {"ieee": 1, "strict": 2}[model])
    with np.errstate(all="ignore"):
        values = scaled_pairs(ArrayOps, cols)
        bounds = scaled_bounds(ArrayOps, FLOAT64, get_model(model), values)
    for i, case in enumerate(cases):
        scalar = case_bounds(FLOAT64, case, model)
        exact = exact_step(*case).as_fractions()
        for q, node in NODE_OF.items():
            p = values[node]
            assert abs(_x(p.hi[i], p.k[i]) + _x(p.lo[i], p.k[i]) - exact[q]) <= \
                _x(p.delta[i], p.k[i]), (case, q)
            bound, ood, low, high, undecided = (np.broadcast_to(v, (len(cases),))[i]
                                                if not hasattr(v, "m") else v
                                                for v in bounds[q])
            s = scalar[q]
            if not undecided:
                assert bool(ood) == isinstance(s, OutOfDomain), (case, q)
            value = s.bound if isinstance(s, OutOfDomain) else s
            if value is not None:
                assert _x(low.m[i], low.k[i]) <= Fraction(value) <= _x(high.m[i], high.k[i]), \
                    (case, q)


def test_rounding_a_scaled_pair_is_ieee_rounding():
    cases, cols = _cases(40, 3)
    with np.errstate(all="ignore"):
        values = scaled_pairs(ArrayOps, cols)
        rounded = round64(ArrayOps, values["p"])
    for i, case in enumerate(cases):
        expected = FLOAT64.round(Fraction(case[0]) * Fraction(case[2]))
        assert rounded[i] == expected and np.signbit(rounded[i]) == np.signbit(expected), case


def test_primitives_are_exact():
    rng = np.random.default_rng(4)
    a = rng.uniform(1, 2, 20000) * 2.0 ** rng.integers(-1074, 1023, 20000).astype(float)
    a *= np.where(rng.random(20000) < 0.5, -1.0, 1.0)
    a[:6] = [5e-324, -5e-324, 2.0**-1022, 1.0, -3.0, 1.7976931348623157e308]
    with np.errstate(all="ignore"):
        m, k = ArrayOps.norm_m(a), ArrayOps.norm_k(a, 0.0)
        assert np.all((np.abs(m) >= 1) & (np.abs(m) < 2))
        assert np.array_equal(np.ldexp(m, k.astype(np.int64)), a)
        j = rng.integers(-2200, 2200, 20000).astype(float)
        assert np.array_equal(ArrayOps.ldexp(m, j), np.ldexp(m, j.astype(np.int64)))
    assert ArrayOps.norm_k(np.array([0.0]), 5.0)[0] == arith.ZK


@pytest.fixture
def no_extended(monkeypatch):
    """The platform as one without x87 extended precision."""
    def work_for(fmt):
        if fmt.p == 53:
            raise RuntimeError("no x87 extended precision here")
        return arith.BINARY64
    monkeypatch.setattr(verdict_module, "work_for", work_for)
    monkeypatch.setattr(crosscheck_module, "work_for", work_for)


def test_verdict_equals_the_extended_and_scalar_verdicts(no_extended):
    cases, cols = _cases(30, 5)
    rng = np.random.default_rng(6)
    with np.errstate(all="ignore"):
        outputs = outputs_around_bounds(FLOAT64, cols, rng)
    scaled = check_batch(FLOAT64, cols, outputs)
    verdict_module.work_for = arith.work_for  # (the fixture restores it afterwards)
    extended = check_batch(FLOAT64, cols, outputs, engine="numpy")
    for q in REQUIRED:
        assert np.array_equal(scaled.status[q], extended.status[q]), q
    seen = {s for q in REQUIRED for s in np.unique(scaled.status[q]).tolist()}
    assert {OK, BEYOND} <= seen  # outputs on both sides of the bound
    from reference.judge import judge
    for i, case in enumerate(cases[::7]):
        i *= 7
        bounds = case_bounds(FLOAT64, case)
        exact = exact_step(*case).as_fractions()
        for q in REQUIRED:
            j = judge(FLOAT64, q, float(outputs[q][i]), exact[q], bounds[q])
            assert j.violation == bool(scaled.violation[q][i]), (case, q)


def test_a_float64_sweep_runs_without_extended_precision(no_extended):
    from neuronspec.implementations import load
    from neuronspec.runs.sweep import run_chunk

    for every in (1, 64):  # the scaled chain on every case, or on those it decides
        result = run_chunk(load("numpy"), "float64", seed=1, index=0, n=900,
                           ratios_every=every)
        assert result.violations == 0 and result.unexplained == 0
        assert (result.path == "numpy") == (every == 1)
        assert sum(t.checked for t in result.quantities.values()) > 5000


def test_an_unexplained_overflow_is_judged_without_extended_precision(no_extended):
    """The sweep's late bounded verdict (a non-finite value where an admitted evaluation may
    overflow, but not one it gives) reads "may overflow" from the scaled arithmetic."""
    from reference.batch.verdict import may_overflow

    huge = {"w": np.array([1.5e308, 1.0]), "b": np.array([1.5e308, 1.0]),
            "x": np.array([1.5, 1.0]), "t": np.array([0.0, 0.0]), "lr": np.array([0.5, 0.5])}
    assert may_overflow(FLOAT64, huge, "y").tolist() == [True, False]
    verdict_module.work_for = arith.work_for
    assert may_overflow(FLOAT64, huge, "y").tolist() == [True, False]


def test_the_crosscheck_runs_without_extended_precision(no_extended):
    counts = crosscheck_module.crosscheck_chunk("float64", 20261130, 0, 300)
    assert counts["disagreements"] == 0 and counts["checked"] > 1000
    assert counts["violations"] > 100  # outputs on both sides of the bound
