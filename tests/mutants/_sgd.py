"""The correct SGD the run mutants (tests/mutants/sgd_*.py) share; not a mutant itself (a file
whose name starts with ``_`` is not one).

torch 2.13.0's ``_single_tensor_sgd`` (spec/neuron.md 8.2) in numpy scalars of the format, each
operation rounded on its own, after the plain step's forward and gradients.  A mutant builds its
forms with ``forms(...)``, replacing only the piece its bug is in:

- ``hyper(options, dtype)``: the settings ``h`` (options in binary64, constants of the format);
- ``grad(h, theta, G)``: the gradient the optimiser uses (maximize, then weight decay);
- ``buffer(h, g, buf)``: the new momentum buffer (``buf`` None: the first step);
- ``direction(h, theta, g, old, buf)``: the direction from ``g``, the buffer before (``old``)
  and the new one (``buf``);
- ``apply(h, theta, lr, d)``: the parameter moved along ``d``;
- ``update(h, theta, G, buf, lr)``: all of one parameter's update, (theta_new, buffer or None);
  by default the four pieces above;
- ``step_from(state, x, t, lr, options, dtype)``: one step from a state.

Self-contained (numpy, ml_dtypes, math): a mutant is loaded as a file, its folder on sys.path.
"""

import math

import ml_dtypes
import numpy as np

TYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
         "float32": np.float32, "float64": np.float64}
OPTION_KEYS = ("momentum", "dampening", "weight_decay", "nesterov", "maximize", "convention",
               "buffer_format")


def to(dtype, v):
    """``v`` rounded once (to nearest, ties to even) to the numpy scalar type of ``dtype``.

    For bfloat16 the value is first rounded to odd in float32, because
    ``ml_dtypes.bfloat16(v)`` of a binary64 value rounds twice (through float32).
    """
    if dtype not in TYPES:
        raise NotImplementedError(f"unsupported dtype {dtype!r}")
    v = float(v)
    with np.errstate(all="ignore"):
        if dtype != "bfloat16":
            return TYPES[dtype](v)
        f = np.float32(v)
        if math.isfinite(v) and np.isfinite(f) and float(f) != v and int(f.view(np.uint32)) & 1 == 0:
            f = np.nextafter(f, np.float32(math.copysign(math.inf, v - float(f))))
        return ml_dtypes.bfloat16(f)


def hyper(options, dtype):
    """The options as binary64 values and as constants of the format (and the format itself);
    NotImplementedError for what this code does not do."""
    if dtype not in TYPES:
        raise NotImplementedError(f"unsupported dtype {dtype!r}")
    unknown = sorted(k for k, v in options.items()
                     if k not in OPTION_KEYS and v not in (None, False, 0))
    if unknown:
        raise NotImplementedError(f"unknown option(s) {', '.join(unknown)}")
    if options.get("convention", "torch") != "torch":
        raise NotImplementedError("convention 'torch' only")
    if (options.get("buffer_format") or dtype) != dtype:
        raise NotImplementedError("the buffer is kept in the parameter format")
    mu, tau, wd = (float(options.get(k, 0.0)) for k in ("momentum", "dampening", "weight_decay"))
    return {"dtype": dtype, "mu": mu, "tau": tau, "wd": wd,
            "nesterov": bool(options.get("nesterov", False)),
            "maximize": bool(options.get("maximize", False)),
            "mu_f": to(dtype, mu), "wd_f": to(dtype, wd), "c_f": to(dtype, 1.0 - tau)}


def grad(h, theta, G):
    """The gradient the optimiser uses, from the loss gradient ``G``."""
    g = -G if h["maximize"] else G              # grad = -grads[i] under maximize
    if h["wd"] != 0:
        g = g + h["wd_f"] * theta               # grad.add(param, alpha=weight_decay)
    return g


def buffer(h, g, buf):
    """The new momentum buffer from ``g`` and the buffer ``buf`` (None: the first step)."""
    if buf is None:
        return g                                # the first step: a copy, no dampening
    return h["mu_f"] * buf + h["c_f"] * g       # buf.mul_(mu).add_(grad, alpha=1 - tau)


