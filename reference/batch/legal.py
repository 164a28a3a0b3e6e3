"""The exact level on arrays: which admitted evaluation gives each computed value, bit for bit.

``reference.legal`` computes the legal values of one case exactly (integer arithmetic).  Here
the same evaluations (``rounded.admitted``: the variants of the declared model) run on numpy
arrays, each IEEE operation done exactly where it must be:

- a product of two values of at most 26 bits is exact in binary64, a sum of two of them is
  exact as a TwoSum pair; the pair is then rounded once to the target format (``round_to``,
  whose ties are broken by the pair's low part), or twice for work in a wider format (traced,
  a rounding to binary32 is the processor's conversion or binary32 addition, and a sum of two
  float16 values, exact in binary64, needs no TwoSum);
- with an operand of more than 26 bits (a binary64 lr, a constant rounded to binary64) a
  product is a TwoProduct pair, rounded once; a fused multiply-add, a TwoProduct and TwoSums
  giving the sum as z + rest with the rest far below an ulp of z, rounded once with the rest
  breaking z's ties;
- binary64 operands are rounded by the hardware (numpy's operations are IEEE 754 binary64
  operations, correctly rounded), x87 extended ones by ``np.longdouble`` where that is the
  x87 format;
- a fused multiply-add of binary64 (or x87) operands is the emulation of Boldo and Melquiond
  (a TwoProduct, a TwoSum, a sum rounded to odd, then one rounding to nearest), exact where
  nothing underflows or overflows.

Where exactness cannot be guaranteed (extreme exponents in a binary64 fused operation or
TwoProduct, x87 work on a platform without it), the case is *undecided* and ``reference.legal`` decides it: the
verdict is always the scalar one.  Variants are tried in ``admitted`` order on the cases not yet
explained, so an implementation that follows one evaluation costs one evaluation per case.

The evaluation (:func:`evaluate_step`) is written against :class:`VariantArithmetic`, whose
operations on values of at most 26 bits use only operators and ``ops`` selections: with
``arith.ArrayOps`` they run on arrays here, with ``kernel.SymOps`` they are traced into the
compiled loops of ``explain_kernel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import math

import numpy as np

from ..formats import FLOAT64, Format, get_format
from ..legal import legal_values
from ..model import WIDER, Model, get_model
from ..rounded import Variant, admitted
from ..step import INPUTS, NODE_OF, NODES, product_operand
from .arith import BINARY64, ArrayOps, round_to, two_prod, two_sum
from .kernel import fma_arrays

__all__ = ["Explained", "explain_batch", "evaluate_arrays", "evaluate_step", "VariantArithmetic",
           "zero_signs_batch", "same_bits", "fma_exact", "HAVE_X87"]

#: Formats numpy computes in natively.
NATIVE = {"float16": np.float16, "float32": np.float32, "float64": np.float64}

_info = np.finfo(np.longdouble)
#: Whether ``np.longdouble`` is x87 extended precision here (64 significand bits).
HAVE_X87 = _info.nmant == 63 and _info.maxexp == 16384
LD = np.longdouble

#: Below these magnitudes (or above) a binary64/x87 fused operation may underflow (or overflow)
#: inside its error-free transformations: such cases are left to the scalar path.
_SAFE = {53: (2.0**-900, 2.0**990), 64: (LD(2.0) ** -16000, LD(2.0) ** 16000)}


@dataclass
class Explained:
    """Per returned quantity (rows as given), the index in ``variants`` of the first admitted
    evaluation giving each value bit for bit (-1: none; cases the arrays cannot decide get the
    scalar path's verdict, computed here)."""

    names: tuple[str, ...]
    variants: list[Variant]
    which: np.ndarray  # (len(names), n) int16
    #: the cases where some value is not the first evaluation's, ascending (None: not listed)
    others: "np.ndarray | None" = None


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise equality of float64 values: the sign of a zero counts; every NaN equals every
    NaN."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    eq = a.view(np.uint64) == b.view(np.uint64)
    differ = ~eq
    if differ.any():  # NaNs with other payloads (rare)
        eq[differ] = np.isnan(a[differ]) & np.isnan(b[differ])
    return eq


def _rnd(fmt: Format, hi, lo=None, ops=ArrayOps):
    """hi (+ lo, an exact TwoSum or TwoProduct pair: hi is its binary64 rounding) rounded to a
    format of at most binary64 precision."""
    if fmt.p >= BINARY64.precision:  # binary64 itself: hi (round_to's hi + lo, one add less)
        return hi
    with np.errstate(invalid="ignore", over="ignore"):
        return round_to(fmt, hi, lo, BINARY64, ops)


def _flush(fmt: Format, v, ops=ArrayOps):
    return ops.select(abs(v) < fmt.smallest_normal, ops.copysign(0.0, v), v)


class VariantArithmetic:
    """The arithmetic of one variant's group: operands of format ``operand`` (values carried as
    float64, or longdouble for x87), each result rounded to ``first`` then ``then`` (or only
    ``first``), flushed if so declared; the one-ulp square steps in ``square``.

    ``ops``: ``arith.ArrayOps`` (numpy arrays; a single rounding to a format numpy computes in
    is done in that dtype), or ``kernel.SymOps`` (traced: only the operations on values of at
    most 26 bits, ``narrow``, are written for it)."""

    def __init__(self, fmt: Format, work: str, ftz: bool, ops=ArrayOps) -> None:
        wide = WIDER[fmt.name]
        self.fmt, self.ftz, self.ops = fmt, ftz, ops
        if work == "format":
            self.operand, self.first, self.then = fmt, fmt, None
        elif work == "wide-per-op":
            self.operand, self.first, self.then = fmt, wide, fmt
        else:  # wide-kept
            self.operand, self.first, self.then = wide, wide, None
        self.kept = work == "wide-kept"
        self.square = wide if self.kept else fmt
        self.x87 = self.first.p == 64
        self.narrow = self.operand.p <= 26 and not self.x87  # products exact in binary64
        self.flushes = ftz and work != "wide-kept"  # kept work flushes when stored
        self.wide_lr = False  # a binary64 lr used as given (then products are not exact)
        # one rounding to a format numpy computes in natively (IEEE; float16 through float32,
        # an innocuous double rounding for + - *): values carried in that dtype
        self.native = NATIVE.get(self.first.name) \
            if self.then is None and ops is ArrayOps else None
        # traced code rounds to binary32 as numpy's arrays do: by the processor's conversion
        # (of an exact product) and addition (of binary32 values), a tenth of ``round_to``'s
        # operations, the same values
        self.binary32 = ops is not ArrayOps and self.narrow and self.first.name == "float32"
        # traced code adds values of a format whose sums are exact in binary64 (float16: 41
        # bits at most) without a TwoSum: its low part is zero
        span = self.operand.emax - (self.operand.emin - self.operand.p) + 2
        self.exact_sums = ops is not ArrayOps and self.narrow and span <= BINARY64.precision

    def carry(self, a):
        """Input values (of the operand format) as this work carries them."""
        return a.astype(self.native) if self.native is not None else a

    def flush(self, v):
        """Values below the smallest normal of the format flushed to a zero of their sign."""
        return _flush(self.fmt, v, self.ops)

    def rounded(self, v):
        """Binary64 values rounded to the format."""
        return _rnd(self.fmt, v, ops=self.ops)

    def const(self, c: float, like):
        """The constant ``c`` in the type ``like`` is carried in."""
        return like.dtype.type(c) if self.ops is ArrayOps else c

    def _finish(self, v):
        """A result of the ``first`` rounding, rounded to ``then`` and flushed as declared."""
        if self.then is not None:
            v = v.astype(np.float64) if self.x87 else _rnd(self.then, v, ops=self.ops)
        return self.flush(v) if self.flushes else v

    @staticmethod
    def _ld(v):
        return v if v.dtype == LD else v.astype(LD)

    def _native(self, v):
        return _flush(self.fmt, v) if self.flushes else v

    def mul(self, a, b):
        with np.errstate(all="ignore"):
            if self.native is not None:
                return self._native(a * b)
            if self.x87:
                return self._finish(self._ld(a) * self._ld(b))
            if self.narrow and self.wide_lr:  # a TwoProduct pair, rounded once
                hi, lo = two_prod(a, b, BINARY64.splitter)
                return self._finish(_rnd(self.first, hi, lo, self.ops))
            if self.narrow:  # exact in binary64, then rounded
                product = a * b
                return self._finish(self.ops.to_binary32(product) if self.binary32
                                    else _rnd(self.first, product, ops=self.ops))
            return self._finish(a * b)  # binary64 operands: the hardware's rounding

    def add(self, a, b):
        with np.errstate(all="ignore"):
            if self.native is not None:
                return self._native(a + b)
            if self.x87:
                return self._finish(self._ld(a) + self._ld(b))
            if self.binary32 and not self.wide_lr:  # (binary32 implies narrow)
                return self._finish(self.ops.add_binary32(a, b))
            if self.exact_sums and not self.wide_lr:  # (exact_sums implies narrow)
                return self._finish(_rnd(self.first, a + b, ops=self.ops))
            if self.narrow:
                s, e = two_sum(a, b)
                return self._finish(_rnd(self.first, s, e, self.ops))
            return self._finish(a + b)

    def fma(self, a, b, c):
        """fl(a*b + c), one rounding to ``first``: (value, undecided mask)."""
        if self.native is not None:
            dt = self.native
            self.native = None
            try:
                value, bad = self.fma(*(v.astype(np.float64) for v in (a, b, c)))
            finally:
                self.native = dt
            return value.astype(dt), bad
        with np.errstate(all="ignore"):
            if self.narrow and self.wide_lr and self.first.p < BINARY64.precision:
                # an operand of more than 26 bits: a*b + c = hi + lo + c (a TwoProduct) =
                # z + ze + m_lo (TwoSums), |m_lo| below 2**-50 ulps of z; rounded to a format
                # of at most 51 bits, z rounds as the sum unless it is a midpoint, where the
                # sign of ze + m_lo (that of the sum minus z, exactly) breaks the tie
                hi, lo = two_prod(a, b, BINARY64.splitter)
                s1, e1 = two_sum(hi, c)
                m, m_lo = two_sum(e1, lo)
                z, ze = two_sum(s1, m)
                whole = (m == 0) | ~np.isfinite(s1)  # (a zero keeps its sign; inf, nan)
                z = np.where(whole, s1, z)
                rest = np.where(whole, 0.0, ze + m_lo)
                # a product below 2**-900 (its TwoProduct inexact) only breaks a tie of c, or
                # is a zero of its sign where c is zero
                tiny, huge = _SAFE[53]
                small = (np.abs(hi) < tiny) & (a != 0) & (b != 0)
                z = np.where(small, np.where(c == 0, hi, c), z)
                rest = np.where(small & (c != 0), np.sign(a) * np.sign(b), rest)
                bad = (np.abs(hi) > huge) | (small & (c != 0) & (np.abs(c) < 2.0**-800))
                return self._finish(_rnd(self.first, z, rest, self.ops)), bad & np.isfinite(hi)
            if self.narrow and not self.wide_lr:
                # the product is exact in binary64: a TwoSum pair, rounded once
                s, e = two_sum(a * b, c)
                return self._finish(_rnd(self.first, s, e, self.ops)), self.ops.false
            if self.x87:
                a, b, c = self._ld(a), self._ld(b), self._ld(c)
            z, undecided = fma_exact(a, b, c, 64 if self.x87 else 53)
            return self._finish(z), undecided

    def square_off(self, r):
        """r*r one ulp from its rounded value, in the worse direction (``rounded``'s one-ulp
        square): (value, undecided mask)."""
        if self.native is not None:
            dt = self.native
            self.native = None
            try:
                value, bad = self.square_off(r.astype(np.float64))
            finally:
                self.native = dt
            return value.astype(dt), bad
        with np.errstate(all="ignore"):
            rn = self.mul(r, r)
            if self.narrow:  # r*r is exact in binary64, and so is r*r - rn (within an ulp)
                ops = self.ops
                up = ops.logical_not(r * r - rn < 0)  # (nan only where rn is kept)
                stepped = _next(self.square, rn, up, ops)
                keep = ops.either(ops.logical_not(ops.isfinite(rn)),
                                  ops.logical_and(rn == 0, r == 0))
                return ops.select(keep, rn, stepped), ops.false
            sign = self._sign_of_square_minus(r, rn)
            stepped = _next(self.square, rn, sign != -1)
            keep = ~np.isfinite(rn) | ((rn == 0) & (r == 0))
            return np.where(keep, rn, stepped), (sign == 2) & ~keep

    def doubled_grad(self, r):
        """autograd's 0.5*(2*r): the value of r, infinite where 2*r overflows."""
        ops = self.ops
        twice = self.mul(self.const(2.0, r), r)
        with np.errstate(invalid="ignore"):
            return ops.select(ops.either(ops.isfinite(twice), ops.logical_not(ops.isfinite(r))),
                              r, ops.copysign(math.inf, r))

    def store(self, value):
        """A result as stored in the format: work kept wider is rounded (and flushed as
        declared) only here."""
        if not self.kept:  # rounded to the format already
            return value
        with np.errstate(over="ignore"):
            if self.ops is not ArrayOps:
                value = _rnd(self.fmt, value, ops=self.ops)
            else:
                value = value.astype(np.float64) if value.dtype == LD \
                    else _rnd(self.fmt, value.astype(np.float64))
        return self.flush(value) if self.ftz else value

    def _sign_of_square_minus(self, r, v):
        """Per case the sign of r*r - v, exactly (1, 0, -1), or 2 where undecided; v is a
        rounding of r*r (within an ulp of it, or a flushed zero); operands of binary64 or x87."""
        x = self._ld(r) if (self.x87 or v.dtype == LD) else r
        precision = 64 if x.dtype == LD else 53
        tiny, huge = _SAFE[precision]
        splitter = x.dtype.type(2.0) ** ((precision + 1) // 2) + 1
        y = v.astype(x.dtype)
        if precision == 53:  # a tiny r scaled by 2**900 (and v by 2**1800), exactly: r*r may
            # underflow, (2**900*r)**2 does not
            k = np.where(np.abs(x) < 2.0**-450, 2.0**900, 1.0)
            x, y = x * k, y * k * k
        hi, lo = two_prod(x, x, splitter)
        # exact: y is within an ulp of hi, or at most twice it where r*r underflowed (Sterbenz),
        # or zero
        d = hi - y
        sign = np.sign(d + lo).astype(np.int8)  # r*r - v = d + lo: its rounding keeps the sign
        bad = ((np.abs(hi) < tiny) & (x != 0)) | (np.abs(x) > huge)
        return np.where(bad, np.int8(2), sign)


def _next(fmt: Format, v, up, ops=ArrayOps):
    """The neighbour of each value of ``fmt`` (carried as float64, or longdouble for x87), up
    or down (IEEE nextUp/nextDown; past the largest finite value: infinity)."""
    direction = ops.select(up, 1.0, -1.0)
    if ops is ArrayOps and (v.dtype == LD or fmt is FLOAT64):
        inf = v.dtype.type(np.inf)
        return np.nextafter(v, direction * inf)
    assert fmt.p <= 53 and fmt is not FLOAT64, fmt
    with np.errstate(all="ignore"):
        a = abs(v)
        binade = ops.maximum(ops.pow2floor(a), fmt.smallest_normal)
        quantum = binade * 2.0 ** (1 - fmt.p)
        # moving away from zero
        away = ops.either((ops.copysign(1.0, v) < 0) == (direction < 0), v == 0)
        step = ops.select(ops.logical_and(ops.logical_and(ops.logical_not(away), a == binade),
                                          a > fmt.smallest_normal), quantum / 2, quantum)
        out = ops.select(v == 0, direction * fmt.smallest_subnormal, v + direction * step)
        out = ops.select(out == 0, ops.copysign(0.0, v), out)  # down from the smallest: a zero
        return ops.select(abs(out) > fmt.largest_finite, ops.copysign(math.inf, out), out)


def fma_exact(a, b, c, precision: int):
    """fl(a*b + c) in the precision of the operands' type (binary64, or x87 longdouble), and
    the cases where it is not guaranteed: binary64's compiled fma where numba is installed
    (every case guaranteed), else Boldo and Melquiond's emulation (TwoProduct, TwoSum, a sum
    rounded to odd, one rounding to nearest), not guaranteed where an underflow or overflow
    happens inside."""
    if precision == 53:  # binary64: the processor's (or the C library's) exact fma
        z = fma_arrays(a, b, c)
        if z is not None:
            return z.reshape(np.broadcast(a, b, c).shape), np.zeros(z.shape, dtype=bool)
    dt = a.dtype.type
    tiny, huge = _SAFE[precision]
    splitter = dt(2.0) ** ((precision + 1) // 2) + 1
    uh, ul = two_prod(a, b, splitter)
    th, tl = two_sum(c, uh)
    s, e = two_sum(tl, ul)
    m, _ = np.frexp(np.abs(s))  # round to odd: an inexact sum takes its odd neighbour
    odd = np.fmod(np.ldexp(m, precision), dt(2)) != 0
    ro = np.where((e == 0) | odd, s, np.nextafter(s, np.where(e > 0, dt(np.inf), dt(-np.inf))))
    z = th + ro
    zero_product = (a == 0) | (b == 0)
    exact_zero = zero_product & (c == 0)
    z = np.where(exact_zero, a * b + c, z)  # IEEE's sign of an exact zero
    big = (np.abs(a) > huge) | (np.abs(b) > huge) | (np.abs(c) > huge) | (np.abs(uh) > huge)
    small = ((np.abs(uh) < tiny) & ~zero_product) | ((np.abs(z) < tiny) & (z != 0)) \
        | ((np.abs(s) < tiny) & (s != 0))
    return z, (big | small) & ~exact_zero


def evaluate_arrays(fmt: "Format | str", variant: Variant, cols: Mapping[str, np.ndarray],
                    lr_in_format: "bool | None" = None
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every quantity of one admitted evaluation for arrays of cases (float64 values of the
    format; an x87 result stored to float64), and the cases it cannot guarantee.
    ``lr_in_format``: whether every lr is a value of the format (None: found out here)."""
    fmt = get_format(fmt)
    n = len(cols["w"])
    W = VariantArithmetic(fmt, variant.work, variant.ftz)
    if W.x87 and not HAVE_X87:
        return {q: np.full(n, np.nan) for q in NODE_OF}, np.ones(n, dtype=bool)
    v = {k: np.asarray(cols[k], dtype=np.float64) for k in INPUTS}
    values, undecided = evaluate_step(W, variant, v, lr_in_format)
    return ({q: np.asarray(value, dtype=np.float64) for q, value in values.items()},
            np.zeros(n, dtype=bool) | undecided)


def evaluate_step(W: VariantArithmetic, variant: Variant, v: dict,
                  lr_in_format: "bool | None" = None) -> tuple[dict, object]:
    """Every quantity of one admitted evaluation in the arithmetic ``W`` (of the variant's
    work and flushing) from the inputs ``v`` (binary64 values: arrays, or traced values), and
    the cases it cannot guarantee (``W.ops.false`` where it guarantees all)."""
    ops = W.ops
    undecided = ops.false
    if variant.ftz:
        v = {k: W.flush(a) for k, a in v.items()}
    if variant.lr_rounded:
        v["lr"] = W.rounded(v["lr"])
        if variant.ftz:
            v["lr"] = W.flush(v["lr"])
    elif ops is ArrayOps and not (lr_in_format if lr_in_format is not None
                                  else np.all(_rnd(W.fmt, v["lr"]) == v["lr"])):
        W.native = None  # a binary64 lr used as given: the products must see all its bits
        W.wide_lr = True
    v = {k: W.carry(a) for k, a in v.items()}
    fused = {k for k, on in (("forward", variant.forward_fused),
                             ("update", variant.update_fused)) if on}
    for node in NODES:
        args = [v[a] for a in node.args]
        if node.fusion in fused:
            product, other = product_operand(node)
            x, y = (v[a] for a in product.args)
            if node.op == "sub" and node.args[1] == product.name:
                x = -x
            value, bad = W.fma(x, y, v[other])
            undecided = ops.either(undecided, bad)
        elif node.op == "mul":
            value = W.mul(*args)
        elif node.op in ("add", "sub"):
            value = W.add(args[0], args[1] if node.op == "add" else -args[1])
        elif node.op == "square":
            if variant.square == "one-ulp":
                value, bad = W.square_off(args[0])
                undecided = ops.either(undecided, bad)
            else:
                value = W.mul(args[0], args[0])
        elif node.op == "half":
            value = W.mul(W.const(0.5, args[0]), args[0])
        else:  # grad: r, or autograd's 0.5*(2*r) whose 2*r may overflow
            value = W.doubled_grad(args[0]) if variant.grad_doubled else args[0]
        v[node.name] = value
    return {q: W.store(v[name]) for q, name in NODE_OF.items()}, undecided


def explain_batch(fmt: "Format | str", cols: Mapping[str, np.ndarray], names: Sequence[str],
                  block: np.ndarray, model: "Model | str" = "ieee") -> Explained:
    """For each returned value (``block``: one float64 row per quantity in ``names``), the
    first admitted evaluation that gives it bit for bit, or -1.  Cases with a binary64 ``lr``
    that is not a value of the format (``lr-binary64``) admit the lr-rounded evaluations too."""
    fmt, model = get_format(fmt), get_model(model)
    n = block.shape[1]
    lr = np.asarray(cols["lr"], dtype=np.float64)
    native = NATIVE.get(fmt.name)
    lr_in_format = bool(np.all((lr.astype(native) if native else _rnd(fmt, lr)) == lr))
    variants = admitted(fmt, model, lr_in_format=lr_in_format)
    which = np.full((len(names), n), -1, dtype=np.int16)
    pending = None  # the cases with a value not explained yet (None: all of them)
    undecided_all = np.zeros(n, dtype=bool)
    for k, variant in enumerate(variants):
        if pending is not None and len(pending) == 0:
            break
        at = slice(None) if pending is None else pending
        sub = {key: np.asarray(cols[key], dtype=np.float64)[at] for key in INPUTS}
        values, undecided = evaluate_arrays(fmt, variant, sub, lr_in_format)
        mine = which[:, at]  # (a copy where ``at`` is an index array)
        for j, q in enumerate(names):
            hit = (mine[j] < 0) & same_bits(block[j, at], values[q])
            if undecided.any():
                hit &= ~undecided
            mine[j][hit] = k
        if pending is not None:
            which[:, pending] = mine
            undecided_all[pending[undecided]] = True
        else:
            undecided_all |= undecided
        left = (mine < 0).any(axis=0)
        pending = np.flatnonzero(left) if pending is None else pending[left]
    undecided = np.flatnonzero(undecided_all & (which < 0).any(axis=0))
    index = {v.name: i for i, v in enumerate(variants)}
    for i in undecided.tolist():  # the scalar verdict, exactly
        case = tuple(float(np.asarray(cols[key])[i]) for key in INPUTS)
        legal = legal_values(fmt, case, model)
        for j, q in enumerate(names):
            e = legal.explain(q, float(block[j, i]))
            which[j, i] = index[e.variants[0]] if e.variants else -1
    return Explained(tuple(names), variants, which)


def zero_signs_batch(fmt: "Format | str", cols: Mapping[str, np.ndarray], q: str,
                     model: "Model | str" = "ieee") -> tuple[np.ndarray, np.ndarray]:
    """Per case, whether some admitted evaluation gives ``q`` = +0, and whether one gives -0
    (every admitted evaluation runs; undecided cases are decided by ``reference.legal``)."""
    fmt, model = get_format(fmt), get_model(model)
    n = len(cols["w"])
    plus, minus = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    lr = np.asarray(cols["lr"], dtype=np.float64)
    lr_in_format = bool(np.all(_rnd(fmt, lr) == lr))
    undecided_all = np.zeros(n, dtype=bool)
    for variant in admitted(fmt, model, lr_in_format=lr_in_format):
        values, undecided = evaluate_arrays(fmt, variant, cols, lr_in_format)
        v = values[q]
        zero = (v == 0) & ~undecided
        plus |= zero & ~np.signbit(v)
        minus |= zero & np.signbit(v)
        undecided_all |= undecided
    for i in np.flatnonzero(undecided_all).tolist():
        case = tuple(float(np.asarray(cols[k])[i]) for k in INPUTS)
        signs = legal_values(fmt, case, model).zero_signs(q)
        plus[i], minus[i] = 1.0 in signs, -1.0 in signs
    return plus, minus
