"""The seed's formulas in numpy scalars of the requested format (float16, float32, float64).

All five inputs are converted to the format first, as a numpy user writing ``np.float32(lr)``
would.  Note: numpy 2.4's *scalar* ``**2`` goes through ``pow`` and is not always correctly
rounded (about 0.07% of float32 cases differ from ``r*r`` by one ulp); arrays and
``np.square`` are exact.  It is kept, as a user would write it.

``step_batch`` is the same code on arrays of the format (one case per element); there ``**2``
is numpy's ``square``, correctly rounded.

``step_run`` and ``step_from`` (spec/protocol.md, "Runs"; ``step_run_batch`` and
``step_from_batch``, R4, the same code on arrays) are torch's ``_single_tensor_sgd``
(spec/neuron.md 8.2) written out in numpy scalars of the format, each operation rounded on its
own (no fused multiply-add), after the plain step's forward and gradients above.  The constants
``momentum``, ``weight_decay`` and ``1 - dampening`` (subtracted in binary64) are converted once
to the format; ``lr`` is converted like the other inputs.  The buffer is kept in the parameter
format (convention ``torch``).  Under the option ``convention`` (spec/neuron.md 8.6) the same
code computes the other frameworks' forms, each operation in the parameter format as the
framework writes it: ``keras`` (Keras 3's ``SGD``: ``variable - variable * wd * lr`` before the
update, the velocity ``m*momentum - gradient*learning_rate`` reported as the state),
``optax`` and ``optax-decay-after`` (``add_decayed_weights`` before or after
``trace``: ``g + decay*t``, then ``p + (-lr)*u``), each state starting at ``+0``.  Buffer
formats other than the parameter format are kept under ``torch`` only.
"""

import functools

import numpy as np

_DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def step(w, b, x, t, lr, dtype="float32"):
    try:
        dt = _DTYPES[dtype]
    except KeyError:
        raise NotImplementedError(f"numpy has no native {dtype} scalar type") from None
    w, b, x, t, lr = dt(w), dt(b), dt(x), dt(t), dt(lr)
    half = dt(0.5)
    with np.errstate(all="ignore"):  # overflow to inf is a legal IEEE result, not an error here
        y = w * x + b
        loss = half * (y - t) ** 2
        dL_dy = y - t
        dL_dw = dL_dy * x
        dL_db = dL_dy
        w_new = w - lr * dL_dw
        b_new = b - lr * dL_db
    return {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
            "w_new": w_new, "b_new": b_new}


def step_batch(w, b, x, t, lr, dtype="float32"):
    try:
        dt = _DTYPES[dtype]
    except KeyError:
        raise NotImplementedError(f"numpy has no native {dtype} dtype") from None
    w, b, x, t, lr = (np.asarray(v, dtype=dt) for v in (w, b, x, t, lr))
    half = dt(0.5)
    with np.errstate(all="ignore"):
        y = w * x + b
        loss = half * (y - t) ** 2
        dL_dy = y - t
        dL_dw = dL_dy * x
        dL_db = dL_dy
        w_new = w - lr * dL_dw
        b_new = b - lr * dL_db
    return {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db,
            "w_new": w_new, "b_new": b_new}


# --- runs (spec/protocol.md, "Runs"; spec/neuron.md section 8) ----------------------------------

#: The option keys of spec/protocol.md R1 and what each is without the option.
_OPTION_KEYS = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
                "maximize": False, "convention": "torch", "buffer_format": None}


def _is_off(value):
    """Whether an option this code does not know is off (None, False or a zero)."""
    return value is None or value is False or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0)


