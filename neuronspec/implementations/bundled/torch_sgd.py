"""The seed's second torch path: autograd gradients, update by ``torch.optim.SGD.step()``.

Needs the ``torch`` extra.  On CPU the step runs ``param.add_(grad, alpha=-lr)``, with ``lr``
rounded to the parameter's dtype and, under the vectorised dispatch, a fused multiply-add.

``step_batch`` runs one case per element (per-element parameters, the sum of the losses as
objective).  An optimiser applies one learning rate per parameter, so each run of equal
consecutive ``lr`` values becomes one parameter pair stepped by ``torch.optim.SGD``; a sweep
draws lr once per block of cases for this reason.  ``torch.optim.SGD`` refuses a negative lr: a
negative lr runs as ``maximize=True`` with ``|lr|``, the same update bit for bit.
``NEURONSPEC_TORCH_DEVICE`` picks the device.

``step_run`` and ``step_from`` (spec/protocol.md, "Runs") step a fresh
``torch.optim.SGD(..., foreach=False)`` per run, with every option of spec/neuron.md 8.1, and
report ``optimizer.state[p]["momentum_buffer"]``; the learning rate of each step is set in the
optimiser's group before its ``step()``.  They decline a negative learning rate (as torch does),
conventions other than ``torch`` and a buffer format other than the parameter format.  The runs
are on CPU whatever ``NEURONSPEC_TORCH_DEVICE`` says.
"""

import math
import os

import numpy as np
import torch

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
           "float32": torch.float32, "float64": torch.float64}


def _forward_backward(w, b, x, t):
    """y = w*x + b and the loss 0.5*(y - t)**2 of each case, their gradients left in
    ``w.grad``, ``b.grad`` and ``y.grad`` (autograd on the sum of the losses: elementwise)."""
    y = w * x + b
    y.retain_grad()
    loss = 0.5 * (y - t) ** 2
    loss.sum().backward()
    return y, loss


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
    y, loss = _forward_backward(w, b, x, t)  # then the optimiser's update
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
    y, loss = _forward_backward(w, b, x, t)
    # one optimiser; each run of equal lr steps views of the new-parameter tensors in place
    w_new, b_new = w.detach().clone(), b.detach().clone()
    optimizer = None
    for i, j in _equal_lr_blocks(lr):
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


# --- runs (spec/protocol.md, "Runs"; spec/neuron.md section 8) ----------------------------------

#: The option keys of spec/protocol.md R1 and what each is without the option.
_OPTION_KEYS = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
                "maximize": False, "convention": "torch", "buffer_format": None}


def _is_off(value):
    """Whether an option this code does not know is off (None, False or a zero)."""
    return value is None or value is False or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0)


def _settings(options, dtype):
    """The torch dtype and the optimiser's keyword arguments; NotImplementedError (with the
    reason) for what torch.optim.SGD does not do, decided by ``options`` and ``dtype`` only."""
    try:
        dt = _DTYPES[dtype]
    except KeyError:
        raise NotImplementedError(f"torch has no {dtype} dtype") from None
    unknown = sorted(k for k, v in options.items() if k not in _OPTION_KEYS and not _is_off(v))
    if unknown:
        raise NotImplementedError(f"unknown option(s) {', '.join(unknown)}")
    convention = options.get("convention", "torch")
    if convention != "torch":
        raise NotImplementedError(f"torch.optim.SGD keeps torch's momentum buffer (convention "
                                  f"'torch'), not the {convention!r} convention's state")
    buffer_format = options.get("buffer_format") or dtype
    if buffer_format != dtype:
        raise NotImplementedError(f"torch.optim.SGD keeps the momentum buffer in the parameter "
                                  f"format ({dtype}), not in {buffer_format}")
    return dt, {"momentum": float(options.get("momentum", 0.0)),
                "dampening": float(options.get("dampening", 0.0)),
                "weight_decay": float(options.get("weight_decay", 0.0)),
                "nesterov": bool(options.get("nesterov", False)),
                "maximize": bool(options.get("maximize", False))}


def _fused_refusal(dt):
    """torch's reason for refusing ``fused=True`` on CPU parameters of ``dt``, or None (its
    check runs at the first ``step()``: one step of a scratch parameter asks it)."""
    p = torch.zeros((), dtype=dt, requires_grad=True)
    p.grad = torch.zeros((), dtype=dt)
    try:
        torch.optim.SGD([p], lr=0.0, fused=True).step()
    except RuntimeError as exc:
        return str(exc)
    return None


def _path_settings(options, dtype, path):
    """``_settings`` on the code path ``path``: the fused one declines a format torch refuses."""
    dt, hyper = _settings(options, dtype)
    if path.get("fused"):
        reason = _fused_refusal(dt)
        if reason is not None:
            raise NotImplementedError(f"torch.optim.SGD(fused=True) refuses {dtype} on CPU: "
                                      f"{reason}")
    return dt, hyper


