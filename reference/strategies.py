"""Hypothesis strategies for the step's inputs, per format: values over the whole exponent
range and composite cases for the hard regimes.  Usable by third parties::

    from hypothesis import given
    from reference.strategies import cases

    @given(cases("float32"))
    def test_mine(labelled):
        regime, (w, b, x, t, lr) = labelled
        ...

Every value drawn is a value of the format, carried as a Python float.
"""

from __future__ import annotations

import functools
from typing import Optional

from hypothesis import strategies as st

from .formats import Format, get_format
from .rounded import fl_add, fl_mul

__all__ = ["values", "learning_rates", "cases", "REGIME_NAMES", "Labelled"]

Labelled = tuple  # (regime name, (w, b, x, t, lr))


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


def learning_rates(fmt: "Format | str") -> st.SearchStrategy[float]:
    """Non-negative learning rates of ``fmt``: zero, tiny (subnormal), typical, large."""
    return _learning_rates(get_format(fmt))


@functools.lru_cache(maxsize=None)
def _learning_rates(fmt: Format) -> st.SearchStrategy[float]:
    return st.one_of(
        st.just(0.0),
        values(fmt, min_exponent=-12, max_exponent=1, specials=False).map(abs),
        values(fmt, max_exponent=fmt.emin + 2, specials=False).map(abs),
        values(fmt, min_exponent=-2, max_exponent=min(fmt.emax // 2, 12), specials=False).map(abs),
    )


def _window(fmt: Format) -> tuple[int, int]:
    """An exponent window where products and squares of sums cannot overflow."""
    span = max(2, min(fmt.emax, -fmt.emin) // 4)
    return -span, span


def _nudge(fmt: Format, value: float, steps: int) -> float:
    for _ in range(abs(steps)):
        nxt = fmt.next_up(value) if steps > 0 else fmt.next_down(value)
        if nxt != nxt or abs(nxt) == float("inf"):
            break
        value = nxt
    return value


@st.composite
def _generic(draw, fmt):
    w, b, x, t = (draw(values(fmt)) for _ in range(4))
    return w, b, x, t, draw(learning_rates(fmt))


@st.composite
def _moderate(draw, fmt):
    lo, hi = _window(fmt)
    w, b, x, t = (draw(values(fmt, min_exponent=lo, max_exponent=hi)) for _ in range(4))
    return w, b, x, t, draw(learning_rates(fmt))


@st.composite
def _cancel_y_t(draw, fmt):
    """t within a few ulps of fl(fl(w*x) + b): r is tiny, its error is absolute."""
    lo, hi = _window(fmt)
    w, b, x = (draw(values(fmt, min_exponent=lo, max_exponent=hi)) for _ in range(3))
    y = fl_add(fmt, fl_mul(fmt, w, x), b)
    t = _nudge(fmt, y, draw(st.integers(-4, 4)))
    return w, b, x, t, draw(learning_rates(fmt))


@st.composite
def _cancel_wx_b(draw, fmt):
    """b within a few ulps of -fl(w*x): y is tiny relative to its parts."""
    lo, hi = _window(fmt)
    w, x, t = (draw(values(fmt, min_exponent=lo, max_exponent=hi)) for _ in range(3))
    b = _nudge(fmt, -fl_mul(fmt, w, x), draw(st.integers(-4, 4)))
    return w, b, x, t, draw(learning_rates(fmt))


@st.composite
def _tiny(draw, fmt):
    """Products and sums near and in the subnormal range."""
    half = fmt.emin // 2
    w, x = (draw(values(fmt, min_exponent=half - 3, max_exponent=half + 3)) for _ in range(2))
    b, t = (draw(values(fmt, max_exponent=fmt.emin + 2)) for _ in range(2))
    return w, b, x, t, draw(learning_rates(fmt))


@st.composite
def _huge(draw, fmt):
    """w*x, b and y near the overflow threshold with t close to y, so r stays representable."""
    half = fmt.emax // 2
    w, x = (draw(values(fmt, min_exponent=half - 3, max_exponent=half - 1)) for _ in range(2))
    b = draw(values(fmt, min_exponent=fmt.emax - 3, max_exponent=fmt.emax - 1))
    y = fl_add(fmt, fl_mul(fmt, w, x), b)
    t = _nudge(fmt, y, draw(st.integers(-8, 8)))
    lr = draw(values(fmt, min_exponent=fmt.emin, max_exponent=-fmt.p, specials=False).map(abs))
    return w, b, x, t, lr


@st.composite
def _overshoot(draw, fmt):
    """lr*(x^2 + 1) around 1 and 2: the step lands on, or jumps past, the minimum."""
    lo, hi = _window(fmt)
    lo, hi = max(lo, -4), min(hi, 4)
    w, b, x, t = (draw(values(fmt, min_exponent=lo, max_exponent=hi)) for _ in range(4))
    k = draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5]))
    lr = abs(fmt.round(k / (x * x + 1)))
    return w, b, x, t, _nudge(fmt, lr, draw(st.integers(-2, 2)))


@st.composite
def _lr_extremes(draw, fmt):
    """lr = 0 (nothing may move) or the smallest subnormal (updates round back to w, b)."""
    lo, hi = _window(fmt)
    w, b, x, t = (draw(values(fmt, min_exponent=lo, max_exponent=hi)) for _ in range(4))
    return w, b, x, t, draw(st.sampled_from([0.0, fmt.smallest_subnormal, fmt.smallest_normal]))


_REGIMES = {
    "generic": _generic,
    "moderate": _moderate,
    "cancel-y-t": _cancel_y_t,
    "cancel-wx-b": _cancel_wx_b,
    "tiny": _tiny,
    "huge": _huge,
    "overshoot": _overshoot,
    "lr-extremes": _lr_extremes,
}
REGIME_NAMES = tuple(_REGIMES)


def cases(fmt: "Format | str", regimes: "tuple[str, ...] | None" = None) -> st.SearchStrategy:
    """``(regime, (w, b, x, t, lr))`` drawn from the named regimes (default: all of them).

    Cases may fall outside the bounded domain for some quantities (the bound says so, and the
    property skips that quantity); the regimes are built so that most do not.
    """
    return _cases(get_format(fmt), tuple(regimes) if regimes else None)


@functools.lru_cache(maxsize=None)
def _cases(fmt: Format, regimes: "tuple[str, ...] | None") -> st.SearchStrategy:
    names = regimes or REGIME_NAMES
    unknown = [n for n in names if n not in _REGIMES]
    if unknown:
        raise ValueError(f"unknown regime {unknown[0]!r}; choose from {', '.join(_REGIMES)}")
    return st.one_of(*(st.tuples(st.just(n), _REGIMES[n](fmt)) for n in names))
