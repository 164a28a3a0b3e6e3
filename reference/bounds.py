"""Rigorous forward error bounds for the step, per quantity, format and evaluation model.

Standard model with underflow, in its sharpest form: a rounded operation whose exact result
(on the computed operands) has magnitude at most M is off by at most

    h(M) = ulp(M) / 2,   ulp(M) = 2**(max(floor(log2 M), emin) - p + 1)

which is <= u*M in the normal range and equals eta (half the smallest subnormal) in the
subnormal range; a sum is exact when M < 2**emin.  Operand errors are propagated exactly
(``|a^ b^ - a b| <= |a| Eb + |b| Ea + Ea Eb``), so each quantity gets an upper bound ``E`` on
``|computed - exact|`` valid for every evaluation its :class:`Model` admits.  ``spec/tolerances.md``
derives the same bounds step by step.

The chain is written once (:func:`bound_chain`, over the nodes of ``reference.step``) against an
*arithmetic*, as mpmath writes an algorithm once against a context: :class:`ExactArithmetic`
(``fractions.Fraction``, for float64: the definition, run as :class:`DyadicArithmetic`, the same
terms in integer arithmetic), :class:`Binary64Arithmetic` (binary64 rounded up by a
relative slack of ``SLACK`` where every term provably stays in binary64's normal range: float16,
bfloat16 and float32), and in ``reference.batch`` the same binary64 arithmetic on numpy arrays,
an extended-precision one, and the compiled kernel generated from it.  A bound never rounds
below the true error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Mapping, Sequence, Union

from .dyadic import Dyadic, as_float, dyadic, dyadic_nodes
from .exact import Binary
from .formats import Format, get_format, to_fraction
from .model import IEEE, MODELS, STRICT, WIDE_FORMAT, WIDER, Model, get_model  # noqa: F401 (re-exported)
from .step import ANCESTORS, INPUTS, NODE, NODE_OF, NODES

__all__ = [
    "Model", "OutOfDomain", "Bound", "IEEE", "STRICT", "MODELS", "WIDE_FORMAT", "WIDER", "SLACK",
    "get_model", "step_bounds", "case_bounds", "bound_chain", "rounding_term", "rounding_spread",
    "tightened", "overflow_origin", "overflow_words", "DOMAIN_SECTION", "Chain", "Arithmetic",
    "ExactArithmetic", "DyadicArithmetic", "Binary64Arithmetic",
    "ScalarOps", "flush_error",
]

#: Relative slack of bounds computed in binary64: covers <= 2**13 binary64 roundings of
#: non-negative normal numbers (a bound is a few dozen of them).
SLACK = 2.0**-40


#: Where the spec defines the bounded domain (what an unchecked value is outside of).
DOMAIN_SECTION = "spec/tolerances.md 2.5"


@dataclass(frozen=True)
class OutOfDomain:
    """A quantity some admitted evaluation may overflow on the way to (``reason`` says where,
    ``origin`` names the first node of the step that may overflow).

    Not "anything goes": a *finite* result must still be within ``bound`` of the exact value
    (an overflow never turns back into a finite value, so a finite result comes from an
    evaluation where nothing overflowed, which the chain bounds); a non-finite one must be what
    an admitted evaluation gives (``reference.legal``).  ``bound`` is None where unknown."""

    reason: str
    bound: "Fraction | float | None" = None
    origin: str = ""

    def __bool__(self) -> bool:  # never usable as a number
        return False


Bound = Union[Fraction, float, OutOfDomain]


# ---- the chain, written once --------------------------------------------------------------

def rounding_term(A: "Arithmetic", fmt: Format, model: Model, kind: str, upper: Any,
                  lower: Any) -> Any:
    """Bound on the rounding error of one operation of ``kind`` (mul, add, half, sq) whose exact
    result on the computed operands lies in [lower, upper] in magnitude (spec/tolerances.md 2.2)."""
    W = model.wide_format(fmt)
    if W is not None:
        # the wider format first (sums and halvings exact there unless subnormal there) ...
        e32 = A.half_ulp(W, upper)
        if kind == "add":
            e32 = A.ops.select(A.below(upper, W.smallest_normal), A.zero, e32)
        elif kind == "half":
            e32 = A.ops.select(A.at_least(lower, W.smallest_normal), A.zero, e32)
        # ... then the format, whose operand is now a wider value: never exact for free
        e = A.add(e32, A.half_ulp(fmt, A.widen(upper, e32)))
    elif kind == "add":  # IEEE sums of format values are exact in the subnormal range
        e = A.ops.select(A.below(upper, fmt.smallest_normal), A.zero, A.half_ulp(fmt, upper))
    elif kind == "half":
        e = A.ops.select(A.at_least(lower, fmt.smallest_normal), A.zero,
                         A.constant(Fraction(2) ** (fmt.emin - fmt.p)))
    else:
        e = A.half_ulp(fmt, upper)
    if kind == "sq" and model.pow_square:
        e = 2 * e  # within one ulp instead of half an ulp
    if model.ftz:  # a flushed result |v| < 2**emin becomes 0
        e = A.ops.maximum(e, A.ops.minimum(A.plain(upper), A.constant(fmt.smallest_normal)))
    return e


def rounding_spread(A: "Arithmetic", fmt: Format, model: Model, value: Any) -> tuple[Any, Any]:
    """(the largest error any admitted evaluation makes rounding the exact ``value`` once, over
    the roundings that stay finite; whether one of them overflows)."""
    ops = A.ops
    rounded = A.round(fmt, value)
    candidates = [rounded]
    W = model.wide_format(fmt)
    if W is not None:
        wide = A.round(W, value)
        candidates += [wide, A.round(fmt, wide)]  # kept wide; rounded through the wide format
    if model.ftz:  # a subnormal result (here or in float32) flushed to zero
        tiny = A.constant(fmt.smallest_normal)
        flushed = ops.either(abs(rounded) < tiny, A.plain(A.magnitude(value)) < tiny)
        candidates.append(ops.select(flushed, A.constant(0), rounded))
    error, overflow = A.zero, ops.false
    for c in candidates:  # each finite rounding counts: a finite result may come from it
        finite = ops.isfinite(c)
        overflow = ops.either(overflow, ops.logical_not(finite))
        error = ops.maximum(error, ops.select(finite, A.distance(c, value), A.zero))
    return error, overflow


class Chain:
    """Per node of the step: its value (``values``), its error bound (``errors``) and whether it
    may overflow (``flags``: a reason, or a mask); ``parts`` keeps each node's propagated operand
    error and rounding kind (for :func:`tightened`)."""

    def __init__(self, A: "Arithmetic", fmt: Format, model: Model) -> None:
        self.A, self.fmt, self.model = A, fmt, model
        self.values: dict = {}
        self.errors: dict = {}
        self.flags: dict = {}
        self.parts: dict = {}

    def static_zero(self, name: str) -> bool:
        """True where a leaf's error is zero whatever the case (no term for it is needed)."""
        if name not in INPUTS:
            return False
        return not (self.model.ftz or (name == "lr" and self.model.lr_binary64))

    def product_error(self, a: str, b: str) -> Any:
        """|a^ b^ - a b| <= |a| Eb + |b| Ea + Ea Eb (terms whose error is always 0 left out)."""
        A = self.A
        terms = []
        if not self.static_zero(b):
            terms.append(A.mul(A.abs(A.value(self.values[a], bound=True)), self.errors[b]))
        if not self.static_zero(a):
            terms.append(A.mul(A.abs(A.value(self.values[b], bound=True)), self.errors[a]))
        if not (self.static_zero(a) or self.static_zero(b)):
            terms.append(A.mul(self.errors[a], self.errors[b]))
        total = terms[0] if terms else A.zero
        for term in terms[1:]:
            total = A.add(total, term)
        return total

    def node(self, name: str, prop: Any, operand_flag: Any, rounding: Any = None,
             node: Any = None) -> None:
        """Error bound and overflow flag of a node from its operands' propagated error
        (``node``: its description, with ``kind`` and ``text``, where it is not one of
        ``reference.step``'s: the optimiser's, ``reference.optim``)."""
        A = self.A
        node = NODE[name] if node is None else node
        value = A.value(self.values[name])
        kind = node.kind
        upper = A.abs(value) + prop
        if rounding is None:
            high, low = A.magnitudes(self.values[name], prop, kind)
            rounding = rounding_term(A, self.fmt, self.model, kind, high, low)
        self.parts[name] = (prop, kind)
        self.errors[name] = A.add(prop, rounding)
        largest = self.fmt.largest_finite
        total = upper + rounding
        self.flags[name] = A.ops.either(operand_flag, A.ops.flag(
            A.overflows(total, largest), lambda: (
                f"{node.text} may overflow {self.fmt.name}: |exact| + error bound = "
                f"{_text(total)} > largest finite {largest:.6g}")))


