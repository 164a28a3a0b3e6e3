"""Exact values and bounds of every node for arrays of cases: the step of ``reference.step`` in
double-double pairs, and the one bound chain of ``reference.bounds`` in the work type.

Exact values.  Every node is a :class:`~reference.batch.arith.Pair`: error-free transformations
(TwoSum, Veltkamp/Dekker TwoProduct) make every sum and product exact except the one rounding
where a pair is folded back into two terms, and that rounding's residual is computed (TwoSum) or
bounded (``|fl(a*b) - a*b| <= u|fl|``) per case.  ``delta`` is at most a few ``u_work**2``
times the magnitudes involved and zero wherever the step is exact in the work type; it is far
below every rounding term of the bound (``>= 2**-p`` times the same magnitudes, or the format's
eta), by a factor of at least 2**70 for the narrow formats and 2**60 for float64.

Bounds.  ``bounds.bound_chain`` in :class:`PairArithmetic` (binary64: the scalar path's own
arithmetic, node values being the ``hi`` parts, within 2**-52 of the exact values, so the two
bounds agree to ~1e-15) or :class:`ExtendedArithmetic` (float64, whose scalar bounds are exact
rationals: every bound operation is checked with an error-free transformation; where none
rounded, the bound *is* the exact rational one; elsewhere it is rounded up by 2**-56; and a
binade that a node's ``delta`` leaves undecided is flagged ambiguous: the bound may then be up
to twice the exact one).  :meth:`interval` says where the scalar bound lies, so that the verdict
can send the values it cannot decide to the scalar path.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Mapping, NamedTuple

import numpy as np

from ..bounds import Binary64Arithmetic, Chain, Model, bound_chain, get_model
from ..formats import FLOAT32, Format, get_format
from ..step import INPUTS, NODE_OF, NODES
from .arith import (BINARY64, EXTENDED, ArrayOps, Pair, Work, pair_add, pair_mul, pair_square,
                    round_to, two_prod, two_sum, work_for)

__all__ = ["BAND", "exact_pairs", "PairArithmetic", "ExtendedArithmetic", "arithmetic_for",
           "QuantityBound", "batch_bounds", "chain_bounds", "quantity_bounds", "check_model"]

#: binary64 work: errors within this relative distance of the bound are decided by the scalar
#: path (the batch bound is the scalar bound up to ~1e-15: the same chain on other node values).
BAND = 2.0**-45


def exact_pairs(work: Work, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Every input (as given) and node (a :class:`Pair`) of the step, exactly up to delta."""
    values: dict[str, Any] = dict(inputs)
    u = work.u
    for node in NODES:
        args = [values[a] for a in node.args]
        if node.op == "mul" and not any(isinstance(a, Pair) for a in args):
            a, b = args
            if work.exact_products:  # a product of two format values is exact in binary64
                values[node.name] = Pair(a * b, 0.0, 0.0)
            else:
                hi, lo = two_prod(a, b, work.splitter)
                values[node.name] = Pair(hi, lo, 0.0)
        elif node.op == "mul":
            pair, v = (args[0], args[1]) if isinstance(args[0], Pair) else (args[1], args[0])
            hi, lo, e = pair_mul(pair.hi, pair.lo, v, work)
            values[node.name] = Pair(hi, lo, abs(v) * pair.delta + e)
        elif node.op in ("add", "sub"):
            a, b = args
            if isinstance(b, Pair):  # a -+ (hi + lo)
                hi, lo, e = pair_add(-b.hi, -b.lo, a) if node.op == "sub" else \
                    pair_add(b.hi, b.lo, a)
                pair = b
            else:  # (hi + lo) +- b
                hi, lo, e = pair_add(a.hi, a.lo, -b if node.op == "sub" else b)
                pair = a
            values[node.name] = Pair(hi, lo, pair.delta + e)
        elif node.op == "square":
            r = args[0]
            r_mag = abs(r.hi) * (1 + 4 * u)
            hi, lo, e = pair_square(r.hi, r.lo, work)
            values[node.name] = Pair(hi, lo, 2 * r_mag * r.delta + r.delta * r.delta + e)
        elif node.op == "half":
            s = args[0]
            values[node.name] = Pair(s.hi / 2, s.lo / 2, s.delta / 2)
        elif node.op == "grad":
            values[node.name] = args[0]  # the same value (and the same pair)
        else:
            raise AssertionError(f"no exact pair for the operation {node.op!r}")
    up = 1 + 8 * u  # the deltas' own roundings
    for node in NODES:
        if node.op != "grad":  # (a gradient node is its operand's pair)
            pair = values[node.name]
            pair.delta = pair.delta * up
    return values


