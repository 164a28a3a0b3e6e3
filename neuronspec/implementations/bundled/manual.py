"""The seed notebook's manual computation, in Python floats (binary64), as written there.

Note ``(y - t)**2``: CPython's float ``**`` calls the C library's ``pow``, which is not always
correctly rounded; this is kept on purpose, because it is what the seed's code does.
"""


def step(w, b, x, t, lr, dtype="float64"):
    if dtype != "float64":
        raise NotImplementedError(f"the manual implementation computes in float64 only, not {dtype}")
    # forward
    y = w * x + b
    loss = 0.5 * (y - t) ** 2
    # manual grads - the equivalent of loss.backward()
    dL_dy = y - t
    dL_dw = dL_dy * x
    dL_db = dL_dy
    # update
    w_updated = w - lr * dL_dw
    b_updated = b - lr * dL_db
    return {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
            "w_new": w_updated, "b_new": b_updated}