def bound_chain(A: "Arithmetic", fmt: Format, model: Model, values: Mapping[str, Any],
                leaf_errors: Mapping[str, Any]) -> Chain:
    """The bound of every node of the step in arithmetic ``A``.

    ``values``: every input and node value in A's terms (a node's exact value, or what A keeps
    of it); ``leaf_errors``: the error each input enters with (0 unless flushed or rounded)."""
    ops = A.ops
    chain = Chain(A, fmt, model)
    chain.values.update(values)
    for name in INPUTS:
        chain.errors[name] = leaf_errors[name]
        chain.flags[name] = ops.false
    for node in NODES:
        name, args = node.name, node.args
        A.begin(name)
        flag = ops.false
        for a in args:
            flag = ops.either(flag, chain.flags[a])
        if node.op == "mul" and all(a in INPUTS for a in args):
            _first_product(chain, node, flag)
        elif node.op == "mul":
            chain.node(name, chain.product_error(*args), flag)
        elif node.op in ("add", "sub"):
            chain.node(name, A.add(chain.errors[args[0]], chain.errors[args[1]]), flag)
        elif node.op == "square":
            r, e = A.value(values[args[0]], bound=True), chain.errors[args[0]]
            chain.node(name, A.add(A.mul(2 * A.abs(r), e), A.mul(e, e)), flag)
        elif node.op == "half":
            chain.node(name, chain.errors[args[0]] / 2, flag)
        elif node.op == "grad":  # 0.5*(2*r): exact, but 2*r must not overflow
            r, e = A.value(values[args[0]]), chain.errors[args[0]]
            chain.errors[name] = e
            if args[0] in chain.parts:
                chain.parts[name] = chain.parts[args[0]]
            twice = 2 * (A.abs(r) + e)
            chain.flags[name] = ops.either(flag, ops.flag(A.overflows(twice, fmt.largest_finite),
                                                          lambda: (
                f"autograd's 2*r may overflow {fmt.name}: 2*(|r| + error bound) = "
                f"{_text(twice)} > largest finite {fmt.largest_finite:.6g}")))
        else:
            raise AssertionError(f"no bound for the operation {node.op!r}")
        A.end(name, [a for a in args if a in NODE])
    return chain


