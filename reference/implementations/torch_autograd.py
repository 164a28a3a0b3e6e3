"""The seed's first torch path: autograd gradients, then a manual update under no_grad.

Needs the ``torch`` extra (``pip install 'neuronspec[torch]'``).
"""

import torch

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
           "float32": torch.float32, "float64": torch.float64}


def step(w, b, x, t, lr, dtype="float32"):
    try:
        dt = _DTYPES[dtype]
    except KeyError:
        raise NotImplementedError(f"torch has no {dtype} dtype") from None
    w = torch.tensor(w, dtype=dt, requires_grad=True)
    b = torch.tensor(b, dtype=dt, requires_grad=True)
    x = torch.tensor(x, dtype=dt)
    t = torch.tensor(t, dtype=dt)
    # forward
    y = w * x + b
    y.retain_grad()  # expose dL/dy; changes no arithmetic
    loss = 0.5 * (y - t) ** 2
    # backward (compute gradients)
    loss.backward()
    # update parameters manually with no_grad(); a Python-float lr is rounded to dt by torch
    with torch.no_grad():
        w_updated = w - lr * w.grad
        b_updated = b - lr * b.grad
    return {"y": y.item(), "dL_dy": y.grad.item(), "loss": loss.item(),
            "dL_dw": w.grad.item(), "dL_db": b.grad.item(),
            "w_new": w_updated.item(), "b_new": b_updated.item()}
