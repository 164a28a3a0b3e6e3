"""float64 computed in x87 extended precision, each output rounded to float64 only when stored.

This is C (or Fortran) on 32-bit x86 with the x87 FPU: FLT_EVAL_METHOD == 2, every double
expression evaluated in the 64-bit-significand registers and only rounded to double when a
result is stored to memory.  Legal under the ``wide`` option of the model (float64 in x87);
computed here with numpy.longdouble, which is the x87 format on x86-64 Linux.
"""

import numpy as np

DESCRIPTION = "float64 computed in x87 extended precision, each output rounded to float64 only when stored."


def step(w, b, x, t, lr, dtype="float32"):
    if dtype != "float64":
        raise NotImplementedError(f"unsupported dtype {dtype!r}: this implementation is float64 only")
    if np.finfo(np.longdouble).nmant != 63:
        raise NotImplementedError("numpy.longdouble is not x87 extended precision on this machine")
    w, b, x, t, lr = (np.longdouble(float(v)) for v in (w, b, x, t, lr))  # exact
    half = np.longdouble(0.5)
    with np.errstate(all="ignore"):  # inf/nan results are IEEE results here, not errors
        p = w * x  # every operation rounded once to the x87 format; nothing stored in between
        y = p + b
        r = y - t
        loss = half * (r * r)
        dL_dy = r
        dL_dw = dL_dy * x
        dL_db = dL_dy
        w_new = w - lr * dL_dw
        b_new = b - lr * dL_db
        out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
               "w_new": w_new, "b_new": b_new}
        # each output rounded to binary64 once, when stored
        return {k: float(np.float64(v)) for k, v in out.items()}