def _run_settings(options, dtype):
    """The scalar type and the hyperparameters (binary64 values, and their constants in the
    format); NotImplementedError for what this code does not do, ValueError (torch's) for what
    is outside the domain of spec/neuron.md 8.1."""
    try:
        dt = _DTYPES[dtype]
    except KeyError:
        raise NotImplementedError(f"numpy has no native {dtype} scalar type") from None
    unknown = sorted(k for k, v in options.items() if k not in _OPTION_KEYS and not _is_off(v))
    if unknown:
        raise NotImplementedError(f"unknown option(s) {', '.join(unknown)}")
    convention = options.get("convention", "torch")
    if convention not in _FORMS:
        raise NotImplementedError(f"the convention {convention!r} is not implemented here "
                                  f"({', '.join(_FORMS)} are)")
    buffer_format = options.get("buffer_format") or dtype
    if convention != "torch" and buffer_format != dtype:
        raise NotImplementedError(f"a {buffer_format} state with {dtype} parameters is kept under "
                                  f"the torch convention only")
    if buffer_format != dtype and not (buffer_format in _MIXED and dtype in _MIXED):
        raise NotImplementedError(f"a {buffer_format} buffer with {dtype} parameters is not "
                                  f"implemented here (float16 and float32, either way, are)")
    mu = float(options.get("momentum", 0.0))
    tau = float(options.get("dampening", 0.0))
    wd = float(options.get("weight_decay", 0.0))
    nesterov = bool(options.get("nesterov", False))
    if not (mu >= 0):
        raise ValueError(f"Invalid momentum value: {mu}")
    if not (wd >= 0):
        raise ValueError(f"Invalid weight_decay value: {wd}")
    if convention == "torch" and nesterov and (mu <= 0 or tau != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    if convention != "torch" and (tau != 0 or options.get("maximize")):
        raise ValueError(f"{convention} has no dampening and no maximize")
    if convention == "keras" and mu > 1:
        raise ValueError(f"`momentum` must be a float between [0, 1], not {mu}")
    bt = _DTYPES[buffer_format]
    with np.errstate(all="ignore"):
        return dt, {"mu": mu, "wd": wd, "nesterov": nesterov, "convention": convention,
                    "maximize": bool(options.get("maximize", False)),
                    "mu_f": dt(mu), "wd_f": dt(wd), "c_f": dt(1.0 - tau),
                    "bt": bt, "mu_b": bt(mu), "c_b": bt(1.0 - tau)}


#: Formats whose products are exact in binary64: a buffer in one with parameters in the other
#: computes each mixed product in binary64 and rounds it once to its format.
_MIXED = ("float16", "float32")


def _times(to, a, b):
    """a*b rounded once to ``to`` (the product is exact in binary64 for these formats)."""
    return to(np.float64(a) * np.float64(b))


def _sgd_step(dt, h, w, b, buf_w, buf_b, x, t, lr):
    """One step from (w, b, buf_w, buf_b) (numpy scalars of the format, buffers None for no
    buffer); inputs ``x``, ``t``, ``lr`` converted to the format."""
    x, t, lr = dt(x), dt(t), dt(lr)
    half = dt(0.5)
    with np.errstate(all="ignore"):
        y = w * x + b
        loss = half * (y - t) ** 2
        dL_dy = y - t
        dL_dw = dL_dy * x
        dL_db = dL_dy
        out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db}
        for name, theta, G, buf in (("w", w, dL_dw, buf_w), ("b", b, dL_db, buf_b)):
            if h["convention"] != "torch":
                out[f"{name}_new"], out[f"buf_{name}"] = _FORMS[h["convention"]](
                    h, theta, G, np.zeros_like(theta) if buf is None else buf, lr)
                continue
            g = -G if h["maximize"] else G           # grad = -grads[i] under maximize
            if h["wd"] != 0:
                g = g + h["wd_f"] * theta            # grad.add(param, alpha=weight_decay)
            bt = h["bt"]
            if h["mu"] != 0 and bt is dt:
                if buf is None:
                    buf = g                          # buf = grad.clone(): no dampening
                else:                                # buf.mul_(mu).add_(grad, alpha=1 - tau)
                    buf = h["mu_f"] * buf + h["c_f"] * g
                g = g + h["mu_f"] * buf if h["nesterov"] else buf
            elif h["mu"] != 0:  # the buffer in its own format: its nodes round to it
                if buf is None:
                    buf = bt(g)
                else:
                    buf = h["mu_b"] * buf + _times(bt, h["c_b"], g)
                if h["nesterov"]:
                    g = g + _times(dt, h["mu_f"], buf)
                else:
                    out[f"{name}_new"] = theta - _times(dt, lr, buf)
                    out[f"buf_{name}"] = buf
                    continue
            else:
                buf = None
            out[f"{name}_new"] = theta - lr * g      # param.add_(grad, alpha=-lr)
            out[f"buf_{name}"] = buf
    return out


def _keras(h, theta, G, v, lr):
    """Keras 3's ``SGD``: (theta_new, velocity or None); ``v`` the velocity (+0 at first)."""
    if h["wd"] != 0:                              # _apply_weight_decay, before the update
        theta = theta - theta * h["wd_f"] * lr    # variable - variable * wd * lr
    if h["mu"] == 0:
        return theta - G * lr, None               # assign_sub(variable, gradient*lr)
    v = v * h["mu_f"] - G * lr                    # m.assign(m*momentum - gradient*lr)
    if h["nesterov"]:
        return theta + (v * h["mu_f"] - G * lr), v
    return theta + v, v                           # assign_add(variable, m)


