"""Arithmetic for the batch path: work types, error-free transformations, double-double pairs and
rounding to a format, written with operators and a small set of selections (``ops``) so that the
same code runs on numpy arrays (:class:`ArrayOps`) and is traced into the compiled kernel
(``kernel.SymOps``).

An exact value is carried as a :class:`Pair`: an unevaluated sum ``hi + lo`` of two numbers of a
*work* type and a rigorous bound ``delta`` on what the pair leaves out.  The work type is
binary64 for float16, bfloat16 and float32 (their values, products of three of them and all
partial products lie in binary64's normal range, 2**-596 .. 2**386) and x87 extended precision
(``np.longdouble``, 64 bits, exponents to +-16382) for float64, whose products of three values
span 2**-3222 .. 2**3072.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..bounds import SLACK
from ..formats import Format

__all__ = ["ZK", "Work", "BINARY64", "EXTENDED", "work_for", "Pair", "ArrayOps", "two_sum",
           "two_prod", "pair_add", "pair_mul", "pair_square", "round_to", "round_array"]


#: The exponent ``ArrayOps.norm_k`` gives zero: below any a nonzero number can have.
ZK = -float(2**40)
#: How far ``ldexp`` shifts at most (beyond: 0 or inf for any binary64 mantissa).
_SHIFT = 2100.0
_TINY = 2.0**-1022


def _pow2(j):
    """2**j for integral j in [-1022, 1023], from its bits."""
    e = (np.asarray(j, dtype=np.float64) + 1023.0).astype(np.int64)
    return (e << 52).view(np.float64)


@dataclass(frozen=True)
class Work:
    """The arithmetic the batch reference runs in for a format."""

    name: str
    dtype: type
    precision: int  # significand bits
    slack: float  # relative slack of the bound arithmetic (covers its own roundings)
    exact_products: bool  # a product of two format values is exact in it (no TwoProduct needed)

    @property
    def u(self):
        """The unit roundoff, in the work type (1 + 8u must not round to 1)."""
        return self.dtype(2.0) ** -self.precision

    @property
    def splitter(self):
        """Veltkamp: a = hi + lo with hi, lo of <= ceil(P/2) bits each."""
        return self.dtype(2.0) ** ((self.precision + 1) // 2) + 1


# binary64 uses the scalar path's slack (``bounds.SLACK``), so the two bounds agree to ~1e-15;
# extended precision's 2**-56 covers > 30 roundings of 2**-64 (the chain has fewer).
BINARY64 = Work("binary64", np.float64, 53, SLACK, True)
EXTENDED = Work("extended", np.longdouble, 64, 2.0**-56, False)


def work_for(fmt: Format) -> Work:
    """binary64 where a product of three format values and the bound terms stay normal there,
    else x87 extended precision (float64); a RuntimeError where the platform lacks it (the
    verdict then runs float64 in ``scaled``'s arithmetic)."""
    if fmt.emax <= 127 and fmt.emin >= -126 and 3 * fmt.p <= 2 * 53:
        return BINARY64
    info = np.finfo(np.longdouble)
    if info.nmant < 63 or info.maxexp < 16384:
        raise RuntimeError(
            f"the batch reference for {fmt.name} needs x87 extended precision (np.longdouble "
            f"with 64 significand bits); this platform's has {info.nmant + 1}: use the scalar "
            "path (neuronspec check, or neuronspec sweep --scalar) instead")
    return EXTENDED


@dataclass
class Pair:
    """An exact value up to ``delta``: |hi + lo - exact| <= delta."""

    hi: Any
    lo: Any
    delta: Any


class ArrayOps:
    """Selections, maxima and flags on numpy arrays (a flag is a boolean mask)."""

    false = False
    select = staticmethod(np.where)
    pick = staticmethod(np.where)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    isfinite = staticmethod(np.isfinite)
    logical_not = staticmethod(np.logical_not)
    logical_and = staticmethod(np.logical_and)
    copysign = staticmethod(np.copysign)

    @staticmethod
    def is_true(c) -> bool:
        return bool(np.all(c))

    @staticmethod
    def flag(cond, message):
        return cond

    @staticmethod
    def either(a, b):
        return a | b

    # norm_m, norm_k and ldexp: exact scaling by powers of two for ``scaled`` (float64 without
    # x87 long double)
    @staticmethod
    def norm_m(a):
        """The mantissa of a in [1, 2), signed (0 for 0; a finite)."""
        a = np.asarray(a, dtype=np.float64)
        s = np.where(np.abs(a) < _TINY, a * 2.0**64, a)
        bits = (s.view(np.uint64) & np.uint64(0x800FFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000)
        return np.where(a == 0, a, bits.view(np.float64))

    @staticmethod
    def norm_k(a, k):
        """k + floor(log2 |a|) (ZK for a = 0; a finite)."""
        a = np.asarray(a, dtype=np.float64)
        sub = np.abs(a) < _TINY
        s = np.where(sub, a * 2.0**64, a)
        e = ((s.view(np.uint64) >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.float64)
        return np.where(a == 0, ZK, k + (e - np.where(sub, 1087.0, 1023.0)))

    @staticmethod
    def ldexp(m, j):
        """m * 2**j for integral j: two products by powers of two, so one rounding where m
        is at least 1 in magnitude (0 or inf beyond +-2100)."""
        j = np.clip(j, -_SHIFT, _SHIFT)
        j1 = np.clip(j, -1022.0, 1023.0)
        j2 = np.clip(j - j1, -1022.0, 1023.0)
        return (m * _pow2(j1)) * _pow2(j2)

    @staticmethod
    def pow2floor(a):
        """The largest power of two <= a (a >= 0; 0 for 0; inf stays inf), elementwise."""
        a = np.asarray(a)
        if a.dtype == np.float64:
            bits = np.ascontiguousarray(a).view(np.uint64)
            return (bits & np.uint64(0x7FF0000000000000)).view(np.float64)
        _, e = np.frexp(a)
        return np.where(a > 0, np.ldexp(a.dtype.type(0.5), e), a.dtype.type(0))


# ---- error-free transformations (exact unless they overflow, which the ranges above exclude)

def two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def two_prod(a, b, splitter):
    """(p, e) with p = fl(a*b) and p + e = a*b exactly (Veltkamp/Dekker)."""
    p = a * b
    c = splitter * a
    ah = c - (c - a)
    al = a - ah
    c = splitter * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def pair_add(h, l, v):
    """(h + l) + v as a pair and the exact magnitude of what the pair leaves out."""
    s, e = two_sum(h, v)
    z, ze = two_sum(e, l)
    hi, lo = two_sum(s, z)
    return hi, lo, abs(ze)


def pair_mul(h, l, v, work: Work):
    """(h + l) * v as a pair and a bound on what the pair leaves out."""
    p, pe = two_prod(h, v, work.splitter)
    q = l * v  # off by at most u|q|
    z, ze = two_sum(pe, q)
    hi, lo = two_sum(p, z)
    return hi, lo, abs(ze) + work.u * 2 * abs(q)


def pair_square(h, l, work: Work):
    """(h + l)**2 as a pair and a bound on what the pair leaves out."""
    p, pe = two_prod(h, h, work.splitter)
    c = 2 * h * l  # off by at most u|c|; l*l is left out
    z, ze = two_sum(pe, c)
    hi, lo = two_sum(p, z)
    return hi, lo, abs(ze) + work.u * 2 * abs(c) + 2 * l * l


def _static_zero(v) -> bool:
    return isinstance(v, float) and v == 0.0


def round_to(fmt: Format, hi, lo, work: Work, ops: Any):
    """``hi + lo`` rounded to nearest-even in ``fmt`` (gradual underflow, overflow to inf),
    elementwise, as work-type values.  ``lo`` (None or 0.0: none) must be within half a work
    ulp of 0 relative to ``hi``: it only breaks ties of ``hi``."""
    if fmt.p >= work.precision:
        # the work type is the format (float32's wide format binary64 in binary64 pairs,
        # float64's x87 in extended ones): its own rounding of hi + lo is the format's.  (The
        # grid trick below needs a spare bit: here it kept p - 1 bits.)
        c = hi if lo is None or _static_zero(lo) else hi + lo
        return _signed_and_finite(fmt, hi, c, ops)
    quantum = ops.maximum(ops.pow2floor(abs(hi)), fmt.smallest_normal) * 2.0 ** (1 - fmt.p)
    # hi + big lies in a binade whose spacing is the quantum: the work type's own rounding to
    # nearest-even is the format's, and ``big`` is an even multiple of the quantum
    big = quantum * (1.5 * 2.0 ** (work.precision - 1))
    c = (hi + big) - big
    if lo is not None and not _static_zero(lo):  # a tie of hi broken by lo: away from hi's nearest
        d = hi - c
        tie = ops.logical_and(ops.logical_and(abs(d) * 2 == quantum, lo != 0),
                              (lo > 0) == (d > 0))
        c = ops.select(tie, c + 2 * d, c)
    return _signed_and_finite(fmt, hi, c, ops)


def _signed_and_finite(fmt: Format, hi, c, ops: Any):
    """``c``, the rounding of ``hi (+ lo)``, with the sign of ``hi`` (a zero keeps its sign, an
    underflow too: rounding never flips it), infinite beyond the format's range, and ``hi``
    itself where that is not finite."""
    c = ops.copysign(c, hi)
    huge = ops.logical_not(abs(c) <= fmt.largest_finite)  # (also where ``big`` overflowed: nan)
    c = ops.select(huge, ops.copysign(math.inf, hi), c)
    return ops.select(ops.isfinite(hi), c, hi)


def round_array(fmt: Format, values, lo=None, work: "Work | None" = None) -> np.ndarray:
    """Values (binary64 or work-type arrays) rounded to ``fmt``, elementwise, in the work type."""
    work = work or work_for(fmt)
    hi = np.asarray(values, dtype=work.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        return round_to(fmt, hi, None if lo is None else np.asarray(lo, dtype=work.dtype), work,
                        ArrayOps)
