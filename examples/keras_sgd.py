"""Keras 3's ``keras.optimizers.SGD`` on its torch backend, as an implementation of runs under
the keras convention (spec/neuron.md 8.6): ``neuronspec check examples/keras_sgd.py:step
--convention keras``.

Needs Keras 3 and torch (``pip install keras``; ``KERAS_BACKEND`` is set to ``torch`` unless it
is set already).  Not bundled: on the torch backend Keras 3 (3.15.1 measured) steps SGD with its
own ``TorchParallelOptimizer._parallel_update_step``, not with the backend-agnostic
``keras/src/optimizers/sgd.py`` that 8.6 specifies: the decay is ``theta *= 1 - wd*lr``
(``1 - wd*lr`` in binary64, then converted to the tensor's type) and Nesterov adds
``-lr*G`` and then ``mu*v`` to the variable in two rounded steps.  The exact values are the
convention's; the rounded ones are not among its legal values, and after cancellation some
exceed its bound (spec/neuron.md 8.8).  Without decay and Nesterov (momentum alone, or
none) its operations are the convention's, and it passes at the exact level.

The forward and the gradients are the seed's formulas in torch tensors of the format
(``r = w*x + b - t``, ``dL_dw = r*x``, ``loss = 0.5*r*r``); the update is a fresh
``keras.optimizers.SGD(learning_rate, momentum, nesterov, weight_decay)`` per run, stepped by
``apply_gradients`` on two one-element ``keras.Variable`` of the format.  The learning rate of
each step is the optimiser's (a callable read at every step, as a schedule is).  The state
reported is Keras's momentum variable, the velocity ``v`` (``buf_w``, ``buf_b``); ``step_from``
assigns a given velocity to it before the step (none: Keras's zeros).

It declines every convention but ``keras`` (the plain step, every option off, is every
convention's), dampening and maximize (Keras has neither), a buffer format other than the
parameter format, and a negative learning rate.  Keras raises ``ValueError`` for a momentum
outside ``[0, 1]``.
"""

import math
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
           "float32": torch.float32, "float64": torch.float64}
_OPTION_KEYS = ("momentum", "dampening", "weight_decay", "nesterov", "maximize", "convention",
                "buffer_format")
_OFF = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
        "maximize": False, "convention": "keras"}


def _settings(options, dtype):
    """(torch dtype, momentum, nesterov, weight decay); NotImplementedError for what Keras's
    SGD does not do."""
    if dtype not in _DTYPES:
        raise NotImplementedError(f"keras on torch has no {dtype} dtype here")
    unknown = sorted(k for k, v in options.items()
                     if k not in _OPTION_KEYS and v not in (None, False, 0))
    if unknown:
        raise NotImplementedError(f"unknown option(s) {', '.join(unknown)}")
    plain = not any(options.get(k) for k in ("momentum", "dampening", "weight_decay",
                                              "nesterov", "maximize"))
    convention = options.get("convention", "keras")
    if convention != "keras" and not (convention == "torch" and plain):
        raise NotImplementedError(f"keras.optimizers.SGD keeps Keras's velocity (convention "
                                  f"'keras'), not the {convention!r} convention's state")
    if options.get("dampening") or options.get("maximize"):
        raise NotImplementedError("keras.optimizers.SGD has no dampening and no maximize")
    if (options.get("buffer_format") or dtype) != dtype:
        raise NotImplementedError("Keras keeps the velocity in the variable's dtype")
    return (_DTYPES[dtype], float(options.get("momentum", 0.0)),
            bool(options.get("nesterov", False)), float(options.get("weight_decay", 0.0)))


def _one(value, dtype):
    return keras.Variable(np.array([value], dtype=np.float64), dtype=dtype)


def _steps(w0, b0, bufs, data, options, dtype):
    """Steps of one fresh optimiser from (w0, b0) and the velocities ``bufs`` (None: zeros)."""
    dt, mu, nesterov, wd = _settings(options, dtype)
    for _, _, lr in data:
        if math.copysign(1.0, lr) < 0:
            raise NotImplementedError("a negative learning rate")
    w, b = _one(w0, dtype), _one(b0, dtype)
    rate = {"lr": 0.0}
    optimizer = keras.optimizers.SGD(learning_rate=lambda: rate["lr"], momentum=mu,
                                     nesterov=nesterov, weight_decay=wd or None)
    optimizer.build([w, b])
    if mu != 0 and bufs is not None:
        for m, v in zip(optimizer.momentums, bufs):
            m.assign(np.array([v], dtype=np.float64))
    for x, t, lr in data:
        rate["lr"] = lr
        with torch.no_grad():
            xt, tt = (torch.tensor([v], dtype=dt) for v in (x, t))
            wv, bv = w.value.detach(), b.value.detach()
            y = wv * xt + bv
            r = y - tt
            loss = 0.5 * (r * r)
            gw, gb = r * xt, r
        out = {"y": y.item(), "dL_dy": r.item(), "loss": loss.item(), "dL_dw": gw.item(),
               "dL_db": gb.item()}
        optimizer.apply_gradients([(gw, w), (gb, b)])
        out["w_new"], out["b_new"] = float(w.value[0]), float(b.value[0])
        if mu != 0:
            out["buf_w"], out["buf_b"] = (float(m.value[0]) for m in optimizer.momentums)
        else:
            out["buf_w"] = out["buf_b"] = None
        yield out


def step_run(w0, b0, data, options, dtype="float32"):
    """A run from (w0, b0) and Keras's zero velocity: one mapping per step (what is declined
    is declined here, before the first step)."""
    _settings(options, dtype)
    return _steps(w0, b0, None, [tuple(s) for s in data], dict(options), dtype)


def step_from(state, x, t, lr, options, dtype="float32"):
    """One step from ``state`` = {w, b, buf_w, buf_b} (the velocities; None: zeros)."""
    bufs = state.get("buf_w"), state.get("buf_b")
    if (bufs[0] is None) != (bufs[1] is None):
        raise ValueError("both parameters have a velocity, or neither")
    (out,) = _steps(state["w"], state["b"], None if bufs[0] is None else bufs, [(x, t, lr)],
                    dict(options), dtype)
    return out


def step(w, b, x, t, lr, dtype="float32"):
    """The plain step: a run of one step with every option off (spec/protocol.md R2)."""
    (out,) = step_run(w, b, [(x, t, lr)], dict(_OFF, buffer_format=dtype), dtype)
    return {k: v for k, v in out.items() if k not in ("buf_w", "buf_b")}