def _optax(h, theta, G, t, lr, after=False):
    """optax's ``chain(add_decayed_weights(wd), sgd(lr, mu, nesterov))`` (``after``: the decay
    between ``trace`` and ``scale(-lr)``): (theta_new, trace or None)."""
    g = G + h["wd_f"] * theta if h["wd"] != 0 and not after else G  # g + weight_decay * p
    trace = None
    if h["mu"] != 0:
        trace = g + h["mu_f"] * t                 # trace: g + decay * t
        u = g + h["mu_f"] * trace if h["nesterov"] else trace
    else:
        u = g
    if h["wd"] != 0 and after:
        u = u + h["wd_f"] * theta
    return theta + (-lr) * u, trace               # apply_updates(p, scale(-lr)(u))


#: The forms of the conventions (spec/neuron.md 8.6) other than torch's, by name.
_FORMS = {"torch": None, "keras": _keras, "optax": _optax,  # (torch's: inline, below)
          "optax-decay-after": functools.partial(_optax, after=True)}


def step_from(state, x, t, lr, options, dtype="float32"):
    """One step from ``state`` = {w, b, buf_w, buf_b} (buffers None: no buffer yet)."""
    dt, h = _run_settings(options, dtype)
    bufs = state.get("buf_w"), state.get("buf_b")
    if (bufs[0] is None) != (bufs[1] is None):
        raise ValueError("both parameters have a buffer, or neither")
    if bufs[0] is not None and h["mu"] == 0:
        raise ValueError("a buffer is given but momentum is 0")
    bufs = [None if v is None else h["bt"](v) for v in bufs]
    return _sgd_step(dt, h, dt(state["w"]), dt(state["b"]), *bufs, x, t, lr)


def step_run(w0, b0, data, options, dtype="float32"):
    """A run of ``len(data)`` steps from (w0, b0) and no buffer: one mapping per step, as it
    is computed (what is declined is declined here, before the first step)."""
    dt, h = _run_settings(options, dtype)
    return _steps(dt, h, dt(w0), dt(b0), [tuple(step) for step in data])


def step_from_batch(w, b, buf_w, buf_b, x, t, lr, options, dtype="float32"):
    """spec/protocol.md R4: ``n`` independent steps from ``n`` states, every argument an array
    of shape (n,) (``buf_w``, ``buf_b`` None for every state: a first step, or no momentum);
    the same code as :func:`step_from`, on arrays of the format."""
    dt, h = _run_settings(options, dtype)
    if (buf_w is None) != (buf_b is None):
        raise ValueError("both parameters have a buffer, or neither")
    if buf_w is not None and h["mu"] == 0:
        raise ValueError("a buffer is given but momentum is 0")
    bufs = [None if v is None else np.asarray(v, dtype=h["bt"]) for v in (buf_w, buf_b)]
    w, b, x, t, lr = (np.asarray(v, dtype=dt) for v in (w, b, x, t, lr))
    return _sgd_step(dt, h, w, b, *bufs, x, t, lr)


def step_run_batch(w0, b0, x, t, lr, options, dtype="float32"):
    """spec/protocol.md R4: ``n`` runs of ``K`` steps from (w0, b0) and no buffer (``x``,
    ``t``, ``lr`` of shape (K, n), row k - 1 the data of step k): per quantity an array of
    shape (K, n) (buffers None without momentum)."""
    dt, h = _run_settings(options, dtype)
    w, b = np.asarray(w0, dtype=dt), np.asarray(b0, dtype=dt)
    x, t, lr = (np.asarray(v, dtype=dt) for v in (x, t, lr))
    rows = list(_steps(dt, h, w, b, list(zip(x, t, lr))))
    return {q: None if rows[0][q] is None else np.stack([r[q] for r in rows])
            for q in rows[0]}


def _steps(dt, h, w, b, data):
    buf_w = buf_b = None
    for x, t, lr in data:
        out = _sgd_step(dt, h, w, b, buf_w, buf_b, x, t, lr)
        w, b, buf_w, buf_b = out["w_new"], out["b_new"], out["buf_w"], out["buf_b"]
        yield out