class PairArithmetic(Binary64Arithmetic):
    """``bounds.Binary64Arithmetic`` on arrays (or traced), node values being pairs."""

    def __init__(self, ops: Any = ArrayOps, work: Work = BINARY64) -> None:
        super().__init__(ops)
        self.work = work

    def value(self, v, bound: bool = False):
        return v.hi if isinstance(v, Pair) else v

    def round(self, fmt: Format, v):
        if isinstance(v, Pair):
            return round_to(fmt, v.hi, v.lo, self.work, self.ops)
        return round_to(fmt, v, None, self.work, self.ops)

    def distance(self, c, v):
        """|c - (hi + lo)|: exact in the work type (c has at most p significant bits)."""
        hi, lo = (v.hi, v.lo) if isinstance(v, Pair) else (v, 0.0)
        return abs(self.add(self.add(c, -hi), -lo))

    def interval(self, bound, name: str):
        """(low, high): where the scalar path's bound lies, given this one."""
        return bound * (1 - BAND), bound * (1 + BAND)


class ExtendedArithmetic(PairArithmetic):
    """Extended precision (float64's batch bounds), tracking per node whether some bound term
    was rounded (``inexact``) or a binade was left undecided by a node's delta (``ambiguous``).

    A magnitude is a pair (s, e) with s + e >= the exact magnitude, so that a value just below
    a power of two (b = 1, b' = 1 - 2**-300) gets the binade below, as exactly."""

    def __init__(self, fmt: Format, work: Work = EXTENDED) -> None:
        super().__init__(ArrayOps, work)
        dt = work.dtype
        self.dt = dt
        self.tiny = dt(fmt.smallest_normal)
        self.zero = dt(0)
        self.grow = dt(1) + dt(work.slack)
        self.shrink = dt(1) - dt(work.slack)
        self.inexact: Any = np.False_
        self.ambiguous: Any = np.False_
        self.inexact_of: dict[str, Any] = {}
        self.ambiguous_of: dict[str, Any] = {}

    def constant(self, c):
        if isinstance(c, Fraction):  # a power of two, possibly beyond binary64's range
            return np.ldexp(self.dt(c.numerator), -(c.denominator.bit_length() - 1))
        return self.dt(c)

    def begin(self, name: str) -> None:
        self.inexact, self.ambiguous = np.False_, np.False_

    def end(self, name: str, operands) -> None:
        inexact, ambiguous = self.inexact, self.ambiguous
        for o in operands:
            inexact = inexact | self.inexact_of[o]
            ambiguous = ambiguous | self.ambiguous_of[o]
        self.inexact_of[name], self.ambiguous_of[name] = inexact, ambiguous

    def value(self, v, bound: bool = False):
        if not isinstance(v, Pair):
            return v
        if bound:  # the value enters the bound: it must be the exact value
            self.inexact = self.inexact | (v.lo != 0) | (v.delta > 0)
        return v.hi

    def add(self, a, b):
        s, e = two_sum(a, b)
        self.inexact = self.inexact | (e != 0)
        return s

    def mul(self, a, b):
        p, e = two_prod(a, b, self.work.splitter)
        self.inexact = self.inexact | (e != 0)
        return p

    def magnitudes(self, v, prop, kind):
        # |hi + lo| +- prop as (s, e): s + e exact and e's sign exact (three-term TwoSums).
        # Where the exact magnitude may lie on either side of a power of two that decides the
        # term (within the node's delta of it), the decision is ambiguous: the bound may then
        # be up to twice the exact one, and the verdict sends values near it to the scalar
        # path.  The upper magnitude decides a binade (all kinds but "half"); the lower one
        # only "half"'s comparison with the smallest normal.
        m = np.abs(v.hi)
        z = v.lo * np.sign(v.hi)
        uncertain = v.delta > 0
        s1, s1e = two_sum(z, prop)
        s, e = two_sum(m, s1)
        e = e + s1e
        if kind != "half":
            self.ambiguous = self.ambiguous | (uncertain & (np.abs(e) <= v.delta)
                                               & (self.ops.pow2floor(s) == s))
        upper = (s, e + v.delta)
        s1, s1e = two_sum(z, -prop)
        s, e = two_sum(m, s1)
        e = e + s1e
        if kind == "half":
            tiny, tiny32 = self.tiny, self.dt(FLOAT32.smallest_normal)
            self.ambiguous = self.ambiguous | (uncertain & (np.abs(e) <= v.delta)
                                               & ((s == tiny) | (s == tiny32)))
        e = e - v.delta
        neg = (s < 0) | ((s == 0) & (e < 0))
        return upper, (np.where(neg, self.zero, s), np.where(neg, self.zero, e))

    def floor2(self, m):
        """Largest power of two <= the magnitude (0 for 0)."""
        s, e = m
        f = self.ops.pow2floor(s)
        return np.where((f == s) & (e < 0), f / 2, f)

    def half_ulp(self, fmt: Format, m):
        e = np.maximum(self.floor2(m), self.dt(fmt.smallest_normal))
        return np.where(m[0] > 0, e * self.dt(2.0) ** -fmt.p, self.zero)

    def below(self, m, limit):  # magnitude < limit, surely
        s, e = m
        return (s < limit) | ((s == limit) & (e < 0))

    def at_least(self, m, limit):  # magnitude >= limit, surely
        s, e = m
        return (s > limit) | ((s == limit) & (e >= 0))

    def widen(self, m, e):
        raise AssertionError("float32 work does not apply to float64")

    def plain(self, m):
        raise AssertionError("flush-to-zero is not covered by the batch path")

    def finish(self, error, name: str):
        return np.where(self.inexact_of[name], error * self.grow, error)

    def interval(self, bound, name: str):
        """The scalar bound is exact: it is this one where nothing was rounded, at most the slack
        below it elsewhere, and down to a quarter of it where a binade was ambiguous."""
        exact = ~self.inexact_of[name] & ~self.ambiguous_of[name]
        low = np.where(exact, bound, bound * (self.dt(1) - self.dt(4) * self.dt(self.work.slack)))
        return np.where(self.ambiguous_of[name], bound / 4, low), bound