def overflow_origin(ops: Any, flags: Mapping[str, Any], name: str) -> Any:
    """Index in NODES of the first node on the way to ``name`` that may overflow (``flags``: a
    chain's; a reason or a mask each), or -1 where none may: the origin of an out-of-domain
    value, for reports (the chain's flags carry the first reason forward)."""
    origin: Any = -1
    for n in reversed(ANCESTORS[name]):
        origin = ops.select(flags[n], NODES.index(NODE[n]), origin)
    return origin


def overflow_words(origin: "int | str") -> str:
    """Why a value is outside the bounded domain, in a few words, from its origin (an index
    in NODES or a node's name)."""
    node = NODES[origin] if isinstance(origin, int) else NODE[origin]
    if node.op == "grad":
        return f"{node.text} may overflow"
    return f"{node.text.split(' = ')[-1]} may overflow"


def _first_product(chain: Chain, node, flag: Any) -> None:
    """A product of two inputs: where both are exact (no flush), its rounding error is known
    exactly -- the largest over the admitted roundings of the exact product."""
    A, ops = chain.A, chain.A.ops
    a, b = node.args
    error, overflow = rounding_spread(A, chain.fmt, chain.model, chain.values[node.name])
    value = chain.values[node.name]
    reason = ops.flag(overflow, lambda: (
        f"w*x = {_text(A.plain(A.value(value)))} overflows {chain.fmt.name} (largest "
        f"finite {chain.fmt.largest_finite:.6g})"))
    if chain.static_zero(a) and chain.static_zero(b):
        chain.node(node.name, A.zero, ops.either(flag, reason), rounding=error)
        return
    # an operand may have been flushed: the general product where it was
    exact = ops.logical_and(chain.errors[a] == 0, chain.errors[b] == 0)
    chain.node(node.name, chain.product_error(a, b), flag)
    general_error, general_flag, parts = chain.errors[node.name], chain.flags[node.name], \
        chain.parts[node.name]
    chain.node(node.name, A.zero, ops.either(flag, reason), rounding=error)
    chain.errors[node.name] = ops.select(exact, chain.errors[node.name], general_error)
    chain.flags[node.name] = ops.pick(exact, chain.flags[node.name], general_flag)
    if not ops.is_true(exact):
        chain.parts[node.name] = parts


