"""In float64 the update products lr*dL/dw and lr*dL/db are rounded toward zero instead of to nearest.

Comes from a hand-written or emulated binary64 multiply in the optimizer (software float, a
kernel that drops the low bits of the exact product) or a rounding mode left at FE_TOWARDZERO
around the update; the forward pass, the gradients and the subtractions round to nearest.
"""

import math
from fractions import Fraction

import numpy as np

DESCRIPTION = "In float64 the update products lr*dL/dw and lr*dL/db are rounded toward zero instead of to nearest."


def _mul_toward_zero(a, b):
    """a*b rounded toward zero in binary64 (subnormals included, no overflow to infinity)."""
    p = a * b  # rounded to nearest
    if not (math.isfinite(a) and math.isfinite(b)) or p == 0:
        return p  # special values, and exact zeros or results that already underflowed to 0
    exact = Fraction(a) * Fraction(b)
    # BUG: truncation: where rounding to nearest went away from zero (or overflowed), take the
    # neighbour toward zero instead
    if not math.isfinite(p) or abs(Fraction(p)) > abs(exact):
        p = math.copysign(math.nextafter(p, 0.0), p)
    return p


def step(w, b, x, t, lr, dtype="float32"):
    if dtype != "float64":
        raise NotImplementedError(f"unsupported dtype {dtype!r}: this implementation is float64 only")
    w, b, x, t, lr = (float(v) for v in (w, b, x, t, lr))
    with np.errstate(all="ignore"):  # inf/nan results are IEEE results here, not errors
        y = w * x + b  # binary64: each operation rounded to nearest, ties to even
        r = y - t
        loss = 0.5 * (r * r)
        dL_dy = r
        dL_dw = dL_dy * x
        dL_db = dL_dy
        w_new = w - _mul_toward_zero(lr, dL_dw)
        b_new = b - _mul_toward_zero(lr, dL_db)
    out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
           "w_new": w_new, "b_new": b_new}
    return {k: float(v) for k, v in out.items()}