def _optimizer(w0, b0, data, options, dtype, path):
    """A fresh optimiser over fresh parameters for one run (nothing carries over), on the code
    path ``path`` (foreach or fused)."""
    dt, hyper = _path_settings(options, dtype, path)
    data = [(float(x), float(t), float(lr)) for x, t, lr in data]
    if any(lr < 0 for _, _, lr in data):  # (-0.0 is accepted, as torch accepts it)
        raise NotImplementedError("torch.optim.SGD refuses a negative learning rate")
    w = torch.tensor(float(w0), dtype=dt, requires_grad=True)
    b = torch.tensor(float(b0), dtype=dt, requires_grad=True)
    lr0 = data[0][2] if data else 0.0
    optimizer = torch.optim.SGD([w, b], lr=lr0, **hyper, **path)
    return optimizer, w, b, dt, data


def _steps(optimizer, w, b, dt, data):
    for x, t, lr in data:
        optimizer.param_groups[0]["lr"] = lr  # a schedule: torch reads lr at every step()
        optimizer.zero_grad()
        x, t = torch.tensor(x, dtype=dt), torch.tensor(t, dtype=dt)
        y, loss = _forward_backward(w, b, x, t)
        out = {"y": y.item(), "dL_dy": y.grad.item(), "loss": loss.item(),
               "dL_dw": w.grad.item(), "dL_db": b.grad.item()}
        optimizer.step()
        bufs = [optimizer.state[p].get("momentum_buffer") for p in (w, b)]
        out.update(w_new=w.item(), b_new=b.item(),
                   buf_w=None if bufs[0] is None else bufs[0].item(),
                   buf_b=None if bufs[1] is None else bufs[1].item())
        yield out


def _equal_lr_blocks(lr) -> list:
    """(start, stop) of the consecutive elements (the last axis) whose learning rates are the
    same bit for bit (-0 is not +0 here) at every step (lr of shape (n,) or (K, n)): one
    optimiser steps each block."""
    bits = np.asarray(lr, dtype=np.float64).view(np.uint64).reshape(-1, np.shape(lr)[-1])
    starts = np.flatnonzero(np.r_[True, (bits[:, 1:] != bits[:, :-1]).any(axis=0)])
    return list(zip(starts.tolist(), np.r_[starts[1:], bits.shape[1]].tolist()))