def tightened(chain: Chain, name: str, computed: Any, bound: Any) -> Any:
    """The a-posteriori bound of a node from an implementation's own result (tolerances.md 2.6):
    a result rounded to nearest is within half an ulp *of the result* too (its ulp is never
    smaller than the exact value's).  Through float32 first, the float32 value z is within
    h_F(|c|) of c, so |c| + h_F(|c|) bounds the magnitude seen by the first rounding."""
    A, fmt, model = chain.A, chain.fmt, chain.model
    try:
        c = float(computed)
    except (TypeError, ValueError):
        return bound
    if not math.isfinite(c) or c == 0.0 or name not in chain.parts:
        return bound  # a zero result may be an underflow: its error is not bounded by h(0) = 0
    prop, kind = chain.parts[name]
    value = A.value(chain.values[name])
    upper = A.abs(value) + prop
    lower = A.ops.maximum(A.abs(value) - prop, A.zero)
    c_mag = A.constant(abs(c)) * A.grow
    if model.wide(fmt):  # (the wide rounding is within half an ulp of the format too)
        c_mag += A.half_ulp(fmt, c_mag)
    term = rounding_term(A, fmt, model, kind, A.ops.minimum(upper, c_mag), lower)
    if model.ftz:  # a flushed result reads 0: use the a-priori magnitude for that
        term = A.ops.maximum(term, A.ops.minimum(upper, A.constant(fmt.smallest_normal)))
    return A.ops.minimum(bound, prop + term)


# ---- scalar arithmetics ---------------------------------------------------------------------

class ScalarOps:
    """Selections, maxima and flags on Python numbers; a flag is None or the reason."""

    false = None

    @staticmethod
    def select(cond, a, b):
        return a if cond else b

    pick = select

    @staticmethod
    def maximum(a, b):
        return max(a, b)

    @staticmethod
    def minimum(a, b):
        return min(a, b)

    @staticmethod
    def isfinite(a) -> bool:  # (a Fraction: an x87 value; a Dyadic: an exact term)
        return isinstance(a, (Fraction, Dyadic)) or math.isfinite(a)

    @staticmethod
    def logical_not(c) -> bool:
        return not c

    @staticmethod
    def logical_and(a, b) -> bool:
        return bool(a and b)

    @staticmethod
    def is_true(c) -> bool:
        return bool(c)

    @staticmethod
    def flag(cond, message: Callable[[], str]):
        return message() if cond else None

    @staticmethod
    def either(a, b):
        return a or b

    @staticmethod
    def pow2floor(a: float) -> float:
        """The largest power of two <= a (0 for a <= 0; inf and nan pass through)."""
        if not a > 0 or not math.isfinite(a):
            return a if a > 0 or a != a else 0.0
        return math.ldexp(0.5, math.frexp(a)[1])


