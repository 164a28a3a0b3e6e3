"""The gradients dL/dw and dL/db pass through nan_to_num: an infinite one becomes the largest finite value.

Comes from "repairing" parameter gradients with numpy.nan_to_num / torch.nan_to_num before
the optimizer step (a common guard against overflow), which turns an overflowed gradient
(r*x, or autograd's 2*r) into +-the largest finite value of the format and a NaN one into 0;
the update then moves by a huge finite amount instead of an infinite or NaN one.
"""

import math

import ml_dtypes
import numpy as np

DESCRIPTION = "The gradients dL/dw and dL/db pass through nan_to_num: an infinite one becomes the largest finite value."

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


# the largest finite value of each format
_MAX = {"float16": float(np.finfo(np.float16).max),
        "bfloat16": float(ml_dtypes.finfo(ml_dtypes.bfloat16).max),
        "float32": float(np.finfo(np.float32).max), "float64": float(np.finfo(np.float64).max)}


def step(w, b, x, t, lr, dtype="float32"):
    mul, add, sub = _ops(dtype)
    w, b, x, t, lr = (_to(dtype, v) for v in (w, b, x, t, lr))
    half = _to(dtype, 0.5)

    def clamp(g):  # BUG: inf -> largest finite value, nan -> 0 (numpy.nan_to_num)
        big = _MAX[dtype]
        return _to(dtype, np.nan_to_num(float(g), nan=0.0, posinf=big, neginf=-big))

    with np.errstate(all="ignore"):  # inf/nan results are IEEE results here, not errors
        y = add(mul(w, x), b)
        r = sub(y, t)
        loss = mul(half, mul(r, r))
        dL_dy = r
        dL_dw = clamp(mul(dL_dy, x))
        dL_db = clamp(dL_dy)
        w_new = sub(w, mul(lr, dL_dw))
        b_new = sub(b, mul(lr, dL_db))
    out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
           "w_new": w_new, "b_new": b_new}
    return {k: float(v) for k, v in out.items()}
