"""optax's SGD on JAX (CPU), as an implementation of runs under the conventions ``optax`` and
``optax-decay-after`` (spec/neuron.md 8.6): ``neuronspec check examples/optax_sgd.py:step
--convention optax``.

Needs optax and JAX (``pip install optax``); it enables JAX's float64 (``jax_enable_x64``).
The forward and the gradients are the seed's formulas in ``jax.numpy`` arrays of the format
(``r = w*x + b - t``, ``dL_dw = r*x``, ``loss = 0.5*r*r``); the update is a fresh optax chain
per run: ``chain(add_decayed_weights(wd), sgd(schedule, momentum, nesterov))`` under ``optax``,
``chain(trace(momentum, nesterov), add_decayed_weights(wd), scale_by_learning_rate(schedule))``
under ``optax-decay-after`` (without momentum: no trace; without decay: no
``add_decayed_weights``), each step ``tx.update`` then ``optax.apply_updates``, eagerly or, with
``NEURONSPEC_OPTAX_JIT=1``, under ``jax.jit``.  The learning rate of step k is the schedule's
k-th value.  The state reported is the trace (``buf_w``, ``buf_b``); ``step_from`` sets a given
trace in the state before the step (none: optax's zeros).

Measured with optax 0.2.8 and JAX 0.10.2: every value of 160 runs of 4 steps of moderate
values (float16, bfloat16, float32, float64; eager and jitted; both places of the decay;
Nesterov; momentum up to 1.5; a schedule) is a legal value of its convention
(``tests/test_run_conventions.py`` runs a few where optax is installed).  ``neuronspec check``
fails it in bfloat16, float32 and float64, every failure at a subnormal value (drawn states of
the property step-from, and tiny runs): XLA on CPU flushes subnormals to zero, and the
flush-to-zero models are not covered for runs yet (spec/neuron.md 8.8).

It declines torch's and keras's conventions (the plain step, every option off, is every
convention's), dampening and maximize (optax's SGD has neither) and a buffer format other than
the parameter format (``accumulator_dtype`` is not modelled).
"""

import os

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

_DTYPES = {"float16": jnp.float16, "bfloat16": jnp.bfloat16, "float32": jnp.float32,
           "float64": jnp.float64}
_OPTION_KEYS = ("momentum", "dampening", "weight_decay", "nesterov", "maximize", "convention",
                "buffer_format")
_OFF = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
        "maximize": False, "convention": "optax"}


def _settings(options, dtype):
    """(convention, momentum, nesterov, weight decay); NotImplementedError for what optax's SGD
    does not do."""
    if dtype not in _DTYPES:
        raise NotImplementedError(f"jax has no {dtype} dtype here")
    unknown = sorted(k for k, v in options.items()
                     if k not in _OPTION_KEYS and v not in (None, False, 0))
    if unknown:
        raise NotImplementedError(f"unknown option(s) {', '.join(unknown)}")
    plain = not any(options.get(k) for k in ("momentum", "dampening", "weight_decay",
                                              "nesterov", "maximize"))
    convention = options.get("convention", "optax")
    if convention not in ("optax", "optax-decay-after"):
        if not (convention in ("torch", "keras") and plain):
            raise NotImplementedError(f"optax keeps its trace (conventions 'optax' and "
                                      f"'optax-decay-after'), not {convention!r}'s state")
        convention = "optax"
    if options.get("dampening") or options.get("maximize"):
        raise NotImplementedError("optax's SGD has no dampening and no maximize")
    if (options.get("buffer_format") or dtype) != dtype:
        raise NotImplementedError("accumulator_dtype is not implemented here")
    return (convention, float(options.get("momentum", 0.0)),
            bool(options.get("nesterov", False)), float(options.get("weight_decay", 0.0)))


def _chain(convention, schedule, mu, nesterov, wd):
    decay = [optax.add_decayed_weights(wd)] if wd else []
    if convention == "optax":
        return optax.chain(*decay, optax.sgd(schedule, momentum=mu or None, nesterov=nesterov))
    trace = [optax.trace(decay=mu, nesterov=nesterov)] if mu else []
    return optax.chain(*trace, *decay, optax.scale_by_learning_rate(schedule))


def _steps(w0, b0, bufs, data, options, dtype):
    """Steps of one fresh chain from (w0, b0) and the traces ``bufs`` (None: zeros)."""
    convention, mu, nesterov, wd = _settings(options, dtype)
    dt = _DTYPES[dtype]
    rates = jnp.asarray([lr for _, _, lr in data], dtype=dt)
    tx = _chain(convention, lambda count: rates[count], mu, nesterov, wd)
    params = {"w": jnp.asarray([w0], dtype=dt), "b": jnp.asarray([b0], dtype=dt)}
    state = tx.init(params)
    if mu and bufs is not None:
        state = optax.tree_utils.tree_set(state, trace={
            "w": jnp.asarray([bufs[0]], dtype=dt), "b": jnp.asarray([bufs[1]], dtype=dt)})

    def update(params, state, x, t):
        r = params["w"] * x + params["b"] - t
        grads = {"w": r * x, "b": r}
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, r, grads

    if os.environ.get("NEURONSPEC_OPTAX_JIT") == "1":
        update = jax.jit(update)
    for x, t, _ in data:
        x, t = jnp.asarray([x], dtype=dt), jnp.asarray([t], dtype=dt)
        y = params["w"] * x + params["b"]
        params, state, r, grads = update(params, state, x, t)
        out = {"y": float(y[0]), "dL_dy": float(r[0]), "loss": float((0.5 * (r * r))[0]),
               "dL_dw": float(grads["w"][0]), "dL_db": float(grads["b"][0]),
               "w_new": float(params["w"][0]), "b_new": float(params["b"][0]),
               "buf_w": None, "buf_b": None}
        if mu:
            trace = optax.tree_utils.tree_get(state, "trace")
            out["buf_w"], out["buf_b"] = float(trace["w"][0]), float(trace["b"][0])
        yield out


def step_run(w0, b0, data, options, dtype="float32"):
    """A run from (w0, b0) and optax's zero trace: one mapping per step (what is declined is
    declined here, before the first step)."""
    _settings(options, dtype)
    return _steps(w0, b0, None, [tuple(s) for s in data], dict(options), dtype)


def step_from(state, x, t, lr, options, dtype="float32"):
    """One step from ``state`` = {w, b, buf_w, buf_b} (the traces; None: zeros)."""
    bufs = state.get("buf_w"), state.get("buf_b")
    if (bufs[0] is None) != (bufs[1] is None):
        raise ValueError("both parameters have a trace, or neither")
    (out,) = _steps(state["w"], state["b"], None if bufs[0] is None else bufs, [(x, t, lr)],
                    dict(options), dtype)
    return out


def step(w, b, x, t, lr, dtype="float32"):
    """The plain step: a run of one step with every option off (spec/protocol.md R2)."""
    (out,) = step_run(w, b, [(x, t, lr)], dict(_OFF, buffer_format=dtype), dtype)
    return {k: v for k, v in out.items() if k not in ("buf_w", "buf_b")}


__all__ = ["step", "step_run", "step_from"]
