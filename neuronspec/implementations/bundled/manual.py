"""The seed notebook's manual computation, in Python floats (binary64), as written there.

Note ``(y - t)**2``: CPython's float ``**`` calls the C library's ``pow``, which is not always
correctly rounded; this is kept on purpose, because it is what the seed's code does.

``step_run`` and ``step_from`` (spec/protocol.md, "Runs") extend the seed's code with torch's
momentum, dampening, Nesterov momentum, weight decay and maximize (spec/neuron.md 8.2), in the
same Python floats (float64 only, the buffer in float64, convention ``torch``).
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


# --- runs (spec/protocol.md, "Runs"; spec/neuron.md section 8) ----------------------------------

_OPTION_KEYS = ("momentum", "dampening", "weight_decay", "nesterov", "maximize", "convention",
                "buffer_format")


def _is_off(value):
    """Whether an option this code does not know is off (None, False or a zero)."""
    return value is None or value is False or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0)


def _hyper(options, dtype):
    if dtype != "float64":
        raise NotImplementedError(f"the manual implementation computes in float64 only, not {dtype}")
    unknown = sorted(k for k, v in options.items() if k not in _OPTION_KEYS and not _is_off(v))
    if unknown:
        raise NotImplementedError(f"unknown option(s) {', '.join(unknown)}")
    if options.get("convention", "torch") != "torch":
        raise NotImplementedError(f"this is torch's algorithm (convention 'torch'), not the "
                                  f"{options['convention']!r} convention")
    if (options.get("buffer_format") or "float64") != "float64":
        raise NotImplementedError(f"the buffer is a Python float (float64), not "
                                  f"{options['buffer_format']}")
    momentum = float(options.get("momentum", 0.0))
    dampening = float(options.get("dampening", 0.0))
    weight_decay = float(options.get("weight_decay", 0.0))
    nesterov = bool(options.get("nesterov", False))
    if not (momentum >= 0):
        raise ValueError(f"Invalid momentum value: {momentum}")
    if not (weight_decay >= 0):
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    return momentum, dampening, weight_decay, nesterov, bool(options.get("maximize", False))


def _sgd_step(hyper, w, b, buf_w, buf_b, x, t, lr):
    momentum, dampening, weight_decay, nesterov, maximize = hyper
    # forward and manual grads, as in step()
    y = w * x + b
    loss = 0.5 * (y - t) ** 2
    dL_dy = y - t
    dL_dw = dL_dy * x
    dL_db = dL_dy
    out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db}
    # the optimiser, per parameter
    for name, param, grad, buf in (("w", w, dL_dw, buf_w), ("b", b, dL_db, buf_b)):
        if maximize:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * param
        if momentum != 0:
            if buf is None:
                buf = grad  # the first step: no dampening
            else:
                buf = momentum * buf + (1 - dampening) * grad
            grad = grad + momentum * buf if nesterov else buf
        else:
            buf = None
        out[name + "_new"] = param - lr * grad
        out["buf_" + name] = buf
    return out


def step_from(state, x, t, lr, options, dtype="float64"):
    """One step from ``state`` = {w, b, buf_w, buf_b} (buffers None: no buffer yet)."""
    hyper = _hyper(options, dtype)
    buf_w, buf_b = state.get("buf_w"), state.get("buf_b")
    if (buf_w is None) != (buf_b is None):
        raise ValueError("both parameters have a buffer, or neither")
    if buf_w is not None and hyper[0] == 0:
        raise ValueError("a buffer is given but momentum is 0")
    return _sgd_step(hyper, float(state["w"]), float(state["b"]),
                     None if buf_w is None else float(buf_w),
                     None if buf_b is None else float(buf_b), float(x), float(t), float(lr))


def step_run(w0, b0, data, options, dtype="float64"):
    """A run of ``len(data)`` steps from (w0, b0) and no buffer: one mapping per step, as it
    is computed (what is declined is declined here, before the first step)."""
    return _steps(_hyper(options, dtype), float(w0), float(b0),
                  [tuple(map(float, step)) for step in data])


def _steps(hyper, w, b, data):
    buf_w = buf_b = None
    for x, t, lr in data:
        out = _sgd_step(hyper, w, b, buf_w, buf_b, x, t, lr)
        w, b, buf_w, buf_b = out["w_new"], out["b_new"], out["buf_w"], out["buf_b"]
        yield out
