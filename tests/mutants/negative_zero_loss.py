"""The loss is clamped at zero with max(-0.0, loss), which returns -0.0 for a zero loss.

Comes from a "the loss cannot be negative" guard written as ``max(-tol, loss)`` with
tol = 0.0: Python's max returns the first of equal arguments, so a +0.0 loss comes back as
-0.0; every other value, and everything else, is computed correctly.
"""

import math

import ml_dtypes
import numpy as np

DESCRIPTION = "The loss is clamped at zero with max(-0.0, loss), which returns -0.0 for a zero loss."

_TYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
          "float32": np.float32, "float64": np.float64}


def _to(dtype, v):
    """``v`` rounded once (to nearest, ties to even) to the numpy scalar type of ``dtype``.

    For bfloat16 the value is first rounded to odd in float32, because
    ``ml_dtypes.bfloat16(v)`` of a binary64 value rounds twice (through float32).
    """
    if dtype not in _TYPES:
        raise NotImplementedError(f"unsupported dtype {dtype!r}")
    v = float(v)
    with np.errstate(all="ignore"):
        if dtype != "bfloat16":
            return _TYPES[dtype](v)
        f = np.float32(v)
        if math.isfinite(v) and np.isfinite(f) and float(f) != v and int(f.view(np.uint32)) & 1 == 0:
            f = np.nextafter(f, np.float32(math.copysign(math.inf, v - float(f))))
        return ml_dtypes.bfloat16(f)


def _ops(dtype):
    """The format's a*b, a+b and a-b, each rounded once.  numpy scalars do that for float16,
    float32 and float64; ml_dtypes' bfloat16 arithmetic rounds a float32 result again, so
    bfloat16 takes the binary64 result (exact for a product; rounding a sum to 53 bits first
    cannot change its rounding to 8) and rounds it once with ``_to``."""
    if dtype != "bfloat16":
        return (lambda a, b: a * b), (lambda a, b: a + b), (lambda a, b: a - b)
    return (lambda a, b: _to(dtype, float(a) * float(b)),
            lambda a, b: _to(dtype, float(a) + float(b)),
            lambda a, b: _to(dtype, float(a) - float(b)))


def step(w, b, x, t, lr, dtype="float32"):
    mul, add, sub = _ops(dtype)
    w, b, x, t, lr = (_to(dtype, v) for v in (w, b, x, t, lr))
    half = _to(dtype, 0.5)
    with np.errstate(all="ignore"):  # inf/nan results are IEEE results here, not errors
        y = add(mul(w, x), b)
        r = sub(y, t)
        loss = mul(half, mul(r, r))
        loss = max(-0.0, loss)  # BUG: max(-0.0, +0.0) is -0.0 (the first of equal arguments)
        dL_dy = r
        dL_dw = mul(dL_dy, x)
        dL_db = dL_dy
        w_new = sub(w, mul(lr, dL_dw))
        b_new = sub(b, mul(lr, dL_db))
    out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
           "w_new": w_new, "b_new": b_new}
    return {k: float(v) for k, v in out.items()}
