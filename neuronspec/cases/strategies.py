"""Hypothesis strategies for the step's inputs, per format: values over the whole exponent
range and composite cases for the hard regimes.  Usable by third parties::

    from hypothesis import given
    from neuronspec.cases.strategies import cases

    @given(cases("float32"))
    def test_mine(labelled):
        regime, (w, b, x, t, lr) = labelled
        ...

Every value drawn is a value of the format, carried as a Python float.  The regimes are those of
``regimes`` (one definition for every sampler), drawn here by :class:`HypothesisSampler`.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Optional

from hypothesis import strategies as st

from reference.formats import Format, get_format
from reference.step import Case

from .regimes import REGIMES, Regime

__all__ = ["values", "cases", "HypothesisSampler", "REGIME_NAMES", "Labelled"]

Labelled = tuple  # (regime name, Case)
REGIME_NAMES = tuple(REGIMES)


def _build(fmt: Format, negative: bool, exponent: int, fraction: int) -> float:
    frac_bits = fmt.p - 1
    if exponent < fmt.emin:  # subnormal (or zero)
        value = fraction * 2.0 ** (fmt.emin - frac_bits)
    else:
        value = ((1 << frac_bits) + fraction) * 2.0 ** (exponent - frac_bits)
    return -value if negative else value


def values(fmt: "Format | str", *, min_exponent: Optional[int] = None,
           max_exponent: Optional[int] = None, specials: bool = True,
           few_bits: bool = True) -> st.SearchStrategy[float]:
    """Finite values of ``fmt`` with binade exponents in [min_exponent, max_exponent]
    (default: the whole range; an exponent below emin means subnormal), both signs.

    Mixed in: signed zeros, the smallest subnormal and normal, the largest finite value and
    powers of two (``specials``), and values with few significant bits (``few_bits``), whose
    products and sums are often exact, so that the bounds are at their tightest.
    """
    return _values(get_format(fmt), min_exponent, max_exponent, specials, few_bits)


@functools.lru_cache(maxsize=None)
def _values(fmt: Format, min_exponent: Optional[int] = None,
            max_exponent: Optional[int] = None, specials: bool = True,
            few_bits: bool = True) -> st.SearchStrategy[float]:
    lo = fmt.emin - 1 if min_exponent is None else max(min_exponent, fmt.emin - 1)
    hi = fmt.emax if max_exponent is None else min(max_exponent, fmt.emax)
    if lo > hi:
        raise ValueError(f"empty exponent range [{min_exponent}, {max_exponent}] in {fmt.name}")
    # integers() shrinks toward 0: exponent 0 (magnitude 1) and short mantissas
    pivot = min(max(0, lo), hi)
    exponent = st.integers(lo - pivot, hi - pivot).map(lambda e: e + pivot)
    full = st.builds(lambda s, e, f: _build(fmt, s, e, f), st.booleans(), exponent,
                     st.integers(0, (1 << (fmt.p - 1)) - 1))
    parts = [full]
    if few_bits:
        short = st.integers(0, min(7, fmt.p - 1))
        parts.append(st.builds(
            lambda s, e, k, bits: _build(fmt, s, e, (bits << (fmt.p - 1 - k)) & ((1 << (fmt.p - 1)) - 1)),
            st.booleans(), exponent, short, st.integers(0, 127)))
    if specials:
        cand = [0.0, -0.0, fmt.smallest_subnormal, fmt.smallest_normal, fmt.largest_finite, 1.0,
                2.0, 0.5]
        cand += [-c for c in cand[2:]]
        ok = [c for c in cand if c == 0.0 or lo <= _exponent(fmt, c) <= hi]
        if ok:
            parts.append(st.sampled_from(ok))
    return st.one_of(*parts)


def _exponent(fmt: Format, value: float) -> int:
    e = fmt.exponent(abs(value))
    return fmt.emin - 1 if abs(value) < fmt.smallest_normal else e


class HypothesisSampler:
    """A regime's sampler (``regimes``) drawing one case from hypothesis: every value a draw,
    so that hypothesis can shrink and target each of them."""

    n = 1

    def __init__(self, fmt: Format, draw) -> None:
        self.fmt, self.draw = fmt, draw

    def values(self, lo: Optional[int] = None, hi: Optional[int] = None, *,
               special: float = 0.02, size: Optional[int] = None) -> float:
        return self.draw(values(self.fmt, min_exponent=lo, max_exponent=hi,
                                specials=special > 0))

    def values_where(self, where: bool, lo, hi) -> float:
        return self.values(lo, hi) if where else 0.0

    def rate(self, draw, scale: float = 1.0) -> float:
        return draw(1, scale)

    def repeat(self, draw) -> float:
        return draw(1)  # one case per example: nothing to repeat within it

    def integers(self, lo: int, hi: int, k: int) -> int:
        return self.draw(st.integers(lo, hi - 1))

    def uniform(self, lo: float, hi: float, k: int) -> float:
        return self.draw(st.floats(lo, hi))

    def choice(self, options: list, k: int):
        return self.draw(st.sampled_from(options))

    def coin(self, p: float) -> bool:
        return self.draw(st.booleans())

    @staticmethod
    def put(value, where: bool, new):
        return new if where else value

    def round(self, value: float) -> float:
        return self.fmt.round(value)

    def nudge(self, value: float, ulps: int = 4) -> float:
        """The value moved by up to ``ulps`` ulps (hypothesis shrinks toward no move)."""
        steps = self.draw(st.integers(-ulps, ulps))
        for _ in range(abs(steps)):
            nxt = self.fmt.next_up(value) if steps > 0 else self.fmt.next_down(value)
            if nxt != nxt or abs(nxt) == float("inf"):
                break
            value = nxt
        return value

    def nudge_where(self, where: bool, value: float, other: float, ulps: int) -> float:
        return self.nudge(value, ulps) if where else other


@st.composite
def _regime_case(draw, fmt: Format, regime: Regime) -> Case:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a product may overflow binary64
        case = tuple(float(v) for v in regime.draw(HypothesisSampler(fmt, draw)))
    # a regime may overflow (huge): keep the case finite, as the numpy samplers do
    w, b, x, t, lr = case
    return Case(w, b, x, t if math.isfinite(t) else b, lr)


def cases(fmt: "Format | str", regimes: "tuple[str, ...] | None" = None) -> st.SearchStrategy:
    """``(regime, Case(w, b, x, t, lr))`` drawn from the named regimes (default: all of them).

    Cases may fall outside the bounded domain for some quantities (the bound says so, and the
    property skips that quantity); the regimes are built so that most do not.
    """
    return _cases(get_format(fmt), tuple(regimes) if regimes else None)


@functools.lru_cache(maxsize=None)
def _cases(fmt: Format, regimes: "tuple[str, ...] | None") -> st.SearchStrategy:
    names = regimes or REGIME_NAMES
    unknown = [n for n in names if n not in REGIMES]
    if unknown:
        raise ValueError(f"unknown regime {unknown[0]!r}; choose from {', '.join(REGIMES)}")
    return st.one_of(*(st.tuples(st.just(n), _regime_case(fmt, REGIMES[n])) for n in names))
