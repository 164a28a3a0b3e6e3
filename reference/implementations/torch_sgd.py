"""The seed's second torch path: autograd gradients, update by ``torch.optim.SGD.step()``.

Needs the ``torch`` extra.  On CPU the step runs ``param.add_(grad, alpha=-lr)``, with ``lr``
rounded to the parameter's dtype and, under the vectorised dispatch, a fused multiply-add.
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
    optimizer = torch.optim.SGD([w, b], lr=lr)
    optimizer.zero_grad()
    # forward
    y = w * x + b
    y.retain_grad()
    loss = 0.5 * (y - t) ** 2
    # backward, then the optimiser's update
    loss.backward()
    dL_dw, dL_db = w.grad.item(), b.grad.item()
    optimizer.step()
    return {"y": y.item(), "dL_dy": y.grad.item(), "loss": loss.item(),
            "dL_dw": dL_dw, "dL_db": dL_db, "w_new": w.item(), "b_new": b.item()}
