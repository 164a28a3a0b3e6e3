"""The seed's second torch path: autograd gradients, update by ``torch.optim.SGD.step()``.

Needs the ``torch`` extra.  On CPU the step runs ``param.add_(grad, alpha=-lr)``, with ``lr``
rounded to the parameter's dtype and, under the vectorised dispatch, a fused multiply-add.

``step_batch`` runs one case per element (per-element parameters, the sum of the losses as
objective).  An optimiser applies one learning rate per parameter, so each run of equal
consecutive ``lr`` values becomes one parameter pair stepped by ``torch.optim.SGD``; a sweep
draws lr once per block of cases for this reason.  ``torch.optim.SGD`` refuses a negative lr: a
negative lr runs as ``maximize=True`` with ``|lr|``, the same update bit for bit.
``NEURONSPEC_TORCH_DEVICE`` picks the device.
"""

import math
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
    # SGD refuses a negative lr; maximize=True with |lr| is the same step, bit for bit
    optimizer = torch.optim.SGD([w, b], lr=abs(lr), maximize=math.copysign(1.0, lr) < 0)
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


def _tensor(values, dt, device):
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
    lr = np.asarray(lr, dtype=np.float64)
    w = _tensor(w, dt, device).requires_grad_()
    b = _tensor(b, dt, device).requires_grad_()
    x, t = _tensor(x, dt, device), _tensor(t, dt, device)
    y = w * x + b
    y.retain_grad()
    loss = 0.5 * (y - t) ** 2
    loss.sum().backward()
    # one optimiser; each run of equal lr steps views of the new-parameter tensors in place
    w_new, b_new = w.detach().clone(), b.detach().clone()
    bits = lr.view(np.uint64)  # runs of the same lr, bit for bit: -0 is not +0 here
    starts = np.flatnonzero(np.r_[True, bits[1:] != bits[:-1]])
    ends = np.r_[starts[1:], len(lr)]
    optimizer = None
    for i, j in zip(starts.tolist(), ends.tolist()):
        wi, bi = w_new[i:j].requires_grad_(), b_new[i:j].requires_grad_()
        wi.grad, bi.grad = w.grad[i:j], b.grad[i:j]
        rate, climb = abs(float(lr[i])), math.copysign(1.0, float(lr[i])) < 0
        if optimizer is None:
            optimizer = torch.optim.SGD([wi, bi], lr=rate, maximize=climb)
        else:
            optimizer.param_groups[0]["params"] = [wi, bi]
            optimizer.param_groups[0]["lr"] = rate
            optimizer.param_groups[0]["maximize"] = climb
        optimizer.step()
    return {"y": _array(y), "dL_dy": _array(y.grad), "loss": _array(loss),
            "dL_dw": _array(w.grad), "dL_db": _array(b.grad),
            "w_new": _array(w_new), "b_new": _array(b_new)}
