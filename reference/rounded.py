"""The canonical rounded evaluation of the step in a format, and its legal variants.

Each operation is computed exactly (integer arithmetic) and rounded once to the format, as
IEEE 754 requires of +, -, * and fusedMultiplyAdd, with IEEE signed-zero and infinity rules.
An :class:`Variant` names *which* operations an implementation may fuse or pre-round; the
variants are data, so an implementation's results can be matched against each bit for bit.

Canonical order of operations (one rounding each)::

    p = w*x;  y = p + b;  r = y - t;  loss = 0.5*(r*r);  dL_dw = r*x;  dL_db = r
    w_new = w - lr*dL_dw;  b_new = b - lr*dL_db
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .formats import Format, get_format

__all__ = ["Variant", "VARIANTS", "CANONICAL", "evaluate", "fl_mul", "fl_add", "fl_sub", "fl_fma"]


# --- IEEE operations in a format ------------------------------------------------------------
# Operands are Python floats holding values of the format; results are rounded once.


def _finite(*xs: float) -> bool:
    return all(math.isfinite(x) for x in xs)


def fl_mul(fmt: Format, a: float, b: float) -> float:
    """fl(a*b): the exact product rounded once; a zero product has sign sign(a) xor sign(b)."""
    if not _finite(a, b):
        return a * b  # inf/nan rules are the same in every binary format
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    if na == 0 or nb == 0:
        return math.copysign(0.0, a) * math.copysign(1.0, b)
    return fmt.round_ratio(na * nb, da * db)


def fl_add(fmt: Format, a: float, b: float) -> float:
    """fl(a+b): an exact zero sum is +0, except (-0) + (-0) = -0 (roundTiesToEven)."""
    if not _finite(a, b):
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
    if not _finite(a, b, c):
        if not _finite(a, b):
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


@dataclass(frozen=True)
class Variant:
    """One legal evaluation of the step's formulas in a format.

    forward_fused: y = fl(w*x + b) in one rounding (fused multiply-add) instead of fl(fl(w*x) + b).
    update_fused:  w_new = fl(w - lr*g) in one rounding instead of fl(w - fl(lr*g)).
    lr_rounded:    the learning rate is first rounded to the parameter format (as torch does
                   with a Python-float lr); a no-op when lr is already a value of the format.
    """

    name: str
    forward_fused: bool = False
    update_fused: bool = False
    lr_rounded: bool = False

    def describe(self) -> str:
        parts = [
            "fused forward fl(w*x+b)" if self.forward_fused else "forward fl(fl(w*x)+b)",
            "fused update fl(w-lr*g)" if self.update_fused else "update fl(w-fl(lr*g))",
            "lr rounded to the format" if self.lr_rounded else "lr as given",
        ]
        return ", ".join(parts)


def _variant_name(ff: bool, uf: bool, lr: bool) -> str:
    parts = [p for p, on in (("fused-forward", ff), ("fused-update", uf), ("lr-rounded", lr)) if on]
    return "+".join(parts) or "canonical"


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(_variant_name(ff, uf, lr), ff, uf, lr)
        for lr in (False, True)
        for uf in (False, True)
        for ff in (False, True)
    )
}
CANONICAL = VARIANTS["canonical"]


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
    fmt = get_format(fmt)
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    for name, val in (("w", w), ("b", b), ("x", x), ("t", t)):
        fmt.check(val, name)
    if not isinstance(lr, float) or not math.isfinite(lr):
        raise ValueError(f"lr = {lr!r} must be a finite float")
    if v.lr_rounded:
        lr = fmt.round(lr)
    if v.forward_fused:
        y = fl_fma(fmt, w, x, b)
    else:
        y = fl_add(fmt, fl_mul(fmt, w, x), b)
    r = fl_sub(fmt, y, t)
    loss = fl_mul(fmt, 0.5, fl_mul(fmt, r, r))
    dL_dw = fl_mul(fmt, r, x)
    dL_db = r
    if v.update_fused:
        w_new = fl_fma(fmt, -lr, dL_dw, w)
        b_new = fl_fma(fmt, -lr, dL_db, b)
    else:
        w_new = fl_sub(fmt, w, fl_mul(fmt, lr, dL_dw))
        b_new = fl_sub(fmt, b, fl_mul(fmt, lr, dL_db))
    return {"y": y, "dL_dy": r, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
            "w_new": w_new, "b_new": b_new}
