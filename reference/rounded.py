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

from .formats import FLOAT32, Format, get_format
from .step import INPUTS, NODE_OF, NODES, QUANTITIES, product_operand

__all__ = [
    "Variant", "VARIANTS", "ALL_VARIANTS", "CANONICAL", "evaluate", "evaluate_variants",
    "variants_for", "fl_mul", "fl_add", "fl_sub", "fl_fma", "Rounder",
]


# --- IEEE operations in a format ------------------------------------------------------------
# Operands are Python floats holding values of the format; the exact result is handed to a
# rounder once: a Format (one correct rounding) or a Rounder below (double rounding, flushing).


class Rounding(Protocol):
    def round_ratio(self, numerator: int, denominator: int) -> float: ...


class Rounder:
    """Rounding of an exact result through an optional wider format, with optional flushing.

    ``Rounder(F)`` rounds once to F; ``Rounder(F, via=FLOAT32)`` rounds to float32 then to F
    (float16/bfloat16 work done in float32); ``flush=True`` flushes results below F's smallest
    normal to a zero of the same sign (flush-to-zero).
    """

    def __init__(self, fmt: Format, via: "Format | None" = None, flush: bool = False) -> None:
        self.fmt, self.via, self.flush = fmt, via, flush
        self._tiny = fmt.smallest_normal

    def round_ratio(self, numerator: int, denominator: int) -> float:
        if self.via is None:
            r = self.fmt.round_ratio(numerator, denominator)
        else:
            r = self.fmt.round(self.via.round_ratio(numerator, denominator))
        return self.flush_value(r)

    def round(self, value: float) -> float:
        n, d = value.as_integer_ratio() if math.isfinite(value) else (None, None)
        if n is None:
            return value
        if n == 0:
            return value
        return self.round_ratio(n, d)

    def flush_value(self, r: float) -> float:
        if self.flush and abs(r) < self._tiny:
            return math.copysign(0.0, r)
        return r


_isfinite = math.isfinite


def fl_mul(fmt: Format, a: float, b: float) -> float:
    """fl(a*b): the exact product rounded once; a zero product has sign sign(a) xor sign(b)."""
    if not (_isfinite(a) and _isfinite(b)):
        return a * b  # inf/nan rules are the same in every binary format
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    if na == 0 or nb == 0:
        return math.copysign(0.0, a) * math.copysign(1.0, b)
    return fmt.round_ratio(na * nb, da * db)


def fl_add(fmt: Format, a: float, b: float) -> float:
    """fl(a+b): an exact zero sum is +0, except (-0) + (-0) = -0 (roundTiesToEven)."""
    if not (_isfinite(a) and _isfinite(b)):
        return a + b
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    n = na * db + nb * da
    if n == 0:
        return -0.0 if (math.copysign(1.0, a) < 0 and math.copysign(1.0, b) < 0) else 0.0
    return fmt.round_ratio(n, da * db)


def fl_sub(fmt: Format, a: float, b: float) -> float:
    """fl(a-b) = fl(a + (-b)): negation is exact."""
    return fl_add(fmt, a, -b)


def fl_fma(fmt: Format, a: float, b: float, c: float) -> float:
    """fl(a*b + c) with a single rounding (IEEE fusedMultiplyAdd)."""
    if not (_isfinite(a) and _isfinite(b) and _isfinite(c)):
        if not (_isfinite(a) and _isfinite(b)):
            return (a * b) + c
        return c + 0.0 * a  # finite product + inf/nan = c (nan stays nan)
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    nc, dc = c.as_integer_ratio()
    n = na * nb * dc + nc * da * db
    if n == 0:
        prod_negative = (math.copysign(1.0, a) < 0) != (math.copysign(1.0, b) < 0)
        if na * nb == 0 and nc == 0 and prod_negative and math.copysign(1.0, c) < 0:
            return -0.0
        return 0.0
    return fmt.round_ratio(n, da * db * dc)


# --- variants -------------------------------------------------------------------------------

