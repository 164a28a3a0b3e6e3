"""Every operation is rounded to nearest with ties away from zero instead of ties to even.

Comes from a soft-float library or a hand-written rounding helper built on ``floor(x + 0.5)``
(roundTiesToAway, IEEE's rounding for decimal formats); results differ from IEEE's default
rounding only where an exact result lies exactly halfway between two values of the format.
"""

import math
from fractions import Fraction

DESCRIPTION = "Every operation is rounded to nearest with ties away from zero instead of ties to even."

# precision p (hidden bit included), emin and emax of each format
_FORMATS = {"float16": (11, -14, 15), "bfloat16": (8, -126, 127),
            "float32": (24, -126, 127), "float64": (53, -1022, 1023)}


def _round(fmt, q):
    """The exact nonzero rational ``q`` rounded to the format, to nearest, ties away from zero;
    subnormals kept, overflow to a signed infinity, underflow to a signed zero."""
    p, emin, emax = fmt
    negative = q < 0
    n, d = abs(q.numerator), q.denominator
    e = n.bit_length() - d.bit_length()  # e = floor(log2 |q|)
    if (n << max(0, -e)) < (d << max(0, e)):
        e -= 1
    k = max(e, emin) - p + 1  # exponent of the last kept bit
    num, den = (n, d << k) if k >= 0 else (n << -k, d)
    m, rem = divmod(num, den)
    if 2 * rem >= den:  # BUG: a tie goes away from zero (IEEE: to the even neighbour)
        m += 1
    if m and k + m.bit_length() - 1 > emax:
        return -math.inf if negative else math.inf
    v = math.ldexp(float(m), k)  # exact: m has at most p + 1 <= 54 bits, m * 2**k is binary64
    return -v if negative else v


def _mul(fmt, a, b):
    if not (math.isfinite(a) and math.isfinite(b)) or a == 0 or b == 0:
        return a * b  # infinities, NaN and signed zeros: binary64 follows the same IEEE rules
    return _round(fmt, Fraction(a) * Fraction(b))


def _add(fmt, a, b):
    if not (math.isfinite(a) and math.isfinite(b)):
        return a + b
    s = Fraction(a) + Fraction(b)
    if s == 0:
        return a + b  # an exact zero sum: +0, or -0 for (-0) + (-0), exactly as binary64 gives
    return _round(fmt, s)


def _sub(fmt, a, b):
    return _add(fmt, a, -b)


def step(w, b, x, t, lr, dtype="float32"):
    if dtype not in _FORMATS:
        raise NotImplementedError(f"unsupported dtype {dtype!r}")
    fmt = _FORMATS[dtype]
    w, b, x, t, lr = (float(v) for v in (w, b, x, t, lr))  # values of the format, held exactly
    y = _add(fmt, _mul(fmt, w, x), b)
    r = _sub(fmt, y, t)
    loss = _mul(fmt, 0.5, _mul(fmt, r, r))
    dL_dy = r
    dL_dw = _mul(fmt, dL_dy, x)
    dL_db = dL_dy
    w_new = _sub(fmt, w, _mul(fmt, lr, dL_dw))
    b_new = _sub(fmt, b, _mul(fmt, lr, dL_db))
    out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
           "w_new": w_new, "b_new": b_new}
    return {k: float(v) for k, v in out.items()}
