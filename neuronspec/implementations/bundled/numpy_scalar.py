"""The seed's formulas in numpy scalars of the requested format (float16, float32, float64).

All five inputs are converted to the format first, as a numpy user writing ``np.float32(lr)``
would.  Note: numpy 2.4's *scalar* ``**2`` goes through ``pow`` and is not always correctly
rounded (about 0.07% of float32 cases differ from ``r*r`` by one ulp); arrays and
``np.square`` are exact.  It is kept, as a user would write it.

``step_batch`` is the same code on arrays of the format (one case per element); there ``**2``
is numpy's ``square``, correctly rounded.
"""

import numpy as np

_DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def step(w, b, x, t, lr, dtype="float32"):
    try:
        dt = _DTYPES[dtype]
    except KeyError:
        raise NotImplementedError(f"numpy has no native {dtype} scalar type") from None
    w, b, x, t, lr = dt(w), dt(b), dt(x), dt(t), dt(lr)
    half = dt(0.5)
    with np.errstate(all="ignore"):  # overflow to inf is a legal IEEE result, not an error here
        y = w * x + b
        loss = half * (y - t) ** 2
        dL_dy = y - t
        dL_dw = dL_dy * x
        dL_db = dL_dy
        w_new = w - lr * dL_dw
        b_new = b - lr * dL_db
    return {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
            "w_new": w_new, "b_new": b_new}


def step_batch(w, b, x, t, lr, dtype="float32"):
    try:
        dt = _DTYPES[dtype]
    except KeyError:
        raise NotImplementedError(f"numpy has no native {dtype} dtype") from None
    w, b, x, t, lr = (np.asarray(v, dtype=dt) for v in (w, b, x, t, lr))
    half = dt(0.5)
    with np.errstate(all="ignore"):
        y = w * x + b
        loss = half * (y - t) ** 2
        dL_dy = y - t
        dL_dw = dL_dy * x
        dL_db = dL_dy
        w_new = w - lr * dL_dw
        b_new = b - lr * dL_db
    return {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
            "w_new": w_new, "b_new": b_new}