class Arithmetic:
    """What every arithmetic of the chain shares; ``ops`` does selections and flags.

    Node values are plain numbers here; ``reference.batch`` keeps pairs (hi + lo) instead and
    overrides the methods that read them (``value``, ``magnitude``, ``round``, ``distance``)."""

    ops: Any = ScalarOps
    zero: Any = 0
    grow: Any = 1

    def begin(self, name: str) -> None:
        """A node's bound starts (arithmetics that track exactness per node reset here)."""

    def end(self, name: str, operands: Sequence[str]) -> None:
        """A node's bound is done; ``operands``: the nodes it read."""

    def value(self, v, bound: bool = False):
        """The number that stands for a node value (``bound``: it enters a bound term)."""
        return v

    def plain(self, m):
        """A magnitude as one number."""
        return m

    def magnitude(self, v):
        return abs(self.value(v))

    def add(self, a, b):
        return a + b

    def mul(self, a, b):
        return a * b

    @staticmethod
    def abs(a):
        return abs(a)

    @staticmethod
    def widen(m, e):
        return m + e

    def magnitudes(self, v, prop, kind):
        """(upper, lower) magnitude of the exact result of an operation on computed operands."""
        mag = abs(self.value(v))
        return mag + prop, self.ops.maximum(mag - prop, self.zero)

    @staticmethod
    def round(fmt: Format, value) -> "float | Fraction":
        """``value`` rounded to ``fmt``: a float, or an exact Fraction for a format wider than
        binary64 (x87)."""
        return fmt.round_exact(value) if fmt.p > 53 else fmt.round(value)


class ExactArithmetic(Arithmetic):
    """Every term an exact ``fractions.Fraction``: the definition of float64's bounds, which
    :class:`DyadicArithmetic` computes (tests/test_dyadic.py holds the two equal)."""

    zero = Fraction(0)
    grow = 1

    @staticmethod
    def exact(v: Dyadic) -> Fraction:
        """How this arithmetic holds a node's exact value."""
        return v.as_fraction()

    @staticmethod
    def constant(c) -> Fraction:
        return Fraction(c)

    @staticmethod
    def half_ulp(fmt: Format, m) -> Fraction:
        """ulp(M)/2 in ``fmt``, for any 0 <= M."""
        if m <= 0:
            return Fraction(0)
        n, d = m.numerator, m.denominator
        e = n.bit_length() - d.bit_length()
        if (n << max(0, -e)) < (d << max(0, e)):
            e -= 1
        return Fraction(2) ** (max(e, fmt.emin) - fmt.p)

    @staticmethod
    def below(m, limit) -> bool:
        return m < limit

    @staticmethod
    def at_least(m, limit) -> bool:
        return m >= limit

    @staticmethod
    def overflows(m, limit) -> bool:
        return not m <= limit

    @staticmethod
    def distance(c: "float | Fraction", value) -> Fraction:
        """|c - value| (0 for an overflowed c, which the caller discards)."""
        return abs(Fraction(c) - value) if ScalarOps.isfinite(c) else Fraction(0)

    @staticmethod
    def finish(error, name: str):
        return error


