"""The seed's first torch path: autograd gradients, then a manual update under no_grad.

Needs the ``torch`` extra (``pip install 'neuronspec[torch]'``).  ``step_batch`` runs one case per
element: per-element parameters, and the sum of the per-element losses as the objective, whose
gradients are the per-element gradients.  ``NEURONSPEC_TORCH_DEVICE`` (default ``cpu``) picks
the device, e.g. ``cuda``.
"""

import os

import numpy as np
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


def _tensor(values, dt, device):
    # float64 -> float32 is exact for float16/bfloat16/float32 values, and torch converts
    # float32 -> bfloat16/float16 exactly for values of those formats
    src = np.asarray(values, dtype=np.float64 if dt == torch.float64 else np.float32)
    return torch.from_numpy(src).to(device=device, dtype=dt)


def _array(tensor):
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()
    return tensor.detach().cpu().numpy()


def step_batch(w, b, x, t, lr, dtype="float32"):
    try:
        dt = _DTYPES[dtype]
    except KeyError:
        raise NotImplementedError(f"torch has no {dtype} dtype") from None
    device = os.environ.get("NEURONSPEC_TORCH_DEVICE", "cpu")
    w = _tensor(w, dt, device).requires_grad_()
    b = _tensor(b, dt, device).requires_grad_()
    x, t, lr = (_tensor(v, dt, device) for v in (x, t, lr))
    y = w * x + b
    y.retain_grad()
    loss = 0.5 * (y - t) ** 2
    loss.sum().backward()
    with torch.no_grad():
        w_updated = w - lr * w.grad
        b_updated = b - lr * b.grad
    return {"y": _array(y), "dL_dy": _array(y.grad), "loss": _array(loss),
            "dL_dw": _array(w.grad), "dL_db": _array(b.grad),
            "w_new": _array(w_updated), "b_new": _array(b_updated)}
