"""Stale gradients accumulate across calls (missing zero_grad): the first call is right, later calls add the previous gradients.

Comes from torch-style code that keeps its parameter tensors between steps and never calls
optimizer.zero_grad() / w.grad.zero_(), so .grad sums every backward pass; the reported
dL/dw, dL/db and the updates use the accumulated buffers (dL/dy, a fresh tensor, is right).
Call ``reset()`` to zero the buffers (the state a fresh import has).
"""

import math

import ml_dtypes
import numpy as np

DESCRIPTION = "Stale gradients accumulate across calls (missing zero_grad): the first call is right, later calls add the previous gradients."

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


_grads = {"w": None, "b": None}  # the .grad buffers (Python floats); None until the first backward


def reset():
    """Clear the accumulated gradients: what the missing zero_grad() would have done."""
    _grads["w"] = _grads["b"] = None


def step(w, b, x, t, lr, dtype="float32"):
    w, b, x, t, lr = (_to(dtype, v) for v in (w, b, x, t, lr))
    half = _to(dtype, 0.5)
    with np.errstate(all="ignore"):  # inf/nan results are IEEE results here, not errors
        y = w * x + b
        r = y - t
        loss = half * (r * r)
        dL_dy = r
        dL_dw = dL_dy * x
        dL_db = dL_dy
        # BUG: the new gradients are added to what the never-zeroed buffers already hold
        if _grads["w"] is not None:
            dL_dw = _to(dtype, _grads["w"]) + dL_dw
            dL_db = _to(dtype, _grads["b"]) + dL_db
        _grads["w"], _grads["b"] = float(dL_dw), float(dL_db)
        w_new = w - lr * dL_dw
        b_new = b - lr * dL_db
    out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
           "w_new": w_new, "b_new": b_new}
    return {k: float(v) for k, v in out.items()}