class DyadicArithmetic(ExactArithmetic):
    """:class:`ExactArithmetic`'s terms, each a :class:`~reference.dyadic.Dyadic` (every term of
    the chain is a dyadic rational): integer arithmetic with no gcd per operation, several times
    faster than Fractions; the bounds come out as the same Fractions."""

    zero = Dyadic(0)

    @staticmethod
    def exact(v: Dyadic) -> Dyadic:
        return v

    constant = staticmethod(dyadic)

    @staticmethod
    def half_ulp(fmt: Format, m: Dyadic) -> Dyadic:
        """ulp(M)/2 in ``fmt``, for any 0 <= M."""
        if m <= 0:
            return Dyadic(0)
        return Dyadic(1, max(m.exponent(), fmt.emin) - fmt.p)

    @staticmethod
    def distance(c: "float | Fraction", value: Dyadic) -> Dyadic:
        """|c - value| (0 for an overflowed c, which the caller discards)."""
        return abs(dyadic(c) - value) if ScalarOps.isfinite(c) else Dyadic(0)

    @staticmethod
    def finish(error: Dyadic, name: str) -> Fraction:
        return error.as_fraction()

    @staticmethod
    def round(fmt: Format, value: "Dyadic | float | Fraction") -> "float | Fraction":
        """(a term, or a value already rounded to a wider format)"""
        return Arithmetic.round(fmt, value.as_fraction() if type(value) is Dyadic else value)


class Binary64Arithmetic(Arithmetic):
    """binary64 with every ulp taken of a magnitude inflated by ``1 + SLACK`` and every bound
    rounded up by it at the end (spec/tolerances.md 2.7).  Node values are the exact values
    rounded to binary64 (relative error 2**-53), never values computed from rounded operands.

    Written with operators and ``ops`` only: the same methods run on Python floats
    (:class:`ScalarOps`), on numpy arrays and traced into the compiled kernel."""

    zero = 0.0
    grow = 1 + SLACK
    shrink = 1 - SLACK

    def __init__(self, ops: Any = ScalarOps) -> None:
        self.ops = ops

    @staticmethod
    def exact(v: Dyadic) -> float:
        """A node's exact value rounded to the nearest binary64 (as ``float()`` of its mpmath
        value: every term of a float-safe format's chain is a normal binary64 number)."""
        return as_float(v)

    @staticmethod
    def constant(c) -> float:
        return float(c)

    def half_ulp(self, fmt: Format, m):
        """ulp(M)/2 in ``fmt`` of the magnitude M inflated by the slack (0 for M <= 0)."""
        e = self.ops.maximum(self.ops.pow2floor(m * self.grow), fmt.smallest_normal)
        return self.ops.select(m > 0, e * 2.0 ** -fmt.p, 0.0)

    def below(self, m, limit):
        return m * self.grow < limit

    def at_least(self, m, limit):
        return m * self.shrink >= limit

    def overflows(self, m, limit):
        return self.ops.logical_not(m * self.grow <= limit)

    @staticmethod
    def distance(c: float, value) -> float:
        """|c - value| rounded up (0 for an overflowed c, which the caller discards)."""
        return _up(abs(Fraction(c) - to_fraction(value))) if math.isfinite(c) else 0.0

    def finish(self, error, name: str):
        return error * self.grow


EXACT_ARITHMETIC = ExactArithmetic()
DYADIC_ARITHMETIC = DyadicArithmetic()
BINARY64_ARITHMETIC = Binary64Arithmetic()


def _float_safe(fmt: Format) -> bool:
    """True when every term of a bound stays in binary64's normal range (see module doc)."""
    return fmt.emax <= 127 and fmt.emin >= -126