WORKS = ("format", "float32-per-op", "float32-kept")
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
    work:          "format": every operation rounds to the format; "float32-per-op": each
                   operation is computed in float32 and rounded to the format (float16/bfloat16
                   kernels on CPUs); "float32-kept": everything in float32, each output rounded
                   to the format only when stored (fusing compilers).
    ftz:           subnormal inputs are read as zero and subnormal results flushed to zero.
    """

    name: str
    forward_fused: bool = False
    update_fused: bool = False
    lr_rounded: bool = False
    square: str = "rounded"
    work: str = "format"
    ftz: bool = False

    def describe(self) -> str:
        parts = [
            "fused forward fl(w*x+b)" if self.forward_fused else "forward fl(fl(w*x)+b)",
            "fused update fl(w-lr*g)" if self.update_fused else "update fl(w-fl(lr*g))",
            "lr rounded to the format" if self.lr_rounded else "lr as given",
        ]
        if self.square != "rounded":
            parts.append("square one ulp off")
        if self.work != "format":
            parts.append({"float32-per-op": "each operation in float32, then rounded",
                          "float32-kept": "kept in float32, rounded when stored"}[self.work])
        if self.ftz:
            parts.append("flush-to-zero")
        return ", ".join(parts)


def _variant_name(ff: bool, uf: bool, lr: bool, square: str = "rounded", work: str = "format",
                  ftz: bool = False) -> str:
    flags = (("fused-forward", ff), ("fused-update", uf), ("lr-rounded", lr),
             ("pow-one-ulp", square == "one-ulp"), (work, work != "format"), ("ftz", ftz))
    return "+".join(p for p, on in flags if on) or "canonical"


def _make(ff, uf, lr, square="rounded", work="format", ftz=False) -> Variant:
    return Variant(_variant_name(ff, uf, lr, square, work, ftz), ff, uf, lr, square, work, ftz)


#: The bit-exact evaluation orders an IEEE implementation may use for the seed's formulas.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (_make(ff, uf, lr) for lr in (False, True) for uf in (False, True) for ff in (False, True))
}
CANONICAL = VARIANTS["canonical"]

#: Every variant, including the adversarial one-ulp square, float32 work and flush-to-zero.
ALL_VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        _make(ff, uf, lr, sq, work, ftz)
        for ftz in (False, True) for work in WORKS for sq in SQUARES
        for lr in (False, True) for uf in (False, True) for ff in (False, True)
    )
}


def variants_for(fmt: "Format | str", *, lr_in_format: bool = True, pow_square: bool = True,
                 wide_work: bool = True, ftz: bool = False) -> list[Variant]:
    """The variants a model admits in ``fmt`` (lr-rounded ones only when lr is not in fmt)."""
    fmt = get_format(fmt)
    out = []
    for v in ALL_VARIANTS.values():
        if v.lr_rounded and lr_in_format:
            continue  # identical to the same variant with lr as given
        if v.square == "one-ulp" and not pow_square:
            continue
        if v.work != "format" and not (wide_work and fmt.p < FLOAT32.p):
            continue
        if v.ftz and not ftz:
            continue
        out.append(v)
    return out


def _one_ulp_square(rounder: Rounding, fmt: Format, r: float) -> float:
    """r*r returned one ulp away from the correctly rounded square, in the worse direction."""
    if not math.isfinite(r):
        return r * r
    n, d = r.as_integer_ratio()
    exact = Fraction(n * n, d * d)
    rn = rounder.round_ratio(n * n, d * d)
    if not math.isfinite(rn) or rn == 0.0 and exact == 0:
        return rn
    if Fraction(rn) > exact:
        return fmt.next_down(rn)
    return fmt.next_up(rn)


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
    if work == "format":
        ops = Rounder(fmt, flush=ftz) if ftz else fmt
        store = (lambda v: v)
        sq_fmt = fmt
    elif work == "float32-per-op":
        ops = Rounder(fmt, via=FLOAT32, flush=ftz)
        store = (lambda v: v)
        sq_fmt = fmt
    elif work == "float32-kept":
        ops = FLOAT32
        out_rounder = Rounder(fmt, flush=ftz)
        store = out_rounder.round
        sq_fmt = FLOAT32
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
        fused = {"forward"} if v.forward_fused else set()
        if v.update_fused:
            fused.add("update")
        for node in NODES:
            key = (node.name,) + tuple(k for k, on in (("forward", "forward" in fused),
                                                          ("update", "update" in fused),
                                                          (v.square, True))
                                      if on and k in _DEPENDS[node.name])
            if key not in cache:
                cache[key] = _rounded_node(node, values, ops, sq_fmt, fused, v.square)
            values[node.name] = cache[key]
        results[v.name] = {q: store(values[NODE_OF[q]]) for q in QUANTITIES}
    return results


def _rounded_node(node, values, ops, sq_fmt, fused, square):
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
    return args[0]  # grad: autograd's 0.5*(2*r) is r


def _dependencies() -> dict[str, set[str]]:
    """Per node, which variant dimensions can change its value: "forward" (fused y), "update"
    (fused updates) and the square modes (through sq)."""
    deps: dict[str, set[str]] = {}
    for node in NODES:
        mine = set().union(*(deps.get(a, set()) for a in node.args))
        if node.fusion:
            mine.add(node.fusion)
        if node.op == "square":
            mine.update(SQUARES)
        deps[node.name] = mine
    return deps


_DEPENDS = _dependencies()