def arithmetic_for(fmt: Format, work: Work, ops: Any = ArrayOps) -> PairArithmetic:
    if work is EXTENDED:
        return ExtendedArithmetic(fmt, work)
    return PairArithmetic(ops, work)


def check_model(model: Model, fmt: "Format | None" = None) -> Model:
    """``model`` if the batch path covers it (in ``fmt``): ieee and strict, with the wide
    option except in float64 (x87 work); else a ValueError naming the scalar path."""
    wide64 = model.wide_all and fmt is not None and fmt.p == 53
    if model.ftz or model.lr_binary64 or wide64:
        raise ValueError(f"the batch path covers the models ieee and strict (with +wide except "
                         f"in float64), not {model.name}"
                         + (f" in {fmt.name}" if fmt is not None else "")
                         + "; use the scalar path (neuronspec check --model ...) for it")
    return model


class QuantityBound(NamedTuple):
    """A quantity's bound over the cases: the bound (rounded up), whether it is outside the
    bounded domain, and [low, high]: where the scalar path's bound lies."""

    bound: np.ndarray
    out_of_domain: np.ndarray
    low: np.ndarray
    high: np.ndarray


def quantity_bounds(A: PairArithmetic, chain: Chain) -> dict[str, tuple[Any, Any, Any, Any]]:
    """Per quantity (bound, out_of_domain, low, high) from a finished chain."""
    out = {}
    for q, name in NODE_OF.items():
        bound = A.finish(chain.errors[name], name)
        low, high = A.interval(bound, name)
        out[q] = (bound, chain.flags[name], low, high)
    return out


def chain_bounds(A: PairArithmetic, fmt: Format, model: Model, values: Mapping[str, Any]
                 ) -> dict[str, tuple[Any, Any, Any, Any]]:
    """Per quantity (bound, out_of_domain, low, high) in arithmetic ``A`` (arrays or traced)."""
    return quantity_bounds(A, bound_chain(A, fmt, model, values, {k: A.zero for k in INPUTS}))


def batch_bounds(fmt: "Format | str", w, b, x, t, lr, model: "Model | str" = "ieee",
                 nodes: "Mapping[str, Any] | None" = None) -> dict[str, QuantityBound]:
    """The a-priori bound of every quantity for arrays of cases (see :class:`QuantityBound`)."""
    fmt = get_format(fmt)
    model = check_model(get_model(model), fmt)
    work = work_for(fmt)
    if nodes is None:
        nodes = exact_pairs(work, {k: np.asarray(v, dtype=work.dtype)
                                   for k, v in zip(INPUTS, (w, b, x, t, lr))})
    A = arithmetic_for(fmt, work)
    shape = np.shape(nodes["p"].hi)
    with np.errstate(invalid="ignore", over="ignore"):
        raw = chain_bounds(A, fmt, model, nodes)
    return {q: QuantityBound(*(_full(a, shape) for a in v)) for q, v in raw.items()}


def _full(a, shape) -> np.ndarray:
    a = np.asarray(a)
    return a if a.shape == shape else np.broadcast_to(a, shape).copy()
