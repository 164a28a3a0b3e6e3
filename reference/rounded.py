"""The canonical rounded evaluation of the step in a format, and its legal variants.

Each operation is computed exactly (integer arithmetic) and rounded once to the format, as
IEEE 754 requires of +, -, * and fusedMultiplyAdd, with IEEE signed-zero and infinity rules.
An :class:`Variant` names *which* operations an implementation may fuse or pre-round; the
variants are data, so an implementation's results can be matched against each bit for bit.

Canonical order of operations (one rounding each), the nodes of ``reference.step``::

    p = w*x;  y = p + b;  r = y - t;  loss = 0.5*(r*r);  dL_dw = r*x;  dL_db = r
    w_new = w - lr*dL_dw;  b_new = b - lr*dL_db
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, NamedTuple, Protocol

from .formats import Format, get_format
from .model import WIDER, Model
from .step import INPUTS, NODE_OF, NODES, QUANTITIES, product_operand

__all__ = [
    "work_arithmetic",
    "Variant", "VARIANTS", "ALL_VARIANTS", "CANONICAL", "evaluate", "evaluate_variants",
    "admitted", "variants_for", "fl_mul", "fl_add", "fl_sub", "fl_fma", "Rounder", "Exactly",
    "evaluations", "Evaluations",
]


# --- IEEE operations in a format ------------------------------------------------------------
# Operands are values of a format: Python floats, or (x87 work only) exact ``Fraction``s for the
# nonzero finite values of a format wider than binary64.  The exact result is handed to a
# rounder once: a Format (one correct rounding) or a Rounder below (double rounding, flushing).


class Rounding(Protocol):
    def round_ratio(self, numerator: int, denominator: int) -> "float | Fraction": ...


# (``type(v) is float`` first: isinstance against Fraction, an ABC, is slow on hot paths)
def _finite(v) -> bool:
    return math.isfinite(v) if type(v) is float else True  # else: an exact x87 Fraction


def _negative(v) -> bool:
    """The sign bit (of a zero too)."""
    return math.copysign(1.0, v) < 0 if type(v) is float else v < 0


def _signed(v) -> float:
    """A float standing for ``v`` in IEEE special-value arithmetic: a nonzero finite exact value
    behaves as +-1 there (only its sign and that it is not zero matter)."""
    return v if type(v) is float else (-1.0 if v < 0 else 1.0)


class Exactly:
    """Rounding to a format wider than binary64 (x87): exact ``Fraction`` results."""

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt

    def round_ratio(self, numerator: int, denominator: int) -> "float | Fraction":
        return self.fmt.round_exact(Fraction(numerator, denominator))


class Rounder:
    """Rounding of an exact result through an optional wider format, with optional flushing.

    ``Rounder(F)`` rounds once to F; ``Rounder(F, via=W)`` rounds to W then to F (work done in
    the wider format W, rounded after each operation); ``flush=True`` flushes results below
    F's smallest normal to a zero of the same sign (flush-to-zero).
    """

    def __init__(self, fmt: Format, via: "Format | None" = None, flush: bool = False) -> None:
        self.fmt, self.via, self.flush = fmt, via, flush
        self._tiny = fmt.smallest_normal
        self._via = None if via is None else Exactly(via) if via.p > 53 else via

    def round_ratio(self, numerator: int, denominator: int) -> float:
        if self._via is None:
            r = self.fmt.round_ratio(numerator, denominator)
        else:
            r = self.fmt.round(self._via.round_ratio(numerator, denominator))
        return self.flush_value(r)

    def round(self, value: "float | Fraction") -> float:
        """A value (of a wider format) rounded to this one, flushed if so declared."""
        if not _finite(value) or value == 0:
            return value
        n, d = value.as_integer_ratio()
        return self.round_ratio(n, d)

    def flush_value(self, r: float) -> float:
        if self.flush and abs(r) < self._tiny:
            return math.copysign(0.0, r)
        return r


def fl_mul(fmt: Rounding, a, b):
    """fl(a*b): the exact product rounded once; a zero product has sign sign(a) xor sign(b)."""
    if not (_finite(a) and _finite(b)):
        return _signed(a) * _signed(b)  # inf/nan rules are the same in every binary format
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    if na == 0 or nb == 0:
        return -0.0 if _negative(a) != _negative(b) else 0.0
    return fmt.round_ratio(na * nb, da * db)


def fl_add(fmt: Rounding, a, b):
    """fl(a+b): an exact zero sum is +0, except (-0) + (-0) = -0 (roundTiesToEven)."""
    if not (_finite(a) and _finite(b)):
        return _signed(a) + _signed(b)
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    n = na * db + nb * da
    if n == 0:
        return -0.0 if (_negative(a) and _negative(b)) else 0.0
    return fmt.round_ratio(n, da * db)


def fl_sub(fmt: Rounding, a, b):
    """fl(a-b) = fl(a + (-b)): negation is exact."""
    return fl_add(fmt, a, -b)


def fl_fma(fmt: Rounding, a, b, c):
    """fl(a*b + c) with a single rounding (IEEE fusedMultiplyAdd)."""
    if not (_finite(a) and _finite(b) and _finite(c)):
        if not (_finite(a) and _finite(b)):
            return (_signed(a) * _signed(b)) + _signed(c)
        return _signed(c) + 0.0 * _signed(a)  # finite product + inf/nan = c (nan stays nan)
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    nc, dc = c.as_integer_ratio()
    n = na * nb * dc + nc * da * db
    if n == 0:
        prod_negative = _negative(a) != _negative(b)
        if na * nb == 0 and nc == 0 and prod_negative and _negative(c):
            return -0.0
        return 0.0
    return fmt.round_ratio(n, da * db * dc)


# --- variants -------------------------------------------------------------------------------

WORKS = ("format", "wide-per-op", "wide-kept")
SQUARES = ("rounded", "one-ulp")


@dataclass(frozen=True)
class Variant:
    """One legal evaluation of the step's formulas in a format.

    forward_fused: y = fl(w*x + b) in one rounding (fused multiply-add) instead of fl(fl(w*x) + b).
    update_fused:  w_new = fl(w - lr*g) in one rounding instead of fl(w - fl(lr*g)).
    lr_rounded:    the learning rate is first rounded to the parameter format (as torch does
                   with a Python-float lr); a no-op when lr is already a value of the format.
    square:        "rounded": r*r correctly rounded; "one-ulp": the square returned one ulp
                   off in the worse direction (the most a pow() with < 1 ulp error can do).
    work:          "format": every operation rounds to the format; "wide-per-op": each
                   operation is computed in the next wider format (``model.WIDER``: float32 for
                   float16/bfloat16, binary64 for float32, x87 for float64) and rounded to the
                   format; "wide-kept": everything in the wider format, each output rounded to
                   the format only when stored (C's FLT_EVAL_METHOD 1 and 2, fusing compilers).
    ftz:           subnormal inputs are read as zero and subnormal results flushed to zero.
    grad_doubled:  dL/dr computed as autograd does, 0.5*(2*r): the value of r, except that 2*r
                   may overflow.
    """

    name: str
    forward_fused: bool = False
    update_fused: bool = False
    lr_rounded: bool = False
    square: str = "rounded"
    work: str = "format"
    ftz: bool = False
    grad_doubled: bool = False

    def __hash__(self) -> int:  # the name alone: a plan is looked up by up to 96 variants
        return hash(self.name)

    def describe(self, fmt: "Format | str | None" = None) -> str:
        wide = WIDER[get_format(fmt).name].name if fmt is not None else "the wider format"
        parts = [
            "fused forward fl(w*x+b)" if self.forward_fused else "forward fl(fl(w*x)+b)",
            "fused update fl(w-lr*g)" if self.update_fused else "update fl(w-fl(lr*g))",
            "lr rounded to the format" if self.lr_rounded else "lr as given",
        ]
        if self.square != "rounded":
            parts.append("square one ulp off")
        if self.work != "format":
            parts.append({"wide-per-op": f"each operation in {wide}, then rounded",
                          "wide-kept": f"kept in {wide}, rounded when stored"}[self.work])
        if self.ftz:
            parts.append("flush-to-zero")
        if self.grad_doubled:
            parts.append("gradient 0.5*(2*r)")
        return ", ".join(parts)


def _variant_name(ff: bool, uf: bool, lr: bool, square: str = "rounded", work: str = "format",
                  ftz: bool = False, grad: bool = False) -> str:
    flags = (("fused-forward", ff), ("fused-update", uf), ("lr-rounded", lr),
             ("pow-one-ulp", square == "one-ulp"), (work, work != "format"), ("ftz", ftz),
             ("autograd-2r", grad))
    return "+".join(p for p, on in flags if on) or "canonical"


def _make(ff, uf, lr, square="rounded", work="format", ftz=False, grad=False) -> Variant:
    return Variant(_variant_name(ff, uf, lr, square, work, ftz, grad), ff, uf, lr, square,
                   work, ftz, grad)


#: The bit-exact evaluation orders an IEEE implementation may use for the seed's formulas.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (_make(ff, uf, lr) for lr in (False, True) for uf in (False, True) for ff in (False, True))
}
CANONICAL = VARIANTS["canonical"]

#: Every variant: also the one-ulp square, wider work, flush-to-zero and autograd's 2*r.
ALL_VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        _make(ff, uf, lr, sq, work, ftz, grad)
        for grad in (False, True) for ftz in (False, True) for work in WORKS for sq in SQUARES
        for lr in (False, True) for uf in (False, True) for ff in (False, True)
    )
}


def admitted(fmt: "Format | str", model: Model, *, lr_in_format: bool = True) -> list[Variant]:
    """The evaluations ``model`` admits in ``fmt``, bit for bit (lr-rounded ones only when lr
    is not a value of the format: elsewhere they equal the same variant with lr as given)."""
    return list(_admitted(get_format(fmt), model, lr_in_format))


@functools.lru_cache(maxsize=None)
def _admitted(fmt: Format, model: Model, lr_in_format: bool) -> tuple[Variant, ...]:
    wide = model.wide_format(fmt) is not None
    return tuple(v for v in ALL_VARIANTS.values()
                 if not (v.lr_rounded and lr_in_format)
                 and (v.square == "rounded" or model.pow_square)
                 and (v.work == "format" or wide)
                 and (model.ftz or not v.ftz))


def variants_for(fmt: "Format | str", *, lr_in_format: bool = True, pow_square: bool = True,
                 wide_work: bool = True, ftz: bool = False, wide_all: bool = False
                 ) -> list[Variant]:
    """The variants a model with these switches admits in ``fmt`` (see :func:`admitted`)."""
    model = Model("variants", pow_square=pow_square, wide_work=wide_work, ftz=ftz,
                  wide_all=wide_all)
    return admitted(fmt, model, lr_in_format=lr_in_format)


def _next_exact(fmt: Format, v: "Fraction | float", up: bool) -> "Fraction | float":
    """The neighbour of a finite value of ``fmt`` (any format, exactly; inf past the top)."""
    if not isinstance(v, Fraction) and fmt.p <= 53:
        return fmt.next_up(v) if up else fmt.next_down(v)
    q = Fraction(v)
    if q == 0:
        step = fmt.smallest_subnormal_exact
        return step if up else -step
    e = fmt.exponent(q)
    gap = Fraction(2) ** (e - fmt.p + 1)
    if (q > 0) != up and abs(q) == Fraction(2) ** e and e > fmt.emin:
        gap /= 2  # toward zero from a power of two: the binade below is finer
    r = q + gap if up else q - gap
    if abs(r) > fmt.largest_finite_exact:
        return math.inf if r > 0 else -math.inf
    return r if r != 0 else (0.0 if up else -0.0)


def _one_ulp_square(rounder: Rounding, fmt: Format, r):
    """r*r returned one ulp away from the correctly rounded square, in the worse direction."""
    if not _finite(r):
        return _signed(r) * _signed(r)
    n, d = r.as_integer_ratio()
    rn = rounder.round_ratio(n * n, d * d)
    if not _finite(rn) or rn == 0 and n == 0:
        return rn
    rn_n, rn_d = rn.as_integer_ratio()  # (a float, or an exact x87 Fraction)
    above = rn_n * d * d > n * n * rn_d  # rn > r*r, compared exactly
    return _next_exact(fmt, rn, up=not above)


def evaluate(
    fmt: "Format | str",
    w: float,
    b: float,
    x: float,
    t: float,
    lr: float,
    variant: "Variant | str" = CANONICAL,
) -> dict[str, float]:
    """Evaluate the step in ``fmt`` under ``variant``; returns every quantity as a Python float.

    ``w, b, x, t`` must be values of ``fmt``; ``lr`` may be any binary64 value (it is used as
    given unless the variant rounds it).
    """
    v = ALL_VARIANTS[variant] if isinstance(variant, str) else variant
    return evaluate_variants(fmt, w, b, x, t, lr, [v])[v.name]


def evaluate_variants(
    fmt: "Format | str", w: float, b: float, x: float, t: float, lr: float,
    variants: Iterable[Variant],
) -> dict[str, dict[str, float]]:
    """Evaluate several variants on one case, sharing the operations they have in common."""
    return evaluations(fmt, w, b, x, t, lr, variants).by_variant()


@dataclass(frozen=True)
class Evaluations:
    """Several variants evaluated on one case: the distinct results and which variants give
    each, so that a caller grouping them by value (``reference.legal``) compares a handful of
    results, not one per variant."""

    names: tuple[str, ...]  # the variants by kind of work, each kind's in the order given
    results: list  # the distinct results of every quantity
    outputs: tuple[tuple[int, ...], ...]  # per variant, per quantity: an index into results
    #: per quantity: (index into results, the indices of the variants giving it), in the order
    #: of each result's first variant
    groups: dict[str, tuple[tuple[int, tuple[int, ...]], ...]]

    def by_variant(self) -> dict[str, dict[str, float]]:
        return {name: {q: self.results[i] for q, i in zip(QUANTITIES, out)}
                for name, out in zip(self.names, self.outputs)}


def evaluations(fmt: "Format | str", w: float, b: float, x: float, t: float, lr: float,
                variants: Iterable[Variant]) -> Evaluations:
    """The results of ``variants`` on one case (:class:`Evaluations`): every distinct operation
    of theirs computed once, in the order a precomputed plan lists them."""
    fmt = get_format(fmt)
    for name, val in (("w", w), ("b", b), ("x", x), ("t", t)):
        fmt.check(val, name)
    if not isinstance(lr, float) or not math.isfinite(lr):
        raise ValueError(f"lr = {lr!r} must be a finite float")
    plan = _plan(tuple(variants))
    values = [None] * plan.size
    arithmetics, stores = [], []
    for i, (work, ftz, lr_rounded) in enumerate(plan.contexts):
        ops, sq_fmt, store = work_arithmetic(fmt, work, ftz)
        arithmetics.append((ops, sq_fmt))
        stores.append(store)
        values[i * len(INPUTS):(i + 1) * len(INPUTS)] = _inputs(fmt, ftz, lr_rounded,
                                                                 (w, b, x, t, lr))
    for slot, context, operation, args, twin, twin_args in plan.steps:
        if twin is not None and all(values[a] is values[c] for a, c in zip(args, twin_args)):
            values[slot] = values[twin]  # the same operation on the same operands
            continue
        ops, sq_fmt = arithmetics[context]
        values[slot] = operation(ops, sq_fmt, *[values[a] for a in args])
    results = [stores[context](values[slot]) for slot, context in plan.stored]
    return Evaluations(plan.names, results, plan.outputs, plan.groups)


@functools.lru_cache(maxsize=None)
def work_arithmetic(fmt: Format, work: str, ftz: bool) -> tuple:
    """(what rounds each operation, the format a one-ulp square is off in, what rounds a
    result when it is stored) for one kind of work."""
    wide = WIDER[fmt.name]
    if work == "format":
        return (Rounder(fmt, flush=ftz) if ftz else fmt), fmt, _as_is
    if work == "wide-per-op":
        return Rounder(fmt, via=wide, flush=ftz), fmt, _as_is
    if work == "wide-kept":
        return (Exactly(wide) if wide.p > 53 else wide), wide, Rounder(fmt, flush=ftz).round
    raise ValueError(f"unknown work mode {work!r}; choose one of {', '.join(WORKS)}")


def _as_is(value):
    return value


def _inputs(fmt: Format, ftz: bool, lr_rounded: bool, case: tuple) -> list:
    """The inputs as an evaluation reads them: subnormals as zeros under flush-to-zero
    (denormals-are-zero), lr rounded to the format where the variant rounds it."""
    w, b, x, t, lr = case
    if ftz:
        tiny = fmt.smallest_normal
        w, b, x, t = (math.copysign(0.0, a) if abs(a) < tiny else a for a in (w, b, x, t))
    if lr_rounded:
        lr = fmt.round(lr)
    if ftz and abs(lr) < fmt.smallest_normal:
        lr = math.copysign(0.0, lr)
    return [w, b, x, t, lr]


# --- the plan: which operations a set of variants needs, each listed once ------------------------

class _Plan(NamedTuple):
    names: tuple[str, ...]
    contexts: tuple[tuple[str, bool, bool], ...]  # (work, ftz, lr_rounded); inputs first
    steps: tuple[tuple, ...]  # (slot, context, operation, operand slots, twin, twin's operands)
    size: int  # slots: the inputs of each context, then one per step
    stored: tuple[tuple[int, int], ...]  # (slot, context) of each distinct result
    outputs: tuple[tuple[int, ...], ...]
    groups: dict


def _fused(ops, sq_fmt, u, v, c):
    return fl_fma(ops, u, v, c)


def _fused_negated(ops, sq_fmt, u, v, c):  # c - u*v
    return fl_fma(ops, -u, v, c)


def _doubled(ops, sq_fmt, r):
    """autograd's 0.5*(2*r): r itself (the same object), or an infinity where 2*r overflows."""
    if _finite(r) and not _finite(fl_mul(ops, 2.0, r)):
        return _signed(r) * math.inf
    return r


#: Each operation on the values it reads (after the arithmetic and the square's format).
_OPERATIONS: dict[str, Callable] = {
    "mul": lambda ops, sq_fmt, a, b: fl_mul(ops, a, b),
    "add": lambda ops, sq_fmt, a, b: fl_add(ops, a, b),
    "sub": lambda ops, sq_fmt, a, b: fl_sub(ops, a, b),
    "rounded": lambda ops, sq_fmt, r: fl_mul(ops, r, r),  # the square, correctly rounded
    "one-ulp": lambda ops, sq_fmt, r: _one_ulp_square(ops, sq_fmt, r),
    "half": lambda ops, sq_fmt, s: fl_mul(ops, 0.5, s),
    "fused": _fused,
    "fused-negated": _fused_negated,
    "doubled": _doubled,
}


def _operation(node, v: Variant) -> tuple[str, tuple[str, ...]]:
    """How ``v`` computes ``node`` (a key of ``_OPERATIONS``) and the names of what it reads:
    fused with its product operand where the variant fuses the node's group."""
    fused = {"forward": v.forward_fused, "update": v.update_fused}.get(node.fusion, False)
    if fused:  # one rounding of a*b + c (a sum) or c - a*b (a difference)
        product, other = product_operand(node)
        negated = node.op == "sub" and node.args[1] == product.name
        return ("fused-negated" if negated else "fused"), product.args + (other,)
    if node.op == "square":
        return v.square, node.args
    if node.op == "grad":
        return ("doubled" if v.grad_doubled else "grad"), node.args
    return node.op, node.args


@functools.lru_cache(maxsize=256)
def _plan(variants: tuple[Variant, ...]) -> _Plan:
    """The operations ``variants`` need, each once: an operation is known by its context, node,
    kind and operand slots, so variants that agree up to a node share it.  Autograd's 2*r is
    r itself unless it overflows: each operation after it also names its *twin* (the same
    operation on the plain gradient's values), which it reuses where its operands turn out to
    be the twin's (no overflow), as a variant without 2*r would."""
    contexts: dict[tuple, int] = {}
    slots: dict[tuple, int] = {}
    steps: list[list] = []

    def step(context: int, node, kind: str, args: tuple[int, ...]) -> int:
        key = (context, node.name, kind, args)
        if key not in slots:
            slots[key] = base + len(steps)
            steps.append([slots[key], context, _OPERATIONS[kind], args, None, None])
        return slots[key]

    for v in variants:
        contexts.setdefault((v.work, v.ftz, v.lr_rounded), len(contexts))
    # the variants by context, each context's in the order given (the order results are listed)
    variants = tuple(sorted(variants, key=lambda v: contexts[(v.work, v.ftz, v.lr_rounded)]))
    base = len(contexts) * len(INPUTS)
    stored: dict[tuple[int, int], int] = {}
    outputs = []
    for v in variants:
        context = contexts[(v.work, v.ftz, v.lr_rounded)]
        values = {name: context * len(INPUTS) + i for i, name in enumerate(INPUTS)}
        plain = values  # the values of the twin variant without 2*r (the same until g)
        for node in NODES:
            kind, reads = _operation(node, v)
            if node.op == "grad":  # g = r, or autograd's 2*r
                r = values[reads[0]]
                if v.grad_doubled:
                    plain = dict(values, **{node.name: r})
                values[node.name] = step(context, node, kind, (r,)) if v.grad_doubled else r
                continue
            if plain is not values:
                twin_args = tuple(plain[a] for a in reads)
                plain[node.name] = twin = step(context, node, kind, twin_args)
            args = tuple(values[a] for a in reads)
            values[node.name] = step(context, node, kind, args)
            if plain is not values and values[node.name] != twin:
                steps[values[node.name] - base][4:] = [twin, twin_args]
        outputs.append(tuple(stored.setdefault((values[NODE_OF[q]], context), len(stored))
                             for q in QUANTITIES))
    groups = {}
    for j, q in enumerate(QUANTITIES):
        by_result: dict[int, list[int]] = {}
        for i, out in enumerate(outputs):
            by_result.setdefault(out[j], []).append(i)
        groups[q] = tuple((r, tuple(idx)) for r, idx in by_result.items())
    return _Plan(tuple(v.name for v in variants), tuple(contexts),
                 tuple(tuple(s) for s in steps), base + len(steps), tuple(stored),
                 tuple(outputs), groups)
