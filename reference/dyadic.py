"""Exact dyadic rationals in integer arithmetic: the fast path to what ``reference.exact`` defines.

A binary value is ``m * 2**e`` with integers m and e (a *dyadic* rational), and so is every node
of the step on binary inputs, and every term of its error bounds: a product multiplies the
mantissas and adds the exponents, a sum aligns the exponents by a shift, a halving lowers the
exponent.  Nothing rounds and nothing normalises (no gcd, unlike ``fractions.Fraction``): this is
the work mpmath's ``exact=True`` operations do, without their object overhead.

``reference.exact`` (mpmath) stays the definition of the step's exact values;
``tests/test_dyadic.py`` proves :func:`dyadic_nodes` equal to it on every regime of every
format, special values included, and the bounds computed on :class:`Dyadic` terms equal to the
same chain in ``fractions.Fraction``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from mpmath.libmp import from_man_exp, round_nearest, to_float

from .exact import Binary, to_mpf
from .step import INPUTS, NODE_OF, NODES, QUANTITIES

__all__ = ["Dyadic", "dyadic", "dyadic_nodes", "as_float", "exact_fractions"]


class Dyadic:
    """The exact value ``m * 2**e`` (m is not normalised: it may end in zero bits), with the
    operations the step and its bound chain use, each exact: ``+ - * abs``, division by a power
    of two, comparisons (with ints, floats and dyadic Fractions too) and ``float()`` (rounded to
    nearest, as for a Fraction)."""

    __slots__ = ("m", "e")

    def __init__(self, m: int, e: int = 0) -> None:
        self.m, self.e = m, e

    # --- conversions ----------------------------------------------------------------------
    def as_fraction(self) -> Fraction:
        m, e = self.m, self.e
        return Fraction(m << e) if e >= 0 else Fraction(m, 1 << -e)

    def as_integer_ratio(self) -> tuple[int, int]:
        """(numerator, denominator) in lowest terms, as ``Fraction.as_integer_ratio``."""
        q = self.as_fraction()
        return q.numerator, q.denominator

    def __float__(self) -> float:
        m, e = self.m, self.e
        return m / (1 << -e) if e < 0 else float(m << e)  # both correctly rounded

    def exponent(self) -> int:
        """floor(log2 |self|) (of a nonzero value)."""
        return self.e + abs(self.m).bit_length() - 1

    def __repr__(self) -> str:
        return f"Dyadic({self.m}, {self.e})"

    # --- arithmetic -----------------------------------------------------------------------
    def __add__(self, other: object) -> "Dyadic":
        o = other if type(other) is Dyadic else _coerce(other)
        if o is None:
            return NotImplemented
        if self.e <= o.e:
            return Dyadic(self.m + (o.m << (o.e - self.e)), self.e)
        return Dyadic((self.m << (self.e - o.e)) + o.m, o.e)

    __radd__ = __add__

    def __neg__(self) -> "Dyadic":
        return Dyadic(-self.m, self.e)

    def __sub__(self, other: object) -> "Dyadic":
        o = other if type(other) is Dyadic else _coerce(other)
        return NotImplemented if o is None else self + Dyadic(-o.m, o.e)

    def __rsub__(self, other: object) -> "Dyadic":
        return -self + other

    def __mul__(self, other: object) -> "Dyadic":
        o = other if type(other) is Dyadic else _coerce(other)
        return NotImplemented if o is None else Dyadic(self.m * o.m, self.e + o.e)

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> "Dyadic":
        """Division by a power of two only (the chain halves): anything else is not exact."""
        if type(other) is int and other > 0 and not other & (other - 1):
            return Dyadic(self.m, self.e - (other.bit_length() - 1))
        return NotImplemented

    def __abs__(self) -> "Dyadic":
        return self if self.m >= 0 else Dyadic(-self.m, self.e)

    def __bool__(self) -> bool:
        return self.m != 0

    # --- comparisons ----------------------------------------------------------------------
    def _compare(self, other: object) -> "int | float | None":
        """The sign of self - other: -1, 0 or 1; nan against a NaN; None where other is not
        a number a Dyadic compares with."""
        if type(other) is float and not math.isfinite(other):
            return math.nan if other != other else (-1 if other > 0 else 1)
        o = other if type(other) is Dyadic else _coerce(other)
        if o is None:
            return None
        if self.e <= o.e:
            a, b = self.m, o.m << (o.e - self.e)
        else:
            a, b = self.m << (self.e - o.e), o.m
        return (a > b) - (a < b)

    def __eq__(self, other: object) -> bool:
        c = self._compare(other)
        return NotImplemented if c is None else c == 0

    def __lt__(self, other: object) -> bool:
        c = self._compare(other)
        return NotImplemented if c is None else c < 0

    def __le__(self, other: object) -> bool:
        c = self._compare(other)
        return NotImplemented if c is None else c <= 0

    def __gt__(self, other: object) -> bool:
        c = self._compare(other)
        return NotImplemented if c is None else c > 0

    def __ge__(self, other: object) -> bool:
        c = self._compare(other)
        return NotImplemented if c is None else c >= 0

    def __hash__(self) -> int:  # equal values hash alike, as Fraction's and float's do
        return hash(self.as_fraction())


def _coerce(value: object) -> "Dyadic | None":
    """``value`` as a Dyadic: a Dyadic, an int, a finite float or a dyadic Fraction; else None."""
    if type(value) is Dyadic:
        return value
    if type(value) is int:
        return Dyadic(value)
    if type(value) is float:
        if not math.isfinite(value):
            return None
        n, d = value.as_integer_ratio()
        return Dyadic(n, 1 - d.bit_length())
    if isinstance(value, Fraction) and not value.denominator & (value.denominator - 1):
        return Dyadic(value.numerator, 1 - value.denominator.bit_length())
    return None


def dyadic(value: Binary, what: str = "value") -> Dyadic:
    """The exact value of a finite binary number; refuses what :func:`reference.exact.to_mpf`
    refuses, with its message."""
    d = _coerce(value)  # (a bool is not an int here: to_mpf refuses it)
    if d is not None:
        return d
    sign, man, exp, _ = to_mpf(value, what)._mpf_
    return Dyadic(-man if sign else man, exp)


#: The exact operation of each kind of node (``reference.exact``'s, on Dyadic values).
_EXACT = {
    "mul": lambda a, b: a * b,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "square": lambda r: r * r,
    "half": lambda s: s / 2,
    "grad": lambda r: r,
}

#: The nodes as (name, operation, operand names), read once.
_PROGRAM = tuple((node.name, _EXACT[node.op], node.args) for node in NODES)


def dyadic_nodes(w: Binary, b: Binary, x: Binary, t: Binary, lr: Binary) -> dict[str, Dyadic]:
    """The exact value of every input and node of the step: :func:`reference.exact.exact_nodes`,
    in integer arithmetic."""
    values = {name: dyadic(v, name) for name, v in zip(INPUTS, (w, b, x, t, lr))}
    for name, op, args in _PROGRAM:
        values[name] = op(*[values[a] for a in args])
    return values


def as_float(value: Dyadic) -> float:
    """``float()`` of the value's mpmath counterpart: rounded to nearest, ties to even, where the
    result is a normal binary64 number; elsewhere mpmath's own conversion (it rounds to 53 bits,
    then to a subnormal, and turns an overflow into an infinity, where ``float()`` raises)."""
    m, e = value.m, value.e
    if m == 0:
        return 0.0
    if -1022 <= value.exponent() <= 1022:  # normal, and no rounding carries it past binary64
        return float(value)
    return to_float(from_man_exp(m, e), rnd=round_nearest)


def exact_fractions(w: Binary, b: Binary, x: Binary, t: Binary, lr: Binary) -> dict[str, Fraction]:
    """``exact.exact_step(...).as_fractions()``: every quantity's exact value, as a Fraction."""
    nodes = dyadic_nodes(w, b, x, t, lr)
    return {q: nodes[NODE_OF[q]].as_fraction() for q in QUANTITIES}