def case_bounds(
    fmt: "Format | str",
    inputs: "Mapping[str, Binary] | Sequence[Binary]",
    model: "Model | str" = IEEE,
    *,
    computed: "Mapping[str, float] | None" = None,
    exact_arithmetic: "bool | None" = None,
    arithmetic: "Arithmetic | None" = None,
) -> dict[str, Bound]:
    """Error bound of every quantity for one case: ``inputs`` = {w, b, x, t, lr} (or a
    ``reference.step.Case``).

    A-priori (from exact values) unless ``computed`` (an implementation's outputs) is given:
    then the rounding term of each returned result uses ``min(|exact| + propagated error,
    |computed|)`` as its magnitude, which is valid (a rounded result is at most that far from
    its operand-exact value) and can only tighten the bound.
    Returns, per quantity, an upper bound (``float`` or ``Fraction``) or :class:`OutOfDomain`.
    ``exact_arithmetic`` (default: where a format is not float-safe) runs the chain exactly (in
    :class:`DyadicArithmetic`), else in binary64; ``arithmetic`` names another one (the tests
    run :class:`ExactArithmetic`, the Fraction definition).
    """
    fmt, model = get_format(fmt), get_model(model)
    raw = dict(inputs) if isinstance(inputs, Mapping) else dict(zip(INPUTS, inputs))
    raw = {k: raw[k] for k in INPUTS}
    for name in INPUTS[:4]:
        fmt.check(float(raw[name]), name)
    lr = to_fraction(raw["lr"])
    lr_rounded = fmt.round(lr)
    lr_in_format = math.isfinite(lr_rounded) and to_fraction(lr_rounded) == lr
    if not lr_in_format and not model.lr_binary64:
        raise ValueError(
            f"lr = {float(lr)!r} is not a {fmt.name} value; round it to {fmt.name} first, "
            "or declare the lr-binary64 option (model 'ieee+lr-binary64')")
    if exact_arithmetic is None:
        exact_arithmetic = not _float_safe(fmt)
    A = arithmetic or (DYADIC_ARITHMETIC if exact_arithmetic else BINARY64_ARITHMETIC)
    # reference.exact's values (tests/test_dyadic.py), as the arithmetic holds them
    values = {k: A.exact(v) for k, v in dyadic_nodes(*(raw[k] for k in INPUTS)).items()}
    errors = {name: flush_error(A, fmt, model, values[name]) for name in INPUTS}
    if not lr_in_format:
        spread, overflow = rounding_spread(A, fmt, model, values["lr"])
        if overflow:
            raise ValueError(f"lr = {float(lr)!r} overflows {fmt.name}; it cannot be used there")
        errors["lr"] = max(errors["lr"], spread)
    chain = bound_chain(A, fmt, model, values, errors)
    out: dict[str, Bound] = {}
    for q, name in NODE_OF.items():
        if chain.flags[name]:
            origin = overflow_origin(ScalarOps, chain.flags, name)
            out[q] = OutOfDomain(chain.flags[name], A.finish(chain.errors[name], name),
                                 NODES[origin].name)
            continue
        err = chain.errors[name]
        if computed is not None and q in computed:
            err = tightened(chain, name, computed[q], err)
        out[q] = A.finish(err, name)
    return out


def flush_error(A: "Arithmetic", fmt: Format, model: Model, v: Any) -> Any:
    """The input error of an exact scalar input ``v`` of ``fmt``: ``|v|`` where ftz reads a
    subnormal as zero, else 0."""
    return abs(v) if model.ftz and 0 < abs(v) < A.constant(fmt.smallest_normal) else A.zero


def _text(q) -> str:
    """A magnitude for a message, also beyond float64's range."""
    try:
        return f"{float(q):.6g}"
    except OverflowError:
        n, d = q.as_integer_ratio()  # (a Fraction or a Dyadic)
        return f"about 2^{n.bit_length() - d.bit_length()}"


def _up(q: Fraction) -> float:
    """A float >= q (q >= 0)."""
    f = float(q)
    return f if Fraction(f) >= q else math.nextafter(f, math.inf)


def step_bounds(
    fmt: "Format | str", w: Binary, b: Binary, x: Binary, t: Binary, lr: Binary,
    model: "Model | str" = IEEE,
) -> dict[str, Bound]:
    """A-priori bounds of every quantity for one case."""
    return case_bounds(fmt, (w, b, x, t, lr), model)
