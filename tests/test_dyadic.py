"""The fast exact paths equal the definitions: the step's values in integer arithmetic
(``reference.dyadic``) are mpmath's (``reference.exact``) exactly, on every regime of every
format and on special values; their conversions to floats are mpmath's bit for bit; the bound
chain on Dyadic terms gives the bounds of the Fraction chain exactly, under every model; and the
plan ``rounded.evaluations`` shares operations between variants without changing a bit.

Each comparison can fail: a value off by 2**-3300 is caught (the last test)."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from neuronspec.cases.regimes import REGIMES, regime_cases
from reference.bounds import EXACT_ARITHMETIC, DyadicArithmetic, case_bounds
from reference.dyadic import Dyadic, as_float, dyadic, dyadic_nodes, exact_fractions
from reference.exact import exact_nodes, exact_step, to_mpf
from reference.formats import FLOAT16, FLOAT64, FORMATS, to_fraction
from reference.legal import admitted_for, from_results, legal_values
from reference.model import get_model
from reference.rounded import ALL_VARIANTS, evaluate, evaluate_variants

PER_REGIME = 200  # seeded cases per regime and format for the exact values
BOUND_CASES = 10  # ... and for the bounds under each model (the Fraction chain is the slow one;
#                   the slow marker's run takes 40)
MODELS = ("ieee", "strict", "ieee+ftz", "ieee+wide", "ieee+lr-binary64")


def _specials(fmt) -> list[float]:
    """Signed zeros, the smallest and largest subnormals and normals, the largest finite value,
    and values around 1."""
    tiny = fmt.smallest_normal
    values = [0.0, fmt.smallest_subnormal, fmt.next_down(tiny), tiny, fmt.next_up(tiny), 0.5,
              1.0, fmt.next_up(1.0), fmt.next_down(1.0), fmt.largest_finite,
              fmt.next_down(fmt.largest_finite)]
    return values + [-v for v in values]


def _special_cases(fmt, n: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    values = _specials(fmt)
    return [tuple(values[i] for i in rng.integers(len(values), size=5)) for _ in range(n)]


def _cases(fmt, n: int, seed: int) -> list[tuple]:
    """``n`` seeded cases of every regime, then as many made of special values."""
    rng = np.random.default_rng(seed)
    cases = [tuple(c) for regime in REGIMES for c in regime_cases(fmt, regime, rng, n)]
    return cases + _special_cases(fmt, n, seed)


def _node_mismatches(cases, nodes_of=dyadic_nodes) -> list[str]:
    """Where ``nodes_of`` differs from exact_nodes, as a Fraction or as float() of it."""
    bad = []
    for case in cases:
        want, got = exact_nodes(*case), nodes_of(*case)
        if list(want) != list(got):
            bad.append(f"nodes {list(got)} at {case}")
        for name, v in want.items():
            if to_fraction(v) != got[name].as_fraction():
                bad.append(f"{name} at {case}: {got[name]!r}, mpmath {v}")
            if as_float(got[name]).hex() != float(v).hex():
                bad.append(f"float({name}) at {case}: {as_float(got[name]).hex()}, "
                           f"mpmath {float(v).hex()}")
    return bad


# --- the exact values ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(FORMATS))
def test_dyadic_nodes_equal_mpmath_on_every_regime_and_special_value(name):
    fmt = FORMATS[name]
    cases = _cases(fmt, PER_REGIME, seed=40 + fmt.p)
    assert len(cases) >= PER_REGIME * (len(REGIMES) + 1)
    bad = _node_mismatches(cases)
    assert not bad, f"{name}: {len(bad)} mismatches, first: {bad[0]}"


def test_dyadic_nodes_equal_mpmath_with_a_binary64_lr_and_narrow_parameters():
    cases = _cases(FLOAT16, 40, seed=9)
    lrs = np.random.default_rng(9).standard_normal(len(cases)) * 1e-3
    cases = [c[:4] + (float(lr),) for c, lr in zip(cases, lrs)]
    assert not _node_mismatches(cases)


@pytest.mark.parametrize("name", list(FORMATS))
def test_exact_fractions_are_exact_step_as_fractions(name):
    fmt = FORMATS[name]
    for case in _cases(fmt, 30, seed=60 + fmt.p):
        assert exact_fractions(*case) == exact_step(*case).as_fractions(), case


def test_other_exact_inputs_are_read_and_refused_as_mpmath_reads_them():
    for value in (3, Fraction(-5, 64), mpmath.mpf(0.375), -0.0, 2.0**-1074):
        assert dyadic(value).as_fraction() == to_fraction(to_mpf(value))
    for value in (math.inf, math.nan, Fraction(1, 3), "0.1", True, None):
        with pytest.raises((ValueError, TypeError)) as want:
            to_mpf(value, "w")
        with pytest.raises(want.type) as got:
            dyadic(value, "w")
        assert str(got.value) == str(want.value)


def test_as_float_is_mpmaths_conversion_at_ties_and_outside_binary64s_normal_range():
    values = [Dyadic((1 << 53) + 1, -53), Dyadic((1 << 53) + 3, -53),  # ties, to even
              Dyadic(-((1 << 54) + 2), 10), Dyadic(3, -1076), Dyadic((1 << 60) + 1, -1135),
              Dyadic(1, -1022), Dyadic(1, -1023), Dyadic(1, -1075), Dyadic(1, -1076),
              Dyadic((1 << 53) - 1, 970), Dyadic((1 << 54) - 1, 970), Dyadic(1, 1024),
              Dyadic(-1, 5000), Dyadic(0, 7)]
    for d in values:
        assert as_float(d).hex() == float(to_mpf(d.as_fraction())).hex(), d


# --- Dyadic arithmetic --------------------------------------------------------------------------

def _random_dyadics(rng, n: int) -> list[Dyadic]:
    return [Dyadic(int(m), int(e)) for m, e in zip(rng.integers(-2**40, 2**40, size=n),
                                                   rng.integers(-1200, 1100, size=n))] + \
        [Dyadic(0), Dyadic(0, -40), Dyadic(8, -3), Dyadic(1)]


def test_dyadic_operations_are_fractions_operations():
    rng = np.random.default_rng(3)
    values = _random_dyadics(rng, 60)
    others = [1, 0, -3, 2.5, -0.0, 2.0**-1074, Fraction(3, 8)]
    for a in values:
        qa = a.as_fraction()
        assert (abs(a).as_fraction(), (-a).as_fraction(), (a / 2).as_fraction(),
                (a / 8).as_fraction()) == (abs(qa), -qa, qa / 2, qa / 8)
        assert hash(a) == hash(qa) and bool(a) == bool(qa)
        try:
            want = float(qa)
        except OverflowError:
            with pytest.raises(OverflowError):
                float(a)
        else:
            assert float(a).hex() == want.hex()
        for b in values[:20] + others:
            qb = b.as_fraction() if isinstance(b, Dyadic) else Fraction(b)
            assert (a + b).as_fraction() == qa + qb and (b + a).as_fraction() == qa + qb
            assert (a - b).as_fraction() == qa - qb and (b - a).as_fraction() == qb - qa
            assert (a * b).as_fraction() == qa * qb and (b * a).as_fraction() == qa * qb
            assert [a < b, a <= b, a > b, a >= b, a == b] == \
                [qa < qb, qa <= qb, qa > qb, qa >= qb, qa == qb]
            assert [b < a, b <= a, b > a, b >= a] == [qb < qa, qb <= qa, qb > qa, qb >= qa]
        assert a < math.inf and a > -math.inf and not (a < math.nan or a >= math.nan)


def test_a_dyadic_refuses_what_would_not_be_exact():
    with pytest.raises(TypeError):
        Dyadic(3) / 3
    with pytest.raises(TypeError):
        Dyadic(3) + Fraction(1, 3)
    with pytest.raises(TypeError):
        Dyadic(3) < "3"


# --- the bounds ---------------------------------------------------------------------------------

def _bounds_as_data(fmt, case, model, arithmetic=None, computed=None):
    try:
        out = case_bounds(fmt, case, model, exact_arithmetic=True, arithmetic=arithmetic,
                          computed=computed)
    except ValueError as exc:
        return repr(exc)
    return {q: (type(v).__name__, repr(v)) for q, v in out.items()}


@pytest.mark.parametrize("name, n", [(name, BOUND_CASES) for name in FORMATS]
                         + [pytest.param(name, 40, marks=pytest.mark.slow) for name in FORMATS])
def test_the_dyadic_chain_gives_the_fraction_chains_bounds_under_every_model(name, n):
    """Values, types, overflow reasons and a-posteriori bounds: the same, exactly."""
    fmt = FORMATS[name]
    for case in _cases(fmt, n, seed=80 + fmt.p):
        computed = {"y": case[0], "loss": abs(case[1]), "w_new": case[2]}
        for model in MODELS:
            if model == "ieee+lr-binary64" and fmt is not FLOAT64:  # lr not a value of fmt
                case = case[:4] + (case[4] * (1 + 2**-30),)
            for given in (None, computed):
                got = _bounds_as_data(fmt, case, model, computed=given)
                want = _bounds_as_data(fmt, case, model, EXACT_ARITHMETIC, computed=given)
                assert got == want, (name, model, case, given)


# --- the shared evaluation plan -----------------------------------------------------------------

@pytest.mark.parametrize("name", list(FORMATS))
def test_sharing_operations_between_variants_changes_no_bit(name):
    """Each variant evaluated alone gives, bit for bit, what it gives among all of them (where
    autograd's 2*r overflows too: the huge regime and the largest values), and the legal
    values grouped from the shared results are those of every admitted evaluation, one by one,
    in the same order."""
    fmt = FORMATS[name]
    top = fmt.largest_finite
    doubled_overflows = [(0.0, top, 0.0, 0.0, 1.0), (1.0, -top, 0.0, top / 4, 0.5)]
    for case in _cases(fmt, 3, seed=100 + fmt.p) + doubled_overflows:
        together = evaluate_variants(fmt, *case, ALL_VARIANTS.values())
        for vname, variant in ALL_VARIANTS.items():
            alone = evaluate(fmt, *case, variant)
            assert {q: v.hex() for q, v in alone.items()} == \
                {q: v.hex() for q, v in together[vname].items()}, (name, vname, case)
        for model in map(get_model, MODELS[:4]):
            variants = admitted_for(fmt, model, case)  # (listed by kind of work, as always)
            order = evaluate_variants(fmt, *case, variants)
            one_by_one = {v: evaluate(fmt, *case, ALL_VARIANTS[v]) for v in order}
            assert _tables(legal_values(fmt, case, model)) == \
                _tables(from_results(fmt, model, case, one_by_one)), (name, model.name, case)


def _tables(legal) -> dict:
    """The legal values as comparable data (a NaN is not equal to itself)."""
    return {q: [(key, value.hex(), names) for key, (value, names) in table.items()]
            for q, table in legal.values.items()}


# --- the comparisons can fail -------------------------------------------------------------------

def test_a_value_off_by_a_tiny_amount_is_caught():
    """A node or a bound off by 2**-3300, far below anything the step computes: caught."""
    case = (0.5, -0.1, 2.0, 1.0, 0.1)
    least = Dyadic(1, -3300)

    def nodes_off(*case):
        nodes = dyadic_nodes(*case)
        return dict(nodes, w_new=nodes["w_new"] + least)

    class BoundsOff(DyadicArithmetic):
        @staticmethod
        def finish(error, name: str) -> Fraction:
            return (error + least).as_fraction()

    assert _node_mismatches([case], nodes_off)
    assert _bounds_as_data(FLOAT64, case, "ieee", BoundsOff()) != \
        _bounds_as_data(FLOAT64, case, "ieee", EXACT_ARITHMETIC)
