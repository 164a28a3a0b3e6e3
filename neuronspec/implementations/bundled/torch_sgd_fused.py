"""Autograd gradients, update by ``torch.optim.SGD(..., fused=True).step()``: the
kernel ``torch._fused_sgd_``, on CPU.

Needs the ``torch`` extra.  torch 2.13.0's CPU build accepts ``fused=True`` for float16,
bfloat16, float32 and float64 parameters (its fused kernel computes float16/bfloat16 in
float32, spec/neuron.md 8.3); a build that refuses a dtype makes the run decline it
(``NotImplementedError`` with torch's reason).  ``step_run`` and ``step_from``
(spec/protocol.md, "Runs") step a fresh optimiser per run with every option of spec/neuron.md
8.1 and report ``optimizer.state[p]["momentum_buffer"]``.  They decline a negative learning
rate (torch refuses it), conventions other than ``torch`` and a buffer format other than the
parameter format; ``step`` is a run of one step without options, so it declines a negative
learning rate too.
"""

import torch

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
           "float32": torch.float32, "float64": torch.float64}
#: The optimiser's code path.
_PATH = {"fused": True}


def step(w, b, x, t, lr, dtype="float32"):
    """The plain step: a run of one step with every option off (spec/protocol.md R1, R2)."""
    options = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
               "maximize": False, "convention": "torch", "buffer_format": dtype}
    (out,) = step_run(w, b, [(x, t, lr)], options, dtype)
    return {k: v for k, v in out.items() if k not in ("buf_w", "buf_b")}


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


def _optimizer(w0, b0, data, options, dtype):
    """A fresh optimiser over fresh parameters for one run (nothing carries over)."""
    dt, hyper = _settings(options, dtype)
    data = [(float(x), float(t), float(lr)) for x, t, lr in data]
    if any(lr < 0 for _, _, lr in data):  # (-0.0 is accepted, as torch accepts it)
        raise NotImplementedError("torch.optim.SGD refuses a negative learning rate")
    w = torch.tensor(float(w0), dtype=dt, requires_grad=True)
    b = torch.tensor(float(b0), dtype=dt, requires_grad=True)
    lr0 = data[0][2] if data else 0.0
    optimizer = torch.optim.SGD([w, b], lr=lr0, **hyper, **_PATH)
    return optimizer, w, b, dt, data


def _steps(optimizer, w, b, dt, data):
    for x, t, lr in data:
        optimizer.param_groups[0]["lr"] = lr  # a schedule: torch reads lr at every step()
        optimizer.zero_grad()
        x, t = torch.tensor(x, dtype=dt), torch.tensor(t, dtype=dt)
        y = w * x + b
        y.retain_grad()
        loss = 0.5 * (y - t) ** 2
        loss.backward()
        out = {"y": y.item(), "dL_dy": y.grad.item(), "loss": loss.item(),
               "dL_dw": w.grad.item(), "dL_db": b.grad.item()}
        optimizer.step()
        bufs = [optimizer.state[p].get("momentum_buffer") for p in (w, b)]
        out.update(w_new=w.item(), b_new=b.item(),
                   buf_w=None if bufs[0] is None else bufs[0].item(),
                   buf_b=None if bufs[1] is None else bufs[1].item())
        yield out


def step_run(w0, b0, data, options, dtype="float32"):
    """A run of ``len(data)`` steps from (w0, b0) and an empty optimiser state: one mapping
    per step, as it is computed.  What is declined is declined here, before the first step."""
    return _steps(*_optimizer(w0, b0, data, options, dtype))


def step_from(state, x, t, lr, options, dtype="float32"):
    """One step from ``state`` = {w, b, buf_w, buf_b} (buffers None: no buffer yet)."""
    optimizer, w, b, dt, data = _optimizer(state["w"], state["b"], [(x, t, lr)], options, dtype)
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


_sgd_settings = _settings


def _settings(options, dtype):  # noqa: F811 (the runs' settings, and the fused kernel's dtypes)
    dt, hyper = _sgd_settings(options, dtype)
    reason = _fused_refusal(dt)
    if reason is not None:
        raise NotImplementedError(f"torch.optim.SGD(fused=True) refuses {dtype} on CPU: {reason}")
    return dt, hyper
