"""float64's batch reference in binary64 alone: double-double pairs and bound terms with their
own exponent (exponent scaling), so that no platform needs x87 long double.

A float64 step spans 2**-3300 .. 2**4100 (products of three values, their rounding terms), far
beyond binary64's range.  Here every number is kept as a binary64 *mantissa* and an integral
*exponent* (also a binary64, exact up to 2**53; zero has the exponent ``arith.ZK``):

- :class:`X`, a bound term or magnitude ``m * 2**k`` (m within a few powers of two of 1, left
  unnormalised): products multiply mantissas (one rounding,
  relative 2**-53), sums align to the larger exponent (one rounding, and what falls below
  binary64's subnormals, <= 2**-1074 of the larger); the bound chain's slack covers both,
  exactly as in ``bounds.Binary64Arithmetic``;
- :class:`ScaledPair`, an exact node value ``(hi + lo) * 2**k`` up to ``delta * 2**k`` (hi in
  [1, 2), or 0 with delta in [1, 2) or 0): the
  error-free transformations of ``arith`` run on mantissas near 1, where nothing overflows or
  underflows; only aligning two operands of very different size may drop bits below 2**-1074
  (relative to the larger), and those are added to ``delta``.

:class:`ScaledArithmetic` is ``bounds.bound_chain``'s arithmetic over these numbers, and
:func:`judge_scaled` is ``judgement.judge_values`` over them: the same chain and the same tests,
so the verdict is the scalar one (``tests/test_scaled.py``).  The exact
(Fraction) bound's decisions -- a binade, "below the smallest normal" -- are taken here on the
band in which the exact magnitude lies: the chain runs at its upper end (a bound >= the exact
one) and at its lower end (<= it); a value whose error lies between the two, or a non-finite
value where "may overflow" depends on the end, is left to ``reference.judge`` (status NEAR),
which decides it exactly.

``verdict.check_batch`` uses it for float64 where numpy has no x87 long double.  Every
operation goes through ``ops`` (``ArrayOps``): ``norm_m``/``norm_k`` (mantissa and exponent of
a binary64), ``ldexp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping

from ..bounds import SLACK, Arithmetic, bound_chain
from ..formats import Format
from ..step import INPUTS, NODE_OF, NODES
from .arith import BINARY64, ZK, two_prod, two_sum
from .judgement import BEYOND, NEAR, NOT_FINITE, OK, OUT_OF_DOMAIN, WRONG_ZERO

__all__ = ["X", "ScaledPair", "ScaledArithmetic", "scaled_pairs", "scaled_bounds",
           "judge_scaled", "round64"]



#: A bound on the rounding error of one binary64 operation into the subnormals (twice the
#: largest, 2**-1075, which binary64 cannot hold).
ETA64 = 2.0**-1074
TINY = 2.0**-1022
U = 2.0**-53
SPLITTER = BINARY64.splitter


def _zero(a: "X") -> bool:
    """Whether a is 0 whatever the case (then nothing needs to be computed with it)."""
    return isinstance(a.m, float) and a.m == 0.0


class X:
    """``m * 2**k`` (a zero has k = ZK); operators for ``bounds.bound_chain``."""

    __slots__ = ("A", "m", "k", "alt", "exact")

    def __init__(self, A: "ScaledArithmetic", m, k, alt: "X | None" = None, exact: Any = False):
        self.A, self.m, self.k = A, m, k
        self.alt = alt  # a magnitude's other end: the exact one lies between
        self.exact = exact  # where True, m * 2**k is exactly the magnitude the scalar path has

    def __add__(self, o):
        return self.A.add(self, self.A.x(o))

    __radd__ = __add__

    def __sub__(self, o):
        return self.A.add(self, self.A.neg(self.A.x(o)))

    def __mul__(self, o):
        if isinstance(o, X):
            return self.A.mul(self, o)
        return self.A.scale(self, o)

    __rmul__ = __mul__

    def __truediv__(self, o):
        return self.A.scale(self, 1.0 / o)

    def __abs__(self):
        return self.A.abs(self)


@dataclass
class ScaledPair:
    """An exact value ``(hi + lo) * 2**k`` up to ``delta * 2**k`` (hi in [1, 2) or 0)."""

    hi: Any
    lo: Any
    k: Any
    delta: Any


def _norm_pair(ops, hi, lo, k, delta) -> ScaledPair:
    """The pair rescaled so that hi is in [1, 2) (exact: hi is at most 4, lo is smaller), or,
    where hi is 0, so that delta is (then products and squares of it stay normal)."""
    e = ops.select(hi == 0, ops.norm_k(delta, 0.0), ops.norm_k(hi, 0.0))
    s = -e
    h = ops.ldexp(hi, s)
    l2 = ops.ldexp(lo, s)
    # lo scaled down may fall into the subnormals (a residual far below hi): its loss bound
    lost = ops.select(ops.logical_and(abs(l2) < TINY, lo != 0), ETA64, 0.0)
    return ScaledPair(h, l2, k + e, _up(ops, delta, s) + lost)


def _up(ops, v, shift):
    """v * 2**shift rounded up, for v >= 0 (a bound moved to other units)."""
    s = ops.ldexp(v, shift)
    return s + ops.select(ops.logical_and(s < TINY, v != 0), ETA64, 0.0)


def _align(ops, m, shift):
    """m * 2**shift and a bound on what that dropped (below binary64's subnormals)."""
    v = ops.ldexp(m, shift)
    lost = ops.select(ops.logical_and(abs(v) < TINY, m != 0), ETA64, 0.0)
    return v, lost


def _input(ops, v):
    """(mantissa, exponent) of a binary64 input."""
    return ops.norm_m(v), ops.norm_k(v, 0.0)


def _add_input(ops, p: ScaledPair, v, negate: bool) -> ScaledPair:
    """(hi + lo) * 2**k -+ v for a binary64 v: both aligned to the larger exponent."""
    mv, kv = _input(ops, v)
    if negate:
        mv = -mv
    K = ops.maximum(p.k, kv)
    h, lost_h = _align(ops, p.hi, p.k - K)
    l, lost_l = _align(ops, p.lo, p.k - K)
    b, lost_b = _align(ops, mv, kv - K)
    d = _up(ops, p.delta, p.k - K)
    s, e = two_sum(h, b)
    z, ze = two_sum(e, l)
    hi, lo = two_sum(s, z)
    delta = (d + abs(ze) + lost_h + lost_l + lost_b) * (1 + 8 * U)
    return _norm_pair(ops, hi, lo, K, delta)


def _mul_input(ops, p: ScaledPair, v) -> ScaledPair:
    """(hi + lo) * 2**k * v for a binary64 v."""
    mv, kv = _input(ops, v)
    ph, pe = two_prod(p.hi, mv, SPLITTER)
    q = p.lo * mv
    z, ze = two_sum(pe, q)
    hi, lo = two_sum(ph, z)
    delta = (abs(mv) * p.delta + abs(ze) + 2 * U * abs(q)) * (1 + 8 * U)
    return _norm_pair(ops, hi, lo, p.k + kv, delta)


def scaled_pairs(ops, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Every input (as given) and node (a :class:`ScaledPair`) of the step, exactly up to
    delta: ``chain.exact_pairs`` with exponents."""
    values: dict[str, Any] = dict(inputs)
    for node in NODES:
        args = [values[a] for a in node.args]
        pairs = [a for a in args if isinstance(a, ScaledPair)]
        if node.op == "mul" and not pairs:
            (ma, ka), (mb, kb) = (_input(ops, a) for a in args)
            hi, lo = two_prod(ma, mb, SPLITTER)
            values[node.name] = _norm_pair(ops, hi, lo, ka + kb, 0.0)
        elif node.op == "mul":
            pair, v = (args[0], args[1]) if isinstance(args[0], ScaledPair) else \
                (args[1], args[0])
            values[node.name] = _mul_input(ops, pair, v)
        elif node.op in ("add", "sub"):
            a, b = args
            if isinstance(b, ScaledPair):  # a -+ pair = -(pair -+ a) or pair + a
                neg = node.op == "sub"
                flipped = ScaledPair(-b.hi, -b.lo, b.k, b.delta) if neg else b
                values[node.name] = _add_input(ops, flipped, a, False)
            else:
                values[node.name] = _add_input(ops, a, b, node.op == "sub")
        elif node.op == "square":
            r = args[0]
            p, pe = two_prod(r.hi, r.hi, SPLITTER)
            c = 2 * r.hi * r.lo
            z, ze = two_sum(pe, c)
            hi, lo = two_sum(p, z)
            r_mag = abs(r.hi) * (1 + 4 * U)
            delta = (abs(ze) + 2 * U * abs(c) + 2 * r.lo * r.lo + 2 * r_mag * r.delta
                     + r.delta * r.delta) * (1 + 8 * U)
            values[node.name] = _norm_pair(ops, hi, lo, 2 * r.k, delta)
        elif node.op == "half":
            s = args[0]
            values[node.name] = ScaledPair(s.hi, s.lo, s.k - 1, s.delta)
        elif node.op == "grad":
            values[node.name] = args[0]
        else:
            raise AssertionError(f"no scaled pair for the operation {node.op!r}")
    return values


def round64(ops, p: ScaledPair):
    """The pair rounded to nearest-even binary64 (gradual underflow, overflow to inf)."""
    c = ops.ldexp(p.hi, p.k)  # hi * 2**k rounded once; then a tie of it broken by lo
    back = ops.ldexp(c, -p.k)
    d = p.hi - back  # exact: back is hi with its last bits rounded off
    quantum = ops.ldexp(2.0**-1074, -p.k)
    tie = ops.logical_and(ops.logical_and(abs(d) * 2 == quantum, p.lo != 0),
                          (p.lo > 0) == (d > 0))
    c = ops.select(tie, c + ops.copysign(2.0**-1074, d), c)
    return ops.copysign(c, p.hi)


class XOps:
    """``ops`` for the bound chain over :class:`X`: selections and extrema of X values."""

    def __init__(self, A: "ScaledArithmetic", base: Any) -> None:
        self.A, self.base = A, base
        self.false = base.false
        for name in ("isfinite", "logical_not", "logical_and", "either", "flag", "is_true",
                     "copysign"):
            setattr(self, name, getattr(base, name))

    def select(self, cond, a, b):
        if not (isinstance(a, X) or isinstance(b, X)):
            return self.base.select(cond, a, b)
        if cond is True or cond is False:
            return a if cond else b
        a, b = self.A.x(a), self.A.x(b)
        if a is b:
            return a
        return X(self.A, self.base.select(cond, a.m, b.m), self.base.select(cond, a.k, b.k))

    pick = select

    def maximum(self, a, b):
        a, b = self.A.x(a), self.A.x(b)
        if _zero(a) or _zero(b):
            return b if _zero(a) else a
        return self.select(self.A.ge(a, b), a, b)

    def minimum(self, a, b):
        a, b = self.A.x(a), self.A.x(b)
        if _zero(a) or _zero(b):
            return self.A.zero
        return self.select(self.A.ge(a, b), b, a)


class ScaledArithmetic(Arithmetic):
    """``bounds.bound_chain`` over :class:`X` (float64 in binary64 with exponents).

    Its decisions (a binade, "below the smallest normal") are taken on an end of the band in
    which the exact magnitude lies: the upper end for an upper bound on the exact (Fraction)
    bound, or (``lower``) the lower end, every term rounded down, for a lower bound on it.
    Between the two lies the scalar path's bound; values between them are its to judge.
    ``surely_of`` says per node where "may overflow" holds at the lower ends too."""

    def __init__(self, fmt: Format, ops: Any, lower: bool = False) -> None:
        self.fmt, self.base, self.lower = fmt, ops, lower
        self.ops = XOps(self, ops)
        self.zero = X(self, 0.0, ZK, exact=True)
        self.grow, self.shrink = 1 + SLACK, 1 - SLACK
        self.surely: Any = False  # "may overflow" decided at the lower ends, this node
        self.surely_of: dict[str, Any] = {}

    # ---- X values
    def norm(self, m, k) -> X:
        o = self.base
        return X(self, o.norm_m(m), o.norm_k(m, k))

    def lazy(self, m, k) -> X:
        """m * 2**k as it is (m of moderate size), a zero given the exponent ZK."""
        return X(self, m, self.base.select(m == 0, ZK, k))

    def log2(self, a: X):
        """floor(log2 a) for a > 0 (ZK-ish for 0)."""
        return self.base.norm_k(a.m, a.k)

    def x(self, v) -> X:
        if isinstance(v, X):
            return v
        if isinstance(v, Fraction):  # a power of two, possibly beyond binary64's range
            n, d = v.numerator, v.denominator
            if n == 1:
                return X(self, 1.0, float(-(d.bit_length() - 1)), exact=True)
            v = float(v)
        if isinstance(v, (int, float)):
            if v == 0:
                return self.zero
            m, e = math.frexp(v)
            return X(self, 2 * m, float(e - 1), exact=True)
        return self.norm(v, 0.0)

    constant = x

    def neg(self, a: X) -> X:
        return X(self, -a.m, a.k)

    def abs(self, a) -> X:
        a = self.x(a)
        return X(self, abs(a.m), a.k)

    # Mantissas are left unnormalised (they stay within a few powers of two of 1: products
    # of a few normalised ones, sums aligned to the larger exponent)
    def scale(self, a: X, c: float) -> X:
        return X(self, a.m * c, a.k)

    def mul(self, a, b) -> X:
        a, b = self.x(a), self.x(b)
        if _zero(a) or _zero(b):
            return self.zero
        return X(self, a.m * b.m, a.k + b.k)

    def add(self, a, b) -> X:
        a, b = self.x(a), self.x(b)
        if _zero(a) or _zero(b):
            return b if _zero(a) else a
        o = self.base
        K = o.maximum(a.k, b.k)
        return self.lazy(o.ldexp(a.m, a.k - K) + o.ldexp(b.m, b.k - K), K)

    def ge(self, a: X, b: X):
        """a >= b for a, b >= 0."""
        if _zero(b):
            return True
        if _zero(a):
            return b.m == 0
        o = self.base
        K = o.maximum(a.k, b.k)
        return o.ldexp(a.m, a.k - K) >= o.ldexp(b.m, b.k - K)

    def lt(self, a: X, b: X):
        return self.base.logical_not(self.ge(a, b))

    # ---- the chain's interface
    def begin(self, name: str) -> None:
        self.surely = False

    def end(self, name: str, operands) -> None:
        surely = self.surely  # (a node's flag includes its operands')
        for o in operands:
            surely = self.base.either(surely, self.surely_of[o])
        self.surely_of[name] = surely

    def value(self, v, bound: bool = False):
        if isinstance(v, ScaledPair):
            return self.lazy(v.hi, v.k)
        return self.x(v)

    def magnitudes(self, v, prop, kind):
        """(upper, lower) magnitude of the exact result, each with its other end (``alt``):
        the node's pair gives |hi + lo| only up to |lo| + delta; where lo and delta are 0 and
        the propagated error is 0, the magnitude is exact."""
        prop = self.x(prop)
        o = self.base
        big = self.lazy(abs(v.hi), v.k)
        slop = self.lazy(abs(v.lo) + v.delta, v.k)
        exact = o.logical_and(o.logical_and(v.lo == 0, v.delta == 0), prop.m == 0)
        high, low = big + slop, self._less(big, slop)
        upper = high + prop
        upper.alt, upper.exact = low + prop, exact
        lower = self._less(low, prop)
        lower.alt, lower.exact = self._less(high, prop), exact
        return upper, lower

    def _less(self, a: X, b: X) -> X:
        """max(a - b, 0) for a, b >= 0."""
        if _zero(b):
            return a
        return self.ops.select(self.ge(b, a), self.zero, a - b)

    def _ends(self, m: X) -> tuple[X, X]:
        """(an upper end, a lower end) of the exact magnitude m stands for."""
        hi = self.scale(m, self.grow)
        lo = self.scale(m.alt if m.alt is not None else m, self.shrink)
        if m.exact is not False:
            hi = self.ops.select(m.exact, m, hi)
            lo = self.ops.select(m.exact, m, lo)
        return hi, lo

    def half_ulp(self, fmt: Format, m):
        m = self.x(m)
        hi, lo = self._ends(m)
        o = self.base
        e = o.maximum(self.log2(lo if self.lower else hi), float(fmt.emin))
        return X(self, o.select(m.m == 0, 0.0, 1.0), o.select(m.m == 0, ZK, e - fmt.p))

    def below(self, m, limit):
        hi, lo = self._ends(self.x(m))
        return self.lt(lo if self.lower else hi, self.x(limit))

    def at_least(self, m, limit):
        hi, lo = self._ends(self.x(m))
        return self.ge(hi if self.lower else lo, self.x(limit))

    def overflows(self, m, limit):
        hi, lo = self._ends(self.x(m))
        L = self.x(limit)
        self.surely = self.base.either(self.surely, self.lt(L, lo))
        return self.lt(L, hi)

    def round(self, fmt: Format, v):
        assert fmt.p == 53 and isinstance(v, ScaledPair)
        return round64(self.base, v)

    def distance(self, c, v):
        """|c - (hi + lo) * 2**k| for a binary64 c within an ulp or so of the pair."""
        c2 = self.base.ldexp(c, -v.k)
        d = (c2 - v.hi) - v.lo
        return self.lazy(abs(d), v.k)

    def widen(self, m, e):
        raise AssertionError("the wide option is not covered in float64's batch path")

    def plain(self, m):
        raise AssertionError("flush-to-zero is not covered by the batch path")

    def finish(self, error, name: str):
        return self.scale(self.x(error), self.shrink if self.lower else self.grow)


def scaled_bounds(ops, fmt: Format, model, values: Mapping[str, Any]) -> dict[str, tuple]:
    """Per quantity (bound, may overflow, low, high, overflow undecided): ``bound`` = ``high``
    >= the exact bound >= ``low``, from the chain run at both ends of every decision."""
    out = {}
    A, B = ScaledArithmetic(fmt, ops), ScaledArithmetic(fmt, ops, lower=True)
    upper = bound_chain(A, fmt, model, values, {k: A.zero for k in INPUTS})
    lower = bound_chain(B, fmt, model, values, {k: B.zero for k in INPUTS})
    for q, name in NODE_OF.items():
        high = A.finish(upper.errors[name], name)
        low = B.finish(lower.errors[name], name)
        undecided = ops.logical_and(upper.flags[name], ops.logical_not(A.surely_of[name]))
        out[q] = (high, upper.flags[name], low, high, undecided)
    return out


def _units(ops, a: X, K, up: bool):
    """a * 2**-K as one binary64, rounded up (``up``) or down, for a >= 0."""
    v = ops.ldexp(a.m, a.k - K)
    if up:
        return v * (1 + 4 * U) + 2.0**-1074
    return ops.maximum(v * (1 - 4 * U) - 2.0**-1074, 0.0)


def _error(ops, c, pair: ScaledPair):
    """(|c - exact| in units of 2**K, the reference's own error there, K) for binary64 c."""
    mc, kc = _input(ops, c)
    K = ops.maximum(kc, pair.k)
    c2, lost_c = _align(ops, mc, kc - K)
    h, lost_h = _align(ops, pair.hi, pair.k - K)
    l, lost_l = _align(ops, pair.lo, pair.k - K)
    d1, d1e = two_sum(c2, -h)
    z, ze = two_sum(d1e, -l)
    d, de = two_sum(d1, z)
    delta = _up(ops, pair.delta, pair.k - K)
    reference = (abs(ze) + abs(de) + delta + lost_c + lost_h + lost_l) * (1 + 4 * U)
    return abs(d), reference, K


def judge_scaled(ops, fmt: Format, c, pair: ScaledPair, bound: X, ood, low: X, high: X,
                 undecided, nonnegative: bool = False):
    """``judgement.judge_values`` for float64 over scaled pairs and bounds: (status,
    error/bound).  Every binary64 is a float64 value, so none is outside the format."""
    finite = ops.isfinite(c)
    cf = ops.select(finite, c, 0.0)
    err, reference, K = _error(ops, cf, pair)
    beyond = (err - _units(ops, high, K, True)) - reference > 0
    near = ops.logical_not((err - _units(ops, low, K, False)) + reference <= 0)
    sel = ops.select
    ok = OK
    if nonnegative:
        ok = sel(ops.logical_and(c == 0, ops.copysign(1.0, c) < 0), WRONG_ZERO, OK)
    # where "may overflow" is undecided here, a non-finite value is the scalar path's to judge
    not_finite = sel(undecided, NEAR, sel(ood, OUT_OF_DOMAIN, NOT_FINITE))
    status = sel(ops.logical_not(finite), not_finite, sel(beyond, BEYOND, sel(near, NEAR, ok)))
    positive = bound.m > 0
    ratio = sel(positive, ops.ldexp(err / sel(positive, bound.m, 1.0), K - bound.k),
                sel(err == 0, 0.0, math.inf))
    ratio = sel(ops.logical_and(ood, ops.logical_not(finite)), math.nan,
                sel(finite, ratio, math.inf))
    return status, ratio