def _forms(path):
    """(step, step_run, step_from, step_from_batch, step_run_batch) of one code path of
    ``torch.optim.SGD``."""

    def step_run(w0, b0, data, options, dtype="float32"):
        """A run of ``len(data)`` steps from (w0, b0) and an empty optimiser state: one mapping
        per step, as it is computed.  What is declined is declined here, before the first
        step."""
        return _steps(*_optimizer(w0, b0, data, options, dtype, path))

    def step_from(state, x, t, lr, options, dtype="float32"):
        """One step from ``state`` = {w, b, buf_w, buf_b} (buffers None: no buffer yet)."""
        optimizer, w, b, dt, data = _optimizer(state["w"], state["b"], [(x, t, lr)], options,
                                               dtype, path)
        bufs = state.get("buf_w"), state.get("buf_b")
        if (bufs[0] is None) != (bufs[1] is None):
            raise ValueError("both parameters have a buffer, or neither")
        if bufs[0] is not None:
            if optimizer.param_groups[0]["momentum"] == 0:
                raise ValueError("a buffer is given but momentum is 0")
            for p, buf in zip((w, b), bufs):
                optimizer.state[p]["momentum_buffer"] = torch.tensor(float(buf), dtype=dt)
        (out,) = _steps(optimizer, w, b, dt, data)
        return out

    def step_from_batch(w, b, buf_w, buf_b, x, t, lr, options, dtype="float32"):
        """spec/protocol.md R4: ``n`` steps from ``n`` states (arrays; buffers None for none),
        one ``torch.optim.SGD`` step per run of equal learning rates, each case an element of
        the parameter tensors (autograd on the sum of the losses: elementwise gradients)."""
        dt, hyper = _path_settings(options, dtype, path)
        if (buf_w is None) != (buf_b is None):
            raise ValueError("both parameters have a buffer, or neither")
        if buf_w is not None and hyper["momentum"] == 0:
            raise ValueError("a buffer is given but momentum is 0")
        lr = np.asarray(lr, dtype=np.float64)
        if (lr < 0).any():
            raise NotImplementedError("torch.optim.SGD refuses a negative learning rate")
        w = _tensor(w, dt, "cpu").requires_grad_()
        b = _tensor(b, dt, "cpu").requires_grad_()
        x, t = _tensor(x, dt, "cpu"), _tensor(t, dt, "cpu")
        y, loss = _forward_backward(w, b, x, t)
        w_new, b_new = w.detach().clone(), b.detach().clone()
        bufs = [None if v is None else _tensor(v, dt, "cpu") for v in (buf_w, buf_b)]
        new_bufs = [None, None]
        if hyper["momentum"] != 0:
            new_bufs = [torch.empty_like(w_new), torch.empty_like(b_new)]
        for i, j in _equal_lr_blocks(lr):
            wi, bi = w_new[i:j].requires_grad_(), b_new[i:j].requires_grad_()
            wi.grad, bi.grad = w.grad[i:j], b.grad[i:j]
            optimizer = torch.optim.SGD([wi, bi], lr=float(lr[i]), **hyper, **path)
            if bufs[0] is not None:
                for p, buf in zip((wi, bi), bufs):
                    optimizer.state[p]["momentum_buffer"] = buf[i:j].clone()
            optimizer.step()
            if new_bufs[0] is not None:
                for k, p in enumerate((wi, bi)):
                    new_bufs[k][i:j] = optimizer.state[p]["momentum_buffer"]
        return {"y": _array(y), "dL_dy": _array(y.grad), "loss": _array(loss),
                "dL_dw": _array(w.grad), "dL_db": _array(b.grad),
                "w_new": _array(w_new), "b_new": _array(b_new),
                "buf_w": None if new_bufs[0] is None else _array(new_bufs[0]),
                "buf_b": None if new_bufs[1] is None else _array(new_bufs[1])}

    def step_run_batch(w0, b0, x, t, lr, options, dtype="float32"):
        """spec/protocol.md R4: ``n`` runs of ``K`` steps (``x``, ``t``, ``lr`` of shape
        (K, n)), as a user trains a vector of parameters: one ``torch.optim.SGD`` over each
        block of runs whose learning rates are equal at every step, each run an element of the
        parameter tensors (autograd on the sum of the losses: elementwise gradients)."""
        dt, hyper = _path_settings(options, dtype, path)
        lr = np.asarray(lr, dtype=np.float64)
        if (lr < 0).any():
            raise NotImplementedError("torch.optim.SGD refuses a negative learning rate")
        K, n = lr.shape
        out: dict = {}

        def put(q, k, i, j, tensor):
            if q not in out:
                out[q] = np.empty((K, n))
            out[q][k, i:j] = _array(tensor)
        for i, j in _equal_lr_blocks(lr):
            w = _tensor(w0[i:j], dt, "cpu").requires_grad_()
            b = _tensor(b0[i:j], dt, "cpu").requires_grad_()
            optimizer = torch.optim.SGD([w, b], lr=float(lr[0, i]), **hyper, **path)
            for k in range(K):
                optimizer.param_groups[0]["lr"] = float(lr[k, i])
                optimizer.zero_grad()
                xk, tk = _tensor(x[k, i:j], dt, "cpu"), _tensor(t[k, i:j], dt, "cpu")
                y, loss = _forward_backward(w, b, xk, tk)
                for q, v in (("y", y), ("dL_dy", y.grad), ("loss", loss), ("dL_dw", w.grad),
                             ("dL_db", b.grad)):
                    put(q, k, i, j, v)
                optimizer.step()
                for q, p in (("w_new", w), ("b_new", b)):
                    put(q, k, i, j, p)
                    buf = optimizer.state[p].get("momentum_buffer")
                    if buf is not None:
                        put(f"buf_{q[0]}", k, i, j, buf)
        out.setdefault("buf_w", None)
        out.setdefault("buf_b", None)
        return out

    def step(w, b, x, t, lr, dtype="float32"):
        """The plain step: a run of one step with every option off (spec/protocol.md R1, R2)."""
        options = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
                   "maximize": False, "convention": "torch", "buffer_format": dtype}
        (out,) = step_run(w, b, [(x, t, lr)], options, dtype)
        return {k: v for k, v in out.items() if k not in ("buf_w", "buf_b")}

    return step, step_run, step_from, step_from_batch, step_run_batch


# The for-loop path, _single_tensor_sgd (the CPU default; ``step`` above is its plain step with
# a negative lr run as maximize), and the two other paths of torch/optim/sgd.py, bundled as
# torch_sgd_foreach (``_multi_tensor_sgd``, the CUDA default) and torch_sgd_fused
# (``torch._fused_sgd_``; torch 2.13.0's CPU build accepts every format, and a build that
# refuses one makes its runs decline it).
_, step_run, step_from, step_from_batch, step_run_batch = _forms({"foreach": False})
(foreach_step, foreach_step_run, foreach_step_from, foreach_step_from_batch,
 foreach_step_run_batch) = _forms({"foreach": True})
fused_step, fused_step_run, fused_step_from, fused_step_from_batch, fused_step_run_batch = \
    _forms({"fused": True})
