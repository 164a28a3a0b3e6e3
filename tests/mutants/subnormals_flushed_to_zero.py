"""Subnormal values flushed to zero: every input, intermediate and output below the smallest normal becomes a signed 0.

Comes from running with flush-to-zero / denormals-are-zero enabled (-ffast-math, MXCSR
flags set by some library, GPU kernels built with FTZ); normal-range results are unaffected.
"""

import math

import ml_dtypes
import numpy as np

DESCRIPTION = "Subnormal values flushed to zero: every input, intermediate and output below the smallest normal becomes a signed 0."

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


# the smallest normal value of each format
_TINY = {"float16": 2.0 ** -14, "bfloat16": 2.0 ** -126, "float32": 2.0 ** -126,
         "float64": 2.0 ** -1022}


def step(w, b, x, t, lr, dtype="float32"):
    half = _to(dtype, 0.5)
    tiny = _TINY[dtype]

    def ftz(v):  # BUG: a subnormal is replaced by a zero of the same sign
        if abs(float(v)) < tiny:
            return _to(dtype, math.copysign(0.0, float(v)))
        return v

    w, b, x, t, lr = (ftz(_to(dtype, v)) for v in (w, b, x, t, lr))
    with np.errstate(all="ignore"):  # inf/nan results are IEEE results here, not errors
        y = ftz(ftz(w * x) + b)
        r = ftz(y - t)
        loss = ftz(half * ftz(r * r))
        dL_dy = r
        dL_dw = ftz(dL_dy * x)
        dL_db = dL_dy
        w_new = ftz(w - ftz(lr * dL_dw))
        b_new = ftz(b - ftz(lr * dL_db))
    out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
           "w_new": w_new, "b_new": b_new}
    return {k: float(v) for k, v in out.items()}