def direction(h, theta, g, old, buf):
    """The direction from ``g`` and the new buffer ``buf`` (``old``: the buffer before it)."""
    return g + h["mu_f"] * buf if h["nesterov"] else buf


def apply(h, theta, lr, d):
    """The parameter moved along ``d``."""
    return theta - lr * d                       # param.add_(d, alpha=-lr)


def forms(hyper=hyper, grad=grad, buffer=buffer, direction=direction, apply=apply, update=None,
          step_from=None):
    """``(step, step_run, step_from)`` built on the pieces given (the rest correct)."""
    if update is None:
        def update(h, theta, G, buf, lr):
            """One parameter's update from its gradient ``G``: (theta_new, buffer or None)."""
            g = grad(h, theta, G)
            if h["mu"] == 0:
                return apply(h, theta, lr, g), None
            new = buffer(h, g, buf)
            return apply(h, theta, lr, direction(h, theta, g, buf, new)), new

    if step_from is None:
        def step_from(state, x, t, lr, options, dtype="float32"):
            """One step from ``state`` = {w, b, buf_w, buf_b} (buffers None: no buffer yet)."""
            h = hyper(options, dtype)
            w, b, x, t, lr = (to(dtype, v) for v in (state["w"], state["b"], x, t, lr))
            bufs = {name: None if state.get(f"buf_{name}") is None
                    else to(dtype, state[f"buf_{name}"]) for name in ("w", "b")}
            half = to(dtype, 0.5)
            with np.errstate(all="ignore"):  # inf/nan results are IEEE results here, not errors
                y = w * x + b
                r = y - t
                loss = half * (r * r)
                dL_dy = r
                dL_dw = dL_dy * x
                dL_db = dL_dy
                out = {"y": y, "dL_dy": dL_dy, "loss": loss, "dL_dw": dL_dw, "dL_db": dL_db}
                for name, theta, G in (("w", w, dL_dw), ("b", b, dL_db)):
                    out[f"{name}_new"], out[f"buf_{name}"] = update(h, theta, G, bufs[name], lr)
            return {k: None if v is None else float(v) for k, v in out.items()}

    def steps(w0, b0, data, options, dtype):
        state = {"w": w0, "b": b0, "buf_w": None, "buf_b": None}
        for x, t, lr in data:
            out = step_from(state, x, t, lr, options, dtype)
            state = {"w": out["w_new"], "b": out["b_new"], "buf_w": out["buf_w"],
                     "buf_b": out["buf_b"]}
            yield out

    def step_run(w0, b0, data, options, dtype="float32"):
        """A run from (w0, b0) and no buffer: one mapping per step (declines before the first)."""
        hyper(options, dtype)
        return steps(w0, b0, [tuple(step) for step in data], dict(options), dtype)

    def step(w, b, x, t, lr, dtype="float32"):
        """The plain step: a run of one step with every option off (spec/protocol.md R2)."""
        options = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
                   "maximize": False, "convention": "torch", "buffer_format": dtype}
        (out,) = step_run(w, b, [(x, t, lr)], options, dtype)
        return {k: v for k, v in out.items() if k not in ("buf_w", "buf_b")}

    return step, step_run, step_from


def convention_hyper(convention):
    """``hyper`` for a form of the convention ``convention`` (spec/neuron.md 8.6): that
    convention's option sets (and the plain step, every option off, which is every
    convention's); the state starts at +0, ``zero`` in the settings."""
    def convention_settings(options, dtype):
        declared = options.get("convention", "torch")
        plain = not any(options.get(k) for k in ("momentum", "dampening", "weight_decay",
                                                  "nesterov", "maximize"))
        if declared != convention and not (declared == "torch" and plain):
            raise NotImplementedError(f"convention {convention!r} only")
        h = hyper(dict(options, convention="torch"), dtype)
        if h["tau"] != 0 or h["maximize"]:
            raise NotImplementedError(f"{convention} has no dampening and no maximize")
        return dict(h, convention=convention, zero=to(dtype, 0.0))
    return convention_settings
