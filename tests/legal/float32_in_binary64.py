"""float32 computed in binary64, each output rounded to float32 only when stored.

This is C with FLT_EVAL_METHOD == 1 (float expressions evaluated in double, as on some x87 and
s390 compilers or with -fexcess-precision), and JavaScript's float32 arithmetic: numbers are
binary64 and Math.fround rounds at each store to a Float32Array.  Legal under the ``wide``
option of the model (float32 in binary64).
"""

import numpy as np

DESCRIPTION = "float32 computed in binary64, each output rounded to float32 only when stored."


def step(w, b, x, t, lr, dtype="float32"):
    if dtype != "float32":
        raise NotImplementedError(f"unsupported dtype {dtype!r}: this implementation is float32 only")
    w, b, x, t, lr = (float(v) for v in (w, b, x, t, lr))  # float32 values, exact in binary64
    # every operation rounded once to binary64 (Python floats); nothing stored in between
    p = w * x
    y = p + b
    r = y - t
    loss = 0.5 * (r * r)
    dL_dy = r
    dL_dw = dL_dy * x
    dL_db = dL_dy
    w_new = w - lr * dL_dw
    b_new = b - lr * dL_db
    out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
           "w_new": w_new, "b_new": b_new}
    with np.errstate(all="ignore"):  # overflow to inf when stored is the IEEE result
        return {k: float(np.float32(v)) for k, v in out.items()}  # Math.fround at each store
