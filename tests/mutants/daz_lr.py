"""A subnormal learning rate is read as zero (denormals-are-zero on lr only).

Comes from the learning rate passing through code run with denormals-are-zero set (an
MXCSR DAZ flag left on by a library, a scheduler kernel built with -ffast-math) while the
step itself runs with IEEE subnormals: a subnormal lr becomes a zero of the same sign and
the parameters do not move.
"""

import math

import ml_dtypes
import numpy as np

DESCRIPTION = "A subnormal learning rate is read as zero (denormals-are-zero on lr only)."

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


# the smallest normal value of each format
_TINY = {"float16": 2.0 ** -14, "bfloat16": 2.0 ** -126, "float32": 2.0 ** -126,
         "float64": 2.0 ** -1022}


def step(w, b, x, t, lr, dtype="float32"):
    mul, add, sub = _ops(dtype)
    w, b, x, t, lr = (_to(dtype, v) for v in (w, b, x, t, lr))
    if abs(float(lr)) < _TINY[dtype]:  # BUG: a subnormal lr is read as a zero of its sign
        lr = _to(dtype, math.copysign(0.0, float(lr)))
    half = _to(dtype, 0.5)
    with np.errstate(all="ignore"):  # inf/nan results are IEEE results here, not errors
        y = add(mul(w, x), b)
        r = sub(y, t)
        loss = mul(half, mul(r, r))
        dL_dy = r
        dL_dw = mul(dL_dy, x)
        dL_db = dL_dy
        w_new = sub(w, mul(lr, dL_dw))
        b_new = sub(b, mul(lr, dL_db))
    out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
           "w_new": w_new, "b_new": b_new}
    return {k: float(v) for k, v in out.items()}
