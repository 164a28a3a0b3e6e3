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

import math
from dataclasses import dataclass
from fractions import Fraction

from typing import Iterable, Protocol

from .formats import Format, get_format
from .model import WIDER, Model
from .step import INPUTS, NODE_OF, NODES, QUANTITIES, product_operand

__all__ = [
    "Variant", "VARIANTS", "ALL_VARIANTS", "CANONICAL", "evaluate", "evaluate_variants",
    "admitted", "variants_for", "fl_mul", "fl_add", "fl_sub", "fl_fma", "Rounder", "Exactly",
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
    fmt = get_format(fmt)
    wide = model.wide_format(fmt) is not None
    return [v for v in ALL_VARIANTS.values()
            if not (v.lr_rounded and lr_in_format)
            and (v.square == "rounded" or model.pow_square)
            and (v.work == "format" or wide)
            and (model.ftz or not v.ftz)]


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
    exact = Fraction(n * n, d * d)
    rn = rounder.round_ratio(n * n, d * d)
    if not _finite(rn) or rn == 0 and exact == 0:
        return rn
    return _next_exact(fmt, rn, up=not Fraction(rn) > exact)


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
    fmt = get_format(fmt)
    for name, val in (("w", w), ("b", b), ("x", x), ("t", t)):
        fmt.check(val, name)
    if not isinstance(lr, float) or not math.isfinite(lr):
        raise ValueError(f"lr = {lr!r} must be a finite float")
    groups: dict[tuple, list[Variant]] = {}
    for v in variants:
        groups.setdefault((v.work, v.ftz, v.lr_rounded), []).append(v)
    out: dict[str, dict[str, float]] = {}
    for (work, ftz, lr_rounded), vs in groups.items():
        out.update(_evaluate_group(fmt, work, ftz, lr_rounded, vs, w, b, x, t, lr))
    return out


def _evaluate_group(fmt, work, ftz, lr_rounded, variants, w, b, x, t, lr):
    wide = WIDER[fmt.name]
    if work == "format":
        ops = Rounder(fmt, flush=ftz) if ftz else fmt
        store = (lambda v: v)
        sq_fmt = fmt
    elif work == "wide-per-op":
        ops = Rounder(fmt, via=wide, flush=ftz)
        store = (lambda v: v)
        sq_fmt = fmt
    elif work == "wide-kept":
        ops = Exactly(wide) if wide.p > 53 else wide
        out_rounder = Rounder(fmt, flush=ftz)
        store = out_rounder.round
        sq_fmt = wide
    else:
        raise ValueError(f"unknown work mode {work!r}; choose one of {', '.join(WORKS)}")
    if ftz:  # denormals-are-zero on the inputs
        tiny = fmt.smallest_normal
        w, b, x, t = (math.copysign(0.0, a) if abs(a) < tiny else a for a in (w, b, x, t))
    if lr_rounded:
        lr = fmt.round(lr)
    if ftz and abs(lr) < fmt.smallest_normal:
        lr = math.copysign(0.0, lr)
    inputs = dict(zip(INPUTS, (w, b, x, t, lr)))
    results = {}
    cache: dict = {}  # node values shared by the variants (keyed by what they depend on)
    for v in variants:
        values = dict(inputs)
        on = {"forward": v.forward_fused, "update": v.update_fused, "grad": v.grad_doubled}
        fused = {k for k in ("forward", "update") if on[k]}
        for node in NODES:
            deps = _DEPENDS[node.name]
            key = (node.name,) + tuple(k for k in ("forward", "update", "grad")
                                       if on[k] and k in deps) \
                + ((v.square,) if v.square in deps else ())
            if key not in cache:
                cache[key] = _rounded_node(node, values, ops, sq_fmt, fused, v.square,
                                           v.grad_doubled)
            values[node.name] = cache[key]
            if node.op == "grad" and on["grad"] and values[node.name] is values[node.args[0]]:
                on["grad"] = False  # 2*r did not overflow: from here, the plain gradient's
        results[v.name] = {q: store(values[NODE_OF[q]]) for q in QUANTITIES}
    return results


def _rounded_node(node, values, ops, sq_fmt, fused, square, grad_doubled):
    """One node of the step rounded by ``ops``: fused with its product operand where the
    variant fuses the node's group; the square one ulp off where the variant says so."""
    args = [values[a] for a in node.args]
    if node.fusion in fused:  # one rounding of a*b + c (a sum) or c - a*b (a difference)
        product, other = product_operand(node)
        u, v = (values[a] for a in product.args)
        if node.op == "sub" and node.args[1] == product.name:
            u = -u
        return fl_fma(ops, u, v, values[other])
    if node.op == "mul":
        return fl_mul(ops, *args)
    if node.op == "add":
        return fl_add(ops, *args)
    if node.op == "sub":
        return fl_sub(ops, *args)
    if node.op == "square":
        r = args[0]
        return _one_ulp_square(ops, sq_fmt, r) if square == "one-ulp" else fl_mul(ops, r, r)
    if node.op == "half":
        return fl_mul(ops, 0.5, args[0])
    r = args[0]
    if grad_doubled and _finite(r) and not _finite(fl_mul(ops, 2.0, r)):
        return _signed(r) * math.inf  # autograd's 0.5*(2*r): 2*r overflowed
    return r  # grad: the value of r (0.5*(2*r) is exactly r where 2*r is finite)


def _dependencies() -> dict[str, set[str]]:
    """Per node, which variant dimensions can change its value: "forward" (fused y), "update"
    (fused updates), "grad" (autograd's 2*r) and the square modes (through sq)."""
    deps: dict[str, set[str]] = {}
    for node in NODES:
        mine = set().union(*(deps.get(a, set()) for a in node.args))
        if node.fusion:
            mine.add(node.fusion)
        if node.op == "square":
            mine.update(SQUARES)
        if node.op == "grad":
            mine.add("grad")
        deps[node.name] = mine
    return deps


_DEPENDS = _dependencies()
